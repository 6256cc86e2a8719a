import { createServer, type IncomingMessage, type Server } from 'node:http';

export interface CountingServer {
  url: string;
  /** Every request it received, as `METHOD /path`. */
  hits: string[];
  close(): Promise<void>;
}

/**
 * A loopback HTTP server that answers from a fixed table and records every request, to prove
 * the product fetched (or never fetched) a URL it was handed.
 */
export function startCountingServer(routes: Record<string, { type: string; body: string }> = {}): Promise<CountingServer> {
  const hits: string[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    hits.push(`${req.method} ${req.url}`);
    const route = routes[(req.url ?? '/').split('?')[0] ?? '/'];
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not here');
      return;
    }
    res.writeHead(200, { 'content-type': route.type }).end(route.body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('no server address'));
        return;
      }
      resolve({
        url: `http://127.0.0.1:${address.port}`,
        hits,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
