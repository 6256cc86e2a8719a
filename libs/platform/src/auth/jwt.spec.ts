import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { exportJWK, exportSPKI, generateKeyPair, JWK, JWTPayload, KeyLike, SignJWT } from 'jose';
import { decode, sign, SignOptions } from 'jsonwebtoken';
import { ErrorCode, ZiggieError } from '@ziggie/contracts';
import { ConfigError, loadConfig } from '../config/config';
import { bearerToken, JWKS_COOLDOWN_MS, JwtVerifier, signDevToken } from './jwt';

const SECRET = 'unit-test-secret-0123456789';
const ISS = 'ziggie-local';
const AUD = 'ziggie-api';

function authConfig(env: Record<string, string> = {}) {
  return loadConfig('gateway', undefined, { ZIGGIE_JWT_SECRET: SECRET, ...env }).auth;
}

async function rejection(promise: Promise<unknown>): Promise<ZiggieError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ZiggieError);
    return error as ZiggieError;
  }
  throw new Error('expected a ZiggieError, nothing was thrown');
}

async function expectRejected(promise: Promise<unknown>, code: ErrorCode, message?: string): Promise<ZiggieError> {
  const error = await rejection(promise);
  expect(error.code).toBe(code);
  if (message !== undefined) expect(error.message).toBe(message);
  return error;
}

/** Synchronous rejections (bearerToken). */
function syncRejection(fn: () => unknown, code: ErrorCode): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(ZiggieError);
  expect((thrown as ZiggieError).code).toBe(code);
}

const claims = { roles: ['l1'], workspaces: ['alpha'] };
const hsOptions: SignOptions = { algorithm: 'HS256', subject: 'alice', issuer: ISS, audience: AUD, expiresIn: 300 };
const now = () => Math.floor(Date.now() / 1000);
const validPayload = () => ({ ...claims, sub: 'alice', iss: ISS, aud: AUD, exp: now() + 300 });

function b64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/**
 * An HMAC-signed token with any header at all, built by hand: the libraries refuse to produce
 * several of the headers an attacker would send (crit, a PEM as HMAC secret).
 */
function handMadeHs(header: Record<string, unknown>, payload: object, secret: string | Buffer = SECRET): string {
  const input = `${b64url({ typ: 'JWT', ...header })}.${b64url(payload)}`;
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[String(header.alg)] ?? 'sha256';
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
}

/** A token signed with jose, for the asymmetric algorithms. */
function joseToken(key: KeyLike, alg: string, payload: JWTPayload = validPayload(), header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ ...header, alg, typ: 'JWT' }).sign(key);
}

