import 'reflect-metadata';
import { Readable } from 'node:stream';
import { Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { INestApplication, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { Cursors, ErrorCode, ErrorCodes, GRPC_ERROR_CODE_KEY, pb } from '@ziggie/contracts';
import { AuthModule, ConfigModule, createHttpApplication, loadConfig, PeerClients, ProblemFilter, signDevToken, StrictInputModule } from '@ziggie/platform';
import { peersOver } from '../test/peer-doubles';
import { McpController } from './mcp.controller';

const SECRET = 'mcp-controller-test-secret-0123456789';
const config = loadConfig('gateway', undefined, { ZIGGIE_JWT_SECRET: SECRET, HTTP_PORT: '0', LOG_LEVEL: 'silent' });
const signer = { secret: SECRET, issuer: config.auth.issuer, audience: config.auth.audience };

function tokenFor(role: string, workspaces: string[] = ['alpha', 'beta']): string {
  return signDevToken({ subject: `user-${role}`, roles: [role], workspaces, ttlSeconds: 300 }, signer);
}

const HASH = 'ab'.repeat(32);

/** A gRPC failure as mcp-gateway's handlers send it: status, code trailer, extras. */
function serviceError(code: ErrorCode, details: string, extras?: Record<string, unknown>): ServiceError {
  const metadata = new Metadata();
  metadata.set(GRPC_ERROR_CODE_KEY, code);
  if (extras) metadata.set('ziggie-error-extras-bin', Buffer.from(JSON.stringify(extras)));
  const grpcCode = ErrorCodes[code].grpc as GrpcStatus;
  return Object.assign(new Error(`${grpcCode} ${details}`), { code: grpcCode, details, metadata });
}

type Step = { progress: [number, number, string] } | { result: Record<string, unknown>; isError?: boolean } | { fail: ServiceError } | 'hang';

/** What each tool of the fake does when called: events in order, a few ms apart. */
const scripts: Record<string, Step[]> = {
  'demo.sum': [{ result: { content: [{ type: 'text', text: '42' }] } }],
  'demo.slow': [{ progress: [1, 2, 'half way'] }, { progress: [2, 2, 'done'] }, { result: { content: [{ type: 'text', text: 'slow' }] } }],
  'demo.oops': [{ result: { content: [{ type: 'text', text: 'bad input' }] }, isError: true }],
  'demo.busy': [{ fail: serviceError('TOOL_CONCURRENCY_LIMITED', 'demo.busy: 10 calls already running', { retryAfterSeconds: 2.4 }) }],
  'demo.flaky': [{ progress: [1, 3, 'starting'] }, { fail: serviceError('UPSTREAM_UNAVAILABLE', 'demo: connection lost') }],
  'demo.silent': [],
  'demo.endless': [{ progress: [1, 0, 'working'] }, 'hang'],
};

const server: pb.Server = {
  name: 'demo',
  transport: 'http',
  status: 'ready',
  tools: 3,
  error: '',
  resources: 1,
  prompts: 0,
  replicas: [{ id: 'demo-0', up: true, breaker: 'closed', outstanding: 0 }],
  quarantined: 1,
};
const pin: pb.Pin = {
  name: 'demo.sum',
  pinnedHash: 'cd'.repeat(32),
  pendingHash: HASH,
  pinned: { name: 'sum' },
  pending: { name: 'sum', description: 'changed' },
  status: 'quarantined',
  approvedBy: '',
  updatedAt: '2026-01-01T00:00:00.000Z',
};

/**
 * A test double of the mcp-gateway gRPC peer: the generated pb.McpGatewayClient methods the
 * controller uses, answering from fixtures and recording every request and cancellation.
 */
class FakeMcpGateway {
  readonly requests: Array<{ method: string; request: unknown; correlationId: unknown }> = [];
  readonly cancelled: string[] = [];
  /** Unary failures to answer, by method name. */
  readonly failures = new Map<string, ServiceError>();

  private unary<Req, Res>(method: string, answer: (req: Req) => Res) {
    return (request: Req, metadata: Metadata, _options: unknown, callback: (err: ServiceError | null, res?: Res) => void) => {
      this.requests.push({ method, request, correlationId: metadata.get('x-correlation-id')[0] });
      const failure = this.failures.get(method);
      setImmediate(() => (failure ? callback(failure) : callback(null, answer(request))));
      return {};
    };
  }

  listServers = this.unary<pb.ListServersRequest, pb.ListServersResponse>('listServers', () => ({ items: [server] }));
  listTools = this.unary<pb.ListToolsRequest, pb.ListToolsResponse>('listTools', (req) => ({
    items: [{ name: 'demo.sum', server: 'demo', description: 'adds', inputSchema: { type: 'object' }, title: '', outputSchema: undefined, annotations: undefined, hash: HASH }],
    total: 3,
    nextCursor: req.page?.limit === 1 ? Cursors.mcpCatalog.encode({ name: 'demo.sum' }) : '',
  }));
  listPins = this.unary<pb.ListPinsRequest, pb.ListPinsResponse>('listPins', () => ({ items: [pin] }));
  approvePin = this.unary<pb.ApprovePinRequest, pb.Pin>('approvePin', (req) => ({ ...pin, pinnedHash: req.hash, pendingHash: '', pending: undefined, status: 'active', approvedBy: req.principal?.subject ?? '' }));
  addServer = this.unary<pb.AddServerRequest, pb.Server>('addServer', (req) => ({ ...server, name: String(req.config?.name), status: 'connecting', replicas: [] }));
  removeServer = this.unary<pb.RemoveServerRequest, pb.RemoveServerResponse>('removeServer', (req) => ({ name: req.name }));
  listResources = this.unary<pb.ListResourcesRequest, pb.ListResourcesResponse>('listResources', () => ({
    items: [{ uri: 'demo://doc/1', server: 'demo', name: 'doc 1', title: '', description: 'a document', mimeType: 'text/plain' }],
    total: 1,
    nextCursor: '',
    templates: [{ uriTemplate: 'demo://doc/{id}', server: 'demo', name: 'docs', title: '', description: '', mimeType: 'text/plain' }],
  }));
  readResource = this.unary<pb.ReadResourceRequest, pb.ReadResourceResponse>('readResource', (req) => ({ result: { contents: [{ uri: req.uri, mimeType: 'text/plain', text: 'hello' }] } }));
  listPrompts = this.unary<pb.ListPromptsRequest, pb.ListPromptsResponse>('listPrompts', () => ({
    items: [{ name: 'demo.greet', server: 'demo', title: 'Greet', description: '', arguments: [{ name: 'who', title: '', description: 'whom to greet', required: true }] }],
    total: 1,
    nextCursor: '',
  }));
  getPrompt = this.unary<pb.GetPromptRequest, pb.GetPromptResponse>('getPrompt', (req) => ({ result: { messages: [{ role: 'user', content: { type: 'text', text: `Hello ${req.arguments.who}` } }] } }));
  getToolStats = this.unary<pb.GetToolStatsRequest, pb.GetToolStatsResponse>('getToolStats', () => ({
    items: [
      {
        tool: 'demo.sum',
        server: 'demo',
        last5m: { minutes: 5, calls: 3, errors: 1, callsPerMinute: 0.67, errorsPerMinute: 0.22, p50Ms: 3.1, p95Ms: 9.5 },
        last60m: { minutes: 60, calls: 3, errors: 1, callsPerMinute: 0.05, errorsPerMinute: 0.02, p50Ms: 3.1, p95Ms: 9.5 },
      },
    ],
    total5m: { minutes: 5, calls: 3, errors: 1, callsPerMinute: 0.67, errorsPerMinute: 0.22, p50Ms: 3.1, p95Ms: 9.5 },
    total60m: { minutes: 60, calls: 0, errors: 0, callsPerMinute: 0, errorsPerMinute: 0, p50Ms: undefined, p95Ms: undefined },
    replicas: 2,
    bucketBoundsMs: [1, 2.5, 5],
    at: '2026-01-01T00:00:00.000Z',
  }));

  callTool(request: pb.CallToolRequest, metadata: Metadata): Readable {
    this.requests.push({ method: 'callTool', request, correlationId: metadata.get('x-correlation-id')[0] });
    const stream = new Readable({ objectMode: true, read: () => undefined });
    let timer: NodeJS.Timeout | undefined;
    Object.assign(stream, {
      cancel: () => {
        if (stream.destroyed) return;
        this.cancelled.push(request.name);
        clearTimeout(timer);
        stream.destroy(Object.assign(new Error('1 CANCELLED: Cancelled on client'), { code: GrpcStatus.CANCELLED, details: 'Cancelled on client', metadata: new Metadata() }));
      },
    });
    const steps = [...(scripts[request.name] ?? [{ fail: serviceError('TOOL_NOT_FOUND', `tool ${request.name} not found`) }])];
    const next = () => {
      if (stream.destroyed) return;
      const step = steps.shift();
      if (step === undefined) return void stream.push(null);
      if (step === 'hang') return;
      if ('fail' in step) return void stream.destroy(step.fail);
      if ('progress' in step) {
        const [progress, total, message] = step.progress;
        stream.push({ event: { $case: 'progress', value: { progress, total, message } } } satisfies pb.CallToolEvent);
      } else {
        stream.push({ event: { $case: 'result', value: { result: step.result, isError: step.isError ?? false } } } satisfies pb.CallToolEvent);
      }
      timer = setTimeout(next, 5);
    };
    timer = setTimeout(next, 5);
    return stream;
  }
}

const fake = new FakeMcpGateway();
const fakePeers = peersOver(config, { 'mcp-gateway': fake });

@Module({
  imports: [ConfigModule.forRoot(config), AuthModule, StrictInputModule],
  controllers: [McpController],
  providers: [
    { provide: PeerClients, useValue: fakePeers },
    { provide: APP_FILTER, useClass: ProblemFilter },
  ],
})
// The platform's request hooks (createHttpApplication) put the correlation id in context and echo it.
class TestGatewayModule {}

interface SseEvent {
  event: string;
  data: unknown;
}

function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() && !block.startsWith(':'))
    .map((block) => {
      const lines = block.split('\n');
      const event = lines.find((l) => l.startsWith('event: '))?.slice(7) ?? 'message';
      const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      return { event, data: JSON.parse(data) as unknown };
    });
}

