// CallLimiter against a real redis-server: two limiters stand for two gateway replicas.
import { randomUUID } from 'node:crypto';
import { ZiggieError } from '@ziggie/contracts';
import { Redis } from 'ioredis';
import { CallKey, CallLimiter, ReleaseCall, SLOT_EXPIRY_SECONDS } from '../src/limits';
import { startRedis, waitFor, type RedisServerHandle } from '../../../test/support';

const key = (over: Partial<CallKey> = {}): CallKey => ({ tool: 'srv.echo', server: 'srv', user: 'alice', workspace: 'ziggie', ...over });

async function refusal(p: Promise<unknown>): Promise<ZiggieError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ZiggieError);
    return err as ZiggieError;
  }
  throw new Error('expected the call to be refused');
}

describe('CallLimiter shared through Redis', () => {
  let redis: RedisServerHandle;
  let admin: Redis;
  let slotKey: string;
  let prefix: string;
  let a: CallLimiter;
  let b: CallLimiter;
  const storeErrors: Error[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };

  const replica = (): CallLimiter =>
    CallLimiter.create({
      redisUrl: redis.url,
      defaults: { concurrency: 10, perMinute: 100 },
      userPerMinute: 0,
      workspacePerMinute: 0,
      keyPrefix: prefix,
      onError: (err) => storeErrors.push(err),
    });

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    redis = await startRedis();
    admin = new Redis(redis.url, { maxRetriesPerRequest: 1, disconnectTimeout: 0 });
    admin.on('error', () => undefined);
  });

  beforeEach(async () => {
    prefix = `test:${randomUUID()}`;
    // The slot counter of alice's calls of srv.echo (per tool and caller).
    slotKey = `${prefix}:slots:tool:srv.echo\u0000alice`;
    a = replica();
    b = replica();
    await waitFor(async () => (await a.health()).ok && (await b.health()).ok, { timeoutMs: 10_000, what: 'both limiters connected' });
  });

  afterEach(async () => {
    await a.close();
    await b.close();
  });

  afterAll(async () => {
    admin.disconnect();
    await redis?.stop();
    process.removeListener('unhandledRejection', onUnhandled);
  });

  it('shares the concurrency limit between replicas', async () => {
    const held: ReleaseCall[] = [];
    for (let i = 0; i < 5; i++) held.push(await a.acquire(key()));
    for (let i = 0; i < 5; i++) held.push(await b.acquire(key()));

    for (const replica of [a, b]) {
      const err = await refusal(replica.acquire(key()));
      expect(err.code).toBe('TOOL_CONCURRENCY_LIMITED');
      expect(err.extras).toEqual({ retryAfterSeconds: expect.any(Number), limit: 10, scope: 'tool' });
      expect(err.extras.retryAfterSeconds as number).toBeGreaterThanOrEqual(1);
    }

    // A slot released on replica a is free for replica b.
    await held.shift()!();
    held.push(await b.acquire(key()));
    expect((await refusal(a.acquire(key()))).code).toBe('TOOL_CONCURRENCY_LIMITED');

    // Double release frees one slot only, across replicas too.
    const last = held.pop()!;
    await last();
    await last();
    held.push(await a.acquire(key()));
    expect((await refusal(b.acquire(key()))).code).toBe('TOOL_CONCURRENCY_LIMITED');

    // The slot counter has the safety expiry, so a crashed replica's slots come back.
    const ttl = await admin.ttl(slotKey);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(SLOT_EXPIRY_SECONDS);

    await Promise.all(held.map((r) => r()));
    expect(await admin.get(slotKey)).toBe('0');
  });

  it('shares the per-minute limits between replicas', async () => {
    const limits = { perMinute: 5 };
    for (let i = 0; i < 3; i++) await (await a.acquire(key({ limits })))();
    for (let i = 0; i < 2; i++) await (await b.acquire(key({ limits })))();
    for (const replica of [a, b]) {
      const err = await refusal(replica.acquire(key({ limits })));
      expect(err.code).toBe('TOOL_RATE_LIMITED');
      expect(err.extras).toEqual({ retryAfterSeconds: expect.any(Number), limit: 5, scope: 'tool' });
      expect(err.extras.retryAfterSeconds as number).toBeGreaterThanOrEqual(1);
      expect(err.extras.retryAfterSeconds as number).toBeLessThanOrEqual(60);
    }
  });

  it('shares the per-user limit between replicas', async () => {
    await a.close();
    await b.close();
    const make = (): CallLimiter =>
      CallLimiter.create({ redisUrl: redis.url, defaults: { concurrency: 10, perMinute: 100 }, userPerMinute: 2, workspacePerMinute: 0, keyPrefix: prefix });
    a = make();
    b = make();
    await waitFor(async () => (await a.health()).ok && (await b.health()).ok, { timeoutMs: 10_000, what: 'both limiters connected' });
    await (await a.acquire(key({ tool: 't1' })))();
    await (await b.acquire(key({ tool: 't2' })))();
    const err = await refusal(a.acquire(key({ tool: 't3' })));
    expect(err.code).toBe('RATE_LIMITED');
    expect(err.extras).toMatchObject({ limit: 2, scope: 'user' });
    await (await b.acquire(key({ tool: 't3', user: 'bob' })))();
  });

  it('does not let a release drive the slot counter below zero after the expiry forgot the slot', async () => {
    const limits = { concurrency: 1 };
    const release = await a.acquire(key({ limits }));
    await admin.del(slotKey); // as if the safety expiry had passed
    await release();
    expect(Number(await admin.get(slotKey))).toBe(0);
    const next = await b.acquire(key({ limits }));
    expect((await refusal(a.acquire(key({ limits })))).code).toBe('TOOL_CONCURRENCY_LIMITED');
    await next();
  });

  it('fails closed with SERVICE_UNAVAILABLE when Redis is gone, without crashing', async () => {
    const held = await a.acquire(key());
    await redis.stop();
    await waitFor(async () => !(await a.health()).ok && !(await b.health()).ok, { timeoutMs: 10_000, what: 'limiters to notice' });

    for (const replica of [a, b]) {
      const err = await refusal(replica.acquire(key()));
      expect(err.code).toBe('SERVICE_UNAVAILABLE');
      expect(err.message).toBe('limits store unreachable');
    }
    const health = await a.health();
    expect(health.ok).toBe(false);
    expect(health.detail).toMatch(/redis/);

    // Releasing while the store is down neither throws nor rejects.
    await expect(held()).resolves.toBeUndefined();
    // Give ioredis a few reconnect attempts; nothing may surface as an unhandled rejection.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(unhandled).toEqual([]);
    expect(storeErrors.length).toBeGreaterThan(0);
  });
});
