import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { discoverOAuthProtectedResourceMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema, McpError, ResourceUpdatedNotificationSchema, type LoggingMessageNotification } from '@modelcontextprotocol/sdk/types.js';
import { bootstrapService, RunningService, signDevToken } from '@ziggie/platform';
import { definition } from '../src/service';
import { startNats, waitFor, type NatsServerHandle } from '../../../test/support';

/**
 * /mcp against the streamable HTTP transport and JSON-RPC rules of the protocol versions it
 * negotiates (2025-06-18, 2025-11-25), the MCP authorization spec's resource-server side
 * (RFC 9728), and the server features it relays from a real upstream (server-everything over stdio).
 */

const everything = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist/index.js');
const SECRET = 'conformance-secret-0123456789';
const AUTH = { secret: SECRET, issuer: 'ziggie-local', audience: 'ziggie-api' };
const AS = 'https://auth.example.test/realms/ziggie';
const RETRY_MS = 750;
const token = (subject: string, roles = ['l2l3'], workspaces = ['ziggie']): string => signDevToken({ subject, roles, workspaces, ttlSeconds: 600 }, AUTH);

const ACCEPT = 'application/json, text/event-stream';
const initialize = (version: string, id = 1) => ({ jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'conformance', version: '1' } } });

interface SseEvent {
  id?: string;
  retry?: number;
  event?: string;
  data: string;
}

function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const block of text.split(/\n\n/)) {
    if (!block.trim()) continue;
    const e: SseEvent = { data: '' };
    let sawField = false;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      sawField = true;
      if (field === 'id') e.id = value;
      else if (field === 'retry') e.retry = Number(value);
      else if (field === 'event') e.event = value;
      else if (field === 'data') data.push(value);
    }
    e.data = data.join('\n');
    if (sawField) events.push(e);
  }
  return events;
}

/** Reads an SSE response until `done` says so (or the time is up), then lets go of it. */
async function readSse(res: Response, done: (events: SseEvent[]) => boolean, timeoutMs = 10_000): Promise<SseEvent[]> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      const chunk = await Promise.race([reader.read(), new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), Math.max(1, deadline - Date.now())))]);
      if (chunk === 'timeout') break;
      if (chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
      if (done(parseSse(text))) break;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return parseSse(text);
}

const messages = (events: SseEvent[]): Record<string, unknown>[] => events.filter((e) => e.data).map((e) => JSON.parse(e.data) as Record<string, unknown>);

/** The JSON-RPC messages of a POST's answer, whichever form the server chose (one JSON body, or an SSE stream). */
async function answers(res: Response): Promise<Record<string, unknown>[]> {
  const text = await res.text();
  if (res.headers.get('content-type')?.startsWith('application/json')) {
    const body = JSON.parse(text) as Record<string, unknown> | Record<string, unknown>[];
    return Array.isArray(body) ? body : [body];
  }
  return messages(parseSse(text));
}

