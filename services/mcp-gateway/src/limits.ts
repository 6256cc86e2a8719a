// Call limits of the MCP gateway. Two kinds, because they protect different things:
// - per caller: each caller's calls of a tool (in flight and per minute), and each user's and each
//   workspace's calls across all tools (per minute). One caller's burst cannot use up a tool for
//   everybody else;
// - per upstream: the capacity of a server (its calls in flight and per minute, whoever calls),
//   when its configuration gives one.
// In process without REDIS_URL; shared by every gateway replica through Redis with it. Fails
// closed when the store cannot be reached.
import { ZiggieError } from '@ziggie/contracts';
import type { Redis } from 'ioredis';
import { createFailFastRedis } from '@ziggie/platform';
import { RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

export interface CallLimiterOptions {
  /** Shared store; in process when absent. */
  redisUrl?: string;
  /** Per-caller limits of each tool unless the tool's server sets its own (MCP_TOOL_CONCURRENCY, MCP_TOOL_PER_MINUTE). */
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
  /** The upstream server the tool belongs to. */
  server: string;
  user: string;
  workspace: string;
  /** The tool's server's own per-caller limits, overriding the defaults. */
  limits?: { concurrency?: number; perMinute?: number };
  /** The server's capacity, shared by every caller (none when absent). */
  capacity?: { concurrency?: number; perMinute?: number };
}

/** Gives the concurrency slot back. Idempotent; never rejects (a failed release is reported to onError). */
export type ReleaseCall = () => Promise<void>;

export type LimitScope = 'tool' | 'server' | 'user' | 'workspace';

const RATE_WINDOW_SECONDS = 60;
/** How long a concurrency slot outlives a replica that died without releasing it (Redis only). */
export const SLOT_EXPIRY_SECONDS = 5 * 60;
const REDIS_TIMEOUT_MS = 2_000;

interface RateCheck {
  scope: LimitScope;
  /** The store key. */
  name: string;
  /** What the refusal names. */
  label: string;
  limit: number;
  limiter: RateLimiterAbstract;
}

interface Slot {
  scope: 'tool' | 'server';
  name: string;
  label: string;
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
   * Admits one call or throws: ZiggieError TOOL_RATE_LIMITED (per-minute limit of the tool for this
   * caller, or of its server), RATE_LIMITED (of the user or workspace), TOOL_CONCURRENCY_LIMITED
   * (calls in flight of the tool for this caller, or of its server), or SERVICE_UNAVAILABLE when
   * the store is unreachable. Refusals carry extras { retryAfterSeconds, limit, scope }.
   *
   * The per-minute limits are checked first, together; if one refuses, the points the others
   * took for this call are given back. Then the concurrency slots (the caller's, then the
   * server's): if one is refused the per-minute points stay consumed (a refused attempt counts,
   * which also damps retry storms), but every slot point taken for the call is given back.
   */
  async acquire(key: CallKey): Promise<ReleaseCall> {
    if (this.closed) throw new ZiggieError('SERVICE_UNAVAILABLE', 'limits store closed');
    const concurrency = positiveInt(key.limits?.concurrency, this.opts.defaults.concurrency);
    const perMinute = positiveInt(key.limits?.perMinute, this.opts.defaults.perMinute);
    // The caller's share of a tool: one store key per (tool, user).
    const callerTool = `${key.tool}\u0000${key.user}`;
    const toolLabel = `tool ${key.tool} for caller ${key.user}`;
    const serverLabel = `server ${key.server}`;

    const checks: RateCheck[] = [];
    if (this.opts.userPerMinute > 0) {
      checks.push({ scope: 'user', name: key.user, label: `user ${key.user}`, limit: this.opts.userPerMinute, limiter: this.rateLimiter('user', this.opts.userPerMinute) });
    }
    if (this.opts.workspacePerMinute > 0) {
      checks.push({
        scope: 'workspace',
        name: key.workspace,
        label: `workspace ${key.workspace}`,
        limit: this.opts.workspacePerMinute,
        limiter: this.rateLimiter('workspace', this.opts.workspacePerMinute),
      });
    }
    checks.push({ scope: 'tool', name: callerTool, label: toolLabel, limit: perMinute, limiter: this.rateLimiter('tool', perMinute) });
    // A server's capacity limits only what it sets (0: no limit).
    const serverPerMinute = positiveInt(key.capacity?.perMinute, 0);
    const serverConcurrency = positiveInt(key.capacity?.concurrency, 0);
    if (serverPerMinute > 0) {
      checks.push({ scope: 'server', name: key.server, label: serverLabel, limit: serverPerMinute, limiter: this.rateLimiter('server', serverPerMinute) });
    }

    const results = await Promise.allSettled(checks.map((c) => c.limiter.consume(c.name, 1)));
    if (results.some((r) => r.status === 'rejected')) {
      await Promise.allSettled(results.flatMap((r, i) => (r.status === 'fulfilled' ? [checks[i]!.limiter.reward(checks[i]!.name, 1)] : [])));
      const storeFailure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && !(r.reason instanceof RateLimiterRes));
      if (storeFailure) throw this.unavailable(storeFailure.reason);
      const i = results.findIndex((r) => r.status === 'rejected');
      throw this.rateRefusal(checks[i]!, (results[i] as PromiseRejectedResult).reason as RateLimiterRes);
    }

    const slots: Slot[] = [{ scope: 'tool', name: callerTool, label: toolLabel, limit: concurrency, limiter: this.slotLimiter('tool', concurrency) }];
    if (serverConcurrency > 0) {
      slots.push({ scope: 'server', name: key.server, label: serverLabel, limit: serverConcurrency, limiter: this.slotLimiter('server', serverConcurrency) });
    }
    const held: Slot[] = [];
    const freeAll = () => Promise.all(held.map((s) => this.freeSlot(s.limiter, s.name).catch((e: unknown) => this.report(e)))).then(() => undefined);
    for (const slot of slots) {
      try {
        await slot.limiter.consume(slot.name, 1);
        held.push(slot);
      } catch (err) {
        // A store error leaves it unknown whether the point was taken; the slot expiry covers that.
        if (!(err instanceof RateLimiterRes)) {
          await freeAll();
          throw this.unavailable(err);
        }
        // The refused attempt incremented the counter too: take that back, or the slot leaks.
        await this.freeSlot(slot.limiter, slot.name).catch((e: unknown) => this.report(e));
        await freeAll();
        throw new ZiggieError(
          'TOOL_CONCURRENCY_LIMITED',
          `${slot.label} already has ${slot.limit} calls in flight (its concurrency limit); retry when one finishes`,
          // A slot frees when any call ends, not when the slot counter expires: retry soon.
          { retryAfterSeconds: 1, limit: slot.limit, scope: slot.scope },
        );
      }
    }

    let released: Promise<void> | undefined;
    return () => (released ??= freeAll());
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
    return new ZiggieError(
      check.scope === 'tool' || check.scope === 'server' ? 'TOOL_RATE_LIMITED' : 'RATE_LIMITED',
      `${check.label} exceeded its limit of ${check.limit} calls per minute; retry in ${retryAfterSeconds} s`,
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
  private slotLimiter(scope: 'tool' | 'server', points: number): RateLimiterAbstract {
    return this.limiter(`slots:${scope}:${points}`, `${this.prefix}:slots:${scope}`, points, this.redis ? SLOT_EXPIRY_SECONDS : 0);
  }

  private async freeSlot(slots: RateLimiterAbstract, name: string): Promise<void> {
    const res = await slots.reward(name, 1);
    // Below zero: the slot had already been forgotten by the expiry; undo the decrement.
    if (res.consumedPoints < 0) await slots.penalty(name, 1);
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
