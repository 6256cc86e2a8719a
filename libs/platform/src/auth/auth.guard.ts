import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { hasPermission, Permission, ZiggieError } from '@ziggie/contracts';
import { AuthenticatedRequest, IS_PUBLIC_KEY, REQUIRED_PERMISSION_KEY } from './auth.decorators';
import { bearerToken, JwtVerifier } from './jwt';

/**
 * Authenticates every HTTP route unless it is @Public(), then enforces @RequirePermission().
 * Other transports pass through: gRPC between services is authenticated by mTLS (DESIGN §8.4).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly verifier: JwtVerifier,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    if (context.getType() !== 'http') return true;
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC_KEY, targets)) return true;

    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const header = request.headers['authorization'];
    if (Array.isArray(header)) throw new ZiggieError('AUTH_INVALID_TOKEN', 'more than one Authorization header');
    const principal = this.verifier.verify(bearerToken(header));
    request.principal = principal;

    const permission = this.reflector.getAllAndOverride<Permission | undefined>(REQUIRED_PERMISSION_KEY, targets);
    if (permission && !hasPermission(principal.roles, permission)) {
      throw new ZiggieError('AUTH_FORBIDDEN', `permission ${permission} required`);
    }
    return true;
  }
}
