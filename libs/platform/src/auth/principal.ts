import { canAccessWorkspace, ZiggieError } from '@ziggie/contracts';

/** Who is calling, as proven by a verified token. Roles hold only roles this build knows. */
export interface Principal {
  subject: string;
  roles: string[];
  workspaces: string[];
}

/** Workspace scoping (DESIGN §8.3): a token sees only its workspaces, "*" sees all. */
export function assertWorkspace(principal: Principal, workspace: string): void {
  if (!canAccessWorkspace(principal.workspaces, workspace)) {
    throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', `workspace ${workspace} is not allowed for this token`);
  }
}
