import { createPublicKey, KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Logger } from '@nestjs/common';
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  FlattenedJWSInput,
  JWTHeaderParameters,
  JWTPayload,
  jwtVerify,
  JWTVerifyGetKey,
  KeyLike,
  ProtectedHeaderParameters,
} from 'jose';
import { isRole, ZiggieError } from '@ziggie/contracts';
import { ConfigError, PlatformConfig } from '../config/config';
import { Principal } from './principal';

type AuthConfig = PlatformConfig['auth'];

const KnownAlgorithms = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'PS256'] as const;
type Algorithm = (typeof KnownAlgorithms)[number];

/** Verified tokens remembered at most (about 1 KB each); the oldest goes first. */
export const VERIFIED_TOKENS_MAX = 10_000;

/** How long an unknown `kid` waits before it may trigger another JWKS fetch. */
export const JWKS_COOLDOWN_MS = 10_000;
const JWKS_TIMEOUT_MS = 5_000;

/**
 * Header parameters that let a token name its own key (jku, jwk, x5u, x5c) or demand extensions
 * (crit). Honouring any of them hands the choice of key to whoever wrote the token.
 */
const ForbiddenHeaderParameters = ['jku', 'jwk', 'x5u', 'x5c', 'crit'] as const;

/** The curve or key type each asymmetric algorithm needs, checked once against JWT_PUBLIC_KEY_FILE. */
const KeyTypeFor: Record<Exclude<Algorithm, `HS${string}`>, (key: KeyObject) => boolean> = {
  RS256: (k) => k.asymmetricKeyType === 'rsa',
  RS384: (k) => k.asymmetricKeyType === 'rsa',
  RS512: (k) => k.asymmetricKeyType === 'rsa',
  PS256: (k) => k.asymmetricKeyType === 'rsa' || k.asymmetricKeyType === 'rsa-pss',
  ES256: (k) => k.asymmetricKeyType === 'ec' && k.asymmetricKeyDetails?.namedCurve === 'prime256v1',
  ES384: (k) => k.asymmetricKeyType === 'ec' && k.asymmetricKeyDetails?.namedCurve === 'secp384r1',
};

function isAlgorithm(value: string): value is Algorithm {
  return (KnownAlgorithms as readonly string[]).includes(value);
}

function isSymmetric(alg: string): alg is `HS${string}` {
  return alg.startsWith('HS');
}

function invalid(reason: string): ZiggieError {
  return new ZiggieError('AUTH_INVALID_TOKEN', reason);
}

/** Raised inside key resolution so verify() can tell a key problem from a token problem. */
class SigningKeyError extends Error {}

/** Short, fixed reasons: library messages echo expected issuer/audience, which callers need not learn. */
function reasonFor(error: unknown): string {
  if (error instanceof SigningKeyError) return error.message;
  if (error instanceof errors.JWTExpired) return 'token expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    const missing = error.reason === 'missing';
    switch (error.claim) {
      case 'iss':
        return missing ? 'token has no issuer' : 'issuer mismatch';
      case 'aud':
        return missing ? 'token has no audience' : 'audience mismatch';
      case 'exp':
        return missing ? 'token has no expiry' : 'invalid expiry';
      case 'sub':
        return 'token has no subject';
      case 'nbf':
        return error.reason === 'check_failed' ? 'token not yet valid' : 'invalid not-before';
      case 'iat':
        return 'invalid issued-at';
      default:
        return 'invalid claims';
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'invalid signature';
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) return 'algorithm not allowed';
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return 'malformed token';
  return 'invalid token';
}

function stringArray(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v): v is string => typeof v === 'string' && v.length > 0)
    ? value
    : undefined;
}

/** The protected header, or undefined when the token is not a three-part JWS with a readable header. */
function protectedHeaderOf(token: string): ProtectedHeaderParameters | undefined {
  if (token.split('.').length !== 3) return undefined;
  try {
    return decodeProtectedHeader(token);
  } catch {
    return undefined;
  }
}

/**
 * Verifies bearer tokens with algorithms pinned, so a token cannot choose how it is checked: no
 * `none`, no HS token signed with the public key, no key named by the token itself. HS* tokens are
 * checked with ZIGGIE_JWT_SECRET; asymmetric ones with JWT_PUBLIC_KEY_FILE or the keys of
 * JWT_JWKS_URL, cached by `kid`.
 */
