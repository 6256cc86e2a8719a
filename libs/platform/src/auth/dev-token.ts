// Its own module (and the `@ziggie/platform/dev-token` entry point): the CLI mints tokens and
// should not load the services' framework to do it.

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
  // Loaded on first use: services only verify tokens (with jose), and they load this module.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { sign } = require('jsonwebtoken') as typeof import('jsonwebtoken');
  return sign({ roles: opts.roles, workspaces: opts.workspaces }, auth.secret, {
    algorithm: 'HS256',
    subject: opts.subject,
    issuer: auth.issuer,
    audience: auth.audience,
    expiresIn: opts.ttlSeconds,
  });
}
