/**
 * Runs each key's work at most once per `ms`, at the end of the window (the last call's work wins).
 * Bursts of events (a wave of 16 steps is 64 events) become one refetch per window, not 64.
 */
export function keyedThrottle(ms: number, timers: { set: (fn: () => void, ms: number) => unknown; clear: (t: unknown) => void } = defaultTimers) {
  const pending = new Map<string, { timer: unknown; work: () => void }>();
  return {
    schedule(key: string, work: () => void): void {
      const entry = pending.get(key);
      if (entry) {
        entry.work = work;
        return;
      }
      const created = {
        work,
        timer: timers.set(() => {
          pending.delete(key);
          created.work();
        }, ms),
      };
      pending.set(key, created);
    },
    cancelAll(): void {
      for (const { timer } of pending.values()) timers.clear(timer);
      pending.clear();
    },
  };
}

const defaultTimers = {
  set: (fn: () => void, ms: number): unknown => setTimeout(fn, ms),
  clear: (t: unknown): void => clearTimeout(t as ReturnType<typeof setTimeout>),
};
