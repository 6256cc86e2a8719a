import { ZiggieError } from '@ziggie/contracts';
import { CallKey, CallLimiter, ReleaseCall } from './limits';

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

/** n calls that each acquire and release at once (consume per-minute points, hold no slot). */
async function calls(limiter: CallLimiter, n: number, k: CallKey = key()): Promise<void> {
  for (let i = 0; i < n; i++) await (await limiter.acquire(k))();
}

describe('CallLimiter (in process)', () => {
  let limiter: CallLimiter;
  const make = (over: Partial<Parameters<typeof CallLimiter.create>[0]> = {}): CallLimiter =>
    (limiter = CallLimiter.create({ defaults: { concurrency: 10, perMinute: 100 }, userPerMinute: 0, workspacePerMinute: 0, ...over }));

  afterEach(async () => {
    await limiter.close();
  });

  it('refuses a caller\'s 11th concurrent call of a tool and lets the next in after a release', async () => {
    make();
    const held: ReleaseCall[] = [];
    for (let i = 0; i < 10; i++) held.push(await limiter.acquire(key()));

    const err = await refusal(limiter.acquire(key()));
    expect(err.code).toBe('TOOL_CONCURRENCY_LIMITED');
    expect(err.message).toBe('tool srv.echo for caller alice already has 10 calls in flight (its concurrency limit); retry when one finishes');
    expect(err.extras).toEqual({ retryAfterSeconds: expect.any(Number), limit: 10, scope: 'tool' });
    expect(err.extras.retryAfterSeconds as number).toBeGreaterThanOrEqual(1);

    // Other tools, and other callers of this one, are not affected: the limit protects against one caller.
    await (await limiter.acquire(key({ tool: 'srv.other' })))();
    await (await limiter.acquire(key({ user: 'bob' })))();

    await held.pop()!();
    held.push(await limiter.acquire(key()));
    expect((await refusal(limiter.acquire(key()))).code).toBe('TOOL_CONCURRENCY_LIMITED');
    await Promise.all(held.map((r) => r()));
  });

  it('a refused concurrent call does not keep a slot', async () => {
    make({ defaults: { concurrency: 2, perMinute: 100 } });
    const a = await limiter.acquire(key());
    const b = await limiter.acquire(key());
    for (let i = 0; i < 5; i++) expect((await refusal(limiter.acquire(key()))).code).toBe('TOOL_CONCURRENCY_LIMITED');
    await a();
    await b();
    const c = await limiter.acquire(key());
    const d = await limiter.acquire(key());
    expect((await refusal(limiter.acquire(key()))).code).toBe('TOOL_CONCURRENCY_LIMITED');
    await c();
    await d();
  });

  it('refuses a caller\'s 101st call of a tool in a minute', async () => {
    make();
    await calls(limiter, 100);
    const err = await refusal(limiter.acquire(key()));
    expect(err.code).toBe('TOOL_RATE_LIMITED');
    expect(err.message).toContain('tool srv.echo for caller alice');
    expect(err.message).toContain('100 calls per minute');
    expect(err.extras).toEqual({ retryAfterSeconds: expect.any(Number), limit: 100, scope: 'tool' });
    expect(err.extras.retryAfterSeconds as number).toBeGreaterThanOrEqual(1);
    expect(err.extras.retryAfterSeconds as number).toBeLessThanOrEqual(60);
    // Per tool and caller: another tool, and another caller, still have their own budget.
    await calls(limiter, 1, key({ tool: 'srv.other' }));
    await calls(limiter, 1, key({ user: 'bob' }));
  });

  it('holds a server to its capacity, whoever calls and whichever of its tools', async () => {
    make();
    const capacity = { concurrency: 3 };
    const held = [
      await limiter.acquire(key({ user: 'u1', capacity })),
      await limiter.acquire(key({ user: 'u2', capacity })),
      await limiter.acquire(key({ user: 'u3', tool: 'srv.other', capacity })),
    ];
    const err = await refusal(limiter.acquire(key({ user: 'u4', capacity })));
    expect(err.code).toBe('TOOL_CONCURRENCY_LIMITED');
    expect(err.message).toBe('server srv already has 3 calls in flight (its concurrency limit); retry when one finishes');
    expect(err.extras).toEqual({ retryAfterSeconds: 1, limit: 3, scope: 'server' });
    // The refusal by the server gave back the caller's slot it had taken: u4 still has all 10.
    const u4 = [];
    await held.pop()!();
    u4.push(await limiter.acquire(key({ user: 'u4', capacity })));
    // Another server is not affected.
    await (await limiter.acquire(key({ server: 'other', tool: 'other.x', user: 'u5', capacity })))();
    await Promise.all([...held, ...u4].map((r) => r()));
    // Every slot was given back: three calls fit again.
    const again = [await limiter.acquire(key({ capacity })), await limiter.acquire(key({ capacity })), await limiter.acquire(key({ capacity }))];
    await Promise.all(again.map((r) => r()));
  });

  it('holds a server to its calls per minute across callers', async () => {
    make();
    const capacity = { perMinute: 4 };
    for (const user of ['a', 'b', 'c', 'd']) await calls(limiter, 1, key({ user, capacity }));
    const err = await refusal(limiter.acquire(key({ user: 'e', capacity })));
    expect(err.code).toBe('TOOL_RATE_LIMITED');
    expect(err.message).toContain('server srv exceeded its limit of 4 calls per minute');
    expect(err.extras).toEqual({ retryAfterSeconds: expect.any(Number), limit: 4, scope: 'server' });
  });

  it('limits calls per user across tools', async () => {
    make({ userPerMinute: 3 });
    await calls(limiter, 1, key({ tool: 'a' }));
    await calls(limiter, 1, key({ tool: 'b' }));
    await calls(limiter, 1, key({ tool: 'c' }));
    const err = await refusal(limiter.acquire(key({ tool: 'd' })));
    expect(err.code).toBe('RATE_LIMITED');
    expect(err.message).toContain('user alice');
    expect(err.extras).toEqual({ retryAfterSeconds: expect.any(Number), limit: 3, scope: 'user' });
    await calls(limiter, 1, key({ tool: 'd', user: 'bob' }));
  });

  it('limits calls per workspace across users and tools', async () => {
    make({ workspacePerMinute: 2 });
    await calls(limiter, 1, key({ user: 'u1', tool: 'a' }));
    await calls(limiter, 1, key({ user: 'u2', tool: 'b' }));
    const err = await refusal(limiter.acquire(key({ user: 'u3', tool: 'c' })));
    expect(err.code).toBe('RATE_LIMITED');
    expect(err.message).toContain('workspace ziggie');
    expect(err.extras).toEqual({ retryAfterSeconds: expect.any(Number), limit: 2, scope: 'workspace' });
    await calls(limiter, 1, key({ user: 'u3', tool: 'c', workspace: 'other' }));
  });

  it('a call refused by one per-minute limit does not use up the others', async () => {
    make({ defaults: { concurrency: 10, perMinute: 5 }, userPerMinute: 2 });
    const capacity = { perMinute: 5 };
    await calls(limiter, 2, key({ user: 'alice', capacity }));
    for (let i = 0; i < 10; i++) expect((await refusal(limiter.acquire(key({ user: 'alice', capacity })))).code).toBe('RATE_LIMITED');
    // The server's 5 per minute: 2 used by alice, the 10 refusals took none.
    await calls(limiter, 2, key({ user: 'bob', capacity }));
    await calls(limiter, 1, key({ user: 'carol', capacity }));
    const err = await refusal(limiter.acquire(key({ user: 'dave', capacity })));
    expect(err.code).toBe('TOOL_RATE_LIMITED');
    expect(err.extras.scope).toBe('server');
  });

  it('applies a server override of the tool limits', async () => {
    make();
    const limits = { concurrency: 2, perMinute: 3 };
    const a = await limiter.acquire(key({ limits }));
    const b = await limiter.acquire(key({ limits }));
    const conc = await refusal(limiter.acquire(key({ limits })));
    expect(conc.code).toBe('TOOL_CONCURRENCY_LIMITED');
    expect(conc.extras.limit).toBe(2);
    await a();
    await b();
    // 3 per minute: two calls done, the refused one counted (refused for concurrency), so none left.
    const rate = await refusal(limiter.acquire(key({ limits })));
    expect(rate.code).toBe('TOOL_RATE_LIMITED');
    expect(rate.extras.limit).toBe(3);

    // Only the concurrency overridden: the per-minute default applies.
    await calls(limiter, 20, key({ tool: 'srv.big', limits: { concurrency: 1 } }));
    const held = await limiter.acquire(key({ tool: 'srv.big', limits: { concurrency: 1 } }));
    expect((await refusal(limiter.acquire(key({ tool: 'srv.big', limits: { concurrency: 1 } })))).extras.limit).toBe(1);
    await held();
  });

  it('a double release frees one slot only', async () => {
    make({ defaults: { concurrency: 2, perMinute: 100 } });
    const a = await limiter.acquire(key());
    const b = await limiter.acquire(key());
    await a();
    await a();
    await Promise.all([a(), a()]);
    const c = await limiter.acquire(key());
    expect((await refusal(limiter.acquire(key()))).code).toBe('TOOL_CONCURRENCY_LIMITED');
    await b();
    await c();
  });

  it('reports healthy in process', async () => {
    make();
    await expect(limiter.health()).resolves.toEqual({ ok: true });
  });

  it('rejects invalid defaults', () => {
    expect(() => CallLimiter.create({ defaults: { concurrency: 0, perMinute: 1 }, userPerMinute: 0, workspacePerMinute: 0 })).toThrow(
      /defaults.concurrency/,
    );
    limiter = CallLimiter.create({ defaults: { concurrency: 1, perMinute: 1 }, userPerMinute: 0, workspacePerMinute: 0 });
  });
});
