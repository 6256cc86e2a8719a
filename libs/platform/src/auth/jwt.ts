import { createPublicKey, KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  Algorithm,
  decode,
  JsonWebTokenError,
  JwtPayload,
  NotBeforeError,
  sign,
  TokenExpiredError,
  verify,
} from 'jsonwebtoken';
import { isRole, ZiggieError } from '@ziggie/contracts';
import { ConfigError, PlatformConfig } from '../config/config';
import { Principal } from './principal';

type AuthConfig = PlatformConfig['auth'];

const KnownAlgorithms: readonly Algorithm[] = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'PS256'];

function isAlgorithm(value: string): value is Algorithm {
  return (KnownAlgorithms as readonly string[]).includes(value);
}

function isSymmetric(alg: string): boolean {
  return alg.startsWith('HS');
}

function invalid(reason: string): ZiggieError {
  return new ZiggieError('AUTH_INVALID_TOKEN', reason);
}

/** Short, fixed reasons: library messages echo expected issuer/audience, which callers need not learn. */
function reasonFor(error: unknown): string {
  if (error instanceof TokenExpiredError) return 'token expired';
  if (error instanceof NotBeforeError) return 'token not yet valid';
  if (error instanceof JsonWebTokenError) {
    const m = error.message;
    if (m.startsWith('jwt audience invalid')) return 'audience mismatch';
    if (m.startsWith('jwt issuer invalid')) return 'issuer mismatch';
    if (m === 'invalid algorithm' || m.startsWith('secretOrPublicKey must be')) return 'algorithm not allowed';
    if (m === 'invalid signature') return 'invalid signature';
    if (m === 'jwt signature is required') return 'signature required';
    if (m === 'invalid exp value') return 'invalid expiry';
    if (m === 'jwt malformed' || m === 'invalid token') return 'malformed token';
  }
  return 'invalid token';
}

function stringArray(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v): v is string => typeof v === 'string' && v.length > 0)
    ? value
    : undefined;
}

/**
 * Verifies bearer tokens against the configured key material with algorithms pinned, so a
 * token cannot choose how it is checked (no `none`, no HS token signed with the public key).
 */
export class JwtVerifier {
  private readonly algorithms: Algorithm[];
  private readonly secret?: string;
  private readonly publicKey?: KeyObject;

  constructor(private readonly auth: AuthConfig) {
    const problems: string[] = [];
    const unknown = auth.algorithms.filter((a) => !isAlgorithm(a));
    if (unknown.length > 0) problems.push(`JWT_ALGORITHMS: unsupported ${unknown.join(', ')}`);
    this.algorithms = auth.algorithms.filter(isAlgorithm);
    if (this.algorithms.length === 0) problems.push('JWT_ALGORITHMS: at least one algorithm is required');
    if (this.algorithms.some(isSymmetric) && !auth.secret) {
      problems.push('ZIGGIE_JWT_SECRET: required when JWT_ALGORITHMS lists an HS* algorithm');
    }
    if (this.algorithms.some((a) => !isSymmetric(a))) {
      if (!auth.publicKeyFile) {
        problems.push('JWT_PUBLIC_KEY_FILE: required when JWT_ALGORITHMS lists an asymmetric algorithm');
      } else {
        try {
          this.publicKey = createPublicKey(readFileSync(auth.publicKeyFile));
        } catch (error) {
          problems.push(`JWT_PUBLIC_KEY_FILE: cannot load a public key (${(error as Error).message})`);
        }
      }
    }
    if (problems.length > 0) throw new ConfigError(problems);
    this.secret = auth.secret;
  }

  verify(token: string): Principal {
    let alg: unknown;
    try {
      alg = decode(token, { complete: true })?.header.alg;
    } catch {
      throw invalid('malformed token');
    }
    if (alg === undefined) throw invalid('malformed token');
    if (typeof alg !== 'string' || !isAlgorithm(alg) || !this.algorithms.includes(alg)) throw invalid('algorithm not allowed');
    // The key follows the token's algorithm family; verify() re-checks alg against the pinned list.
    const key = isSymmetric(alg) ? this.secret : this.publicKey;
    if (!key) throw invalid('algorithm not allowed');

    let payload: JwtPayload | string;
    try {
      payload = verify(token, key, {
        algorithms: this.algorithms,
        issuer: this.auth.issuer,
        audience: this.auth.audience,
        clockTolerance: this.auth.clockToleranceSeconds,
        complete: true,
      }).payload;
    } catch (error) {
      throw invalid(reasonFor(error));
    }
    if (typeof payload !== 'object' || payload === null) throw invalid('payload is not a JSON object');
    // jsonwebtoken only checks exp when present; a token without one would never expire.
    if (typeof payload.exp !== 'number') throw invalid('token has no expiry');
    if (typeof payload.sub !== 'string' || payload.sub.trim() === '') throw invalid('token has no subject');

    const claimedRoles = stringArray((payload as Record<string, unknown>).roles);
    if (!claimedRoles) throw invalid('roles claim must be an array of strings');
    // Unknown roles are dropped rather than rejected so new roles can be issued before every service knows them.
    const roles = claimedRoles.filter(isRole);
    if (roles.length === 0) throw invalid('token has no known role');
    const workspaces = stringArray((payload as Record<string, unknown>).workspaces);
    if (!workspaces) throw invalid('workspaces claim must be an array of strings');

    return { subject: payload.sub, roles, workspaces };
  }
}

export interface DevTokenOptions {
  subject: string;
  roles: string[];
  workspaces: string[];
  ttlSeconds: number;
}

/** Mints an HS256 token for local development and tests; production tokens come from the IdP. */
export function signDevToken(
  opts: DevTokenOptions,
  auth: { secret: string; issuer: string; audience: string },
): string {
  return sign({ roles: opts.roles, workspaces: opts.workspaces }, auth.secret, {
    algorithm: 'HS256',
    subject: opts.subject,
    issuer: auth.issuer,
    audience: auth.audience,
    expiresIn: opts.ttlSeconds,
  });
}

/** The token of an `Authorization: Bearer <token>` header. */
export function bearerToken(header: string | undefined): string {
  if (header === undefined || header.trim() === '') {
    throw new ZiggieError('AUTH_MISSING_TOKEN', 'Authorization header is missing');
  }
  const match = /^Bearer +([A-Za-z0-9\-_.~+/]+=*) *$/i.exec(header);
  if (!match) throw invalid('Authorization header must be "Bearer <token>"');
  return match[1];
}
