// Call limits of the MCP gateway: per tool (calls in flight and calls per minute) and per user and
// per workspace across all tools (calls per minute). In process without REDIS_URL; shared by every
// gateway replica through Redis with it. Fails closed when the store cannot be reached.
import { ZiggieError } from '@ziggie/contracts';
import type { Redis } from 'ioredis';
import { createFailFastRedis } from '@ziggie/platform';
import { RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

export interface CallLimiterOptions {
  /** Shared store; in process when absent. */
  redisUrl?: string;
  /** Per-tool limits unless the tool's server sets its own (MCP_TOOL_CONCURRENCY, MCP_TOOL_PER_MINUTE). */
  defaults: { concurrency: number; perMinute: number };
  /** Calls per minute per user / per workspace across all tools; 0: no limit. */
  userPerMinute: number;
  workspacePerMinute: number;
  /** Prefix of every store key (default ziggie:mcp:limits). */
  keyPrefix?: string;
  /** Told about store errors that do not reach a caller (connection errors, failed releases). */
  onError?: (err: Error) => void;
}

export interface CallKey {
  tool: string;
  user: string;
  workspace: string;
  /** The tool's server's own limits, overriding the defaults. */
  limits?: { concurrency?: number; perMinute?: number };
}

/** Gives the concurrency slot back. Idempotent; never rejects (a failed release is reported to onError). */
export type ReleaseCall = () => Promise<void>;

export type LimitScope = 'tool' | 'user' | 'workspace';

const RATE_WINDOW_SECONDS = 60;
/** How long a concurrency slot outlives a replica that died without releasing it (Redis only). */
export const SLOT_EXPIRY_SECONDS = 5 * 60;
const REDIS_TIMEOUT_MS = 2_000;

interface RateCheck {
  scope: LimitScope;
  name: string;
  limit: number;
  limiter: RateLimiterAbstract;
}

function positiveInt(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isInteger(value) && value >= 1 ? value : fallback;
}

function retryAfter(res: RateLimiterRes): number {
  return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class CallLimiter {
  private readonly limiters = new Map<string, RateLimiterAbstract>();
  private readonly prefix: string;
  private lastStoreError: string | undefined;
  private closed = false;

  private constructor(
    private readonly opts: CallLimiterOptions,
    private readonly redis: Redis | undefined,
  ) {
    this.prefix = opts.keyPrefix ?? 'ziggie:mcp:limits';
  }

  static create(opts: CallLimiterOptions): CallLimiter {
    for (const [name, value] of Object.entries({
      'defaults.concurrency': opts.defaults.concurrency,
      'defaults.perMinute': opts.defaults.perMinute,
    })) {
      if (!Number.isInteger(value) || value < 1) throw new Error(`CallLimiter: ${name} must be an integer >= 1, got ${value}`);
    }
    for (const [name, value] of Object.entries({ userPerMinute: opts.userPerMinute, workspacePerMinute: opts.workspacePerMinute })) {
      if (!Number.isInteger(value) || value < 0) throw new Error(`CallLimiter: ${name} must be an integer >= 0, got ${value}`);
    }
    if (!opts.redisUrl) return new CallLimiter(opts, undefined);

    const redis = createFailFastRedis(opts.redisUrl, { connectTimeoutMs: REDIS_TIMEOUT_MS, commandTimeoutMs: REDIS_TIMEOUT_MS });
    const limiter = new CallLimiter(opts, redis);
    // Without a listener ioredis reports connection errors as unhandled 'error' events.
    redis.on('error', (err: Error) => {
      if (limiter.lastStoreError === err.message) return; // one report per distinct error, not per retry
      limiter.lastStoreError = err.message;
      opts.onError?.(err);
    });
    redis.on('ready', () => {
      limiter.lastStoreError = undefined;
    });
    return limiter;
  }

  /**
   * Admits one call or throws: ZiggieError TOOL_RATE_LIMITED / RATE_LIMITED (per-minute limits of
   * the tool / of the user or workspace), TOOL_CONCURRENCY_LIMITED, or SERVICE_UNAVAILABLE when
   * the store is unreachable. Refusals carry extras { retryAfterSeconds, limit, scope }.
   *
   * The per-minute limits are checked first, together; if one refuses, the points the others
   * took for this call are given back. Then the concurrency slot: if that is refused the
   * per-minute points stay consumed (a refused attempt counts, which also damps retry storms),
   * but the refused slot point is always given back.
   */
  async acquire(key: CallKey): Promise<ReleaseCall> {
    if (this.closed) throw new ZiggieError('SERVICE_UNAVAILABLE', 'limits store closed');
    const concurrency = positiveInt(key.limits?.concurrency, this.opts.defaults.concurrency);
    const perMinute = positiveInt(key.limits?.perMinute, this.opts.defaults.perMinute);

    const checks: RateCheck[] = [];
    if (this.opts.userPerMinute > 0) {
      checks.push({ scope: 'user', name: key.user, limit: this.opts.userPerMinute, limiter: this.rateLimiter('user', this.opts.userPerMinute) });
    }
    if (this.opts.workspacePerMinute > 0) {
      checks.push({
        scope: 'workspace',
        name: key.workspace,
        limit: this.opts.workspacePerMinute,
        limiter: this.rateLimiter('workspace', this.opts.workspacePerMinute),
      });
    }
    checks.push({ scope: 'tool', name: key.tool, limit: perMinute, limiter: this.rateLimiter('tool', perMinute) });

    const results = await Promise.allSettled(checks.map((c) => c.limiter.consume(c.name, 1)));
    if (results.some((r) => r.status === 'rejected')) {
      await Promise.allSettled(results.flatMap((r, i) => (r.status === 'fulfilled' ? [checks[i]!.limiter.reward(checks[i]!.name, 1)] : [])));
      const storeFailure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && !(r.reason instanceof RateLimiterRes));
      if (storeFailure) throw this.unavailable(storeFailure.reason);
      const i = results.findIndex((r) => r.status === 'rejected');
      throw this.rateRefusal(checks[i]!, (results[i] as PromiseRejectedResult).reason as RateLimiterRes);
    }

    const slots = this.slotLimiter(concurrency);
    try {
      await slots.consume(key.tool, 1);
    } catch (err) {
      // A store error leaves it unknown whether the point was taken; the slot expiry covers that.
      if (!(err instanceof RateLimiterRes)) throw this.unavailable(err);
      // The refused attempt incremented the counter too: take that back, or the slot leaks.
      await this.freeSlot(slots, key.tool).catch((e: unknown) => this.report(e));
      throw new ZiggieError(
        'TOOL_CONCURRENCY_LIMITED',
        `tool ${key.tool} already has ${concurrency} calls in flight (its concurrency limit); retry when one finishes`,
        // A slot frees when any call ends, not when the slot counter expires: retry soon.
        { retryAfterSeconds: 1, limit: concurrency, scope: 'tool' },
      );
    }

    let released: Promise<void> | undefined;
    return () => (released ??= this.freeSlot(slots, key.tool).catch((e: unknown) => this.report(e)));
  }

  /** Whether the store answers (always ok in process). */
  async health(): Promise<{ ok: boolean; detail?: string }> {
    if (!this.redis) return { ok: true };
    if (this.closed) return { ok: false, detail: 'closed' };
    if (this.redis.status !== 'ready') {
      return { ok: false, detail: `redis ${this.redis.status}${this.lastStoreError ? `: ${this.lastStoreError}` : ''}` };
    }
    try {
      await this.redis.ping();
      return { ok: true };
    } catch (err) {
      return { ok: false, detail: `redis ping failed: ${asError(err).message}` };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.redis) return;
    if (this.redis.status !== 'ready') {
      this.redis.disconnect();
      return;
    }
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  /**
   * The caller learns only that the store is unreachable; the cause goes to onError (while
   * disconnected the 'error' listener has reported it already).
   */
  private unavailable(err: unknown): ZiggieError {
    if (this.redis?.status === 'ready') this.report(err);
    return new ZiggieError('SERVICE_UNAVAILABLE', 'limits store unreachable');
  }

  private rateRefusal(check: RateCheck, res: RateLimiterRes): ZiggieError {
    const retryAfterSeconds = retryAfter(res);
    const extras = { retryAfterSeconds, limit: check.limit, scope: check.scope };
    const what = check.scope === 'tool' ? `tool ${check.name}` : `${check.scope} ${check.name}`;
    return new ZiggieError(
      check.scope === 'tool' ? 'TOOL_RATE_LIMITED' : 'RATE_LIMITED',
      `${what} exceeded its limit of ${check.limit} calls per minute; retry in ${retryAfterSeconds} s`,
      extras,
    );
  }

  private rateLimiter(scope: LimitScope, points: number): RateLimiterAbstract {
    return this.limiter(`${scope}:${points}`, `${this.prefix}:rate:${scope}`, points, RATE_WINDOW_SECONDS);
  }

  /*
   * Concurrency as a counter: a slot is 1 point consumed on a limiter whose points are the
   * concurrency, and release rewards it back. In Redis the counter gets a safety expiry
   * (SLOT_EXPIRY_SECONDS) so slots held by a replica that crashed come back; the price is that the
   * expiry also forgets slots of calls still running at that moment, so for a while after it up
   * to twice the limit may run, and releasing such a forgotten slot is clamped at zero (see
   * freeSlot) instead of driving the counter negative. In process there is no expiry: the counter
   * dies with the process and is exact.
   */
  private slotLimiter(points: number): RateLimiterAbstract {
    return this.limiter(`slots:${points}`, `${this.prefix}:slots`, points, this.redis ? SLOT_EXPIRY_SECONDS : 0);
  }

  private async freeSlot(slots: RateLimiterAbstract, tool: string): Promise<void> {
    const res = await slots.reward(tool, 1);
    // Below zero: the slot had already been forgotten by the expiry; undo the decrement.
    if (res.consumedPoints < 0) await slots.penalty(tool, 1);
  }

  private limiter(cacheKey: string, keyPrefix: string, points: number, duration: number): RateLimiterAbstract {
    let limiter = this.limiters.get(cacheKey);
    if (!limiter) {
      limiter = this.redis
        ? new RateLimiterRedis({ storeClient: this.redis, rejectIfRedisNotReady: true, keyPrefix, points, duration })
        : new RateLimiterMemory({ keyPrefix, points, duration });
      this.limiters.set(cacheKey, limiter);
    }
    return limiter;
  }

  private report(err: unknown): void {
    this.opts.onError?.(asError(err));
  }
}
