import { once } from 'node:events';
import type { FastifyReply } from 'fastify';

const KEEPALIVE_MS = 15_000;
/** Unsent bytes a stream may hold for a client that does not read before it is cut off. */
export const SSE_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

export interface EventStream {
  /** Queues an event; false once the client is behind (more than the socket's high-water mark unsent). */
  send(event: string, data: unknown, id?: number): boolean;
  /** Resolves when the client has taken what was queued, or the stream is closed. */
  drained(): Promise<void>;
  /** Stops the keep-alive and ends the response. Idempotent. */
  close(): void;
  readonly closed: boolean;
  /** Resolves when the client has gone (or the stream was closed). */
  readonly gone: Promise<void>;
}

export interface EventStreamOptions {
  maxBufferedBytes?: number;
  /** Called once when a client that does not read is cut off. */
  onOverflow?: (bufferedBytes: number) => void;
}

/**
 * Starts a server-sent event stream: headers that keep proxies from buffering it, and a comment
 * every 15 s so idle connections are not cut. A client that stops reading is cut off once
 * `maxBufferedBytes` wait for it, so it cannot hold the gateway's memory; a stream that can
 * wait for its client instead (a task's events, read from JetStream) awaits `drained()` when
 * `send` returns false and never comes near the limit.
 */
export function openEventStream(reply: FastifyReply, options: EventStreamOptions = {}): EventStream {
  const maxBuffered = options.maxBufferedBytes ?? SSE_MAX_BUFFERED_BYTES;
  // The stream is written to the socket directly: headers already given to the reply (request
  // id, rate limits, CORS) go out with it.
  reply.hijack();
  const res = reply.raw;
  const gone = new Promise<void>((resolve) => {
    if (res.destroyed || res.socket?.destroyed !== false) resolve();
    res.once('close', () => resolve());
  });
  for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) res.setHeader(name, value);
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  let closed = false;
  const stop = () => {
    closed = true;
    clearInterval(keepalive);
  };
  const write = (chunk: string): boolean => {
    if (closed) return false;
    const below = res.write(chunk);
    if (res.writableLength > maxBuffered) {
      const buffered = res.writableLength;
      stop();
      res.destroy();
      options.onOverflow?.(buffered);
      return false;
    }
    return below;
  };
  const keepalive = setInterval(() => write(': keep-alive\n\n'), KEEPALIVE_MS);
  res.once('close', stop);
  return {
    send(event, data, id) {
      return write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    async drained() {
      if (closed || res.writableLength === 0) return;
      await Promise.race([once(res, 'drain'), once(res, 'close')]);
    },
    close() {
      if (closed) return;
      stop();
      res.end();
    },
    get closed() {
      return closed;
    },
    gone,
  };
}
