import { hasPermission, type Permission } from '@ziggie/contracts/rbac';

const KEY = 'ziggie.console.token';

/** What the page needs of window.location and window.history, so sign-in can be tested without a browser. */
export interface AddressBar {
  hash: string;
  pathname: string;
  search: string;
  replace(url: string): void;
}

/**
 * Moves a token handed over in the URL fragment (`#token=...`, which browsers never send to the
 * server) into sessionStorage, and takes it out of the address bar and the history entry.
 * Answers the token the page should use: the fresh one, else the one stored earlier in this tab.
 */
export function takeToken(address: AddressBar, storage: Pick<Storage, 'getItem' | 'setItem'>): string | null {
  const params = new URLSearchParams(address.hash.replace(/^#/, ''));
  const fresh = params.get('token');
  if (fresh !== null) {
    params.delete('token');
    const rest = params.toString();
    address.replace(`${address.pathname}${address.search}${rest ? `#${rest}` : ''}`);
    if (fresh.trim()) storage.setItem(KEY, fresh.trim());
  }
  return storage.getItem(KEY);
}

export function storeToken(storage: Pick<Storage, 'setItem'>, token: string): void {
  storage.setItem(KEY, token.trim());
}

export function forgetToken(storage: Pick<Storage, 'removeItem'>): void {
  storage.removeItem(KEY);
}

/** The claims the console shows and hides actions by; the gateway verifies the token, not this. */
export interface Session {
  token: string;
  subject: string;
  roles: string[];
  workspaces: string[];
  expiresAt: number | null;
}

export function sessionOf(token: string): Session | null {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const claims = JSON.parse(json) as { sub?: unknown; roles?: unknown; workspaces?: unknown; exp?: unknown };
    const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    return {
      token,
      subject: typeof claims.sub === 'string' ? claims.sub : '?',
      roles: strings(claims.roles),
      workspaces: strings(claims.workspaces),
      expiresAt: typeof claims.exp === 'number' ? claims.exp * 1000 : null,
    };
  } catch {
    return null;
  }
}

/** Why an action is not offered to this session, or null when it may be taken. */
export function deniedReason(session: Session, permission: Permission): string | null {
  return hasPermission(session.roles, permission) ? null : `needs ${permission} (roles: ${session.roles.join(', ') || 'none'})`;
}
