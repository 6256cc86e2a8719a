import { deniedReason, sessionOf, takeToken } from './auth';

function memoryStorage() {
  const m = new Map<string, string>();
  return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v), removeItem: (k: string) => void m.delete(k), m };
}

const b64url = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (claims: object) => `${b64url({ alg: 'HS256' })}.${b64url(claims)}.sig`;

describe('takeToken', () => {
  it('moves the fragment\'s token to storage and removes it from the address, keeping the rest', () => {
    const storage = memoryStorage();
    const replaced: string[] = [];
    const token = takeToken({ hash: '#token=abc.def.ghi&x=1', pathname: '/console/tasks', search: '?status=running', replace: (u) => replaced.push(u) }, storage);
    expect(token).toBe('abc.def.ghi');
    expect(replaced).toEqual(['/console/tasks?status=running#x=1']);
    expect([...storage.m.values()]).toEqual(['abc.def.ghi']);
  });

  it('leaves the address alone without a token and answers the one stored earlier', () => {
    const storage = memoryStorage();
    storage.setItem('ziggie.console.token', 'earlier');
    const replaced: string[] = [];
    expect(takeToken({ hash: '', pathname: '/console/', search: '', replace: (u) => replaced.push(u) }, storage)).toBe('earlier');
    expect(replaced).toEqual([]);
  });
});

describe('sessionOf and deniedReason', () => {
  it('reads subject, roles and workspaces, and says which permission a role lacks', () => {
    const s = sessionOf(jwt({ sub: 'ops@local', roles: ['l2l3'], workspaces: ['ziggie'], exp: 2_000_000_000 }))!;
    expect(s).toMatchObject({ subject: 'ops@local', roles: ['l2l3'], workspaces: ['ziggie'], expiresAt: 2_000_000_000_000 });
    expect(deniedReason(s, 'mcp:call')).toBeNull();
    expect(deniedReason(s, 'agent:dispatch')).toBe('needs agent:dispatch (roles: l2l3)');
    expect(deniedReason(sessionOf(jwt({ sub: 'a', roles: ['admin'] }))!, 'config:change')).toBeNull();
  });

  it('refuses what is not a JWT', () => {
    expect(sessionOf('nope')).toBeNull();
    expect(sessionOf('a.!!!.c')).toBeNull();
  });
});
