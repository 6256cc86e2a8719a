import { createHmac, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode, sign, SignOptions } from 'jsonwebtoken';
import { ErrorCode, ZiggieError } from '@ziggie/contracts';
import { ConfigError, loadConfig } from '../config/config';
import { bearerToken, JwtVerifier, signDevToken } from './jwt';

const SECRET = 'unit-test-secret-0123456789';
const ISS = 'ziggie-local';
const AUD = 'ziggie-api';

function authConfig(env: Record<string, string> = {}) {
  return loadConfig('gateway', undefined, { ZIGGIE_JWT_SECRET: SECRET, ...env }).auth;
}

function rejection(fn: () => unknown): ZiggieError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ZiggieError);
    return error as ZiggieError;
  }
  throw new Error('expected a ZiggieError, nothing was thrown');
}

function expectRejected(fn: () => unknown, code: ErrorCode, message?: string): void {
  const error = rejection(fn);
  expect(error.code).toBe(code);
  if (message !== undefined) expect(error.message).toBe(message);
}

const claims = { roles: ['l1'], workspaces: ['alpha'] };
const hsOptions: SignOptions = { algorithm: 'HS256', subject: 'alice', issuer: ISS, audience: AUD, expiresIn: 300 };

function b64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('JwtVerifier with HS256', () => {
  const verifier = new JwtVerifier(authConfig());
  const hs = (payload: object, options: SignOptions = {}, secret = SECRET) =>
    sign(payload, secret, { ...hsOptions, ...options });

  it('accepts a valid token and returns its principal', () => {
    const token = signDevToken(
      { subject: 'alice', roles: ['admin', 'l1'], workspaces: ['*'], ttlSeconds: 60 },
      { secret: SECRET, issuer: ISS, audience: AUD },
    );
    expect(verifier.verify(token)).toEqual({ subject: 'alice', roles: ['admin', 'l1'], workspaces: ['*'] });
  });

  it('drops unknown roles but keeps the known ones', () => {
    expect(verifier.verify(hs({ ...claims, roles: ['superuser', 'bmad'] })).roles).toEqual(['bmad']);
  });

  it('rejects a token with no known role', () => {
    expectRejected(() => verifier.verify(hs({ ...claims, roles: ['superuser'] })), 'AUTH_INVALID_TOKEN', 'token has no known role');
    expectRejected(() => verifier.verify(hs({ ...claims, roles: [] })), 'AUTH_INVALID_TOKEN', 'token has no known role');
  });

  it('rejects malformed roles and workspaces claims', () => {
    expectRejected(() => verifier.verify(hs({ ...claims, roles: 'admin' })), 'AUTH_INVALID_TOKEN', 'roles claim must be an array of strings');
    expectRejected(() => verifier.verify(hs({ ...claims, roles: ['admin', 1] })), 'AUTH_INVALID_TOKEN', 'roles claim must be an array of strings');
    expectRejected(() => verifier.verify(hs({ roles: ['admin'] })), 'AUTH_INVALID_TOKEN', 'workspaces claim must be an array of strings');
    expectRejected(() => verifier.verify(hs({ ...claims, workspaces: [''] })), 'AUTH_INVALID_TOKEN', 'workspaces claim must be an array of strings');
  });

  it('rejects a token without a subject', () => {
    const { subject: _subject, ...noSubject } = hsOptions;
    expectRejected(() => verifier.verify(sign(claims, SECRET, noSubject)), 'AUTH_INVALID_TOKEN', 'token has no subject');
  });

  it('rejects an expired token', () => {
    expectRejected(() => verifier.verify(hs(claims, { expiresIn: -120 })), 'AUTH_INVALID_TOKEN', 'token expired');
  });

  it('allows expiry within the clock tolerance', () => {
    expect(verifier.verify(hs(claims, { expiresIn: -5 })).subject).toBe('alice');
  });

  it('rejects a token that is not valid yet', () => {
    expectRejected(() => verifier.verify(hs(claims, { notBefore: 600 })), 'AUTH_INVALID_TOKEN', 'token not yet valid');
  });

  it('rejects a token without exp', () => {
    const { expiresIn: _expiresIn, ...noExpiry } = hsOptions;
    expectRejected(() => verifier.verify(sign(claims, SECRET, noExpiry)), 'AUTH_INVALID_TOKEN', 'token has no expiry');
  });

  it('rejects the wrong issuer', () => {
    expectRejected(() => verifier.verify(hs(claims, { issuer: 'evil' })), 'AUTH_INVALID_TOKEN', 'issuer mismatch');
  });

  it('rejects the wrong audience', () => {
    expectRejected(() => verifier.verify(hs(claims, { audience: 'other-api' })), 'AUTH_INVALID_TOKEN', 'audience mismatch');
  });

  it('rejects a token signed with another secret without echoing any secret', () => {
    const error = rejection(() => verifier.verify(hs(claims, {}, 'another-secret-0123456789')));
    expect(error.code).toBe('AUTH_INVALID_TOKEN');
    expect(error.message).toBe('invalid signature');
    expect(JSON.stringify({ ...error, message: error.message })).not.toContain(SECRET);
  });

  it('rejects a tampered payload', () => {
    const [header, , signature] = hs(claims).split('.');
    const forged = `${header}.${b64url({ ...claims, roles: ['admin'], sub: 'alice', iss: ISS, aud: AUD, exp: 9999999999 })}.${signature}`;
    expectRejected(() => verifier.verify(forged), 'AUTH_INVALID_TOKEN', 'invalid signature');
  });

  it('rejects alg none', () => {
    const exp = Math.floor(Date.now() / 1000) + 300;
    const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ ...claims, sub: 'alice', iss: ISS, aud: AUD, exp })}.`;
    expectRejected(() => verifier.verify(unsigned), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
  });

  it('rejects an HS algorithm that is not in the pinned list', () => {
    expectRejected(() => verifier.verify(hs(claims, { algorithm: 'HS512' })), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
  });

  it('rejects garbage', () => {
    expectRejected(() => verifier.verify('not-a-jwt'), 'AUTH_INVALID_TOKEN', 'malformed token');
    expectRejected(() => verifier.verify('a.b.c'), 'AUTH_INVALID_TOKEN', 'malformed token');
    expectRejected(() => verifier.verify(`${b64url({ typ: 'JWT' })}.${b64url(claims)}.x`), 'AUTH_INVALID_TOKEN', 'malformed token');
  });

  it('rejects a payload that is not a JSON object', () => {
    const token = sign('just a string', SECRET, { algorithm: 'HS256' });
    expectRejected(() => verifier.verify(token), 'AUTH_INVALID_TOKEN');
  });
});

describe('JwtVerifier with RS256', () => {
  let dir: string;
  let publicPem: string;
  let privatePem: string;
  let otherPrivatePem: string;
  let verifier: JwtVerifier;
  const rs = (payload: object, key = privatePem) => sign(payload, key, { ...hsOptions, algorithm: 'RS256' });

  beforeAll(() => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    otherPrivatePem = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    dir = mkdtempSync(join(tmpdir(), 'ziggie-jwt-'));
    writeFileSync(join(dir, 'jwt.pub.pem'), publicPem);
    verifier = new JwtVerifier(
      loadConfig('gateway', undefined, { JWT_ALGORITHMS: 'RS256', JWT_PUBLIC_KEY_FILE: join(dir, 'jwt.pub.pem') }).auth,
    );
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts a token signed with the private key', () => {
    expect(verifier.verify(rs(claims))).toEqual({ subject: 'alice', roles: ['l1'], workspaces: ['alpha'] });
  });

  it('rejects a token signed with another private key', () => {
    expectRejected(() => verifier.verify(rs(claims, otherPrivatePem)), 'AUTH_INVALID_TOKEN', 'invalid signature');
  });

  it('rejects an HS256 token signed with the public key as its secret (algorithm pinning)', () => {
    // Built by hand because jsonwebtoken refuses to sign HS256 with PEM key material.
    const exp = Math.floor(Date.now() / 1000) + 300;
    const input = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ ...claims, sub: 'alice', iss: ISS, aud: AUD, exp })}`;
    const forged = `${input}.${createHmac('sha256', publicPem).update(input).digest('base64url')}`;
    expectRejected(() => verifier.verify(forged), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
  });

  it('rejects an HS256 token signed with any secret', () => {
    expectRejected(() => verifier.verify(sign(claims, SECRET, hsOptions)), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
  });

  it('is rejected by an HS-only verifier', () => {
    expectRejected(() => new JwtVerifier(authConfig()).verify(rs(claims)), 'AUTH_INVALID_TOKEN', 'algorithm not allowed');
  });

  it('picks the key by algorithm family when both are configured', () => {
    const both = new JwtVerifier(
      authConfig({ JWT_ALGORITHMS: 'HS256,RS256', JWT_PUBLIC_KEY_FILE: join(dir, 'jwt.pub.pem') }),
    );
    expect(both.verify(rs(claims)).subject).toBe('alice');
    expect(both.verify(sign(claims, SECRET, hsOptions)).subject).toBe('alice');
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
});

describe('signDevToken', () => {
  it('sets sub, roles, workspaces, iss, aud and exp with HS256', () => {
    const before = Math.floor(Date.now() / 1000);
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
});

describe('bearerToken', () => {
  it('extracts the token', () => {
    expect(bearerToken('Bearer abc.def.ghi')).toBe('abc.def.ghi');
    expect(bearerToken('bearer abc.def.ghi')).toBe('abc.def.ghi');
  });

  it('answers AUTH_MISSING_TOKEN without a header', () => {
    expectRejected(() => bearerToken(undefined), 'AUTH_MISSING_TOKEN');
    expectRejected(() => bearerToken(''), 'AUTH_MISSING_TOKEN');
  });

  it('answers AUTH_INVALID_TOKEN for another scheme or a malformed value', () => {
    expectRejected(() => bearerToken('Basic dXNlcjpwYXNz'), 'AUTH_INVALID_TOKEN');
    expectRejected(() => bearerToken('Bearer'), 'AUTH_INVALID_TOKEN');
    expectRejected(() => bearerToken('Bearer a b'), 'AUTH_INVALID_TOKEN');
    expectRejected(() => bearerToken('abc.def.ghi'), 'AUTH_INVALID_TOKEN');
  });
});