export class JwtVerifier {
  private readonly logger = new Logger('auth');
  private readonly algorithms: Algorithm[];
  private readonly secret?: Uint8Array;
  private readonly publicKey?: KeyObject;
  private readonly jwks?: JWTVerifyGetKey;
  private lastKeyFailure?: { message: string; at: number };
  /**
   * Tokens that passed every check, by their exact text, until their `exp`: a client sends the
   * same token with every request, and verifying it again (signature, claims) was most of what
   * the auth edge added to a request. A changed byte is another key, verified in full; a token
   * is never trusted past its `exp` (the clock tolerance is not extended to cached tokens).
   */
  private readonly verified = new Map<string, { principal: Principal; exp: number }>();

  constructor(
    private readonly auth: AuthConfig,
    private readonly verifiedTokensMax = VERIFIED_TOKENS_MAX,
  ) {
    const problems: string[] = [];
    const unknown = auth.algorithms.filter((a) => !isAlgorithm(a));
    if (unknown.length > 0) problems.push(`JWT_ALGORITHMS: unsupported ${unknown.join(', ')}`);
    this.algorithms = auth.algorithms.filter(isAlgorithm);
    if (this.algorithms.length === 0) problems.push('JWT_ALGORITHMS: at least one algorithm is required');
    if (this.algorithms.some(isSymmetric)) {
      if (auth.secret) this.secret = new TextEncoder().encode(auth.secret);
      else problems.push('ZIGGIE_JWT_SECRET: required when JWT_ALGORITHMS lists an HS* algorithm');
    }
    const asymmetric = this.algorithms.filter((a) => !isSymmetric(a));
    if (asymmetric.length > 0) {
      if (auth.publicKeyFile && auth.jwksUrl) {
        problems.push('JWT_PUBLIC_KEY_FILE/JWT_JWKS_URL: give one or the other, not both');
      } else if (auth.jwksUrl) {
        this.jwks = createRemoteJWKSet(new URL(auth.jwksUrl), {
          cooldownDuration: JWKS_COOLDOWN_MS,
          cacheMaxAge: auth.jwksCacheMaxAgeSeconds * 1000,
          timeoutDuration: JWKS_TIMEOUT_MS,
        });
      } else if (auth.publicKeyFile) {
        try {
          this.publicKey = createPublicKey(readFileSync(auth.publicKeyFile));
        } catch (error) {
          problems.push(`JWT_PUBLIC_KEY_FILE: cannot load a public key (${(error as Error).message})`);
        }
        const publicKey = this.publicKey;
        const unusable = publicKey ? asymmetric.filter((a) => !KeyTypeFor[a as keyof typeof KeyTypeFor](publicKey)) : [];
        if (unusable.length > 0) problems.push(`JWT_PUBLIC_KEY_FILE: the key does not fit ${unusable.join(', ')}`);
      } else {
        problems.push('JWT_PUBLIC_KEY_FILE or JWT_JWKS_URL: required when JWT_ALGORITHMS lists an asymmetric algorithm');
      }
    }
    if (problems.length > 0) throw new ConfigError(problems);
  }

