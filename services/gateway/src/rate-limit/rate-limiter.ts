import { Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { createFailFastRedis } from '@ziggie/platform';
import { RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { RateLimitOptions } from './rate-limit.config';

export type LimitScope = 'user' | 'workspace' | 'admin';

/** One budget a request draws on: a scope and whose budget it is (a subject or a workspace id). */
export interface LimitKey {
  scope: LimitScope;
  key: string;
}

/** Where a budget stands after a request, as reported in the RateLimit-* headers. */
export interface LimitState {
  scope: LimitScope;
  limit: number;
  remaining: number;
  /** Seconds until the window ends and the budget is full again. */
  resetSeconds: number;
}

export type LimitVerdict =
  | { allowed: true; /** The most restrictive budget; absent when no limit applied. */ state?: LimitState }
  | { allowed: false; state: LimitState };

export const RATE_WINDOW_SECONDS = 60;
const DEFAULT_KEY_PREFIX = 'ziggie:gateway:rate';
const REDIS_TIMEOUT_MS = 1_000;
const REDIS_CONNECT_TIMEOUT_MS = 2_000;

function isRefusal(reason: unknown): reason is RateLimiterRes {
  return reason instanceof RateLimiterRes;
}

function stateOf(scope: LimitScope, limit: number, res: RateLimiterRes): LimitState {
  return { scope, limit, remaining: Math.max(0, res.remainingPoints), resetSeconds: Math.max(1, Math.ceil(res.msBeforeNext / 1000)) };
}

/** The budget closest to running out; on a tie, the smaller one. */
function mostRestrictive(states: LimitState[]): LimitState | undefined {
  return [...states].sort((a, b) => a.remaining - b.remaining || a.limit - b.limit || b.resetSeconds - a.resetSeconds)[0];
}

/**
 * Counts in process while Redis cannot be reached. rate-limiter-flexible switches to it silently,
 * so it tells the owner when it is first used in an outage.
 */
class InsuranceLimiter extends RateLimiterMemory {
  constructor(
    opts: ConstructorParameters<typeof RateLimiterMemory>[0],
    private readonly onUse: () => void,
  ) {
    super(opts);
  }

  override consume(key: string | number, points?: number, options?: Record<string, unknown>): Promise<RateLimiterRes> {
    this.onUse();
    return super.consume(key, points, options);
  }
}

/**
 * Per-minute budgets of the gateway (DESIGN §8.6): per user, per workspace and per user on admin
 * APIs. In process without a Redis URL; with one, every replica draws on the same counters, and
 * while Redis is unreachable each replica falls back to counting on its own (fail open: a
 * limiter outage must not take the API down).
 */
export class GatewayRateLimiter implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('rate-limit');
  private readonly limiters = new Map<LimitScope, { limit: number; limiter: RateLimiterAbstract }>();
  private storeDown = false;
  private lastStoreError?: string;

  private constructor(
    opts: RateLimitOptions,
    private readonly redis: Redis | undefined,
  ) {
    const prefix = opts.keyPrefix ?? DEFAULT_KEY_PREFIX;
    const limits: Record<LimitScope, number> = { user: opts.userPerMinute, workspace: opts.workspacePerMinute, admin: opts.adminPerMinute };
    for (const [scope, limit] of Object.entries(limits) as Array<[LimitScope, number]>) {
      if (!Number.isInteger(limit) || limit < 0) throw new Error(`rate limit ${scope}: expected an integer >= 0, got ${limit}`);
      if (limit === 0) continue;
      const common = { keyPrefix: `${prefix}:${scope}`, points: limit, duration: RATE_WINDOW_SECONDS };
      const limiter = redis
        ? new RateLimiterRedis({
            ...common,
            storeClient: redis,
            // Straight to the insurance limiter while disconnected instead of waiting for a timeout.
            rejectIfRedisNotReady: true,
            insuranceLimiter: new InsuranceLimiter(common, () => this.onInsuranceUsed()),
          })
        : new RateLimiterMemory(common);
      this.limiters.set(scope, { limit, limiter });
    }
  }

  static create(opts: RateLimitOptions): GatewayRateLimiter {
    if (!opts.redisUrl) return new GatewayRateLimiter(opts, undefined);
    // While Redis is unreachable the insurance limiter answers.
    const redis = createFailFastRedis(opts.redisUrl, { connectTimeoutMs: REDIS_CONNECT_TIMEOUT_MS, commandTimeoutMs: REDIS_TIMEOUT_MS });
    const limiter = new GatewayRateLimiter(opts, redis);
    // Without a listener ioredis reports connection errors as unhandled 'error' events.
    redis.on('error', (err: Error) => limiter.onStoreError(err));
    redis.on('ready', () => limiter.onStoreReady());
    return limiter;
  }

  /**
   * Waits (bounded) for the first Redis connection, so the first requests after start draw on
   * the shared counters rather than the insurance limiter. Starts anyway if Redis is not there.
   */
  async onModuleInit(): Promise<void> {
    const redis = this.redis;
    if (!redis || redis.status === 'ready') return;
    const ready = await new Promise<boolean>((resolve) => {
      const onReady = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        redis.off('ready', onReady);
        resolve(false);
      }, REDIS_CONNECT_TIMEOUT_MS);
      redis.once('ready', onReady);
    });
    if (!ready) this.logger.warn('Redis not reachable at start: rate limits are counted per replica until it is');
  }

  /**
   * Takes one point from every budget the request draws on. If any budget is exhausted the
   * request is refused and the points the others gave are handed back, so a refused request
   * does not eat into a workspace's budget on behalf of one user's excess.
   */
  async consume(keys: LimitKey[]): Promise<LimitVerdict> {
    const checks = keys.flatMap((k) => {
      const entry = this.limiters.get(k.scope);
      return entry ? [{ ...k, ...entry }] : [];
    });
    if (checks.length === 0) return { allowed: true };

    const results = await Promise.allSettled(checks.map((c) => c.limiter.consume(c.key, 1)));
    const states: LimitState[] = [];
    const refusals: LimitState[] = [];
    results.forEach((result, i) => {
      const check = checks[i]!;
      if (result.status === 'fulfilled') states.push(stateOf(check.scope, check.limit, result.value));
      else if (isRefusal(result.reason)) refusals.push({ ...stateOf(check.scope, check.limit, result.reason), remaining: 0 });
      // Neither: the store and its insurance both failed; this budget is skipped (fail open).
      else this.logger.error(`rate limit ${check.scope} not applied: ${result.reason instanceof Error ? result.reason.message : String(result.reason)}`);
    });

    if (refusals.length > 0) {
      await Promise.allSettled(results.flatMap((r, i) => (r.status === 'fulfilled' ? [checks[i]!.limiter.reward(checks[i]!.key, 1)] : [])));
      // Retrying before the longest of the exhausted windows ends would only be refused again.
      const longest = refusals.reduce((a, b) => (b.resetSeconds > a.resetSeconds ? b : a));
      return { allowed: false, state: longest };
    }
    return { allowed: true, state: mostRestrictive(states) };
  }

  async onApplicationShutdown(): Promise<void> {
    if (!this.redis) return;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  private onInsuranceUsed(): void {
    if (this.storeDown) return;
    this.storeDown = true;
    this.logger.warn('Redis unreachable: rate limits are counted per replica until it is back');
  }

  private onStoreError(err: Error): void {
    if (this.lastStoreError === err.message) return; // one report per distinct error, not per retry
    this.lastStoreError = err.message;
    this.logger.warn(`rate-limit store: ${err.message}`);
  }

  private onStoreReady(): void {
    this.lastStoreError = undefined;
    if (!this.storeDown) return;
    this.storeDown = false;
    this.logger.log('Redis reachable again: rate limits are shared across replicas');
  }
}