async function eventually(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('McpController (REST /v1/mcp, against a test double of the mcp-gateway gRPC peer)', () => {
  let app: INestApplication;
  let base: string;
  const admin = tokenFor('admin', ['*']);
  const l2l3 = tokenFor('l2l3');

  beforeAll(async () => {
    app = await createHttpApplication(TestGatewayModule);
    await app.listen(0, '127.0.0.1');
    base = await app.getUrl();
  });

  afterAll(async () => {
    await app.close();
  });

  beforeEach(() => {
    fake.requests.length = 0;
    fake.cancelled.length = 0;
    fake.failures.clear();
  });

  function request(method: string, path: string, opts: { token?: string; body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {}) {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    return fetch(`${base}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body), signal: opts.signal });
  }

  async function problem(res: Response, status: number, code: string): Promise<Record<string, unknown>> {
    expect({ status: res.status, type: res.headers.get('content-type') }).toEqual({ status, type: expect.stringContaining('application/problem+json') });
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ status, code });
    return body;
  }

  const called = (method: string) => fake.requests.filter((r) => r.method === method);

  describe('catalog', () => {
    it('lists servers with replicas, resources, prompts and quarantine counts', async () => {
      const res = await request('GET', '/v1/mcp/servers', { token: l2l3 });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ items: [server], total: 1 });
      expect(called('listServers')[0].request).toEqual({ principal: { subject: 'user-l2l3', roles: ['l2l3'], workspaces: ['alpha', 'beta'] } });
    });

    it('lists tools in the shared page shape, passing limit, cursor and server', async () => {
      const c0 = Cursors.mcpCatalog.encode({ name: 'demo.a' });
      const res = await request('GET', `/v1/mcp/tools?limit=1&cursor=${c0}&server=demo`, { token: l2l3 });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { items: Array<{ name: string }>; total: number; nextCursor?: string };
      expect(body).toMatchObject({ total: 3, nextCursor: Cursors.mcpCatalog.encode({ name: 'demo.sum' }) });
      expect(body.items.map((t) => t.name)).toEqual(['demo.sum']);
      expect(called('listTools')[0].request).toMatchObject({ page: { limit: 1, cursor: c0 }, server: 'demo' });

      const last = (await (await request('GET', '/v1/mcp/tools', { token: l2l3 })).json()) as Record<string, unknown>;
      expect(last).not.toHaveProperty('nextCursor');
      await problem(await request('GET', '/v1/mcp/tools?limit=0', { token: l2l3 }), 400, 'VALIDATION_FAILED');
      // Cursors other than the catalog's, and server names that cannot exist, are refused before any call.
      const calls = called('listTools').length;
      for (const cursor of ['c0', '99999999999999999999', '-5', Cursors.tasks.encode({ offset: 1 })]) {
        await problem(await request('GET', `/v1/mcp/tools?cursor=${cursor}`, { token: l2l3 }), 400, 'VALIDATION_FAILED');
      }
      await problem(await request('GET', '/v1/mcp/tools?server=', { token: l2l3 }), 400, 'VALIDATION_FAILED');
      await problem(await request('GET', '/v1/mcp/tools?server=Not%20A%20Server', { token: l2l3 }), 400, 'VALIDATION_FAILED');
      expect(called('listTools')).toHaveLength(calls);
    });

    it('answers 401 without a token and 404 for an unknown route', async () => {
      await problem(await request('GET', '/v1/mcp/servers'), 401, 'AUTH_MISSING_TOKEN');
      await problem(await request('GET', '/v1/mcp/nothing', { token: admin }), 404, 'NOT_FOUND');
      expect(fake.requests).toEqual([]);
    });
  });

  describe('resources, prompts and call figures', () => {
    it('lists resources with their templates, reads one by URI in the token\'s first workspace', async () => {
      const list = await request('GET', '/v1/mcp/resources?server=demo&workspace=beta', { token: l2l3 });
      expect(list.status).toBe(200);
      expect(await list.json()).toMatchObject({ items: [{ uri: 'demo://doc/1', mimeType: 'text/plain' }], total: 1, templates: [{ uriTemplate: 'demo://doc/{id}' }] });
      expect(called('listResources')[0].request).toMatchObject({ server: 'demo', workspace: 'beta', page: { limit: 50, cursor: '' } });
      const read = await request('GET', `/v1/mcp/resources/read?uri=${encodeURIComponent('demo://doc/7')}`, { token: l2l3 });
      expect(read.status).toBe(200);
      expect(await read.json()).toEqual({ contents: [{ uri: 'demo://doc/7', mimeType: 'text/plain', text: 'hello' }] });
      expect(called('readResource')[0].request).toMatchObject({ uri: 'demo://doc/7', workspace: 'alpha' });
    });

    it('refuses a missing or schemeless URI, a foreign workspace, and relays RESOURCE_NOT_FOUND as 404', async () => {
      await problem(await request('GET', '/v1/mcp/resources/read', { token: l2l3 }), 400, 'VALIDATION_FAILED');
      await problem(await request('GET', '/v1/mcp/resources/read?uri=no-scheme', { token: l2l3 }), 400, 'VALIDATION_FAILED');
      await problem(await request('GET', '/v1/mcp/resources/read?uri=demo://x&workspace=gamma', { token: l2l3 }), 403, 'AUTH_WORKSPACE_FORBIDDEN');
      await problem(await request('GET', '/v1/mcp/resources?workspace=gamma', { token: l2l3 }), 403, 'AUTH_WORKSPACE_FORBIDDEN');
      expect(called('readResource')).toHaveLength(0);
      fake.failures.set('readResource', serviceError('RESOURCE_NOT_FOUND', 'resource demo://gone not found'));
      const body = await problem(await request('GET', '/v1/mcp/resources/read?uri=demo://gone', { token: l2l3 }), 404, 'RESOURCE_NOT_FOUND');
      expect(body.detail).toBe('resource demo://gone not found');
    });

    it('lists prompts with their arguments and gets one with string arguments', async () => {
      const list = await request('GET', '/v1/mcp/prompts', { token: l2l3 });
      expect(await list.json()).toMatchObject({ items: [{ name: 'demo.greet', arguments: [{ name: 'who', required: true }] }], total: 1 });
      const got = await request('POST', '/v1/mcp/prompts/demo.greet/get', { token: l2l3, body: { arguments: { who: 'Ada' }, workspace: 'beta' } });
      expect(got.status).toBe(200);
      expect(await got.json()).toEqual({ messages: [{ role: 'user', content: { type: 'text', text: 'Hello Ada' } }] });
      expect(called('getPrompt')[0].request).toMatchObject({ name: 'demo.greet', workspace: 'beta', arguments: { who: 'Ada' } });
    });

    it('refuses non-string arguments and bad names before any call; relays PROMPT_INVALID_ARGUMENTS (400) and PROMPT_NOT_FOUND (404)', async () => {
      await problem(await request('POST', '/v1/mcp/prompts/demo.greet/get', { token: l2l3, body: { arguments: { who: 42 } } }), 400, 'VALIDATION_FAILED');
      await problem(await request('POST', '/v1/mcp/prompts/demo.greet/get', { token: l2l3, body: { args: {} } }), 400, 'VALIDATION_FAILED');
      await problem(await request('POST', '/v1/mcp/prompts/not-namespaced/get', { token: l2l3, body: {} }), 400, 'VALIDATION_FAILED');
      expect(called('getPrompt')).toHaveLength(0);
      fake.failures.set('getPrompt', serviceError('PROMPT_INVALID_ARGUMENTS', 'demo.greet: who is required'));
      await problem(await request('POST', '/v1/mcp/prompts/demo.greet/get', { token: l2l3, body: {} }), 400, 'PROMPT_INVALID_ARGUMENTS');
      fake.failures.set('getPrompt', serviceError('PROMPT_NOT_FOUND', 'prompt demo.gone not found'));
      await problem(await request('POST', '/v1/mcp/prompts/demo.gone/get', { token: l2l3, body: {} }), 404, 'PROMPT_NOT_FOUND');
    });

    it('gives call figures per tool with null percentiles for a window without calls', async () => {
      const res = await request('GET', '/v1/mcp/stats', { token: l2l3 });
      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ replicas: 2, items: [{ tool: 'demo.sum', last5m: { calls: 3, errors: 1, p95Ms: 9.5 } }], total5m: { callsPerMinute: 0.67 } });
      expect(body.total60m).toEqual({ minutes: 60, calls: 0, errors: 0, callsPerMinute: 0, errorsPerMinute: 0, p50Ms: null, p95Ms: null });
      expect(called('getToolStats')[0].request).toMatchObject({ workspace: '' });
      await request('GET', '/v1/mcp/stats?workspace=beta', { token: l2l3 });
      expect(called('getToolStats')[1].request).toMatchObject({ workspace: 'beta' });
      await problem(await request('GET', '/v1/mcp/stats?workspace=gamma', { token: l2l3 }), 403, 'AUTH_WORKSPACE_FORBIDDEN');
      await problem(await request('GET', '/v1/mcp/stats?window=5', { token: l2l3 }), 400, 'VALIDATION_FAILED');
    });
  });

  describe('permissions', () => {
    const adminRoutes: Array<{ method: string; path: string; body?: unknown }> = [
      { method: 'GET', path: '/v1/mcp/pins' },
      { method: 'POST', path: '/v1/mcp/pins/demo.sum/approve', body: { hash: HASH } },
      { method: 'POST', path: '/v1/mcp/servers', body: { name: 'extra', transport: 'http', urls: ['http://127.0.0.1:9/mcp'] } },
      { method: 'DELETE', path: '/v1/mcp/servers/demo' },
    ];

    it.each(adminRoutes)('$method $path needs config:change: 403 AUTH_FORBIDDEN for l2l3', async ({ method, path, body }) => {
      const res = await request(method, path, { token: l2l3, body });
      const p = await problem(res, 403, 'AUTH_FORBIDDEN');
      expect(p.detail).toBe('permission config:change required');
      expect(fake.requests).toEqual([]);
    });

    it('lets l2l3 (mcp:call) call tools', async () => {
      const res = await request('POST', '/v1/mcp/tools/demo.sum/call', { token: l2l3, body: {} });
      expect(res.status).toBe(200);
    });
  });

  describe('POST /v1/mcp/tools/:name/call', () => {
    it('answers JSON { result, isError } and passes name, arguments, workspace, timeout and correlation id', async () => {
      const res = await request('POST', '/v1/mcp/tools/demo.sum/call', {
        token: l2l3,
        body: { arguments: { a: 2, b: 40 }, timeoutMs: 5000 },
        headers: { 'x-correlation-id': 'corr-mcp-1' },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('application/json');
      expect(await res.json()).toEqual({ result: { content: [{ type: 'text', text: '42' }] }, isError: false });
      const [call] = called('callTool');
      expect(call.request).toEqual({
        name: 'demo.sum',
        arguments: { a: 2, b: 40 },
        principal: { subject: 'user-l2l3', roles: ['l2l3'], workspaces: ['alpha', 'beta'] },
        workspace: 'alpha',
        correlationId: 'corr-mcp-1',
        timeoutMs: 5000,
      });
      expect(call.correlationId).toBe('corr-mcp-1');
    });

    it('reports a tool-level error as isError: true with 200', async () => {
      const res = await request('POST', '/v1/mcp/tools/demo.oops/call', { token: l2l3, body: { arguments: {} } });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ result: { content: [{ type: 'text', text: 'bad input' }] }, isError: true });
    });

    it('works without a body: empty arguments, default timeout', async () => {
      const res = await request('POST', '/v1/mcp/tools/demo.sum/call', { token: l2l3 });
      expect(res.status).toBe(200);
      expect(called('callTool')[0].request).toMatchObject({ arguments: {}, timeoutMs: 0, workspace: 'alpha' });
    });

    it('uses a workspace the token holds, and 403 AUTH_WORKSPACE_FORBIDDEN for one it does not', async () => {
      expect((await request('POST', '/v1/mcp/tools/demo.sum/call', { token: l2l3, body: { workspace: 'beta' } })).status).toBe(200);
      expect(called('callTool')[0].request).toMatchObject({ workspace: 'beta' });

      await problem(await request('POST', '/v1/mcp/tools/demo.sum/call', { token: l2l3, body: { workspace: 'gamma' } }), 403, 'AUTH_WORKSPACE_FORBIDDEN');
      await problem(await request('POST', '/v1/mcp/tools/demo.sum/call', { token: tokenFor('l2l3', []) }), 403, 'AUTH_WORKSPACE_FORBIDDEN');
      expect(called('callTool')).toHaveLength(1);

      // "*" reaches any workspace; with none named, the call is unscoped.
      expect((await request('POST', '/v1/mcp/tools/demo.sum/call', { token: admin, body: { workspace: 'gamma' } })).status).toBe(200);
      expect((await request('POST', '/v1/mcp/tools/demo.sum/call', { token: admin })).status).toBe(200);
      expect(called('callTool').map((c) => (c.request as pb.CallToolRequest).workspace)).toEqual(['beta', 'gamma', '']);
    });

    it.each([
      ['an unknown field', { arguments: {}, extra: true }, 'extra'],
      ['arguments that are not an object', { arguments: [1, 2] }, 'arguments'],
      ['a timeout below 100 ms', { timeoutMs: 50 }, 'timeoutMs'],
      ['a timeout above 600000 ms', { timeoutMs: 600_001 }, 'timeoutMs'],
      ['a fractional timeout', { timeoutMs: 1000.5 }, 'timeoutMs'],
      ['an empty workspace', { workspace: '' }, 'workspace'],
    ])('answers 400 VALIDATION_FAILED for %s', async (_what, body, field) => {
      const p = await problem(await request('POST', '/v1/mcp/tools/demo.sum/call', { token: l2l3, body }), 400, 'VALIDATION_FAILED');
      expect(String(p.detail)).toContain(field === 'extra' ? '"extra"' : field);
      expect(fake.requests).toEqual([]);
    });

    it('answers 400 VALIDATION_FAILED for malformed JSON', async () => {
      const res = await fetch(`${base}/v1/mcp/tools/demo.sum/call`, { method: 'POST', headers: { authorization: `Bearer ${l2l3}`, 'content-type': 'application/json' }, body: '{"arguments":' });
      await problem(res, 400, 'VALIDATION_FAILED');
    });

    it.each(['nodot', 'Demo.sum', '-demo.sum', 'demo.', `${'a'.repeat(33)}.sum`, `demo.${'x'.repeat(65)}`, 'demo.sum%20x', 'de%2Fmo.sum'])(
      'answers 400 VALIDATION_FAILED for the tool name %s',
      async (name) => {
        await problem(await request('POST', `/v1/mcp/tools/${name}/call`, { token: l2l3, body: {} }), 400, 'VALIDATION_FAILED');
        expect(fake.requests).toEqual([]);
      },
    );

    it('accepts the longest valid tool name', async () => {
      const name = `${'a'.repeat(32)}.${'x'.repeat(64)}`;
      await problem(await request('POST', `/v1/mcp/tools/${name}/call`, { token: l2l3, body: {} }), 404, 'TOOL_NOT_FOUND');
      expect(called('callTool')[0].request).toMatchObject({ name });
    });

    it('maps gRPC errors to problem+json with their code, and Retry-After from retryAfterSeconds', async () => {
      const busy = await request('POST', '/v1/mcp/tools/demo.busy/call', { token: l2l3, body: {} });
      expect(busy.headers.get('retry-after')).toBe('3');
      const p = await problem(busy, 429, 'TOOL_CONCURRENCY_LIMITED');
      expect(p).toMatchObject({ detail: 'demo.busy: 10 calls already running', retryAfterSeconds: 2.4, instance: '/v1/mcp/tools/demo.busy/call' });

      await problem(await request('POST', '/v1/mcp/tools/demo.nope/call', { token: l2l3, body: {} }), 404, 'TOOL_NOT_FOUND');
    });

    it('answers 502 TOOL_CALL_FAILED when the stream ends without a result', async () => {
      await problem(await request('POST', '/v1/mcp/tools/demo.silent/call', { token: l2l3, body: {} }), 502, 'TOOL_CALL_FAILED');
    });

    describe('with Accept: text/event-stream', () => {
      const sse = { accept: 'text/event-stream' };

      it('streams progress events, then the result', async () => {
        const res = await request('POST', '/v1/mcp/tools/demo.slow/call', { token: l2l3, body: { arguments: { n: 1 } }, headers: sse });
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toContain('text/event-stream');
        expect(res.headers.get('cache-control')).toContain('no-cache');
        expect(parseSse(await res.text())).toEqual([
          { event: 'progress', data: { progress: 1, total: 2, message: 'half way' } },
          { event: 'progress', data: { progress: 2, total: 2, message: 'done' } },
          { event: 'result', data: { content: [{ type: 'text', text: 'slow' }], isError: false } },
        ]);
      });

      it('answers an error before any output as problem+json, with Retry-After', async () => {
        const res = await request('POST', '/v1/mcp/tools/demo.busy/call', { token: l2l3, body: {}, headers: sse });
        expect(res.headers.get('retry-after')).toBe('3');
        await problem(res, 429, 'TOOL_CONCURRENCY_LIMITED');
      });

      it('ends with an error event carrying the problem when the call fails mid-stream', async () => {
        const res = await request('POST', '/v1/mcp/tools/demo.flaky/call', { token: l2l3, body: {}, headers: { ...sse, 'x-correlation-id': 'corr-sse-1' } });
        expect(res.status).toBe(200);
        const events = parseSse(await res.text());
        expect(events.map((e) => e.event)).toEqual(['progress', 'error']);
        expect(events[1].data).toMatchObject({ status: 503, code: 'UPSTREAM_UNAVAILABLE', detail: 'demo: connection lost', correlationId: 'corr-sse-1' });
      });

      it('cancels the gRPC call when the client disconnects', async () => {
        const abort = new AbortController();
        const res = await request('POST', '/v1/mcp/tools/demo.endless/call', { token: l2l3, body: {}, headers: sse, signal: abort.signal });
        expect(res.status).toBe(200);
        const reader = res.body!.getReader();
        let seen = '';
        while (!seen.includes('event: progress')) {
          const chunk = await reader.read();
          if (chunk.done) break;
          seen += Buffer.from(chunk.value).toString('utf8');
        }
        expect(seen).toContain('event: progress');
        expect(fake.cancelled).toEqual([]);
        abort.abort();
        await reader.cancel().catch(() => undefined);
        await eventually(() => fake.cancelled.includes('demo.endless'));
      });
    });

    it('cancels the gRPC call when a JSON client disconnects', async () => {
      const abort = new AbortController();
      const pending = request('POST', '/v1/mcp/tools/demo.endless/call', { token: l2l3, body: {}, signal: abort.signal }).catch((e: unknown) => e);
      await eventually(() => called('callTool').length === 1);
      await new Promise((r) => setTimeout(r, 20));
      abort.abort();
      expect(await pending).toMatchObject({ name: 'AbortError' });
      await eventually(() => fake.cancelled.includes('demo.endless'));
    });
  });

  describe('pins', () => {
    it('lists pins, quarantined only on request', async () => {
      const all = await request('GET', '/v1/mcp/pins', { token: admin });
      expect(all.status).toBe(200);
      expect(await all.json()).toEqual({ items: [pin], total: 1 });
      expect((await request('GET', '/v1/mcp/pins?quarantined=true', { token: admin })).status).toBe(200);
      expect((await request('GET', '/v1/mcp/pins?quarantined=false', { token: admin })).status).toBe(200);
      expect(called('listPins').map((c) => (c.request as pb.ListPinsRequest).quarantinedOnly)).toEqual([false, true, false]);
      await problem(await request('GET', '/v1/mcp/pins?quarantined=yes', { token: admin }), 400, 'VALIDATION_FAILED');
    });

    it('approves a pending definition by hash', async () => {
      const res = await request('POST', '/v1/mcp/pins/demo.sum/approve', { token: admin, body: { hash: HASH } });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ name: 'demo.sum', pinnedHash: HASH, status: 'active', approvedBy: 'user-admin' });
      expect(called('approvePin')[0].request).toMatchObject({ name: 'demo.sum', hash: HASH, principal: { subject: 'user-admin' } });
    });

    it.each([
      ['no hash', {}],
      ['a short hash', { hash: 'abc' }],
      ['a non-hex hash', { hash: 'zz'.repeat(32) }],
      ['an unknown field', { hash: HASH, force: true }],
    ])('answers 400 VALIDATION_FAILED for %s', async (_what, body) => {
      await problem(await request('POST', '/v1/mcp/pins/demo.sum/approve', { token: admin, body }), 400, 'VALIDATION_FAILED');
      expect(fake.requests).toEqual([]);
    });

    it('passes PIN_NOT_FOUND through', async () => {
      fake.failures.set('approvePin', serviceError('PIN_NOT_FOUND', 'no pending definition of demo.sum with that hash'));
      await problem(await request('POST', '/v1/mcp/pins/demo.sum/approve', { token: admin, body: { hash: HASH } }), 404, 'PIN_NOT_FOUND');
    });
  });

  describe('server administration', () => {
    const config = { name: 'extra', transport: 'http', urls: ['http://127.0.0.1:9/mcp'], acl: { roles: ['admin'] } };

    it('adds a server, passing the configuration through: 201 with the Server', async () => {
      const res = await request('POST', '/v1/mcp/servers', { token: admin, body: config });
      expect(res.status).toBe(201);
      expect(await res.json()).toMatchObject({ name: 'extra', status: 'connecting' });
      // Defaults of the server schema are filled in by the gateway before it passes the configuration on.
      expect(called('addServer')[0].request).toEqual({ principal: { subject: 'user-admin', roles: ['admin'], workspaces: ['*'] }, config: { ...config, headers: {} } });
    });

    it('answers 400 when the body is not an object', async () => {
      await problem(await request('POST', '/v1/mcp/servers', { token: admin, body: [config] }), 400, 'VALIDATION_FAILED');
      expect(fake.requests).toEqual([]);
    });

    it.each([
      ['VALIDATION_FAILED', 400],
      ['URL_NOT_ALLOWED', 400],
      ['SERVER_EXISTS', 409],
    ] as const)('passes %s from mcp-gateway through as %i', async (code, status) => {
      fake.failures.set('addServer', serviceError(code, `refused: ${code}`));
      const p = await problem(await request('POST', '/v1/mcp/servers', { token: admin, body: config }), status, code);
      expect(p.detail).toBe(`refused: ${code}`);
    });

    it('removes a server: 200 { name }', async () => {
      const res = await request('DELETE', '/v1/mcp/servers/demo', { token: admin });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ name: 'demo' });
      expect(called('removeServer')[0].request).toMatchObject({ name: 'demo' });
    });

    it('answers 400 for a malformed server name and passes SERVER_NOT_FOUND through', async () => {
      await problem(await request('DELETE', '/v1/mcp/servers/Not_Valid', { token: admin }), 400, 'VALIDATION_FAILED');
      fake.failures.set('removeServer', serviceError('SERVER_NOT_FOUND', 'no server ghost'));
      await problem(await request('DELETE', '/v1/mcp/servers/ghost', { token: admin }), 404, 'SERVER_NOT_FOUND');
    });
  });
});
