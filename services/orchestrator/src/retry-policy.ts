import { isCapacityRefusal } from '@ziggie/contracts';

/** How an attempt ended, as its result reported it (a failed quality gate is a failure without a code). */
export interface AttemptEnd {
  status: 'succeeded' | 'failed';
  code?: string;
  message?: string;
  retryAfterSeconds?: number;
}

/** What a step has used so far. */
export interface RetryState {
  /** Attempts dispatched, this one included. */
  attempt: number;
  /** Retries the plan allows after the first attempt. */
  retries: number;
  /** Attempts that were refused for capacity: they do not count against `retries`. */
  capacityWaits: number;
  /** Backoff before the first retry; it doubles for each further one. 0 retries at once. */
  retryBackoffMs: number;
}

export type NextMove =
  /** Succeeded, or failed with no retry left (or cancelled). */
  | { kind: 'done' }
  /** Failed, with a retry left: pending again, no earlier than `at` (null: at once). */
  | { kind: 'retry'; at: Date | null; reason: string | null }
  /** Refused for capacity: pending again no earlier than `at`, without using a retry. */
  | { kind: 'wait'; at: Date; reason: string };

/** A capacity refusal without a retryAfterSeconds (or with 0) still waits this long. */
export const MIN_CAPACITY_WAIT_MS = 250;
/** Steps refused together come back spread over this share of their wait, not all at once. */
const CAPACITY_JITTER = 0.2;

/** Real failures so far: attempts minus capacity refusals. */
export function failuresOf(state: RetryState): number {
  return state.attempt - state.capacityWaits;
}

/**
 * What happens to a step after an attempt ends. Capacity is a reason to wait, not to fail: a
 * refusal for capacity (TOOL_RATE_LIMITED, TOOL_CONCURRENCY_LIMITED, RATE_LIMITED) waits for the
 * time the refusal gave, plus up to 20 %, and keeps every retry. A real failure is retried while
 * retries are left, after an exponential backoff with "equal jitter" (half the backoff fixed, half
 * random), so steps that failed together do not retry together.
 */
export function nextMove(state: RetryState, end: AttemptEnd, now: Date, random: () => number = Math.random): NextMove {
  if (end.status === 'succeeded' || end.code === 'TASK_CANCELLED') return { kind: 'done' };
  if (end.code !== undefined && isCapacityRefusal(end.code)) {
    const base = Math.max((end.retryAfterSeconds ?? 0) * 1000, MIN_CAPACITY_WAIT_MS);
    const at = new Date(now.getTime() + Math.round(base * (1 + CAPACITY_JITTER * random())));
    return { kind: 'wait', at, reason: `waiting for capacity (${end.code}${end.message ? `: ${end.message}` : ''}); next attempt after ${at.toISOString()}` };
  }
  const failures = failuresOf(state);
  if (failures > state.retries) return { kind: 'done' };
  if (state.retryBackoffMs <= 0) return { kind: 'retry', at: null, reason: null };
  const backoff = state.retryBackoffMs * 2 ** (failures - 1);
  const at = new Date(now.getTime() + Math.round(backoff / 2 + (backoff / 2) * random()));
  return { kind: 'retry', at, reason: `retry ${failures + 1} of ${state.retries + 1} after ${at.toISOString()}` };
}
