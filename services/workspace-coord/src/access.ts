import { canAccessWorkspace, hasPermission, pb, Permission, ZiggieError } from '@ziggie/contracts';

/**
 * The gateway checks permissions before it calls; checking again here keeps a caller inside
 * the mesh from changing what its token could not.
 */
export function requirePermission(principal: pb.Principal | undefined, permission: Permission, workspace?: string): pb.Principal {
  if (!principal || !hasPermission(principal.roles, permission)) throw new ZiggieError('AUTH_FORBIDDEN', `permission ${permission} required`);
  if (workspace !== undefined) assertWorkspaceAllowed(principal, workspace);
  return principal;
}

/** Internal callers (the orchestrator) send no principal; when one is sent, its workspaces apply. */
export function assertWorkspaceAllowed(principal: pb.Principal | undefined, workspace: string): void {
  if (principal && !canAccessWorkspace(principal.workspaces, workspace)) {
    throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', `workspace ${workspace} not allowed for this token`);
  }
}

export function holderOf(principal: pb.Principal | undefined): string {
  return principal?.subject || 'system';
}
