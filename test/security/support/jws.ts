import { createHmac, createPublicKey, generateKeyPairSync, KeyObject, sign as signBytes } from 'node:crypto';

export const ISSUER = 'ziggie-local';
export const AUDIENCE = 'ziggie-api';

export type Claims = Record<string, unknown>;
export type JoseHeader = Record<string, unknown>;

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/**
 * Compact JWS built by hand rather than with a JWT library: libraries refuse to produce the
 * malformed and hostile tokens (alg none, an RSA PEM as HMAC secret, jku/jwk/x5u headers) that
 * the gateway must refuse.
 */
export function compactJws(header: JoseHeader, claims: Claims, signer: (signingInput: string) => Buffer | string): string {
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = signer(signingInput);
  return `${signingInput}.${typeof signature === 'string' ? signature : b64url(signature)}`;
}

export const hs256 = (secret: string | Buffer) => (input: string) => createHmac('sha256', secret).update(input).digest();
export const rs256 = (privateKey: KeyObject) => (input: string) => signBytes('sha256', Buffer.from(input), privateKey);
/** ES256 signatures are the raw r||s pair (RFC 7518 §3.4), not DER. */
export const es256 = (privateKey: KeyObject) => (input: string) => signBytes('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
export const unsigned = () => () => '';

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
}

export function rsaKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, publicKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export function ecKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, publicKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export function publicJwk(key: KeyObject, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const publicKey = key.type === 'public' ? key : createPublicKey(key);
  return { ...publicKey.export({ format: 'jwk' }), ...extra };
}

/** Claims of a well-formed token for the local stack, valid for ten minutes. */
export function validClaims(overrides: Claims = {}): Claims {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: 'security@test',
    roles: ['admin'],
    workspaces: ['*'],
    iss: ISSUER,
    aud: AUDIENCE,
    iat: now,
    exp: now + 600,
    ...overrides,
  };
}

export function hs256Token(secret: string, claims: Claims = validClaims(), header: JoseHeader = {}): string {
  return compactJws({ alg: 'HS256', typ: 'JWT', ...header }, claims, hs256(secret));
}

export function rs256Token(privateKey: KeyObject, claims: Claims = validClaims(), header: JoseHeader = {}): string {
  return compactJws({ alg: 'RS256', typ: 'JWT', ...header }, claims, rs256(privateKey));
}

export function es256Token(privateKey: KeyObject, claims: Claims = validClaims(), header: JoseHeader = {}): string {
  return compactJws({ alg: 'ES256', typ: 'JWT', ...header }, claims, es256(privateKey));
}

/** An HS256 token for a role set and workspace list, as the IdP of the local stack would issue it. */
export function roleToken(secret: string, roles: string[], workspaces: string[] = ['*'], subject = `${roles.join('+')}@security`): string {
  return hs256Token(secret, validClaims({ sub: subject, roles, workspaces }));
}
