import { CanActivate, ExecutionContext, Injectable, Logger } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { canAccessWorkspace, Permission, TOKEN_PATTERN, ZiggieError } from '@ziggie/contracts';
import { AuthenticatedRequest, IS_PUBLIC_KEY, REQUIRED_PERMISSION_KEY } from '@ziggie/platform';
import { ADMIN_API_KEY } from './admin-api.decorator';
import { GatewayRateLimiter, LimitKey, LimitState, RATE_WINDOW_SECONDS } from './rate-limiter';

const ADMIN_PERMISSIONS: ReadonlySet<Permission> = new Set<Permission>(['config:change', 'workspace:manage']);
const WORKSPACE_PATH = /^\/v1\/workspaces\/([^/?]+)/;

type LimitedRequest = FastifyRequest & AuthenticatedRequest;

function stringField(source: unknown, name: string): string | undefined {
  if (typeof source !== 'object' || source === null || Array.isArray(source)) return undefined;
  const value = (source as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}

function decoded(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** The workspace a request names: its /v1/workspaces/:id path, else `workspace` in the body, else in the query. */
export function workspaceOf(request: Pick<FastifyRequest, 'url' | 'params' | 'body' | 'query'>): string | undefined {
  const fromPath = WORKSPACE_PATH.exec(request.url ?? '');
  return (
    stringField(request.params, 'workspace') ??
    (fromPath ? decoded(fromPath[1]!) : undefined) ??
    stringField(request.body, 'workspace') ??
    stringField(request.query, 'workspace')
  );
}

function setHeaders(res: FastifyReply, state: LimitState): void {
  res.header('RateLimit-Limit', String(state.limit));
  res.header('RateLimit-Remaining', String(state.remaining));
  res.header('RateLimit-Reset', String(state.resetSeconds));
  res.header('RateLimit-Policy', `${state.limit};w=${RATE_WINDOW_SECONDS}`);
}

/**
 * Applies the per-user, per-workspace and admin API budgets to every authenticated HTTP route.
 * Registered as an APP_GUARD after the AuthGuard (module order), so the principal is known.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  private readonly logger = new Logger('rate-limit');
  private warnedUnauthenticated = false;

  constructor(
    private readonly reflector: Reflector,
    private readonly limiter: GatewayRateLimiter,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC_KEY, targets)) return true;

    const http = context.switchToHttp();
    const request = http.getRequest<LimitedRequest>();
    const principal = request.principal;
    if (!principal) {
      // Only possible when this guard runs before the AuthGuard; limits need a subject.
      if (!this.warnedUnauthenticated) {
        this.warnedUnauthenticated = true;
        this.logger.error('rate limits not applied: no principal on an authenticated route (RateLimitModule must come after AuthModule)');
      }
      return true;
    }

    const keys: LimitKey[] = [{ scope: 'user', key: principal.subject }];
    const permission = this.reflector.getAllAndOverride<Permission | undefined>(REQUIRED_PERMISSION_KEY, targets);
    const adminApi = this.reflector.getAllAndOverride<boolean | undefined>(ADMIN_API_KEY, targets) === true;
    if (adminApi || (permission !== undefined && ADMIN_PERMISSIONS.has(permission))) keys.push({ scope: 'admin', key: principal.subject });
    const workspace = workspaceOf(request);
    // A workspace the caller may not use is refused further on; counting it would let anyone drain another team's budget.
    if (workspace !== undefined && TOKEN_PATTERN.test(workspace) && canAccessWorkspace(principal.workspaces, workspace)) {
      keys.push({ scope: 'workspace', key: workspace });
    }

    const verdict = await this.limiter.consume(keys);
    const response = http.getResponse<FastifyReply>();
    if (verdict.state) setHeaders(response, verdict.state);
    if (!verdict.allowed) {
      const { scope, limit, resetSeconds } = verdict.state;
      throw new ZiggieError('RATE_LIMITED', `${scope} rate limit of ${limit} requests per minute exceeded`, { retryAfterSeconds: resetSeconds, limit, scope });
    }
    return true;
  }
}
