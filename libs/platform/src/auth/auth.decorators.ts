import { createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import { Permission, ZiggieError } from '@ziggie/contracts';
import { Principal } from './principal';

export const IS_PUBLIC_KEY = 'ziggie:auth:public';
export const REQUIRED_PERMISSION_KEY = 'ziggie:auth:permission';

/** The request shape the guard reads and writes. */
export interface AuthenticatedRequest {
  headers: Record<string, string | string[] | undefined>;
  /** The request as Node received it: its rawHeaders keep duplicates (Node's `headers` drops repeated Authorization lines). */
  raw?: { rawHeaders: string[] };
  query?: Record<string, unknown>;
  principal?: Principal;
}

/** Skips authentication for a handler or a whole controller (health, metrics, docs). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(IS_PUBLIC_KEY, true);

/** Requires an RBAC permission; a handler-level permission overrides the controller's. */
export const RequirePermission = (permission: Permission): MethodDecorator & ClassDecorator =>
  SetMetadata(REQUIRED_PERMISSION_KEY, permission);

/** The verified principal of the current request. */
export const CurrentPrincipal = createParamDecorator((_data: unknown, ctx: ExecutionContext): Principal => {
  const principal = ctx.switchToHttp().getRequest<AuthenticatedRequest>().principal;
  // Only a @Public() handler gets here without one, and asking for a principal there is a bug.
  if (!principal) throw new ZiggieError('AUTH_MISSING_TOKEN', 'this route has no authenticated principal');
  return principal;
});
