// The upstream streamable HTTP client against a real MCP server (the SDK's Server and transport
// on 127.0.0.1): calls reuse one kept-alive connection, progress arrives while a call runs, JSON
// answers are size-bounded, and the SSE parser handles events split anywhere across chunks.
import { randomUUID } from 'node:crypto';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { ZiggieError } from '@ziggie/contracts';
import { KeepAliveStreamableHTTPClientTransport, SseParser, type SseEvent } from '../src/providers/streamable-http';
import { toZiggieError } from '../src/providers/mcp-upstream';

interface Upstream {
  url: URL;
  /** TCP connections accepted, and POST requests served, so far. */
  connections: () => number;
  posts: () => number;
  sessionIds: Set<string>;
  close(): Promise<void>;
}

async function startUpstream(json: boolean): Promise<Upstream> {
  const transports = new Map<string, WebStandardStreamableHTTPServerTransport>();
  const sessionIds = new Set<string>();
  let posts = 0;
  let connections = 0;
  const newServer = () => {
    const server = new Server({ name: 'upstream', version: '1.0.0' }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [{ name: 'echo', inputSchema: { type: 'object' } }] }));
    server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
      const args = (req.params.arguments ?? {}) as { message?: string; steps?: number; bytes?: number };
      const token = req.params._meta?.progressToken;
      for (let i = 1; i <= (args.steps ?? 0); i++) {
        if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: args.steps } });
      }
      const text = args.bytes ? 'x'.repeat(args.bytes) : `echo: ${args.message}`;
      return { content: [{ type: 'text', text }] };
    });
    return server;
  };
  const listener = getRequestListener(async (request) => {
    if (request.method === 'POST') posts++;
    const sid = request.headers.get('mcp-session-id');
    if (sid) sessionIds.add(sid);
    let transport = sid ? transports.get(sid) : undefined;
    if (!transport) {
      if (sid) return new Response('{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}', { status: 404 });
      const t = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), enableJsonResponse: json, onsessioninitialized: (id) => void transports.set(id, t) });
      await newServer().connect(t);
      transport = t;
    }
    return transport.handleRequest(request);
  });
  const http: HttpServer = createServer((req, res) => void listener(req, res));
  http.on('connection', () => connections++);
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: new URL(`http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`),
    connections: () => connections,
    posts: () => posts,
    sessionIds,
    close: async () => {
      await Promise.allSettled([...transports.values()].map((t) => t.close()));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function connect(json: boolean, maxResponseBytes = 1024 * 1024): Promise<{ upstream: Upstream; client: Client }> {
  const upstream = await startUpstream(json);
  cleanups.push(() => upstream.close());
  const client = new Client({ name: 'test', version: '1' }, { capabilities: {} });
  await client.connect(new KeepAliveStreamableHTTPClientTransport(upstream.url, { 'x-upstream-key': 'k' }, maxResponseBytes, { requestInit: { headers: { 'x-upstream-key': 'k' } } }));
  cleanups.push(() => client.close());
  return { upstream, client };
}

describe('KeepAliveStreamableHTTPClientTransport', () => {
  it.each([
    ['event-stream', false],
    ['JSON', true],
  ])('calls over %s answers on kept-alive connections, in one session', async (_kind, json) => {
    const { upstream, client } = await connect(json);
    const before = upstream.connections();
    const answers = [];
    for (let i = 0; i < 20; i++) answers.push(await client.callTool({ name: 'echo', arguments: { message: `m${i}` } }));
    expect(answers.map((a) => (a.content as { text: string }[])[0]!.text)).toEqual(Array.from({ length: 20 }, (_, i) => `echo: m${i}`));
    expect(upstream.posts()).toBeGreaterThanOrEqual(22);
    // Twenty calls one after another: no new connection per call (at most one more, for a socket the server closed).
    expect(upstream.connections() - before).toBeLessThanOrEqual(1);
    expect(upstream.sessionIds.size).toBe(1);
  });

  it('relays progress notifications before the result', async () => {
    const { client } = await connect(false);
    const seen: number[] = [];
    const result = await client.callTool({ name: 'echo', arguments: { message: 'p', steps: 3 } }, undefined, { onprogress: (p) => seen.push(p.progress) });
    expect(seen).toEqual([1, 2, 3]);
    expect((result.content as { text: string }[])[0]!.text).toBe('echo: p');
  });

  it('refuses a JSON answer larger than maxResponseBytes with UPSTREAM_RESPONSE_TOO_LARGE', async () => {
    const { client } = await connect(true, 4096);
    const err = await client.callTool({ name: 'echo', arguments: { bytes: 10_000 } }).catch((e: unknown) => e);
    expect(toZiggieError('upstream', 'echo', err)).toMatchObject({ code: 'UPSTREAM_RESPONSE_TOO_LARGE' });
    expect(err).toBeInstanceOf(ZiggieError);
    // The connection stays usable.
    expect((await client.callTool({ name: 'echo', arguments: { message: 'after' } })).content).toEqual([{ type: 'text', text: 'echo: after' }]);
  });

  it('fails a call whose event is past the stream bound now, not at its timeout', async () => {
    const { client } = await connect(false, 1024);
    const err = await client.callTool({ name: 'echo', arguments: { bytes: 2 * 1024 * 1024 } }, undefined, { timeout: 60_000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ data: { code: 'UPSTREAM_RESPONSE_TOO_LARGE' } });
  });
});

describe('SseParser', () => {
  const parse = (chunks: string[]): SseEvent[] => {
    const events: SseEvent[] = [];
    const p = new SseParser((e) => events.push(e), 1024);
    for (const c of chunks) p.push(c);
    return events;
  };

  it('reads events split anywhere, CRLF included, with comments, ids and multi-line data', () => {
    const text = ': comment\r\nid: 7\r\nevent: message\r\ndata: {"a":\r\ndata: 1}\r\n\r\nid: 8\r\ndata:\r\n\r\ndata: x\n\n';
    const whole = parse([text]);
    expect(whole).toEqual([
      { event: 'message', data: '{"a":\n1}', id: '7' },
      { event: '', data: '', id: '8' },
      { event: '', data: 'x' },
    ]);
    for (let cut = 1; cut < text.length; cut++) expect(parse([text.slice(0, cut), text.slice(cut)])).toEqual(whole);
  });

  it('refuses an event that grows past its bound', () => {
    expect(() => parse([`data: ${'x'.repeat(2000)}`])).toThrow(ZiggieError);
  });
});
