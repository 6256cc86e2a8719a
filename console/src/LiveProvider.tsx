import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { backoffMs, parseLiveEvent, readEventStream, type LiveEvent } from './live';
import { keyedThrottle } from './throttle';

export type LiveState = 'connecting' | 'live' | 'offline';

const LiveContext = createContext<{ state: LiveState; error: unknown }>({ state: 'connecting', error: null });

export function useLive() {
  return useContext(LiveContext);
}

/** At most one refetch per key in this window, however many events arrive. */
const REFRESH_MS = 2_000;

/**
 * Follows GET /v1/events for the whole page and refetches only the queries an event makes stale,
 * so screens are live without polling; reconnects with backoff and then reloads what it shows.
 */
export function LiveProvider({ children }: { children: ReactNode }) {
  const client = useQueryClient();
  const [state, setState] = useState<LiveState>('connecting');
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const abort = new AbortController();
    const throttle = keyedThrottle(REFRESH_MS);
    let connected = false;
    const refresh = (key: string, queryKey: readonly unknown[]) => throttle.schedule(key, () => void client.invalidateQueries({ queryKey }));
    const onEvent = (e: LiveEvent) => {
      if (e.type === 'ready') {
        setState('live');
        setError(null);
        // After a gap, what was loaded may have missed events: reload it. The first connection
        // opens with the page, as its first data loads.
        if (connected) void client.invalidateQueries({ predicate: (q) => q.state.status === 'success' });
        connected = true;
      } else if (e.type === 'workspace') {
        refresh('workspaces', ['workspaces']);
        refresh('overview', ['tasks', 'overview']);
      } else {
        refresh(`task:${e.data.taskId}`, ['task', e.data.taskId]);
        // Lists and counts change only when a task starts or ends.
        if (e.data.type.startsWith('task.')) {
          refresh('tasks', ['tasks']);
          refresh('workspaces', ['workspaces']);
        }
      }
    };
    void (async () => {
      for (let attempt = 0; !abort.signal.aborted; attempt++) {
        try {
          await readEventStream('/v1/events', (raw) => {
            const e = parseLiveEvent(raw);
            if (e) {
              attempt = 0;
              onEvent(e);
            }
          }, abort.signal);
        } catch (err) {
          if (abort.signal.aborted) return;
          setError(err);
        }
        setState('offline');
        await new Promise((r) => setTimeout(r, backoffMs(attempt)));
        setState('connecting');
      }
    })();
    return () => {
      abort.abort();
      throttle.cancelAll();
    };
  }, [client]);

  return <LiveContext.Provider value={{ state, error }}>{children}</LiveContext.Provider>;
}
