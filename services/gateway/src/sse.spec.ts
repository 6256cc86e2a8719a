import Fastify from 'fastify';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { EventStream, openEventStream } from './sse';

/** An HTTP server (Fastify, as the gateway's) whose one route opens an event stream and hands it to the test. */
async function serve(maxBufferedBytes: number): Promise<{ server: { close(): void }; port: number; streams: Array<{ stream: EventStream; overflowed: number[] }> }> {
  const streams: Array<{ stream: EventStream; overflowed: number[] }> = [];
  const app = Fastify();
  app.get('/events', (_req, reply) => {
    const overflowed: number[] = [];
    streams.push({ stream: openEventStream(reply, { maxBufferedBytes, onOverflow: (b) => overflowed.push(b) }), overflowed });
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { server: { close: () => void app.close() }, port: (app.server.address() as AddressInfo).port, streams };
}

/** A client that sends the request and then reads nothing until told to. */
function stalledClient(port: number): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
      socket.pause();
      resolve(socket);
    });
  });
}

const until = async (check: () => boolean) => {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
};

describe('server-sent event streams and clients that stop reading', () => {
  const EVENT = { blob: 'x'.repeat(64 * 1024) };

  it('cuts off a client that reads nothing once the limit waits for it, instead of buffering without end', async () => {
    const { server, port, streams } = await serve(1024 * 1024);
    const client = await stalledClient(port);
    try {
      await until(() => streams.length === 1);
      const { stream, overflowed } = streams[0]!;
      let sent = 0;
      // Far more than the socket buffers and the limit together; a stream without a limit keeps it all.
      while (!stream.closed && sent < 4000) {
        stream.send('tick', EVENT, sent++);
        if (sent % 16 === 0) await new Promise((r) => setImmediate(r));
      }
      expect(stream.closed).toBe(true);
      expect(overflowed).toHaveLength(1);
      expect(overflowed[0]).toBeGreaterThan(1024 * 1024);
      expect(sent).toBeLessThan(4000);
      // Closed: further events are dropped, not queued.
      expect(stream.send('tick', EVENT)).toBe(false);
    } finally {
      client.destroy();
      server.close();
    }
  });

  it('lets a stream that can wait send everything to a slow reader without nearing the limit', async () => {
    const { server, port, streams } = await serve(1024 * 1024);
    const client = await stalledClient(port);
    let received = 0;
    try {
      await until(() => streams.length === 1);
      const { stream, overflowed } = streams[0]!;
      // The client reads again a little later, slowly.
      setTimeout(() => {
        client.on('data', (chunk: Buffer) => {
          received += chunk.length;
          client.pause();
          setTimeout(() => client.resume(), 1);
        });
        client.resume();
      }, 100);
      for (let i = 0; i < 64; i++) if (!stream.send('tick', EVENT, i)) await stream.drained();
      stream.close();
      await until(() => received >= 64 * EVENT.blob.length);
      expect(overflowed).toEqual([]);
      expect(received).toBeGreaterThanOrEqual(64 * EVENT.blob.length);
    } finally {
      client.destroy();
      server.close();
    }
  });
});
