import { MIN_CAPACITY_WAIT_MS, nextMove, RetryState } from './retry-policy';

const now = new Date('2026-12-06T12:00:00.000Z');
const state = (s: Partial<RetryState> = {}): RetryState => ({ attempt: 1, retries: 2, capacityWaits: 0, retryBackoffMs: 0, ...s });
const after = (move: ReturnType<typeof nextMove>) => ('at' in move && move.at ? move.at.getTime() - now.getTime() : undefined);

describe('nextMove', () => {
  it('ends a step that succeeded, or that was cancelled, whatever retries are left', () => {
    expect(nextMove(state(), { status: 'succeeded' }, now)).toEqual({ kind: 'done' });
    expect(nextMove(state(), { status: 'failed', code: 'TASK_CANCELLED', message: 'by request' }, now)).toEqual({ kind: 'done' });
  });

  it('retries a real failure while retries are left, then ends it', () => {
    expect(nextMove(state({ attempt: 1 }), { status: 'failed', code: 'TOOL_CALL_FAILED' }, now)).toEqual({ kind: 'retry', at: null, reason: null });
    // 2 retries: attempts 1 and 2 may fail and be retried; the third failure is the last.
    expect(nextMove(state({ attempt: 2 }), { status: 'failed', code: 'TOOL_CALL_FAILED' }, now)).toEqual({ kind: 'retry', at: null, reason: null });
    expect(nextMove(state({ attempt: 3 }), { status: 'failed', code: 'TOOL_CALL_FAILED' }, now)).toEqual({ kind: 'done' });
    expect(nextMove(state({ attempt: 1, retries: 0 }), { status: 'failed' }, now)).toEqual({ kind: 'done' });
  });

  it.each(['TOOL_RATE_LIMITED', 'TOOL_CONCURRENCY_LIMITED', 'RATE_LIMITED'])('waits after %s without using a retry, even with none left', (code) => {
    const move = nextMove(state({ attempt: 7, retries: 0, capacityWaits: 6 }), { status: 'failed', code, message: 'full', retryAfterSeconds: 3 }, now, () => 0);
    expect(move.kind).toBe('wait');
    expect(after(move)).toBe(3000);
    expect(move.kind === 'wait' && move.reason).toBe(`waiting for capacity (${code}: full); next attempt after ${new Date(now.getTime() + 3000).toISOString()}`);
  });

  it('waits no earlier than retryAfterSeconds, at most 20 % later, and at least a floor without one', () => {
    const refusal = { status: 'failed' as const, code: 'TOOL_CONCURRENCY_LIMITED', retryAfterSeconds: 10 };
    expect(after(nextMove(state(), refusal, now, () => 0))).toBe(10_000);
    expect(after(nextMove(state(), refusal, now, () => 0.999999))).toBe(12_000);
    expect(after(nextMove(state(), { ...refusal, retryAfterSeconds: undefined }, now, () => 0))).toBe(MIN_CAPACITY_WAIT_MS);
    expect(after(nextMove(state(), { ...refusal, retryAfterSeconds: 0 }, now, () => 0))).toBe(MIN_CAPACITY_WAIT_MS);
  });

  it('counts only real failures against retries: capacity waits in between do not', () => {
    // 5 attempts: 3 refused for capacity, 2 real failures; 2 retries allowed → one retry left.
    const move = nextMove(state({ attempt: 5, capacityWaits: 3, retries: 2, retryBackoffMs: 1000 }), { status: 'failed', code: 'TOOL_CALL_FAILED' }, now, () => 0);
    expect(move).toEqual({ kind: 'retry', at: new Date(now.getTime() + 1000), reason: `retry 3 of 3 after ${new Date(now.getTime() + 1000).toISOString()}` });
    expect(nextMove(state({ attempt: 6, capacityWaits: 3, retries: 2 }), { status: 'failed', code: 'TOOL_CALL_FAILED' }, now)).toEqual({ kind: 'done' });
  });

  it('backs off exponentially with equal jitter: between half and all of the backoff', () => {
    const failed = { status: 'failed' as const, code: 'TOOL_CALL_FAILED' };
    const s = (attempt: number) => state({ attempt, retries: 5, retryBackoffMs: 400 });
    expect([1, 2, 3].map((a) => after(nextMove(s(a), failed, now, () => 0)))).toEqual([200, 400, 800]);
    expect([1, 2, 3].map((a) => after(nextMove(s(a), failed, now, () => 0.999999)))).toEqual([400, 800, 1600]);
    const spread = new Set(Array.from({ length: 50 }, () => after(nextMove(s(2), failed, now))));
    expect(spread.size).toBeGreaterThan(10);
    for (const ms of spread) expect(ms).toBeGreaterThanOrEqual(400);
  });
});
