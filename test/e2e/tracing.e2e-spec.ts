import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { allocateFreePorts, defaultMcpServers, startStack, type StackHandle } from '../../cli/src/stack';
import { OtlpSpanKind, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver';
import { freePort } from '../support/ports';
import { spawnTracked, stopProcess, waitFor, type TrackedProcess } from '../support/processes';

/**
 * One trace across every hop of a task, exported over OTLP/HTTP to a real receiver:
 * REST (with a caller's traceparent) → gateway → orchestrator (gRPC SubmitTask) → JetStream
 * dispatch → agent-runtime → mcp-gateway (gRPC CallTool) → the upstream MCP server, over stdio
 * (`everything`) and over streamable HTTP (`web`, behind a proxy that records request headers).
 */

const SERVICES = ['ziggie-gateway', 'ziggie-orchestrator', 'ziggie-agent-runtime', 'ziggie-mcp-gateway'] as const;
const DISPATCH = 'ziggie.step.dispatch.v1';
const RESULT = 'ziggie.step.result.v1';

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** A loopback HTTP proxy in front of the HTTP MCP server that keeps every request's headers. */
async function startHeaderProxy(targetPort: number): Promise<{ url: string; seen: Array<{ method: string; headers: IncomingHttpHeaders }>; close(): Promise<void> }> {
  const seen: Array<{ method: string; headers: IncomingHttpHeaders }> = [];
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', headers: req.headers });
    const upstream = httpRequest({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const describeSpan = (s: ReceivedSpan) => `${s.service} ${s.name} (${Object.keys(OtlpSpanKind)[s.kind] ?? s.kind})`;

/** Spans whose parent is neither in the trace nor the caller's span. */
function orphans(spans: ReceivedSpan[], callerSpanId: string): ReceivedSpan[] {
  const ids = new Set(spans.map((s) => s.spanId));
  return spans.filter((s) => s.parentSpanId !== callerSpanId && !(s.parentSpanId && ids.has(s.parentSpanId)));
}

/** The chain of span names from the root down to `span`. */
function ancestry(spans: ReceivedSpan[], span: ReceivedSpan): ReceivedSpan[] {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const chain = [span];
  for (let p = span.parentSpanId && byId.get(span.parentSpanId); p; p = p.parentSpanId && byId.get(p.parentSpanId)) chain.unshift(p);
  return chain;
}

/** An indented rendering of the trace, for failure messages and the log. */
function renderTree(spans: ReceivedSpan[]): string {
  const children = new Map<string | undefined, ReceivedSpan[]>();
  const ids = new Set(spans.map((s) => s.spanId));
  for (const s of [...spans].sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1))) {
    const key = s.parentSpanId && ids.has(s.parentSpanId) ? s.parentSpanId : undefined;
    children.set(key, [...(children.get(key) ?? []), s]);
  }
  const lines: string[] = [];
  const walk = (parent: string | undefined, depth: number) => {
    for (const s of children.get(parent) ?? []) {
      lines.push(`${'  '.repeat(depth)}${describeSpan(s)}`);
      walk(s.spanId, depth + 1);
    }
  };
  walk(undefined, 0);
  return lines.join('\n');
}

describe('one trace from the REST call to the upstream MCP server', () => {
  let dataDir: string;
  let stack: StackHandle | undefined;
  let receiver: OtlpReceiver;
  let web: TrackedProcess | undefined;
  let proxy: Awaited<ReturnType<typeof startHeaderProxy>> | undefined;

  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${stack!.gatewayUrl}${path}`, {
      ...init,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${stack!.adminToken}`, ...(init.headers ?? {}) },
    });

  /** Submits a plan under a fresh traceparent; resolves once the task has ended. */
  async function runTraced(plan: unknown): Promise<{ traceId: string; callerSpanId: string; taskId: string; status: string }> {
    const traceId = hex(16);
    const callerSpanId = hex(8);
    const res = await api('/v1/tasks', { method: 'POST', headers: { traceparent: `00-${traceId}-${callerSpanId}-01` }, body: JSON.stringify({ workspace: 'ziggie', plan }) });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    // The event stream closes after the terminal event.
    await (await api(`/v1/tasks/${id}/events`)).text();
    const task = (await (await api(`/v1/tasks/${id}`)).json()) as { status: string };
    return { traceId, callerSpanId, taskId: id, status: task.status };
  }

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'ziggie-trace-e2e-'));
    receiver = await startOtlpReceiver();

    const everything = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist/index.js');
    const webPort = await freePort();
    web = await spawnTracked(process.execPath, [everything, 'streamableHttp'], { env: { ...process.env, PORT: String(webPort) } });
    proxy = await startHeaderProxy(webPort);

    // A stdio server whose one tool answers with the `_meta` of the request it got.
    const probe = join(dataDir, 'probe-server.js');
    writeFileSync(
      probe,
      [
        `const { McpServer } = require(${JSON.stringify(require.resolve('@modelcontextprotocol/sdk/server/mcp.js'))});`,
        `const { StdioServerTransport } = require(${JSON.stringify(require.resolve('@modelcontextprotocol/sdk/server/stdio.js'))});`,
        `const server = new McpServer({ name: 'probe', version: '1.0.0' });`,
        `server.registerTool('meta', { description: 'Answers with the request _meta' }, (extra) => ({ content: [{ type: 'text', text: JSON.stringify(extra._meta ?? {}) }] }));`,
        `void server.connect(new StdioServerTransport());`,
      ].join('\n'),
    );

    // The bundled servers, `web` (server-everything over streamable HTTP behind the proxy) and `probe`.
    const servers = defaultMcpServers(dataDir);
    writeFileSync(
      join(dataDir, 'mcp-servers.json'),
      JSON.stringify(
        {
          servers: [
            ...servers.servers,
            { name: 'web', transport: 'http', url: `${proxy.url}/mcp` },
            { name: 'probe', transport: 'stdio', command: process.execPath, args: [probe] },
          ],
        },
        null,
        2,
      ),
    );

    stack = await startStack({
      dataDir,
      ports: await allocateFreePorts(),
      // Debug: the runtime logs a failed step at debug (the log test reads that line).
      logLevel: 'debug',
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: '100',
        RATE_LIMIT_USER_PER_MIN: '100000',
        RATE_LIMIT_ADMIN_PER_MIN: '100000',
      },
    });
    // server-everything over HTTP takes a moment to listen; mcp-gateway reconnects until it does.
    await waitFor(
      async () => {
        const r = await api('/v1/mcp/servers');
        const body = (await r.json()) as { items: Array<{ name: string; status: string }> };
        return ['web', 'probe'].every((name) => body.items.find((s) => s.name === name)?.status === 'ready');
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'the web and probe upstreams to be ready' },
    );
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    await proxy?.close();
    if (web) await stopProcess(web);
    await receiver?.close();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it('links gateway, orchestrator, NATS, agent-runtime, mcp-gateway and both upstream calls in one tree', async () => {
    const { traceId, callerSpanId, taskId, status } = await runTraced({
      steps: [
        { id: 'local', capability: 'qa', action: 'tool', input: { tool: 'everything.echo', arguments: { message: 'over stdio' } } },
        { id: 'remote', capability: 'qa', action: 'tool', dependsOn: ['local'], input: { tool: 'web.echo', arguments: { message: 'over http' } } },
      ],
    });
    expect(status).toBe('succeeded');

    const find = (spans: ReceivedSpan[], service: string, name: string | RegExp, kind?: number) =>
      spans.filter((s) => s.service === service && (typeof name === 'string' ? s.name === name : name.test(s.name)) && (kind === undefined || s.kind === kind));
    const complete = (spans: ReceivedSpan[]) =>
      find(spans, 'ziggie-mcp-gateway', 'mcp.call web.echo').length > 0 &&
      find(spans, 'ziggie-orchestrator', `process ${RESULT}`).length >= 2 &&
      find(spans, 'ziggie-gateway', /^POST/, OtlpSpanKind.SERVER).length > 0 &&
      orphans(spans, callerSpanId).length === 0;
    let spans: ReceivedSpan[];
    try {
      spans = await receiver.waitForTrace(traceId, complete, 20_000);
    } catch (err) {
      const mine = receiver.spansOf(traceId);
      throw new Error(
        `${(err as Error).message}\norphans:\n${orphans(mine, callerSpanId).map(describeSpan).join('\n')}\ntree:\n${renderTree(mine)}\nreceiver errors: ${receiver.errors.join('; ')}`,
      );
    }
    // Late spans of this trace (e.g. parents ending after their children) have had their flush.
    await new Promise((r) => setTimeout(r, 500));
    spans = receiver.spansOf(traceId);
    process.stdout.write(`trace ${traceId} (task ${taskId}):\n${renderTree(spans)}\n`);

    // Every service on the path reported into this one trace.
    for (const service of SERVICES) expect(spans.some((s) => s.service === service)).toBe(true);

    // One root: the gateway's HTTP server span, child of the caller's span.
    const roots = spans.filter((s) => s.parentSpanId === callerSpanId);
    expect(roots.map(describeSpan)).toEqual([expect.stringMatching(/^ziggie-gateway POST.* \(SERVER\)$/)]);
    expect(roots[0]!.attributes['http.route'] ?? roots[0]!.attributes['url.path'] ?? roots[0]!.attributes['http.target']).toMatch(/\/v1\/tasks/);
    expect(orphans(spans, callerSpanId).map(describeSpan)).toEqual([]);

    const only = (service: string, name: string, kind: number) => {
      const found = find(spans, service, name, kind);
      expect(found.map(describeSpan)).toContain(`${service} ${name} (${Object.keys(OtlpSpanKind)[kind]})`);
      return found;
    };
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const parentOf = (s: ReceivedSpan) => byId.get(s.parentSpanId ?? '');

    // gRPC SubmitTask: gateway client → orchestrator server.
    const [submitClient] = only('ziggie-gateway', 'grpc.ziggie.v1.Orchestrator/SubmitTask', OtlpSpanKind.CLIENT);
    const [submitServer] = only('ziggie-orchestrator', 'grpc.ziggie.v1.Orchestrator/SubmitTask', OtlpSpanKind.SERVER);
    expect(parentOf(submitServer!)).toBe(submitClient);

    // JetStream dispatch: orchestrator producer → agent-runtime consumer, once per step.
    const dispatches = only('ziggie-orchestrator', `publish ${DISPATCH}`, OtlpSpanKind.PRODUCER);
    expect(dispatches.map((s) => s.attributes['messaging.message.id']).sort()).toEqual([`${taskId}.local.1`, `${taskId}.remote.1`]);
    for (const d of dispatches) {
      expect(d.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.destination.name': `${DISPATCH}.qa` });
    }
    const consumes = only('ziggie-agent-runtime', `process ${DISPATCH}`, OtlpSpanKind.CONSUMER);
    expect(consumes).toHaveLength(2);
    for (const c of consumes) expect(dispatches).toContain(parentOf(c));
    // Wave 1 is dispatched under SubmitTask; wave 2 under the result of wave 1 coming back.
    const local = dispatches.find((d) => d.attributes['messaging.message.id'] === `${taskId}.local.1`)!;
    const remote = dispatches.find((d) => d.attributes['messaging.message.id'] === `${taskId}.remote.1`)!;
    expect(ancestry(spans, local)).toContain(submitServer);
    expect(ancestry(spans, remote).map((s) => s.name)).toContain(`process ${RESULT}`);

    // gRPC CallTool: agent-runtime client → mcp-gateway server, under the consumer span.
    const callClients = only('ziggie-agent-runtime', 'grpc.ziggie.v1.McpGateway/CallTool', OtlpSpanKind.CLIENT);
    const callServers = only('ziggie-mcp-gateway', 'grpc.ziggie.v1.McpGateway/CallTool', OtlpSpanKind.SERVER);
    expect(callClients).toHaveLength(2);
    expect(callServers).toHaveLength(2);
    for (const s of callServers) expect(callClients).toContain(parentOf(s));
    for (const c of callClients) expect(ancestry(spans, c).some((a) => consumes.includes(a))).toBe(true);

    // The upstream calls, under CallTool, with their MCP attributes.
    for (const [tool, transport] of [
      ['everything.echo', 'stdio'],
      ['web.echo', 'http'],
    ] as const) {
      const [call] = only('ziggie-mcp-gateway', `mcp.call ${tool}`, OtlpSpanKind.CLIENT);
      expect(call!.attributes).toMatchObject({ 'mcp.transport': transport, 'mcp.outcome': 'ok', 'ziggie.workspace': 'ziggie' });
      expect(ancestry(spans, call!).some((a) => callServers.includes(a))).toBe(true);
      // The full path, root to upstream call, crosses all four services in order.
      const services = ancestry(spans, call!).map((s) => s.service);
      expect(services.filter((s, i) => s !== services[i - 1])).toEqual(expect.arrayContaining([...SERVICES]));
    }

    // The step result goes back the same way: agent-runtime producer → orchestrator consumer.
    const results = only('ziggie-agent-runtime', `publish ${RESULT}`, OtlpSpanKind.PRODUCER);
    const resultConsumes = only('ziggie-orchestrator', `process ${RESULT}`, OtlpSpanKind.CONSUMER);
    for (const c of resultConsumes) expect(results).toContain(parentOf(c));

    // The HTTP upstream received this trace's context with the tools/call request.
    const webCall = find(spans, 'ziggie-mcp-gateway', 'mcp.call web.echo')[0]!;
    const carried = proxy!.seen.filter((r) => r.method === 'POST' && String(r.headers.traceparent ?? '').includes(traceId));
    expect(carried.length).toBeGreaterThan(0);
    const [, , parentSpan] = String(carried[0]!.headers.traceparent).split('-');
    expect(ancestry(spans, byId.get(parentSpan!) ?? webCall)).toContain(webCall);
  }, 90_000);

  it('hands the trace context to a stdio upstream in the request\'s _meta', async () => {
    const { traceId, taskId, status } = await runTraced({ steps: [{ id: 'probe', capability: 'qa', action: 'tool', input: { tool: 'probe.meta', arguments: {} } }] });
    expect(status).toBe('succeeded');
    const task = (await (await api(`/v1/tasks/${taskId}`)).json()) as { waves: Array<{ steps: Array<{ output: { text: string } }> }> };
    const meta = JSON.parse(task.waves[0]!.steps[0]!.output.text) as { traceparent?: string };
    expect(meta.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    // Its parent is mcp-gateway's span of that upstream call.
    const spans = await receiver.waitForTrace(traceId, (all) => all.some((x) => x.name === 'mcp.call probe.meta'));
    expect(meta.traceparent!.split('-')[2]).toBe(spans.find((x) => x.name === 'mcp.call probe.meta')!.spanId);
  }, 60_000);

  it('keeps concurrent tasks in their own traces', async () => {
    const runs = await Promise.all(
      [1, 2, 3].map((i) => runTraced({ steps: [{ id: 'only', capability: 'qa', action: 'tool', input: { tool: 'everything.echo', arguments: { message: `run ${i}` } } }] })),
    );
    for (const run of runs) {
      expect(run.status).toBe('succeeded');
      const spans = await receiver.waitForTrace(
        run.traceId,
        (s) => s.some((x) => x.name === 'mcp.call everything.echo') && s.some((x) => x.service === 'ziggie-gateway' && x.kind === OtlpSpanKind.SERVER) && orphans(s, run.callerSpanId).length === 0,
        20_000,
      );
      const dispatched = spans.filter((s) => s.name === `publish ${DISPATCH}`).map((s) => s.attributes['messaging.message.id']);
      expect(dispatched).toEqual([`${run.taskId}.only.1`]);
      expect(spans.filter((s) => s.name === 'mcp.call everything.echo')).toHaveLength(1);
      // Task events too: only this task's.
      const events = spans.filter((s) => s.name === 'publish ziggie.event.task.v1').map((s) => s.attributes['messaging.destination.name']);
      expect(events.length).toBeGreaterThan(0);
      expect(new Set(events)).toEqual(new Set([`ziggie.event.task.v1.${run.taskId}`]));
    }
  }, 90_000);

  it('puts the trace id on the log lines written while handling the task', async () => {
    // A failing step: the runtime logs the failure (at debug) while it handles the dispatch.
    const { traceId, status } = await runTraced({ steps: [{ id: 'broken', capability: 'qa', action: 'tool', input: { tool: 'everything.no-such-tool', arguments: {} } }] });
    expect(status).toBe('failed');
    const lines = (service: string) =>
      readFileSync(join(stack!.logsDir, `${service}.log`), 'utf8')
        .split('\n')
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as { traceId?: string; spanId?: string; msg?: string; correlationId?: string }];
          } catch {
            return [];
          }
        });
    let request: { traceId?: string; spanId?: string; correlationId?: string } | undefined;
    let failure: { traceId?: string; spanId?: string; correlationId?: string } | undefined;
    await waitFor(
      () => {
        request = lines('gateway').find((l) => l.traceId === traceId);
        failure = lines('agent-runtime').find((l) => l.traceId === traceId && /step .* failed: TOOL_NOT_FOUND/.test(l.msg ?? ''));
        return request !== undefined && failure !== undefined;
      },
      { timeoutMs: 10_000, what: `log lines with trace id ${traceId}` },
    );
    expect(request!.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(failure!.spanId).toMatch(/^[0-9a-f]{16}$/);
    // The correlation id rides along with the trace.
    expect(failure!.correlationId).toBe(request!.correlationId);
  }, 60_000);

  // Last: it stops the stack.
  it('exports traces only, and flushes on shutdown', async () => {
    await stack!.stop();
    const reported = new Set(receiver.spans.map((s) => s.service));
    for (const service of ['ziggie-gateway', 'ziggie-orchestrator', 'ziggie-agent-runtime', 'ziggie-mcp-gateway', 'ziggie-agent-registry', 'ziggie-workspace-coord']) {
      expect(reported).toContain(service);
    }
    // Metrics are Prometheus' and logs are JSON lines: the SDK pushes neither by default.
    expect([...receiver.requests.keys()]).toEqual(['/v1/traces']);
    expect(receiver.errors).toEqual([]);
  }, 60_000);
});
