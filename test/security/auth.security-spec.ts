import { readFileSync } from 'node:fs';
import { committedDocument, operationsOf } from './support/operations';
import { startCountingServer, type CountingServer } from './support/counting-server';
import { describe as describeReply, headerValue, HttpRecorder, leaksIn, problemMismatch, wildcardWithCredentials, type Reply } from './support/http';
import { servedRoutes } from '@ziggie/platform';
import { startInProcessGateway, type InProcessGateway } from './support/in-process-gateway';
import {
  compactJws,
  ecKeyPair,
  es256Token,
  hs256,
  hs256Token,
  publicJwk,
  rs256Token,
  rsaKeyPair,
  unsigned,
  validClaims,
  type Claims,
  type KeyPair,
} from './support/jws';
import { CONSOLE_ORIGIN, securityStackHooks, UNTHROTTLED } from './support/stack';

/** Every role may list workspaces, so a refusal here is about the token and nothing else. */
const PROBE = '/v1/workspaces';
const EVIL_ORIGIN = 'http://evil.example';
const TOKEN_REFUSALS = ['AUTH_INVALID_TOKEN', 'AUTH_MISSING_TOKEN'];

interface AttackContext {
  secret: string;
  rsa: KeyPair;
  attacker: KeyPair;
  keyServer: CountingServer;
}

type HeaderAttack = { name: string; authorization: (c: AttackContext) => string };

const now = () => Math.floor(Date.now() / 1000);
const YEAR = 365 * 86_400;

/** Claims attacks, each signed correctly with both accepted algorithms: only the claims are wrong. */
const CLAIM_ATTACKS: Array<{ name: string; claims: () => Claims }> = [
  { name: 'expired 120 s ago (beyond any allowed clock tolerance)', claims: () => validClaims({ iat: now() - 720, exp: now() - 120 }) },
  { name: 'nbf 120 s in the future', claims: () => validClaims({ nbf: now() + 120 }) },
  { name: 'no exp', claims: () => Object.fromEntries(Object.entries(validClaims()).filter(([k]) => k !== 'exp')) },
  { name: 'wrong aud', claims: () => validClaims({ aud: 'some-other-api' }) },
  { name: 'wrong iss', claims: () => validClaims({ iss: 'https://idp.evil.example' }) },
  { name: 'no aud', claims: () => Object.fromEntries(Object.entries(validClaims()).filter(([k]) => k !== 'aud')) },
  { name: 'no iss', claims: () => Object.fromEntries(Object.entries(validClaims()).filter(([k]) => k !== 'iss')) },
];

/**
 * Tokens that would stay useful far too long (JWT_MAX_TOKEN_LIFETIME_SECONDS, 24 hours by
 * default), each with the fixed reason the verifier gives; attacked on REST and on /mcp alike.
 */
function lifetimeAttacks(): Array<{ name: string; claims: () => Claims; reason: string }> {
  return [
    { name: 'exp a hundred years away', claims: () => validClaims({ iat: now(), exp: now() + 100 * YEAR }), reason: 'token lifetime exceeds the maximum' },
    {
      name: 'exp a hundred years away and no iat',
      claims: () => Object.fromEntries(Object.entries(validClaims({ exp: now() + 100 * YEAR })).filter(([k]) => k !== 'iat')),
      reason: 'token lifetime exceeds the maximum',
    },
    { name: 'exp one hour beyond the 24-hour maximum', claims: () => validClaims({ iat: now(), exp: now() + 25 * 3600 }), reason: 'token lifetime exceeds the maximum' },
    { name: 'iat a day in the future', claims: () => validClaims({ iat: now() + 86_400, exp: now() + 86_400 + 600 }), reason: 'token issued in the future' },
  ];
}