describe('JwtVerifier with HS256', () => {
  const verifier = new JwtVerifier(authConfig());
  const hs = (payload: object, options: SignOptions = {}, secret = SECRET) => sign(payload, secret, { ...hsOptions, ...options });

  it('accepts a valid token and returns its principal', async () => {
    const token = signDevToken(
      { subject: 'alice', roles: ['admin', 'l1'], workspaces: ['*'], ttlSeconds: 60 },
      { secret: SECRET, issuer: ISS, audience: AUD },
    );
    await expect(verifier.verify(token)).resolves.toEqual({ subject: 'alice', roles: ['admin', 'l1'], workspaces: ['*'] });
  });

  it('drops unknown roles but keeps the known ones', async () => {
    expect((await verifier.verify(hs({ ...claims, roles: ['superuser', 'bmad'] }))).roles).toEqual(['bmad']);
  });

  it('rejects a token with no known role', async () => {
    await expectRejected(verifier.verify(hs({ ...claims, roles: ['superuser'] })), 'AUTH_INVALID_TOKEN', 'token has no known role');
    await expectRejected(verifier.verify(hs({ ...claims, roles: [] })), 'AUTH_INVALID_TOKEN', 'token has no known role');
  });

  it('rejects malformed roles and workspaces claims', async () => {
    await expectRejected(verifier.verify(hs({ ...claims, roles: 'admin' })), 'AUTH_INVALID_TOKEN', 'roles claim must be an array of strings');
    await expectRejected(verifier.verify(hs({ ...claims, roles: ['admin', 1] })), 'AUTH_INVALID_TOKEN', 'roles claim must be an array of strings');
    await expectRejected(verifier.verify(hs({ roles: ['admin'] })), 'AUTH_INVALID_TOKEN', 'workspaces claim must be an array of strings');
    await expectRejected(verifier.verify(hs({ ...claims, workspaces: [''] })), 'AUTH_INVALID_TOKEN', 'workspaces claim must be an array of strings');
  });

  it('rejects a token without a subject, or with an empty one', async () => {
    const { subject: _subject, ...noSubject } = hsOptions;
    await expectRejected(verifier.verify(sign(claims, SECRET, noSubject)), 'AUTH_INVALID_TOKEN', 'token has no subject');
    await expectRejected(verifier.verify(handMadeHs({ alg: 'HS256' }, { ...validPayload(), sub: ' ' })), 'AUTH_INVALID_TOKEN', 'token has no subject');
  });

  it('rejects a token expired beyond the clock tolerance', async () => {
    await expectRejected(verifier.verify(hs(claims, { expiresIn: -120 })), 'AUTH_INVALID_TOKEN', 'token expired');
  });

  it('allows expiry within the clock tolerance', async () => {
    expect((await verifier.verify(hs(claims, { expiresIn: -5 }))).subject).toBe('alice');
  });

  it('rejects a token that is not valid yet, and honours the tolerance for nbf', async () => {
    await expectRejected(verifier.verify(hs(claims, { notBefore: 600 })), 'AUTH_INVALID_TOKEN', 'token not yet valid');
    expect((await verifier.verify(hs(claims, { notBefore: 5 }))).subject).toBe('alice');
  });

  it('rejects a token without exp', async () => {
    const { expiresIn: _expiresIn, ...noExpiry } = hsOptions;
    await expectRejected(verifier.verify(sign(claims, SECRET, noExpiry)), 'AUTH_INVALID_TOKEN', 'token has no expiry');
  });

  it('rejects a token without iss or aud', async () => {
    const { iss: _iss, ...noIssuer } = validPayload();
    const { aud: _aud, ...noAudience } = validPayload();
    await expectRejected(verifier.verify(handMadeHs({ alg: 'HS256' }, noIssuer)), 'AUTH_INVALID_TOKEN', 'token has no issuer');
    await expectRejected(verifier.verify(handMadeHs({ alg: 'HS256' }, noAudience)), 'AUTH_INVALID_TOKEN', 'token has no audience');
  });

  it('rejects the wrong issuer and audience without naming the expected ones', async () => {
    const iss = await expectRejected(verifier.verify(hs(claims, { issuer: 'evil' })), 'AUTH_INVALID_TOKEN', 'issuer mismatch');
    const aud = await expectRejected(verifier.verify(hs(claims, { audience: 'other-api' })), 'AUTH_INVALID_TOKEN', 'audience mismatch');
    for (const error of [iss, aud]) expect(JSON.stringify({ ...error, message: error.message })).not.toMatch(new RegExp(`${ISS}|${AUD}`));
  });

  it('rejects a token signed with another secret without echoing any secret', async () => {
    const error = await expectRejected(verifier.verify(hs(claims, {}, 'another-secret-0123456789')), 'AUTH_INVALID_TOKEN', 'invalid signature');
    expect(JSON.stringify({ ...error, message: error.message })).not.toContain(SECRET);
  });

  it('rejects a tampered payload', async () => {
    const [header, , signature] = hs(claims).split('.');
    const forged = `${header}.${b64url({ ...claims, roles: ['admin'], sub: 'alice', iss: ISS, aud: AUD, exp: 9999999999 })}.${signature}`;
    await expectRejected(verifier.verify(forged), 'AUTH_INVALID_TOKEN', 'invalid signature');
  });

  it.each(['none', 'None', 'NONE'])('rejects alg %s, with or without a signature', async (alg) => {
    const unsigned = `${b64url({ alg, typ: 'JWT' })}.${b64url(validPayload())}.`;
    await expectRejected(verifier.verify(unsigned), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
    const signature = handMadeHs({ alg: 'HS256' }, validPayload()).split('.')[2];
    await expectRejected(verifier.verify(`${unsigned}${signature}`), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
  });

  it('rejects an HS algorithm that is not in the pinned list', async () => {
    await expectRejected(verifier.verify(hs(claims, { algorithm: 'HS512' })), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
  });

  it.each([
    ['jku', 'https://evil.example/jwks.json'],
    ['jwk', { kty: 'oct', k: Buffer.from(SECRET).toString('base64url') }],
    ['x5u', 'https://evil.example/cert.pem'],
    ['x5c', ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA']],
    ['crit', ['exp']],
  ])('refuses a token whose header carries %s, even when correctly signed', async (name, value) => {
    const token = handMadeHs({ alg: 'HS256', [name]: value }, validPayload());
    await expectRejected(verifier.verify(token), 'AUTH_INVALID_TOKEN', 'forbidden header parameter');
  });

  it('treats kid as an opaque id: a path in it neither selects a key nor a file', async () => {
    const header = { alg: 'HS256', kid: '../../../../../../etc/passwd' };
    // The classic attack: point kid at a file whose content is known (or /dev/null) and sign with that.
    await expectRejected(verifier.verify(handMadeHs(header, validPayload(), '')), 'AUTH_INVALID_TOKEN', 'invalid signature');
    await expectRejected(verifier.verify(handMadeHs(header, validPayload(), 'root:x:0:0:root:/root:/bin/bash\n')), 'AUTH_INVALID_TOKEN', 'invalid signature');
    // With one configured secret there is nothing to select: the kid is ignored.
    expect((await verifier.verify(handMadeHs(header, validPayload()))).subject).toBe('alice');
  });

  it('rejects a kid that is not a string', async () => {
    await expectRejected(verifier.verify(handMadeHs({ alg: 'HS256', kid: { path: '/etc/passwd' } }, validPayload())), 'AUTH_INVALID_TOKEN', 'malformed token');
  });

  it('rejects garbage', async () => {
    await expectRejected(verifier.verify('not-a-jwt'), 'AUTH_INVALID_TOKEN', 'malformed token');
    await expectRejected(verifier.verify('a.b.c'), 'AUTH_INVALID_TOKEN', 'malformed token');
    await expectRejected(verifier.verify(`${b64url({ typ: 'JWT' })}.${b64url(claims)}.x`), 'AUTH_INVALID_TOKEN', 'malformed token');
    await expectRejected(verifier.verify(`${b64url({ alg: 'HS256' })}.${b64url(claims)}.x.y`), 'AUTH_INVALID_TOKEN', 'malformed token');
  });

  it('rejects a payload that is not a JSON object', async () => {
    const token = sign('just a string', SECRET, { algorithm: 'HS256' });
    await expectRejected(verifier.verify(token), 'AUTH_INVALID_TOKEN');
  });
});

describe('JwtVerifier remembers the tokens it verified', () => {
  const hs = (payload: object) => sign(payload, SECRET, { algorithm: 'HS256' });
  afterEach(() => jest.useRealTimers());

  it('answers a verified token from memory until its exp, never past it, and verifies any other text in full', async () => {
    const start = Date.now();
    jest.useFakeTimers({ now: start, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const verifier = new JwtVerifier(authConfig());
    const exp = Math.floor(start / 1000) + 60;
    const token = hs({ ...validPayload(), exp });

    const first = await verifier.verify(token);
    expect(first).toEqual({ subject: 'alice', roles: ['l1'], workspaces: ['alpha'] });
    expect(verifier.verifiedTokens).toBe(1);
    // The same object for every request with this token, so nobody may change it.
    expect(await verifier.verify(token)).toBe(first);
    expect(Object.isFrozen(first) && Object.isFrozen(first.roles) && Object.isFrozen(first.workspaces)).toBe(true);

    // One changed byte of the signature is another token: checked in full, refused, not remembered.
    const tampered = `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`;
    await expectRejected(verifier.verify(tampered), 'AUTH_INVALID_TOKEN', 'invalid signature');
    expect(verifier.verifiedTokens).toBe(1);

    // Past exp and the clock tolerance: verified in full again, refused, and forgotten.
    jest.setSystemTime(start + (60 + 31) * 1000);
    await expectRejected(verifier.verify(token), 'AUTH_INVALID_TOKEN', 'token expired');
    expect(verifier.verifiedTokens).toBe(0);
  });

  it('does not remember a token accepted only within the clock tolerance', async () => {
    const verifier = new JwtVerifier(authConfig());
    expect((await verifier.verify(hs({ ...validPayload(), exp: now() - 5 }))).subject).toBe('alice');
    expect(verifier.verifiedTokens).toBe(0);
  });

  it('remembers a bounded number of tokens, forgetting the oldest first', async () => {
    const verifier = new JwtVerifier(authConfig(), 3);
    const tokens = ['a', 'b', 'c', 'd'].map((sub) => hs({ ...validPayload(), sub }));
    const first = await Promise.all(tokens.map((t) => verifier.verify(t)));
    expect(verifier.verifiedTokens).toBe(3);
    // b, c and d are answered from memory (the same objects); a was forgotten and is verified anew.
    for (const i of [1, 2, 3]) expect(await verifier.verify(tokens[i]!)).toBe(first[i]);
    const again = await verifier.verify(tokens[0]!);
    expect(again).toEqual(first[0]);
    expect(again).not.toBe(first[0]);
  });
});

describe('JwtVerifier token lifetime', () => {
  const DAY = 86_400;
  const verifier = new JwtVerifier(authConfig());
  const token = (payload: Record<string, unknown>) => handMadeHs({ alg: 'HS256' }, { ...claims, sub: 'alice', iss: ISS, aud: AUD, ...payload });
  const TOO_LONG = 'token lifetime exceeds the maximum';

  it('defaults to a maximum of 24 hours', () => {
    expect(authConfig().maxTokenLifetimeSeconds).toBe(DAY);
    expect(authConfig({ JWT_MAX_TOKEN_LIFETIME_SECONDS: '3600' }).maxTokenLifetimeSeconds).toBe(3600);
    expect(() => authConfig({ JWT_MAX_TOKEN_LIFETIME_SECONDS: '30' })).toThrow(/JWT_MAX_TOKEN_LIFETIME_SECONDS/);
    expect(() => authConfig({ JWT_MAX_TOKEN_LIFETIME_SECONDS: String(366 * DAY) })).toThrow(/JWT_MAX_TOKEN_LIFETIME_SECONDS/);
  });

  it('refuses an exp a hundred years away, with or without iat', async () => {
    const exp = now() + 100 * 365 * DAY;
    await expectRejected(verifier.verify(token({ iat: now(), exp })), 'AUTH_INVALID_TOKEN', TOO_LONG);
    await expectRejected(verifier.verify(token({ exp })), 'AUTH_INVALID_TOKEN', TOO_LONG);
  });

  it('measures exp - iat when iat is present, to the second', async () => {
    const iat = now() - 10;
    expect((await verifier.verify(token({ iat, exp: iat + DAY }))).subject).toBe('alice');
    await expectRejected(verifier.verify(token({ iat, exp: iat + DAY + 1 })), 'AUTH_INVALID_TOKEN', TOO_LONG);
  });

  it('measures exp - now when iat is absent, allowing the clock tolerance', async () => {
    expect((await verifier.verify(token({ exp: now() + DAY + 20 }))).subject).toBe('alice');
    await expectRejected(verifier.verify(token({ exp: now() + DAY + 90 })), 'AUTH_INVALID_TOKEN', TOO_LONG);
  });

  it('refuses an iat beyond the clock tolerance in the future, and allows one within it', async () => {
    await expectRejected(verifier.verify(token({ iat: now() + DAY, exp: now() + DAY + 300 })), 'AUTH_INVALID_TOKEN', 'token issued in the future');
    await expectRejected(verifier.verify(token({ iat: now() + 90, exp: now() + 300 })), 'AUTH_INVALID_TOKEN', 'token issued in the future');
    expect((await verifier.verify(token({ iat: now() + 10, exp: now() + 300 }))).subject).toBe('alice');
  });

  it('refuses an iat that is not a number', async () => {
    await expectRejected(verifier.verify(token({ iat: 'yesterday', exp: now() + 300 })), 'AUTH_INVALID_TOKEN', 'invalid issued-at');
  });

  it('follows JWT_MAX_TOKEN_LIFETIME_SECONDS', async () => {
    const hourly = new JwtVerifier(authConfig({ JWT_MAX_TOKEN_LIFETIME_SECONDS: '3600' }));
    const iat = now();
    expect((await hourly.verify(token({ iat, exp: iat + 3600 }))).subject).toBe('alice');
    await expectRejected(hourly.verify(token({ iat, exp: iat + 7200 })), 'AUTH_INVALID_TOKEN', TOO_LONG);
    await expectRejected(hourly.verify(token({ exp: iat + 7200 })), 'AUTH_INVALID_TOKEN', TOO_LONG);
  });

  it('accepts the longest token the product mints itself (ziggie up: 24 hours)', async () => {
    const longest = signDevToken({ subject: 'admin@local', roles: ['admin'], workspaces: ['*'], ttlSeconds: DAY }, { secret: SECRET, issuer: ISS, audience: AUD });
    expect((await verifier.verify(longest)).subject).toBe('admin@local');
  });

  it('checks the signature before the lifetime', async () => {
    const forged = handMadeHs({ alg: 'HS256' }, { ...validPayload(), exp: now() + 100 * 365 * DAY }, 'another-secret-0123456789');
    await expectRejected(verifier.verify(forged), 'AUTH_INVALID_TOKEN', 'invalid signature');
  });
});

describe('JwtVerifier with a PEM public key', () => {
  let dir: string;
  let rsaPublicPem: string;
  let rsaPrivatePem: string;
  let otherRsaPrivatePem: string;
  let ecPrivate: KeyLike;
  let rsVerifier: JwtVerifier;
  let esVerifier: JwtVerifier;
  const rs = (payload: object, key = rsaPrivatePem) => sign(payload, key, { ...hsOptions, algorithm: 'RS256' });

  beforeAll(async () => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    rsaPublicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    rsaPrivatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    otherRsaPrivatePem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const ec = await generateKeyPair('ES256');
    ecPrivate = ec.privateKey;
    dir = mkdtempSync(join(tmpdir(), 'ziggie-jwt-'));
    writeFileSync(join(dir, 'rsa.pub.pem'), rsaPublicPem);
    writeFileSync(join(dir, 'ec.pub.pem'), await exportSPKI(ec.publicKey));
    rsVerifier = new JwtVerifier(loadConfig('gateway', undefined, { JWT_ALGORITHMS: 'RS256', JWT_PUBLIC_KEY_FILE: join(dir, 'rsa.pub.pem') }).auth);
    esVerifier = new JwtVerifier(loadConfig('gateway', undefined, { JWT_ALGORITHMS: 'ES256', JWT_PUBLIC_KEY_FILE: join(dir, 'ec.pub.pem') }).auth);
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts an RS256 token signed with the private key', async () => {
    await expect(rsVerifier.verify(rs(claims))).resolves.toEqual({ subject: 'alice', roles: ['l1'], workspaces: ['alpha'] });
  });

  it('accepts an ES256 token signed with the private key', async () => {
    await expect(esVerifier.verify(await joseToken(ecPrivate, 'ES256'))).resolves.toEqual({ subject: 'alice', roles: ['l1'], workspaces: ['alpha'] });
  });

  it('bounds the lifetime of asymmetric tokens too', async () => {
    const exp = now() + 100 * 365 * 86_400;
    await expectRejected(rsVerifier.verify(sign({ ...claims, exp }, rsaPrivatePem, { algorithm: 'RS256', subject: 'alice', issuer: ISS, audience: AUD })), 'AUTH_INVALID_TOKEN', 'token lifetime exceeds the maximum');
    await expectRejected(esVerifier.verify(await joseToken(ecPrivate, 'ES256', { ...validPayload(), iat: now() + 86_400 })), 'AUTH_INVALID_TOKEN', 'token issued in the future');
  });

  it('rejects a token signed with another private key', async () => {
    await expectRejected(rsVerifier.verify(rs(claims, otherRsaPrivatePem)), 'AUTH_INVALID_TOKEN', 'invalid signature');
    const otherEc = await generateKeyPair('ES256');
    await expectRejected(esVerifier.verify(await joseToken(otherEc.privateKey, 'ES256')), 'AUTH_INVALID_TOKEN', 'invalid signature');
  });

  it('rejects an HS256 token signed with the public key as its secret (key confusion)', async () => {
    const forged = handMadeHs({ alg: 'HS256' }, validPayload(), rsaPublicPem);
    await expectRejected(rsVerifier.verify(forged), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
  });

  it('rejects an HS256 token signed with any secret', async () => {
    await expectRejected(rsVerifier.verify(sign(claims, SECRET, hsOptions)), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
  });

  it('rejects an algorithm of the same family that is not pinned', async () => {
    await expectRejected(rsVerifier.verify(sign(claims, rsaPrivatePem, { ...hsOptions, algorithm: 'RS512' })), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
    await expectRejected(rsVerifier.verify(await joseToken(ecPrivate, 'ES256')), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
  });

  it('is rejected by an HS-only verifier', async () => {
    await expectRejected(new JwtVerifier(authConfig()).verify(rs(claims)), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
  });

  it('picks the key by algorithm family when both are configured, so key confusion fails on the signature', async () => {
    const both = new JwtVerifier(authConfig({ JWT_ALGORITHMS: 'HS256,RS256', JWT_PUBLIC_KEY_FILE: join(dir, 'rsa.pub.pem') }));
    expect((await both.verify(rs(claims))).subject).toBe('alice');
    expect((await both.verify(sign(claims, SECRET, hsOptions))).subject).toBe('alice');
    await expectRejected(both.verify(handMadeHs({ alg: 'HS256' }, validPayload(), rsaPublicPem)), 'AUTH_INVALID_TOKEN', 'invalid signature');
  });

  it('refuses to start with a key that does not fit a pinned algorithm', () => {
    const auth = loadConfig('gateway', undefined, { JWT_ALGORITHMS: 'RS256,ES256', JWT_PUBLIC_KEY_FILE: join(dir, 'ec.pub.pem') }).auth;
    expect(() => new JwtVerifier(auth)).toThrow(/does not fit RS256/);
  });
});

/** A JSON Web Key Set served over real HTTP on loopback, counting every request. */
class JwksServer {
  readonly keys: JWK[] = [];
  readonly requests: string[] = [];
  status = 200;
  private server?: Server;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.requests.push(req.url ?? '');
      if (req.url !== '/.well-known/jwks.json' || this.status !== 200) {
        res.writeHead(req.url === '/.well-known/jwks.json' ? this.status : 404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys }));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/.well-known/jwks.json`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

async function signingKey(alg: 'RS256' | 'ES256', kid: string): Promise<{ privateKey: KeyLike; jwk: JWK }> {
  const pair = await generateKeyPair(alg);
  return { privateKey: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' } };
}

describe('JwtVerifier with a JWKS URL', () => {
  const server = new JwksServer();
  let url: string;
  let rsaKey: { privateKey: KeyLike; jwk: JWK };
  let ecKey: { privateKey: KeyLike; jwk: JWK };
  let warn: jest.SpyInstance;
  const fetches = () => server.requests.length;
  const verifierFor = (env: Record<string, string> = {}) =>
    new JwtVerifier(loadConfig('gateway', undefined, { JWT_ALGORITHMS: 'RS256,ES256', JWT_JWKS_URL: url, ...env }).auth);

  beforeAll(async () => {
    url = await server.start();
    rsaKey = await signingKey('RS256', 'rsa-1');
    ecKey = await signingKey('ES256', 'ec-1');
    server.keys.push(rsaKey.jwk, ecKey.jwk);
  });

  afterAll(() => server.stop());

  beforeEach(() => {
    server.requests.length = 0;
    server.status = 200;
    warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });

  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('accepts RS256 and ES256 tokens by kid, fetching the set once and then serving from cache', async () => {
    const verifier = verifierFor();
    const rsToken = await joseToken(rsaKey.privateKey, 'RS256', validPayload(), { kid: 'rsa-1' });
    const esToken = await joseToken(ecKey.privateKey, 'ES256', validPayload(), { kid: 'ec-1' });
    await expect(verifier.verify(rsToken)).resolves.toEqual({ subject: 'alice', roles: ['l1'], workspaces: ['alpha'] });
    expect(fetches()).toBe(1);
    for (let i = 0; i < 20; i++) {
      await verifier.verify(rsToken);
      await verifier.verify(esToken);
    }
    expect(fetches()).toBe(1);
  });

  it('fetches at most twice for 50 tokens with random unknown kids within the cooldown', async () => {
    const verifier = verifierFor();
    const unknownKid = () => joseToken(rsaKey.privateKey, 'RS256', validPayload(), { kid: randomUUID() });
    const concurrent = await Promise.all(Array.from({ length: 25 }, async () => rejection(verifier.verify(await unknownKid()))));
    const sequential: ZiggieError[] = [];
    for (let i = 0; i < 25; i++) sequential.push(await rejection(verifier.verify(await unknownKid())));
    for (const error of [...concurrent, ...sequential]) expect([error.code, error.message]).toEqual(['AUTH_INVALID_TOKEN', 'unknown signing key']);
    expect(fetches()).toBeGreaterThanOrEqual(1);
    expect(fetches()).toBeLessThanOrEqual(2);
  });

  it('never turns a kid into a request path', async () => {
    const verifier = verifierFor();
    const token = await joseToken(rsaKey.privateKey, 'RS256', validPayload(), { kid: '../../etc/passwd' });
    await expectRejected(verifier.verify(token), 'AUTH_INVALID_TOKEN', 'unknown signing key');
    expect(new Set(server.requests)).toEqual(new Set(['/.well-known/jwks.json']));
  });

  it('picks up a rotated key once the cooldown has passed', async () => {
    const verifier = verifierFor();
    await verifier.verify(await joseToken(rsaKey.privateKey, 'RS256', validPayload(), { kid: 'rsa-1' }));
    const rotated = await signingKey('RS256', 'rsa-2');
    server.keys.push(rotated.jwk);
    try {
      const token = await joseToken(rotated.privateKey, 'RS256', validPayload(), { kid: 'rsa-2' });
      // Within the cooldown the new kid is unknown and causes no fetch.
      await expectRejected(verifier.verify(token), 'AUTH_INVALID_TOKEN', 'unknown signing key');
      expect(fetches()).toBe(1);

      const realNow = Date.now.bind(Date);
      jest.spyOn(Date, 'now').mockImplementation(() => realNow() + JWKS_COOLDOWN_MS + 1);
      await expect(verifier.verify(token)).resolves.toMatchObject({ subject: 'alice' });
      expect(fetches()).toBe(2);
    } finally {
      server.keys.pop();
    }
  });

  it('answers "signing key unavailable" and logs when the key server fails', async () => {
    server.status = 500;
    const verifier = verifierFor();
    const token = await joseToken(rsaKey.privateKey, 'RS256', validPayload(), { kid: 'rsa-1' });
    await expectRejected(verifier.verify(token), 'AUTH_INVALID_TOKEN', 'signing key unavailable');
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('cannot fetch signing keys'));
  });

  it('answers "signing key unavailable" when the key server is unreachable', async () => {
    const gone = new JwksServer();
    const goneUrl = await gone.start();
    await gone.stop();
    const verifier = verifierFor({ JWT_JWKS_URL: goneUrl });
    const token = await joseToken(rsaKey.privateKey, 'RS256', validPayload(), { kid: 'rsa-1' });
    await expectRejected(verifier.verify(token), 'AUTH_INVALID_TOKEN', 'signing key unavailable');
    await expectRejected(verifier.verify(token), 'AUTH_INVALID_TOKEN', 'signing key unavailable');
    expect(warn).toHaveBeenCalledTimes(1);
  });

  it('rejects a token signed by a key that is not in the set under a known kid', async () => {
    const verifier = verifierFor();
    const impostor = await generateKeyPair('RS256');
    const token = await joseToken(impostor.privateKey, 'RS256', validPayload(), { kid: 'rsa-1' });
    await expectRejected(verifier.verify(token), 'AUTH_INVALID_TOKEN', 'invalid signature');
  });

  it('never consults the key set for an HS token, whatever it was signed with', async () => {
    const both = verifierFor({ JWT_ALGORITHMS: 'HS256,RS256', ZIGGIE_JWT_SECRET: SECRET });
    const pem = await exportSPKI((await generateKeyPair('RS256')).publicKey);
    await expectRejected(both.verify(handMadeHs({ alg: 'HS256', kid: 'rsa-1' }, validPayload(), pem)), 'AUTH_INVALID_TOKEN', 'invalid signature');
    expect((await both.verify(sign(claims, SECRET, hsOptions))).subject).toBe('alice');
    await expectRejected(verifierFor().verify(sign(claims, SECRET, hsOptions)), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
    expect(fetches()).toBe(0);
  });

  it('applies the same claim checks as with a PEM key', async () => {
    const verifier = verifierFor();
    const { exp: _exp, ...noExpiry } = validPayload();
    const at = (payload: JWTPayload) => joseToken(rsaKey.privateKey, 'RS256', payload, { kid: 'rsa-1' });
    await expectRejected(verifier.verify(await at(noExpiry)), 'AUTH_INVALID_TOKEN', 'token has no expiry');
    await expectRejected(verifier.verify(await at({ ...validPayload(), aud: 'other' })), 'AUTH_INVALID_TOKEN', 'audience mismatch');
    await expectRejected(verifier.verify(await at({ ...validPayload(), exp: now() - 120 })), 'AUTH_INVALID_TOKEN', 'token expired');
  });
});

describe('JwtVerifier configuration', () => {
  it('fails at start-up when an asymmetric algorithm has no public key', () => {
    expect(() => new JwtVerifier(authConfig({ JWT_ALGORITHMS: 'RS256' }))).toThrow(ConfigError);
  });

  it('fails at start-up when the public key file is unreadable', () => {
    const auth = authConfig({ JWT_ALGORITHMS: 'RS256', JWT_PUBLIC_KEY_FILE: '/nonexistent/jwt.pem' });
    expect(() => new JwtVerifier(auth)).toThrow(/JWT_PUBLIC_KEY_FILE/);
  });

  it('fails at start-up when an HS algorithm has no secret', () => {
    expect(() => new JwtVerifier({ ...authConfig(), secret: undefined })).toThrow(/ZIGGIE_JWT_SECRET/);
  });

  it('does not fetch keys at start-up', async () => {
    const server = new JwksServer();
    const url = await server.start();
    try {
      new JwtVerifier(loadConfig('gateway', undefined, { JWT_ALGORITHMS: 'RS256', JWT_JWKS_URL: url }).auth);
      expect(server.requests).toEqual([]);
    } finally {
      await server.stop();
    }
  });
});

describe('signDevToken', () => {
  it('sets sub, roles, workspaces, iss, aud and exp with HS256', () => {
    const before = now();
    const token = signDevToken(
      { subject: 'bob', roles: ['l2l3'], workspaces: ['w1', 'w2'], ttlSeconds: 120 },
      { secret: SECRET, issuer: 'iss-x', audience: 'aud-y' },
    );
    const decoded = decode(token, { complete: true });
    expect(decoded?.header.alg).toBe('HS256');
    expect(decoded?.payload).toMatchObject({ sub: 'bob', roles: ['l2l3'], workspaces: ['w1', 'w2'], iss: 'iss-x', aud: 'aud-y' });
    const exp = (decoded?.payload as { exp: number }).exp;
    expect(exp).toBeGreaterThanOrEqual(before + 120);
    expect(exp).toBeLessThanOrEqual(before + 122);
  });

  it('produces tokens the verifier accepts', async () => {
    const token = signDevToken({ subject: 'bob', roles: ['l2l3'], workspaces: ['w1'], ttlSeconds: 60 }, { secret: SECRET, issuer: ISS, audience: AUD });
    await expect(new JwtVerifier(authConfig()).verify(token)).resolves.toEqual({ subject: 'bob', roles: ['l2l3'], workspaces: ['w1'] });
  });
});

describe('bearerToken', () => {
  it('extracts the token', () => {
    expect(bearerToken('Bearer abc.def.ghi')).toBe('abc.def.ghi');
    expect(bearerToken('bearer abc.def.ghi')).toBe('abc.def.ghi');
  });

  it('answers AUTH_MISSING_TOKEN without a header', () => {
    syncRejection(() => bearerToken(undefined), 'AUTH_MISSING_TOKEN');
    syncRejection(() => bearerToken(''), 'AUTH_MISSING_TOKEN');
  });

  it('answers AUTH_INVALID_TOKEN for another scheme, a malformed value or two tokens', () => {
    syncRejection(() => bearerToken('Basic dXNlcjpwYXNz'), 'AUTH_INVALID_TOKEN');
    syncRejection(() => bearerToken('Bearer'), 'AUTH_INVALID_TOKEN');
    syncRejection(() => bearerToken('Bearer a b'), 'AUTH_INVALID_TOKEN');
    syncRejection(() => bearerToken('Bearer a.b.c, Bearer d.e.f'), 'AUTH_INVALID_TOKEN');
    syncRejection(() => bearerToken('abc.def.ghi'), 'AUTH_INVALID_TOKEN');
  });
});
