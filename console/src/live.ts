import { createParser } from 'eventsource-parser';
import type { LiveEventMap } from '@ziggie/contracts';
import { authHeaders, problemOf } from './api';

export interface StreamEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * Reads a server-sent event stream with fetch, because EventSource cannot send the Authorization
 * header and the token must not travel in a URL (a body makes it a POST). Resolves when the server ends the stream; throws
 * the API's problem when it refuses it.
 */
export async function readEventStream(path: string, onEvent: (e: StreamEvent) => void, signal: AbortSignal, body?: unknown): Promise<void> {
  const res = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { accept: 'text/event-stream', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...authHeaders() },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: 'no-store',
  });
  if (!res.ok || !res.body) throw await problemOf(res);
  const parser = createParser({ onEvent: (e) => onEvent({ event: e.event ?? 'message', data: e.data, id: e.id }) });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    parser.feed(value);
  }
}

export type LiveEvent = { [K in keyof LiveEventMap]: { type: K; data: LiveEventMap[K] } }[keyof LiveEventMap];

export function parseLiveEvent(e: StreamEvent): LiveEvent | null {
  if (e.event !== 'ready' && e.event !== 'task' && e.event !== 'workspace') return null;
  try {
    return { type: e.event, data: JSON.parse(e.data) } as LiveEvent;
  } catch {
    return null;
  }
}

/** Waits before the next attempt to reconnect: 1 s doubling up to 30 s. */
export function backoffMs(attempt: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.min(attempt, 5));
}