const HEADER_ATTACKS: HeaderAttack[] = [
  { name: 'alg none, unsigned', authorization: () => `Bearer ${compactJws({ alg: 'none', typ: 'JWT' }, validClaims(), unsigned())}` },
  { name: 'alg None, unsigned', authorization: () => `Bearer ${compactJws({ alg: 'None', typ: 'JWT' }, validClaims(), unsigned())}` },
  { name: 'alg NONE with a signature part', authorization: (c) => `Bearer ${compactJws({ alg: 'NONE', typ: 'JWT' }, validClaims(), hs256(c.secret))}` },
  { name: 'HS256 signed with the RSA public PEM as HMAC secret (key confusion)', authorization: (c) => `Bearer ${hs256Token(c.rsa.publicPem)}` },
  { name: 'HS256 signed with the RSA public PEM without its final newline', authorization: (c) => `Bearer ${hs256Token(c.rsa.publicPem.trimEnd())}` },
  { name: 'RS256 signed with a different private key', authorization: (c) => `Bearer ${rs256Token(c.attacker.privateKey)}` },
  {
    name: 'payload altered after signing (roles and workspaces widened)',
    authorization: (c) => {
      const [header, , signature] = rs256Token(c.rsa.privateKey, validClaims({ roles: ['l2l3'], workspaces: ['fitflow'] })).split('.');
      const widened = Buffer.from(JSON.stringify(validClaims({ roles: ['admin'], workspaces: ['*'] }))).toString('base64url');
      return `Bearer ${header}.${widened}.${signature}`;
    },
  },
  {
    name: 'kid ../../../../etc/passwd, HS256 signed with that file',
    authorization: () => `Bearer ${hs256Token(readFileSync('/etc/passwd', 'utf8'), validClaims(), { kid: '../../../../etc/passwd' })}`,
  },
  { name: 'kid ../../../../dev/null, HS256 signed with an empty key', authorization: () => `Bearer ${hs256Token('', validClaims(), { kid: '../../../../dev/null' })}` },
  { name: 'kid is a URL serving the attacker key', authorization: (c) => `Bearer ${rs256Token(c.attacker.privateKey, validClaims(), { kid: `${c.keyServer.url}/key.pem` })}` },
  { name: 'jku names a JWKS with the attacker key', authorization: (c) => `Bearer ${rs256Token(c.attacker.privateKey, validClaims(), { jku: `${c.keyServer.url}/jwks.json`, kid: 'attacker' })}` },
  { name: 'jwk embeds the attacker key', authorization: (c) => `Bearer ${rs256Token(c.attacker.privateKey, validClaims(), { jwk: publicJwk(c.attacker.publicKey, { kid: 'attacker' }) })}` },
  { name: 'x5u names a certificate URL', authorization: (c) => `Bearer ${rs256Token(c.attacker.privateKey, validClaims(), { x5u: `${c.keyServer.url}/cert.pem` })}` },
  {
    name: 'x5c embeds the attacker key',
    authorization: (c) => `Bearer ${rs256Token(c.attacker.privateKey, validClaims(), { x5c: [c.attacker.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')] })}`,
  },
  { name: 'two tokens in one header (Bearer a, Bearer b)', authorization: (c) => `Bearer ${hs256Token(c.secret)}, Bearer ${rs256Token(c.rsa.privateKey)}` },
  { name: 'garbage', authorization: () => 'Bearer garbage' },
  { name: 'three garbage parts', authorization: () => 'Bearer a.b.c' },
  { name: 'random base64url parts', authorization: () => `Bearer ${Buffer.from('{"alg":').toString('base64url')}.${Buffer.from('not json').toString('base64url')}.AAAA` },
  { name: 'a header with no payload or signature', authorization: () => `Bearer ${Buffer.from('{"alg":"HS256"}').toString('base64url')}` },
  { name: 'Basic credentials instead of a bearer token', authorization: () => `Basic ${Buffer.from('admin:admin').toString('base64')}` },
  { name: 'the token without the Bearer scheme', authorization: (c) => hs256Token(c.secret) },
  { name: 'empty bearer ("Bearer ")', authorization: () => 'Bearer ' },
  { name: 'bare "Bearer"', authorization: () => 'Bearer' },
  { name: 'empty Authorization header', authorization: () => '' },
];

/**
 * Token handling of the running gateway (HS256 with the stack secret and RS256 with
 * JWT_PUBLIC_KEY_FILE), JWKS with ES256 on a second gateway in this process, CORS, and the
 * served routes against the OpenAPI document.
 */
