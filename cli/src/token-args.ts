import { Roles, TOKEN_PATTERN, isRole, type Role } from '@ziggie/contracts';
import { UsageError } from './errors';

export interface DevTokenRequest {
  subject: string;
  roles: Role[];
  workspaces: string[];
  ttlSeconds: number;
}

export interface RawTokenArgs {
  role?: string;
  workspace?: string[];
  ttl?: string | number;
  subject?: string;
}

export const DEFAULT_TTL_SECONDS = 3600;
/**
 * Development tokens are short-lived by design: at most what the services accept by default
 * (JWT_MAX_TOKEN_LIFETIME_SECONDS, 24 hours), so every token `ziggie token` mints is usable.
 */
export const MAX_TTL_SECONDS = 86_400;

/**
 * The longest --ttl: JWT_MAX_TOKEN_LIFETIME_SECONDS when set to a whole number (the same
 * variable the local stack's services read, so a raised limit is honoured on both sides), else
 * MAX_TTL_SECONDS.
 */
export function maxTtlSeconds(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.JWT_MAX_TOKEN_LIFETIME_SECONDS?.trim();
  return raw && /^\d+$/.test(raw) && Number(raw) >= 1 ? Number(raw) : MAX_TTL_SECONDS;
}

/** Validates the arguments of `ziggie token`; throws UsageError naming what is wrong. */
export function parseTokenArgs(raw: RawTokenArgs, maxTtl: number = MAX_TTL_SECONDS): DevTokenRequest {
  const role = raw.role?.trim();
  if (!role) throw new UsageError(`--role is required (one of ${Roles.join(', ')})`);
  if (!isRole(role)) throw new UsageError(`unknown role "${role}": use one of ${Roles.join(', ')}`);

  const workspaces = [...new Set((raw.workspace ?? []).map((w) => w.trim()).filter((w) => w !== ''))];
  if (workspaces.length === 0) {
    throw new UsageError('give at least one --workspace <id> (or --workspace "*" for all workspaces)');
  }
  for (const w of workspaces) {
    if (w !== '*' && !TOKEN_PATTERN.test(w)) {
      throw new UsageError(
        `invalid workspace "${w}": lowercase letters, digits, _ and -, starting with a letter or digit, at most 63, or "*"`,
      );
    }
  }

  const ttlText = raw.ttl === undefined ? String(DEFAULT_TTL_SECONDS) : String(raw.ttl).trim();
  if (!/^\d+$/.test(ttlText)) throw new UsageError(`--ttl must be a whole number of seconds, got "${ttlText}"`);
  const ttlSeconds = Number(ttlText);
  if (ttlSeconds < 1 || ttlSeconds > maxTtl) {
    throw new UsageError(`--ttl must be between 1 and ${maxTtl} seconds (JWT_MAX_TOKEN_LIFETIME_SECONDS), got ${ttlSeconds}`);
  }

  const subject = raw.subject?.trim() || `${role}@local`;
  if (subject.length > 128 || /[\s]/.test(subject)) {
    throw new UsageError('--subject must be at most 128 characters without spaces');
  }
  return { subject, roles: [role], workspaces, ttlSeconds };
}
