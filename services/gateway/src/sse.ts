import type { Response } from 'express';

const KEEPALIVE_MS = 15_000;

export interface EventStream {
  send(event: string, data: unknown, id?: number): void;
  /** Stops the keep-alive and ends the response. Idempotent. */
  close(): void;
}

/**
 * Starts a server-sent event stream: headers that keep proxies from buffering it, and a comment
 * every 15 s so idle connections are not cut.
 */
export function openEventStream(res: Response): EventStream {
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream');
  res.setHeader('Cache-Control', 'no-cache, no-transform');
  res.setHeader('Connection', 'keep-alive');
  res.setHeader('X-Accel-Buffering', 'no');
  res.flushHeaders();
  const keepalive = setInterval(() => res.write(': keep-alive\n\n'), KEEPALIVE_MS);
  let closed = false;
  return {
    send(event, data, id) {
      res.write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    close() {
      if (closed) return;
      closed = true;
      clearInterval(keepalive);
      res.end();
    },
  };
}