  async verify(token: string): Promise<Principal> {
    const known = this.verified.get(token);
    if (known) {
      if (Date.now() < known.exp * 1000) return known.principal;
      this.verified.delete(token);
    }
    const { principal, exp } = await this.verifyFully(token);
    if (Date.now() < exp * 1000) {
      if (this.verified.size >= this.verifiedTokensMax) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { principal, exp });
    }
    return principal;
  }

  /** Tokens remembered as verified (for tests and diagnostics). */
  get verifiedTokens(): number {
    return this.verified.size;
  }

  private async verifyFully(token: string): Promise<{ principal: Principal; exp: number }> {
    const header = protectedHeaderOf(token);
    if (!header || header.alg === undefined) throw invalid('malformed token');
    if (ForbiddenHeaderParameters.some((name) => name in header)) throw invalid('forbidden header parameter');
    const alg = header.alg;
    if (typeof alg !== 'string' || !isAlgorithm(alg) || !this.algorithms.includes(alg)) throw invalid('algorithm not allowed');
    if (header.kid !== undefined && typeof header.kid !== 'string') throw invalid('malformed token');

    const key = this.keyResolverFor(alg);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key, {
        // Only the token's own family, so an HS token can never meet a public key or the JWKS.
        algorithms: this.algorithms.filter((a) => isSymmetric(a) === isSymmetric(alg)),
        issuer: this.auth.issuer,
        audience: this.auth.audience,
        clockTolerance: this.auth.clockToleranceSeconds,
        requiredClaims: ['iss', 'aud', 'exp', 'sub'],
      }));
    } catch (error) {
      throw invalid(reasonFor(error));
    }
    if (typeof payload.sub !== 'string' || payload.sub.trim() === '') throw invalid('token has no subject');
    this.checkLifetime(payload);

    const claimedRoles = stringArray(payload.roles);
    if (!claimedRoles) throw invalid('roles claim must be an array of strings');
    // Unknown roles are dropped rather than rejected so new roles can be issued before every service knows them.
    const roles = claimedRoles.filter(isRole);
    if (roles.length === 0) throw invalid('token has no known role');
    const workspaces = stringArray(payload.workspaces);
    if (!workspaces) throw invalid('workspaces claim must be an array of strings');

    // Frozen: the same object now answers every request that carries this token.
    const principal: Principal = Object.freeze({ subject: payload.sub, roles: Object.freeze(roles) as Principal['roles'], workspaces: Object.freeze(workspaces) as string[] });
    return { principal, exp: payload.exp as number };
  }

  /**
   * A stolen token is only as dangerous as it is long-lived, so the verifier, not the issuer,
   * bounds the lifetime (JWT_MAX_TOKEN_LIFETIME_SECONDS). With `iat` the lifetime is `exp - iat`,
   * both from the issuer's clock, so no tolerance applies; `iat` itself may lie at most the clock
   * tolerance in the future. Without `iat` the lifetime still to run, `exp - now`, may not exceed
   * the maximum plus the tolerance, so leaving `iat` out never buys a longer token.
   * jwtVerify has already checked that `exp` (and `iat`, when present) are numbers.
   */
  private checkLifetime(payload: JWTPayload): void {
    const now = Math.floor(Date.now() / 1000);
    const tolerance = this.auth.clockToleranceSeconds;
    const max = this.auth.maxTokenLifetimeSeconds;
    const exp = payload.exp as number;
    const iat = payload.iat;
    if (iat !== undefined) {
      if (iat > now + tolerance) throw invalid('token issued in the future');
      if (exp - iat > max) throw invalid('token lifetime exceeds the maximum');
    } else if (exp - now > max + tolerance) {
      throw invalid('token lifetime exceeds the maximum');
    }
  }

  /** The key for the token's algorithm family; the constructor guarantees one exists for every pinned algorithm. */
  private keyResolverFor(alg: Algorithm): JWTVerifyGetKey {
    if (isSymmetric(alg)) {
      const secret = this.secret;
      if (!secret) throw invalid('algorithm not allowed');
      return () => secret;
    }
    const publicKey = this.publicKey;
    if (publicKey) return () => publicKey;
    const jwks = this.jwks;
    if (!jwks) throw invalid('algorithm not allowed');
    return (header, token) => this.fromJwks(jwks, header, token);
  }

  /**
   * Looks the key up by `kid` among the JWKS keys. The `kid` is only ever compared with the ids
   * the key server published; it never becomes part of a path or URL.
   */
  private async fromJwks(jwks: JWTVerifyGetKey, header: JWTHeaderParameters, token: FlattenedJWSInput): Promise<KeyLike | Uint8Array> {
    try {
      return (await jwks(header, token)) as KeyLike | Uint8Array;
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey) throw new SigningKeyError('unknown signing key');
      if (error instanceof errors.JWKSMultipleMatchingKeys) throw new SigningKeyError('signing key not identified');
      this.reportKeyFailure(error);
      throw new SigningKeyError('signing key unavailable');
    }
  }

  /** One line per distinct failure and at most one every cooldown, so an outage does not flood the log. */
  private reportKeyFailure(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    const now = Date.now();
    const last = this.lastKeyFailure;
    if (last && last.message === message && now - last.at < JWKS_COOLDOWN_MS) return;
    this.lastKeyFailure = { message, at: now };
    this.logger.warn(`cannot fetch signing keys from JWT_JWKS_URL: ${message}`);
  }
}

export { signDevToken, type DevTokenOptions } from './dev-token';

/** The token of an `Authorization: Bearer <token>` header. */
export function bearerToken(header: string | undefined): string {
  if (header === undefined || header.trim() === '') {
    throw new ZiggieError('AUTH_MISSING_TOKEN', 'Authorization header is missing');
  }
  const match = /^Bearer +([A-Za-z0-9\-_.~+/]+=*) *$/i.exec(header);
  if (!match) throw invalid('Authorization header must be "Bearer <token>"');
  return match[1];
}
