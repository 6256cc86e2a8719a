/** Roles and permissions: the matrix of seed 001 section 9, exactly. */
export const Roles = ['admin', 'l1', 'l2l3', 'bmad'] as const;
export type Role = (typeof Roles)[number];

export const Permissions = ['workspace:manage', 'agent:dispatch', 'mcp:call', 'config:change'] as const;
export type Permission = (typeof Permissions)[number];

export const RolePermissions: Record<Role, readonly Permission[]> = {
  admin: ['workspace:manage', 'agent:dispatch', 'mcp:call', 'config:change'],
  l1: ['agent:dispatch', 'mcp:call'],
  l2l3: ['mcp:call'],
  bmad: ['agent:dispatch', 'mcp:call'],
};

export function isRole(value: string): value is Role {
  return (Roles as readonly string[]).includes(value);
}

export function hasPermission(roles: readonly string[], permission: Permission): boolean {
  return roles.some((r) => isRole(r) && RolePermissions[r].includes(permission));
}

/** True when a principal's workspace list covers a workspace ("*" covers all). */
export function canAccessWorkspace(workspaces: readonly string[], workspace: string): boolean {
  return workspaces.includes('*') || workspaces.includes(workspace);
}
