import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { z } from 'zod';

/** Browser origins the API answers with CORS headers (comma-separated, exact); none by default. */
export const corsEnv = {
  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((v) => v.split(',').map((o) => o.trim()).filter(Boolean))
    .pipe(
      z.array(
        z
          .string()
          // Credentials are allowed, so a wildcard would hand every site the caller's session.
          .refine((o) => o !== '*' && o !== 'null', 'a wildcard or "null" origin is not allowed: list exact origins')
          .refine((o) => {
            try {
              const u = new URL(o);
              return (u.protocol === 'https:' || u.protocol === 'http:') && u.origin === o;
            } catch {
              return false;
            }
          }, 'each origin must be scheme://host[:port] with nothing after it'),
      ),
    ),
};

type CorsOptions = NonNullable<Parameters<NestFastifyApplication['enableCors']>[0]>;

/** CORS for the listed origins only: echoed exactly (never `*`), credentials allowed, `Vary: Origin` always. */
export function corsOptions(origins: readonly string[]): CorsOptions | undefined {
  if (origins.length === 0) return undefined;
  const allowed = new Set(origins);
  return {
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    credentials: true,
    methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['authorization', 'content-type', 'x-request-id', 'last-event-id', 'accept'],
    exposedHeaders: ['x-request-id', 'location', 'retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'ratelimit-policy'],
    maxAge: 600,
    // A bad preflight is answered by the routes (problem+json), not with a plain-text 400.
    strictPreflight: false,
  };
}