describe('security: authentication, CORS and the documented surface', () => {
  const sec = securityStackHooks('sec-auth');
  const http = sec.http;
  let keyServer: CountingServer;
  let attacker: KeyPair;
  const ctx = (): AttackContext => ({ secret: sec.stack.jwtSecret, rsa: sec.rsa, attacker, keyServer });

  beforeAll(async () => {
    attacker = rsaKeyPair();
    keyServer = await startCountingServer({
      '/key.pem': { type: 'application/x-pem-file', body: attacker.publicPem },
      '/jwks.json': { type: 'application/json', body: JSON.stringify({ keys: [publicJwk(attacker.publicKey, { kid: 'attacker', alg: 'RS256', use: 'sig' })] }) },
      // Not a certificate: the gateway must refuse an x5u header before anything could be fetched or parsed.
      '/cert.pem': { type: 'application/x-pem-file', body: attacker.publicPem },
    });
  });
  afterAll(async () => {
    await keyServer?.close();
  });

  const expectTokenRefused = (reply: Reply) => expect(problemMismatch(reply, 401, TOKEN_REFUSALS)).toBeNull();

  describe('JWT verification', () => {
    it('accepts a valid HS256 token and a valid RS256 token signed with the configured key', async () => {
      const hs = await http.request(PROBE, { token: hs256Token(sec.stack.jwtSecret) });
      const rs = await http.request(PROBE, { token: rs256Token(sec.rsa.privateKey) });
      expect([describeReply(hs), describeReply(rs)]).toEqual([expect.stringMatching(/^200 /), expect.stringMatching(/^200 /)]);
    }, 20_000);

    it.each(CLAIM_ATTACKS.flatMap((a) => (['HS256', 'RS256'] as const).map((alg) => ({ ...a, alg }))))('refuses a token with $name ($alg) with 401', async ({ claims, alg }) => {
      const token = alg === 'HS256' ? hs256Token(sec.stack.jwtSecret, claims()) : rs256Token(sec.rsa.privateKey, claims());
      expectTokenRefused(await http.request(PROBE, { token }));
    }, 20_000);

    it.each(HEADER_ATTACKS)('refuses $name with 401', async ({ authorization }) => {
      const reply = await http.request(PROBE, { token: null, headers: { authorization: authorization(ctx()) } });
      expectTokenRefused(reply);
      expect(keyServer.hits).toEqual([]);
    }, 20_000);

    it.each(['access_token', 'token'])('refuses a valid token given only as ?%s= with 401', async (name) => {
      const valid = hs256Token(sec.stack.jwtSecret);
      expectTokenRefused(await http.request(`${PROBE}?${name}=${encodeURIComponent(valid)}`, { token: null }));
    }, 20_000);

    it('refuses two Authorization headers, each with a valid token, with 401', async () => {
      const reply = await http.rawRequest(PROBE, {
        headers: { authorization: [`Bearer ${hs256Token(sec.stack.jwtSecret)}`, `Bearer ${rs256Token(sec.rsa.privateKey)}`] },
      });
      expectTokenRefused(reply);
    }, 20_000);

    it('refuses a request without any token with 401 AUTH_MISSING_TOKEN', async () => {
      const reply = await http.request(PROBE, { token: null });
      expect(problemMismatch(reply, 401, ['AUTH_MISSING_TOKEN'])).toBeNull();
    }, 20_000);

    it.each(lifetimeAttacks().flatMap((a) => (['HS256', 'RS256'] as const).map((alg) => ({ ...a, alg }))))(
      'says why a token with $name ($alg) is refused: $reason',
      async ({ claims, alg, reason }) => {
        const token = alg === 'HS256' ? hs256Token(sec.stack.jwtSecret, claims()) : rs256Token(sec.rsa.privateKey, claims());
        const reply = await http.request(PROBE, { token });
        expect([problemMismatch(reply, 401, ['AUTH_INVALID_TOKEN']), reply.body?.detail]).toEqual([null, reason]);
      },
      20_000,
    );

    it('accepts a token of exactly the 24-hour maximum, like the one ziggie up prints', async () => {
      const iat = now();
      const replies = [
        await http.request(PROBE, { token: hs256Token(sec.stack.jwtSecret, validClaims({ iat, exp: iat + 86_400 })) }),
        await http.request(PROBE, { token: sec.stack.adminToken }),
      ];
      expect(replies.map(describeReply)).toEqual([expect.stringMatching(/^200 /), expect.stringMatching(/^200 /)]);
    }, 20_000);

    it('never fetched a key from a URL a token named', () => {
      expect(keyServer.hits).toEqual([]);
    });
  });

  describe('JWT verification at /mcp (mcp-gateway, its own port)', () => {
    let mcp: HttpRecorder;
    const initialize = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'security-spec', version: '1.0.0' } },
    };
    const open = (token: string) => mcp.request('/mcp', { token, json: initialize, headers: { accept: 'application/json, text/event-stream' } });

    beforeAll(() => {
      mcp = new HttpRecorder(() => sec.stack.mcpUrl.replace(/\/mcp$/, ''));
    });
    afterAll(() => {
      if (mcp) http.replies.push(...mcp.replies);
    });

    it('opens a session with a valid token (HS256 and RS256)', async () => {
      const replies = [await open(hs256Token(sec.stack.jwtSecret)), await open(rs256Token(sec.rsa.privateKey))];
      expect(replies.map((r) => [r.status, typeof headerValue(r, 'mcp-session-id')])).toEqual([
        [200, 'string'],
        [200, 'string'],
      ]);
    }, 20_000);

    it.each(lifetimeAttacks().flatMap((a) => (['HS256', 'RS256'] as const).map((alg) => ({ ...a, alg }))))(
      'refuses a token with $name ($alg) with 401: $reason',
      async ({ claims, alg, reason }) => {
        const reply = await open(alg === 'HS256' ? hs256Token(sec.stack.jwtSecret, claims()) : rs256Token(sec.rsa.privateKey, claims()));
        // /mcp answers refusals as JSON-RPC errors carrying the same stable code REST uses.
        expect({ status: reply.status, code: reply.body?.error?.data?.code, reason: reply.body?.error?.message, session: headerValue(reply, 'mcp-session-id') }).toEqual({
          status: 401,
          code: 'AUTH_INVALID_TOKEN',
          reason,
          session: undefined,
        });
      },
      20_000,
    );
  });

  describe('CORS', () => {
    const preflight = (origin: string, path = '/v1/tasks') =>
      http.request(path, {
        method: 'OPTIONS',
        token: null,
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
      });
    const header = headerValue;
    const varies = (r: Reply) =>
      (header(r, 'vary') ?? '')
        .split(',')
        .map((v) => v.trim().toLowerCase())
        .includes('origin');

    it('answers a preflight from the console origin with that origin, credentials allowed and Vary: Origin', async () => {
      const r = await preflight(CONSOLE_ORIGIN);
      expect({
        status: r.status >= 200 && r.status < 300 ? '2xx' : r.status,
        allowOrigin: header(r, 'access-control-allow-origin'),
        allowCredentials: header(r, 'access-control-allow-credentials'),
        varyOrigin: varies(r),
        allowsPost: /\bPOST\b/i.test(header(r, 'access-control-allow-methods') ?? ''),
        allowsAuthorization: /\bauthorization\b/i.test(header(r, 'access-control-allow-headers') ?? ''),
      }).toEqual({ status: '2xx', allowOrigin: CONSOLE_ORIGIN, allowCredentials: 'true', varyOrigin: true, allowsPost: true, allowsAuthorization: true });
    }, 20_000);

    it('answers a simple request from the console origin with that origin, credentials allowed and Vary: Origin', async () => {
      const r = await http.request(PROBE, { headers: { origin: CONSOLE_ORIGIN } });
      expect({ status: r.status, allowOrigin: header(r, 'access-control-allow-origin'), allowCredentials: header(r, 'access-control-allow-credentials'), varyOrigin: varies(r) }).toEqual({
        status: 200,
        allowOrigin: CONSOLE_ORIGIN,
        allowCredentials: 'true',
        varyOrigin: true,
      });
    }, 20_000);

    it.each([EVIL_ORIGIN, 'null', `${CONSOLE_ORIGIN}.evil.example`, 'http://evil-console.example.test', `https://console.example.test`])(
      'gives origin %s no Access-Control-Allow-Origin, on a preflight or a simple request',
      async (origin) => {
        const pre = await preflight(origin);
        const simple = await http.request(PROBE, { headers: { origin } });
        expect([pre.status < 500, header(pre, 'access-control-allow-origin'), simple.status, header(simple, 'access-control-allow-origin')]).toEqual([true, undefined, 200, undefined]);
      },
      20_000,
    );
  });

  describe('JWKS (ES256) and the served routes, on a second gateway in this process', () => {
    let gateway: InProcessGateway;
    let jwksServer: CountingServer;
    let signing: KeyPair;
    let inProcess: HttpRecorder;

    beforeAll(async () => {
      signing = ecKeyPair();
      jwksServer = await startCountingServer({
        '/jwks.json': { type: 'application/json', body: JSON.stringify({ keys: [publicJwk(signing.publicKey, { kid: 'k1', alg: 'ES256', use: 'sig' })] }) },
      });
      gateway = await startInProcessGateway(sec.stack, {
        JWT_ALGORITHMS: 'HS256,ES256',
        JWT_JWKS_URL: `${jwksServer.url}/jwks.json`,
        CORS_ORIGINS: CONSOLE_ORIGIN,
        ...UNTHROTTLED,
      });
      inProcess = new HttpRecorder(() => gateway.url);
    }, 60_000);

    afterAll(async () => {
      await gateway?.stop();
      await jwksServer?.close();
      if (inProcess) http.replies.push(...inProcess.replies);
    }, 30_000);

    it('accepts an ES256 token whose kid the JWKS publishes, and an HS256 token', async () => {
      const es = await inProcess.request(PROBE, { token: es256Token(signing.privateKey, validClaims(), { kid: 'k1' }) });
      const hs = await inProcess.request(PROBE, { token: hs256Token(sec.stack.jwtSecret) });
      expect([describeReply(es), describeReply(hs)]).toEqual([expect.stringMatching(/^200 /), expect.stringMatching(/^200 /)]);
    }, 20_000);

    it('refuses ES256 tokens signed by another key, with an unknown kid, or RS256 tokens, with 401', async () => {
      const other = ecKeyPair();
      const replies = [
        await inProcess.request(PROBE, { token: es256Token(other.privateKey, validClaims(), { kid: 'k1' }) }),
        await inProcess.request(PROBE, { token: es256Token(other.privateKey, validClaims(), { kid: 'unknown' }) }),
        await inProcess.request(PROBE, { token: es256Token(signing.privateKey, validClaims({ exp: now() - 120 }), { kid: 'k1' }) }),
        await inProcess.request(PROBE, { token: rs256Token(sec.rsa.privateKey) }),
        await inProcess.request(PROBE, { token: compactJws({ alg: 'none' }, validClaims(), unsigned()) }),
      ];
      expect(replies.map((r) => problemMismatch(r, 401, TOKEN_REFUSALS))).toEqual(replies.map(() => null));
    }, 30_000);

    it('caches the JWKS: a handful of fetches at most for many verifications', async () => {
      const token = es256Token(signing.privateKey, validClaims(), { kid: 'k1' });
      for (let i = 0; i < 10; i++) expect((await inProcess.request(PROBE, { token })).status).toBe(200);
      expect(jwksServer.hits.length).toBeLessThanOrEqual(3);
    }, 30_000);

    it('serves exactly the routes the OpenAPI document lists, and no others', async () => {
      const served = servedRoutes(gateway.service.app);
      const live = (await http.request('/openapi.json', { token: null })).body as ReturnType<typeof committedDocument>;
      const documented = operationsOf(live)
        .map((o) => o.key)
        .sort();
      expect({ servedButUndocumented: served.filter((r) => !documented.includes(r)), documentedButNotServed: documented.filter((r) => !served.includes(r)) }).toEqual({
        servedButUndocumented: [],
        documentedButNotServed: [],
      });
    }, 20_000);
  });

  it('serves at /openapi.json exactly the committed docs/openapi.json', async () => {
    const live = await http.request('/openapi.json', { token: null });
    expect(live.status).toBe(200);
    expect(live.body).toEqual(committedDocument());
  }, 20_000);

  it('answered nothing in this file with a stack trace, a source path, an error dump, or any origin with credentials', () => {
    expect(http.replies.length).toBeGreaterThan(50);
    expect({ leaks: leaksIn(http.replies), wildcardOriginWithCredentials: wildcardWithCredentials(http.replies) }).toEqual({ leaks: [], wildcardOriginWithCredentials: [] });
  });
});
