import { signDevToken } from '@ziggie/platform/dev-token';
import { JWT_AUDIENCE, JWT_ISSUER } from './secret';
import type { DevTokenRequest } from './token-args';

/** Signs a development token the way every service verifies it (HS256, ziggie-local / ziggie-api). */
export function mintDevToken(req: DevTokenRequest, secret: string): string {
  return signDevToken(
    { subject: req.subject, roles: req.roles, workspaces: req.workspaces, ttlSeconds: req.ttlSeconds },
    { secret, issuer: JWT_ISSUER, audience: JWT_AUDIENCE },
  );
}
