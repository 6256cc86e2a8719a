import { CanActivate, ExecutionContext, Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { hasPermission, Permission, ZiggieError } from '@ziggie/contracts';
import { PlatformConfig } from '../config/config';
import { CONFIG } from '../config/config.module';
import { AuthenticatedRequest, IS_PUBLIC_KEY, REQUIRED_PERMISSION_KEY } from './auth.decorators';
import { bearerToken, JwtVerifier } from './jwt';
import { Principal } from './principal';

/** Query parameters some clients use for tokens; a URL ends up in logs, histories and Referer headers. */
const TokenQueryParameters = ['access_token', 'token'];

/** Who every request is with ZIGGIE_AUTH=off. */
export const ANONYMOUS_ADMIN: Readonly<Principal> = Object.freeze({ subject: 'anonymous', roles: ['admin'], workspaces: ['*'] });

/** How many Authorization header lines the request had; Node keeps only the first in `headers`. */
function authorizationHeaderCount(request: AuthenticatedRequest): number {
  const raw = request.raw?.rawHeaders;
  if (!raw) return Array.isArray(request.headers['authorization']) ? 2 : 1;
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]?.toLowerCase() === 'authorization') count++;
  return count;
}

/**
 * Authenticates every HTTP route unless it is @Public(), then enforces @RequirePermission().
 * Other transports pass through: gRPC between services is authenticated by mTLS (DESIGN §8.4).
 */
@Injectable()
export class AuthGuard implements CanActivate, OnModuleInit {
  private readonly logger = new Logger('auth');
  private readonly enabled: boolean;

  constructor(
    private readonly reflector: Reflector,
    private readonly verifier: JwtVerifier,
    @Inject(CONFIG) config: PlatformConfig,
  ) {
    this.enabled = config.auth.enabled;
  }

  onModuleInit(): void {
    if (!this.enabled) {
      this.logger.warn(
        'ZIGGIE_AUTH=off: AUTHENTICATION IS DISABLED. Every request is treated as an admin of every workspace. Use this only for benchmark baselines on loopback.',
      );
    }
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC_KEY, targets)) return true;

    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    if (!this.enabled) {
      request.principal = { ...ANONYMOUS_ADMIN, roles: [...ANONYMOUS_ADMIN.roles], workspaces: [...ANONYMOUS_ADMIN.workspaces] };
      return true;
    }
    const query = request.query;
    if (query && TokenQueryParameters.some((name) => Object.hasOwn(query, name))) {
      throw new ZiggieError('AUTH_INVALID_TOKEN', 'tokens are accepted only in the Authorization header');
    }
    const header = request.headers['authorization'];
    if (Array.isArray(header) || authorizationHeaderCount(request) > 1) {
      throw new ZiggieError('AUTH_INVALID_TOKEN', 'more than one Authorization header');
    }
    const principal = await this.verifier.verify(bearerToken(header));
    request.principal = principal;

    const permission = this.reflector.getAllAndOverride<Permission | undefined>(REQUIRED_PERMISSION_KEY, targets);
    if (permission && !hasPermission(principal.roles, permission)) {
      throw new ZiggieError('AUTH_FORBIDDEN', `permission ${permission} required`);
    }
    return true;
  }
}