describe('/mcp conformance: streamable HTTP, JSON-RPC, authorization discovery, relayed server features', () => {
  let dir: string;
  let nats: NatsServerHandle;
  let gw: RunningService;
  let base: string;
  const bearer = token('conformance');

  const post = (body: unknown, headers: Record<string, string> = {}, raw = false): Promise<Response> =>
    fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json', accept: ACCEPT, ...headers },
      body: raw ? (body as string) : JSON.stringify(body),
    });

  /** A raw session at a protocol version: initialize, then notifications/initialized. */
  const open = async (version: string, headers: Record<string, string> = {}): Promise<{ sid: string; headers: Record<string, string> }> => {
    const res = await post(initialize(version), headers);
    expect(res.status).toBe(200);
    const sid = res.headers.get('mcp-session-id')!;
    const result = messages(parseSse(await res.text())).find((m) => m.id === 1) as { result: { protocolVersion: string } };
    expect(result.result.protocolVersion).toBe(version);
    const h = { ...headers, 'mcp-session-id': sid, 'mcp-protocol-version': version };
    expect((await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, h)).status).toBe(202);
    return { sid, headers: h };
  };

  const rpcError = async (res: Response): Promise<{ code: number; message: string; data?: { code?: string } }> => {
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await res.json()) as { jsonrpc: string; id: unknown; error: { code: number; message: string; data?: { code?: string } } };
    expect(body.jsonrpc).toBe('2.0');
    expect(body.id).toBeNull();
    expect(body.error.message).not.toMatch(/^MCP error/);
    return body.error;
  };

  const sdkClient = async (bearerToken = bearer): Promise<Client> => {
    const client = new Client({ name: 'conformance-sdk', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${bearerToken}` } } }));
    return client;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ziggie-mcp-conf-'));
    nats = await startNats();
    const serversFile = join(dir, 'servers.json');
    writeFileSync(serversFile, JSON.stringify({ servers: [{ name: 'everything', transport: 'stdio', command: process.execPath, args: [everything, 'stdio'] }] }));
    gw = await bootstrapService(definition, {
      ZIGGIE_JWT_SECRET: SECRET,
      JWT_ISSUER: AUTH.issuer,
      JWT_AUDIENCE: AUTH.audience,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      LOG_LEVEL: 'warn',
      NATS_URL: nats.url,
      DATA_DIR: mkdtempSync(join(dir, 'data-')),
      MCP_SERVERS_FILE: serversFile,
      MCP_AUTHORIZATION_SERVERS: AS,
      MCP_OAUTH_SCOPES: 'mcp:call',
      MCP_SSE_RETRY_MS: String(RETRY_MS),
    });
    base = `http://127.0.0.1:${gw.httpPort}`;
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, { timeoutMs: 30_000, what: 'the upstream ready' });
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  describe('JSON-RPC', () => {
    it('answers malformed JSON with a -32700 parse error, with or without a session', async () => {
      const res = await post('{"jsonrpc": "2.0", "id": 1, "method": ', {}, true);
      expect(res.status).toBe(400);
      expect(await rpcError(res)).toMatchObject({ code: -32700 });
      const { headers } = await open('2025-11-25');
      const again = await post('not json at all', headers, true);
      expect(again.status).toBe(400);
      expect((await rpcError(again)).code).toBe(-32700);
    });

    it('answers a body that is not a JSON-RPC message with -32600 invalid request', async () => {
      for (const body of [{ hello: 'world' }, { jsonrpc: '1.0', id: 1, method: 'ping' }, { jsonrpc: '2.0', id: 1, method: 7 }]) {
        const res = await post(body);
        expect(res.status).toBe(400);
        expect((await rpcError(res)).code).toBe(-32600);
      }
      for (const raw of ['42', '"ping"', 'null']) {
        const res = await post(raw, {}, true);
        expect(res.status).toBe(400);
        expect((await rpcError(res)).code).toBe(-32600);
      }
      const { headers } = await open('2025-06-18');
      const res = await post({ jsonrpc: '2.0', id: {}, method: 'ping' }, headers);
      expect(res.status).toBe(400);
      expect((await rpcError(res)).code).toBe(-32600);
    });

    it.each(['2025-06-18', '2025-11-25'])('refuses JSON-RPC batches on sessions negotiated at %s (batching was removed)', async (version) => {
      const { headers } = await open(version);
      const batch = await post([{ jsonrpc: '2.0', id: 2, method: 'ping' }, { jsonrpc: '2.0', id: 3, method: 'ping' }], headers);
      expect(batch.status).toBe(400);
      expect((await rpcError(batch)).code).toBe(-32600);
      const empty = await post([], headers);
      expect(empty.status).toBe(400);
      expect((await rpcError(empty)).code).toBe(-32600);
      // A single message still works.
      const ping = await post({ jsonrpc: '2.0', id: 4, method: 'ping' }, headers);
      expect(ping.status).toBe(200);
      expect(messages(parseSse(await ping.text()))).toContainEqual({ jsonrpc: '2.0', id: 4, result: {} });
    });

    it('refuses a batch without a session and keeps batches for 2025-03-26 sessions', async () => {
      const initBatch = await post([initialize('2025-03-26')]);
      expect(initBatch.status).toBe(400);
      expect((await rpcError(initBatch)).code).toBe(-32600);
      const { headers } = await open('2025-03-26');
      const batch = await post([{ jsonrpc: '2.0', id: 2, method: 'ping' }, { jsonrpc: '2.0', id: 3, method: 'ping' }], headers);
      expect(batch.status).toBe(200);
      expect(messages(parseSse(await batch.text())).map((m) => m.id)).toEqual(expect.arrayContaining([2, 3]));
    });

    it('never doubles the "MCP error <code>:" prefix, on the wire or in the SDK client', async () => {
      const { headers } = await open('2025-11-25');
      const res = await post({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'everything.nope', arguments: {} } }, headers);
      const reply = (await answers(res)).find((m) => m.id === 9) as { error: { code: number; message: string; data: { code: string } } };
      expect(reply.error).toMatchObject({ code: -32602, data: { code: 'TOOL_NOT_FOUND' } });
      expect(reply.error.message).toBe('tool everything.nope not found');
      const client = await sdkClient();
      try {
        const unknown = await client.callTool({ name: 'everything.nope', arguments: {} }).catch((e: unknown) => e);
        expect(unknown).toBeInstanceOf(McpError);
        expect((unknown as McpError).message).toBe('MCP error -32602: tool everything.nope not found');
        // A prompt's arguments refused by the gateway (PROMPT_INVALID_ARGUMENTS): one prefix, from the client.
        const upstream = (await client.getPrompt({ name: 'everything.args-prompt', arguments: {} }).catch((e: unknown) => e)) as Error;
        expect(upstream).toBeInstanceOf(McpError);
        expect(upstream.message.match(/MCP error/g)).toHaveLength(1);
        const missing = (await client.readResource({ uri: 'demo://nowhere/1' }).catch((e: unknown) => e)) as Error;
        expect(missing.message.match(/MCP error/g)).toHaveLength(1);
      } finally {
        await client.close();
      }
    });
  });

  describe('streamable HTTP transport', () => {
    it('compares MCP-Protocol-Version with the negotiated version', async () => {
      const { headers } = await open('2025-06-18');
      const other = await post({ jsonrpc: '2.0', id: 2, method: 'ping' }, { ...headers, 'mcp-protocol-version': '2025-11-25' });
      expect(other.status).toBe(400);
      expect((await rpcError(other)).message).toContain('negotiated');
      const unknown = await post({ jsonrpc: '2.0', id: 3, method: 'ping' }, { ...headers, 'mcp-protocol-version': '1999-01-01' });
      expect(unknown.status).toBe(400);
      expect((await rpcError(unknown)).message).toContain('unsupported');
      const same = await post({ jsonrpc: '2.0', id: 4, method: 'ping' }, headers);
      expect(same.status).toBe(200);
      const { 'mcp-protocol-version': _v, ...without } = headers;
      expect((await post({ jsonrpc: '2.0', id: 5, method: 'ping' }, without)).status).toBe(200);
    });

    it('answers 406 to a wrong Accept and 415 to a body that is not JSON', async () => {
      const post406 = await post(initialize('2025-11-25'), { accept: 'application/json' });
      expect(post406.status).toBe(406);
      await rpcError(post406);
      const { headers } = await open('2025-11-25');
      const get406 = await fetch(`${base}/mcp`, { headers: { authorization: `Bearer ${bearer}`, accept: 'application/json', ...headers } });
      expect(get406.status).toBe(406);
      const post415 = await post(JSON.stringify(initialize('2025-11-25')), { 'content-type': 'text/plain' }, true);
      expect(post415.status).toBe(415);
      await rpcError(post415);
    });

    it('answers 404 for an unknown session and 400 for a request without one', async () => {
      const unknown = await post({ jsonrpc: '2.0', id: 2, method: 'ping' }, { 'mcp-session-id': '5f0c1c8e-0000-4000-8000-000000000000', 'mcp-protocol-version': '2025-11-25' });
      expect(unknown.status).toBe(404);
      expect(await rpcError(unknown)).toMatchObject({ code: -32001, data: { code: 'MCP_SESSION_NOT_FOUND' } });
      const none = await post({ jsonrpc: '2.0', id: 2, method: 'ping' });
      expect(none.status).toBe(400);
      await rpcError(none);
      const put = await fetch(`${base}/mcp`, { method: 'PUT', headers: { authorization: `Bearer ${bearer}` } });
      expect(put.status).toBe(405);
      expect(put.headers.get('allow')).toBe('GET, POST, DELETE');
    });

    it('ends a session on DELETE', async () => {
      const { headers } = await open('2025-11-25');
      const del = await fetch(`${base}/mcp`, { method: 'DELETE', headers: { authorization: `Bearer ${bearer}`, ...headers } });
      expect(del.status).toBe(200);
      const after = await post({ jsonrpc: '2.0', id: 2, method: 'ping' }, headers);
      expect(after.status).toBe(404);
      expect((await rpcError(after)).code).toBe(-32001);
    });

    it('opens a GET SSE stream: without priming on 2025-06-18, primed with an id, retry and empty data on 2025-11-25', async () => {
      const old = await open('2025-06-18');
      const oldGet = await fetch(`${base}/mcp`, { headers: { authorization: `Bearer ${bearer}`, accept: 'text/event-stream', ...old.headers } });
      expect(oldGet.status).toBe(200);
      expect(oldGet.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(await readSse(oldGet, () => false, 500)).toEqual([]);

      const { headers } = await open('2025-11-25');
      const get = await fetch(`${base}/mcp`, { headers: { authorization: `Bearer ${bearer}`, accept: 'text/event-stream', ...headers } });
      expect(get.status).toBe(200);
      const [priming] = await readSse(get, (e) => e.length > 0);
      expect(priming).toEqual({ id: expect.any(String), retry: RETRY_MS, data: '' });
    });

    it('answers a tools/call as one JSON response, and one with a progress token as a stream of its progress', async () => {
      const { headers } = await open('2025-11-25');
      const direct = await post({ jsonrpc: '2.0', id: 30, method: 'tools/call', params: { name: 'everything.echo', arguments: { message: 'direct' } } }, headers);
      expect([direct.status, direct.headers.get('content-type'), direct.headers.get('mcp-session-id')]).toEqual([200, 'application/json', headers['mcp-session-id']]);
      expect(await direct.json()).toEqual({ jsonrpc: '2.0', id: 30, result: { content: [{ type: 'text', text: 'Echo: direct' }] } });
      // What the SDK refuses, refused the same way: arguments that are not an object.
      const bad = await post({ jsonrpc: '2.0', id: 31, method: 'tools/call', params: { name: 'everything.echo', arguments: 'x' } }, headers);
      expect(await bad.json()).toMatchObject({ jsonrpc: '2.0', id: 31, error: { code: -32602, message: expect.stringMatching(/^Invalid tools\/call request/) } });

      const progress = { name: 'everything.trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 }, _meta: { progressToken: 'p1' } };
      const streamed = await post({ jsonrpc: '2.0', id: 32, method: 'tools/call', params: progress }, headers);
      expect(streamed.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const sent = messages(parseSse(await streamed.text()));
      expect(sent.filter((m) => m.method === 'notifications/progress').length).toBeGreaterThan(0);
      expect(sent.find((m) => m.id === 32)).toMatchObject({ result: { content: expect.any(Array) } });
    });

    it('aborts a tools/call answered as JSON when the client cancels it, and answers it with no JSON-RPC message', async () => {
      const { headers } = await open('2025-11-25');
      const call = post({ jsonrpc: '2.0', id: 40, method: 'tools/call', params: { name: 'everything.trigger-long-running-operation', arguments: { duration: 30, steps: 3 } } }, headers);
      await new Promise((r) => setTimeout(r, 300));
      const cancel = await post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 40, reason: 'no longer needed' } }, headers);
      expect(cancel.status).toBe(202);
      // A call that ran to its end would answer 200 with its result (after 30 s).
      const res = await call;
      expect([res.status, await res.text()]).toEqual([202, '']);
    });

    it('primes every POST stream on 2025-11-25 (id, retry, empty data) and not on 2025-06-18', async () => {
      const { headers } = await open('2025-11-25');
      const res = await post({ jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} }, headers);
      const events = parseSse(await res.text());
      expect(events[0]).toEqual({ id: expect.any(String), retry: RETRY_MS, data: '' });
      expect(events[1]).toMatchObject({ id: expect.any(String), event: 'message' });
      expect(JSON.parse(events[1]!.data)).toMatchObject({ id: 7, result: { tools: expect.any(Array) } });

      const old = await open('2025-06-18');
      const oldRes = await post({ jsonrpc: '2.0', id: 8, method: 'ping' }, old.headers);
      const oldEvents = parseSse(await oldRes.text());
      expect(oldEvents.every((e) => e.data !== '' && e.retry === undefined)).toBe(true);
    });

    it('resumes the GET stream with Last-Event-ID: what was sent while disconnected is replayed', async () => {
      const { headers } = await open('2025-11-25');
      const get = await fetch(`${base}/mcp`, { headers: { authorization: `Bearer ${bearer}`, accept: 'text/event-stream', ...headers } });
      const [priming] = await readSse(get, (e) => e.length > 0);
      expect(priming?.id).toBeTruthy();
      // The stream is gone; the session asks for logs and subscribes: the upstream logs the subscription.
      const level = await post({ jsonrpc: '2.0', id: 20, method: 'logging/setLevel', params: { level: 'debug' } }, headers);
      expect(messages(parseSse(await level.text()))).toContainEqual({ jsonrpc: '2.0', id: 20, result: {} });
      const sub = await post({ jsonrpc: '2.0', id: 21, method: 'resources/subscribe', params: { uri: 'demo://resource/dynamic/text/3' } }, headers);
      expect(messages(parseSse(await sub.text()))).toContainEqual({ jsonrpc: '2.0', id: 21, result: {} });
      let replayed: Record<string, unknown>[] = [];
      await waitFor(
        async () => {
          const resumed = await fetch(`${base}/mcp`, { headers: { authorization: `Bearer ${bearer}`, accept: 'text/event-stream', 'last-event-id': priming!.id!, ...headers } });
          // Until the server sees the first stream go, a resumed one is a conflict (409).
          if (resumed.status !== 200) return false;
          replayed = messages(await readSse(resumed, (e) => messages(e).some((m) => m.method === 'notifications/message'), 2_000));
          return replayed.length > 0;
        },
        { timeoutMs: 15_000, what: 'the log message replayed after Last-Event-ID' },
      );
      expect(replayed).toContainEqual(expect.objectContaining({ method: 'notifications/message', params: expect.objectContaining({ logger: 'everything', data: expect.stringContaining('Subscribe') }) }));
      await post({ jsonrpc: '2.0', id: 22, method: 'resources/unsubscribe', params: { uri: 'demo://resource/dynamic/text/3' } }, headers);
    }, 30_000);

    it('answers a Last-Event-ID the session does not hold with a fresh, primed stream', async () => {
      const { headers } = await open('2025-11-25');
      const res = await fetch(`${base}/mcp`, { headers: { authorization: `Bearer ${bearer}`, accept: 'text/event-stream', 'last-event-id': 'some-other-replica.42', ...headers } });
      expect(res.status).toBe(200);
      const [priming] = await readSse(res, (e) => e.length > 0);
      expect(priming).toEqual({ id: expect.any(String), retry: RETRY_MS, data: '' });
    });
  });

  describe('server features relayed from the upstream', () => {
    it('lists resource templates and reads a templated resource through the gateway', async () => {
      const client = await sdkClient();
      try {
        const templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
        expect(templates).toEqual(expect.arrayContaining(['demo://resource/dynamic/text/{resourceId}', 'demo://resource/dynamic/blob/{resourceId}']));
        const read = await client.readResource({ uri: 'demo://resource/dynamic/text/7' });
        expect(read.contents[0]).toMatchObject({ uri: 'demo://resource/dynamic/text/7', text: expect.stringContaining('Resource 7') });
        expect((await client.listResources()).resources.length).toBeGreaterThan(0);
      } finally {
        await client.close();
      }
    });

    it('routes completion/complete by prompt name and by resource template', async () => {
      const client = await sdkClient();
      try {
        expect(client.getServerCapabilities()?.completions).toBeDefined();
        const dept = await client.complete({ ref: { type: 'ref/prompt', name: 'everything.completable-prompt' }, argument: { name: 'department', value: 'En' } });
        expect(dept.completion.values).toEqual(['Engineering']);
        const people = await client.complete({ ref: { type: 'ref/prompt', name: 'everything.completable-prompt' }, argument: { name: 'name', value: '' }, context: { arguments: { department: 'Sales' } } });
        expect(people.completion.values).toEqual(['David', 'Eve', 'Frank']);
        const id = await client.complete({ ref: { type: 'ref/resource', uri: 'demo://resource/dynamic/text/{resourceId}' }, argument: { name: 'resourceId', value: '5' } });
        expect(id.completion.values).toEqual(['5']);
        await expect(client.complete({ ref: { type: 'ref/prompt', name: 'everything.no-such-prompt' }, argument: { name: 'x', value: '' } })).rejects.toMatchObject({ code: -32602 });
      } finally {
        await client.close();
      }
    });

    it('relays log messages at the level a session set, and resource updates to subscribers', async () => {
      const verbose = await sdkClient(token('verbose'));
      const quiet = await sdkClient(token('quiet'));
      const logs: LoggingMessageNotification['params'][] = [];
      const quietLogs: LoggingMessageNotification['params'][] = [];
      const updates: string[] = [];
      verbose.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params));
      quiet.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void quietLogs.push(n.params));
      verbose.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri));
      try {
        expect(verbose.getServerCapabilities()).toMatchObject({ logging: {}, resources: { subscribe: true } });
        await quiet.setLoggingLevel('emergency');
        await verbose.setLoggingLevel('info');
        await verbose.subscribeResource({ uri: 'demo://resource/dynamic/text/1' });
        await waitFor(() => logs.some((l) => l.logger === 'everything' && String(l.data).includes('demo://resource/dynamic/text/1')), { what: 'the upstream log message relayed' });
        expect(logs.every((l) => ['info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'].includes(l.level))).toBe(true);
        expect(quietLogs.filter((l) => l.level !== 'emergency')).toEqual([]);

        await verbose.callTool({ name: 'everything.toggle-subscriber-updates', arguments: {} });
        try {
          await waitFor(() => updates.includes('demo://resource/dynamic/text/1'), { what: 'notifications/resources/updated relayed' });
        } finally {
          await verbose.callTool({ name: 'everything.toggle-subscriber-updates', arguments: {} });
        }
        await verbose.unsubscribeResource({ uri: 'demo://resource/dynamic/text/1' });
      } finally {
        await verbose.close();
        await quiet.close();
      }
    }, 30_000);
  });

  describe('authorization (resource server side)', () => {
    it('refuses a token without workspaces at initialize, as REST does', async () => {
      const res = await post(initialize('2025-11-25'), { authorization: `Bearer ${token('nobody', ['l2l3'], [])}` });
      expect(res.status).toBe(403);
      expect(await rpcError(res)).toMatchObject({ data: { code: 'AUTH_WORKSPACE_FORBIDDEN' } });
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer error="insufficient_scope"/);
      expect(res.headers.get('www-authenticate')).toContain('scope="mcp:call"');
    });

    it('answers 401 with a WWW-Authenticate challenge that points at the resource metadata', async () => {
      const none = await post(initialize('2025-11-25'), { authorization: '' });
      expect(none.status).toBe(401);
      expect(await rpcError(none)).toMatchObject({ data: { code: 'AUTH_MISSING_TOKEN' } });
      const challenge = none.headers.get('www-authenticate')!;
      expect(challenge).toBe(`Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp", scope="mcp:call"`);
      const bad = await post(initialize('2025-11-25'), { authorization: 'Bearer not.a.token' });
      expect(bad.status).toBe(401);
      expect(bad.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token", error_description="[^"]+", resource_metadata="/);
    });

    it('serves RFC 9728 protected resource metadata that a standard MCP client discovers', async () => {
      const doc = await fetch(`${base}/.well-known/oauth-protected-resource/mcp`);
      expect(doc.status).toBe(200);
      expect(doc.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await doc.json()).toEqual({
        resource: `${base}/mcp`,
        authorization_servers: [AS],
        bearer_methods_supported: ['header'],
        scopes_supported: ['mcp:call'],
        resource_name: expect.any(String),
      });
      const root = await fetch(`${base}/.well-known/oauth-protected-resource`);
      expect(root.status).toBe(200);
      expect(await root.json()).toMatchObject({ resource: base, authorization_servers: [AS] });
      const discovered = await discoverOAuthProtectedResourceMetadata(`${base}/mcp`);
      expect(discovered).toMatchObject({ resource: `${base}/mcp`, authorization_servers: [AS] });
    });
  });

  describe('browser origins (DNS rebinding defence)', () => {
    it('allows loopback origins when bound to loopback, with CORS, and refuses others', async () => {
      const local = await post(initialize('2025-11-25'), { origin: 'http://localhost:5173' });
      expect(local.status).toBe(200);
      expect(local.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
      expect(local.headers.get('access-control-expose-headers')).toContain('Mcp-Session-Id');
      await local.text();
      expect((await post(initialize('2025-11-25'), { origin: 'http://127.0.0.1:8080' })).status).toBe(200);
      expect((await post(initialize('2025-11-25'), { origin: 'http://[::1]:3000' })).status).toBe(200);
      const preflight = await fetch(`${base}/mcp`, { method: 'OPTIONS', headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, mcp-session-id' } });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-headers')).toContain('Mcp-Session-Id');

      for (const origin of ['https://evil.example', 'http://localhost.evil.example', 'null']) {
        const evil = await post(initialize('2025-11-25'), { origin });
        expect(evil.status).toBe(403);
        expect(evil.headers.get('access-control-allow-origin')).toBeNull();
        await rpcError(evil);
      }
      expect((await fetch(`${base}/mcp`, { method: 'OPTIONS', headers: { origin: 'https://evil.example' } })).status).toBe(403);
    });
  });
});
