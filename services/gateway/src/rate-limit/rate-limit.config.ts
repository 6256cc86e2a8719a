import { z } from 'zod';

/** The gateway's rate-limit variables (DESIGN §8.6), validated with the platform's. */
export const rateLimitEnv = {
  /** Requests per minute per user (token subject); 0: no limit. */
  RATE_LIMIT_USER_PER_MIN: z.coerce.number().int().min(0).default(100),
  /** Requests per minute per workspace named by a request, across all its users; 0: no limit. */
  RATE_LIMIT_WORKSPACE_PER_MIN: z.coerce.number().int().min(0).default(500),
  /** Requests per minute per user to admin APIs (config:change, workspace:manage, @AdminApi()); 0: no limit. */
  RATE_LIMIT_ADMIN_PER_MIN: z.coerce.number().int().min(0).default(20),
  /** Counters shared by every gateway replica through Redis when set; in process otherwise. */
  REDIS_URL: z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()))
    .pipe(z.url({ protocol: /^rediss?$/ }).optional()),
};

export interface RateLimitOptions {
  userPerMinute: number;
  workspacePerMinute: number;
  adminPerMinute: number;
  redisUrl?: string;
  /** Prefix of every store key; replicas that share a budget share the prefix. */
  keyPrefix?: string;
}

const rateLimitSchema = z.object(rateLimitEnv);

/** Options from the service's validated extra configuration; variables it lacks take their defaults. */
export function rateLimitOptionsFrom(extra: Record<string, unknown>): RateLimitOptions {
  const picked = Object.fromEntries(Object.keys(rateLimitEnv).map((name) => [name, extra[name]]));
  const e = rateLimitSchema.parse(picked);
  return {
    userPerMinute: e.RATE_LIMIT_USER_PER_MIN,
    workspacePerMinute: e.RATE_LIMIT_WORKSPACE_PER_MIN,
    adminPerMinute: e.RATE_LIMIT_ADMIN_PER_MIN,
    redisUrl: e.REDIS_URL,
  };
}
