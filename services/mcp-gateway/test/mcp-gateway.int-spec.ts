import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { pb, ZiggieError } from '@ziggie/contracts';
import { bootstrapService, callStream, callUnary, createGrpcClient, RunningService, signDevToken } from '@ziggie/platform';
import { definition } from '../src/service';
import { freePort, spawnTracked, startNats, stopProcess, waitFor, type NatsServerHandle, type TrackedProcess } from '../../../test/support';
import { startScriptedServer, type ScriptedServer } from './fixtures/scripted-server';

const everything = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist/index.js');
const memoryServer = join(dirname(require.resolve('@modelcontextprotocol/server-memory/package.json')), 'dist/index.js');
const supergateway = join(dirname(require.resolve('supergateway/package.json')), 'dist/index.js');

const SECRET = 'integration-secret-0123456789';
const AUTH = { secret: SECRET, issuer: 'ziggie-local', audience: 'ziggie-api' };
const token = (subject: string, roles: string[], workspaces = ['ziggie']): string => signDevToken({ subject, roles, workspaces, ttlSeconds: 600 }, AUTH);

const agent: pb.Principal = { subject: 'agent@test', roles: ['l2l3'], workspaces: ['ziggie'] };
const admin: pb.Principal = { subject: 'admin@test', roles: ['admin'], workspaces: ['*'] };

/** The stdio server-everything children of this test process, with their process state. */
function everythingChildren(): { pid: number; stat: string }[] {
  return execFileSync('ps', ['-o', 'pid=,stat=,args=', '--ppid', String(process.pid)])
    .toString()
    .split('\n')
    .filter((l) => l.includes(everything) && l.includes(' stdio'))
    .map((l) => {
      const [pid, stat] = l.trim().split(/\s+/);
      return { pid: Number(pid), stat: stat! };
    });
}

async function mcpClient(base: string, bearer: string, fetchImpl?: typeof fetch): Promise<Client> {
  const client = new Client({ name: 'int-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${bearer}` } }, fetch: fetchImpl }));
  return client;
}

async function callTool(client: pb.McpGatewayClient, name: string, args: Record<string, unknown>, principal = agent, timeoutMs = 10_000): Promise<{ result: pb.ToolResult; progress: number }> {
  let progress = 0;
  for await (const e of callStream(client.callTool.bind(client), { name, arguments: args, principal, workspace: 'ziggie', correlationId: 'int', timeoutMs })) {
    if (e.event?.$case === 'progress') progress++;
    if (e.event?.$case === 'result') return { result: e.event.value, progress };
  }
  throw new Error('no result');
}

const listAll = async (client: pb.McpGatewayClient, principal = agent): Promise<string[]> =>
  (await callUnary(client.listTools.bind(client), { principal, page: { limit: 1000, cursor: '' }, server: '' })).items.map((t) => t.name);

describe('mcp-gateway against real MCP servers over stdio, streamable HTTP, SSE and WebSocket', () => {
  let dir: string;
  let nats: NatsServerHandle;
  let scripted: ScriptedServer;
  let flaky: ScriptedServer;
  const processes: TrackedProcess[] = [];
  let env: Record<string, string>;
  let gw: RunningService;
  let grpc: pb.McpGatewayClient;
  let base: string;

  const startGateway = async (): Promise<{ svc: RunningService; client: pb.McpGatewayClient; base: string }> => {
    const svc = await bootstrapService(definition, { ...env, DATA_DIR: mkdtempSync(join(dir, 'data-')) });
    const client = createGrpcClient(pb.McpGatewayClient, `127.0.0.1:${svc.grpcPort}`);
    const url = `http://127.0.0.1:${svc.httpPort}`;
    await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, { timeoutMs: 30_000, what: 'every upstream ready' });
    return { svc, client, base: url };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ziggie-mcp-'));
    process.env.SCRIPTED_UPSTREAM_TOKEN = 'Bearer upstream-credential';
    nats = await startNats();
    scripted = await startScriptedServer();
    flaky = await startScriptedServer();
    const [webPort, ssePort, wsPort] = [await freePort(), await freePort(), await freePort()];
    processes.push(await spawnTracked(process.execPath, [everything, 'streamableHttp'], { env: { ...process.env, PORT: String(webPort) } }));
    processes.push(await spawnTracked(process.execPath, [everything, 'sse'], { env: { ...process.env, PORT: String(ssePort) } }));
    processes.push(
      await spawnTracked(process.execPath, [supergateway, '--stdio', `${process.execPath} ${memoryServer}`, '--outputTransport', 'ws', '--port', String(wsPort), '--logLevel', 'none'], {
        env: { ...process.env, MEMORY_FILE_PATH: join(dir, 'memory.jsonl') },
      }),
    );
    const serversFile = join(dir, 'servers.json');
    writeFileSync(
      serversFile,
      JSON.stringify({
        servers: [
          { name: 'everything', transport: 'stdio', command: process.execPath, args: [everything, 'stdio'] },
          { name: 'web', transport: 'http', url: `http://127.0.0.1:${webPort}/mcp` },
          { name: 'legacy', transport: 'sse', url: `http://127.0.0.1:${ssePort}/sse` },
          { name: 'memory', transport: 'ws', url: `ws://127.0.0.1:${wsPort}/message` },
          { name: 'scripted', transport: 'http', url: scripted.url, headers: { authorization: { secretEnv: 'SCRIPTED_UPSTREAM_TOKEN' } } },
          { name: 'flaky', transport: 'http', url: flaky.url },
          { name: 'vault', transport: 'http', url: scripted.url, acl: { roles: ['admin'] }, allowedTools: ['echo'] },
        ],
        policies: [{ effect: 'deny', tools: ['web.get-env'], reason: 'environment disclosure is not allowed' }],
      }),
    );
    env = {
      ZIGGIE_JWT_SECRET: SECRET,
      JWT_ISSUER: AUTH.issuer,
      JWT_AUDIENCE: AUTH.audience,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      LOG_LEVEL: 'warn',
      NATS_URL: nats.url,
      MCP_SERVERS_FILE: serversFile,
      MCP_BREAKER_FAILURES: '3',
      MCP_BREAKER_HALF_OPEN_MS: '500',
      MCP_MAX_RESPONSE_BYTES: '65536',
    };
    // server-everything over HTTP/SSE and supergateway take a moment to listen; readiness covers it.
    ({ svc: gw, client: grpc, base } = await startGateway());
  }, 90_000);

  afterAll(async () => {
    grpc?.close();
    await gw?.stop();
    for (const p of processes) await stopProcess(p);
    await scripted?.close();
    await flaky?.close();
    await nats?.stop();
    delete process.env.SCRIPTED_UPSTREAM_TOKEN;
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('serves one catalog over every transport, namespaced server.tool, with opaque cursors', async () => {
    const servers = await callUnary(grpc.listServers.bind(grpc), { principal: admin });
    expect(servers.items.map((s) => [s.name, s.transport, s.status])).toEqual([
      ['everything', 'stdio', 'ready'],
      ['flaky', 'http', 'ready'],
      ['legacy', 'sse', 'ready'],
      ['memory', 'ws', 'ready'],
      ['scripted', 'http', 'ready'],
      ['vault', 'http', 'ready'],
      ['web', 'http', 'ready'],
    ]);
    const names = await listAll(grpc);
    expect(names).toEqual(expect.arrayContaining(['everything.echo', 'web.echo', 'legacy.echo', 'memory.create_entities', 'scripted.echo']));
    expect(names.every((n) => n.length <= 64)).toBe(true);
    expect(names.some((n) => n.startsWith('vault.'))).toBe(false);
    expect([...names].sort()).toEqual(names);

    const collected: string[] = [];
    let cursor = '';
    let pages = 0;
    do {
      const page = await callUnary(grpc.listTools.bind(grpc), { principal: agent, page: { limit: 7, cursor }, server: '' });
      collected.push(...page.items.map((t) => t.name));
      if (page.nextCursor) expect(page.nextCursor).not.toMatch(/^\d+$/);
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(collected).toEqual(names);
    expect(pages).toBe(Math.ceil(names.length / 7));
    await expect(callUnary(grpc.listTools.bind(grpc), { principal: agent, page: { limit: 5, cursor: 'not-ours' }, server: '' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });

    const tool = (await callUnary(grpc.listTools.bind(grpc), { principal: agent, page: { limit: 1000, cursor: '' }, server: 'scripted' })).items.find((t) => t.name === 'scripted.echo');
    expect(tool?.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(tool?.inputSchema).toMatchObject({ required: ['message'] });
  });

  it('lets a standard MCP client use the whole catalog at /mcp: tools, progress, prompts, resources', async () => {
    const client = await mcpClient(base, token('operator', ['l2l3']));
    try {
      const tools: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.listTools(cursor ? { cursor } : {});
        tools.push(...page.tools.map((t) => t.name));
        cursor = page.nextCursor;
      } while (cursor);
      expect(tools).toEqual(await listAll(grpc));

      const sum = await client.callTool({ name: 'web.get-sum', arguments: { a: 20, b: 22 } });
      expect(JSON.stringify(sum.content)).toContain('42');
      const ws = await client.callTool({ name: 'memory.read_graph', arguments: {} });
      expect(ws.isError).toBeFalsy();
      const legacy = await client.callTool({ name: 'legacy.echo', arguments: { message: 'over sse' } });
      expect(JSON.stringify(legacy.content)).toContain('over sse');

      const progress: number[] = [];
      const long = await client.callTool({ name: 'everything.trigger-long-running-operation', arguments: { duration: 1, steps: 3 } }, undefined, { onprogress: (p) => progress.push(p.progress) });
      expect(long.isError).toBeFalsy();
      expect(progress.length).toBeGreaterThanOrEqual(2);
      expect([...progress].sort((a, b) => a - b)).toEqual(progress);

      const prompts = await client.listPrompts();
      expect(prompts.prompts.map((p) => p.name)).toEqual(expect.arrayContaining([expect.stringMatching(/^everything\./)]));
      const simple = prompts.prompts.find((p) => !p.arguments?.some((a) => a.required));
      if (simple) expect((await client.getPrompt({ name: simple.name, arguments: {} })).messages.length).toBeGreaterThan(0);
      const resources = await client.listResources();
      expect(resources.resources.length).toBeGreaterThan(0);
      const read = await client.readResource({ uri: resources.resources[0]!.uri });
      expect(read.contents.length).toBeGreaterThan(0);
    } finally {
      await client.close();
    }
  }, 30_000);

  it('relays cancellation upstream and sends the upstream its own credential, never the caller token', async () => {
    const callerToken = token('operator', ['l2l3']);
    const client = await mcpClient(base, callerToken);
    try {
      const abort = new AbortController();
      const call = client.callTool({ name: 'scripted.slow', arguments: {} }, undefined, { signal: abort.signal });
      await waitFor(() => scripted.waiting() >= 1, { what: 'the call to reach the upstream' });
      const before = scripted.cancelled();
      abort.abort();
      await expect(call).rejects.toThrow();
      await waitFor(() => scripted.cancelled() === before + 1, { what: 'the upstream to see the cancellation' });
    } finally {
      await client.close();
    }
    expect(scripted.authorizations).toContain('Bearer upstream-credential');
    expect([...scripted.authorizations].some((a) => a.includes(callerToken) || a.includes(SECRET))).toBe(false);
  });

  it('negotiates protocol 2025-06-18 and 2025-11-25 and binds the session to the token subject', async () => {
    for (const version of ['2025-06-18', '2025-11-25']) {
      const res = await fetch(`${base}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token('raw', ['l1'])}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
      });
      expect(res.status).toBe(200);
      const sid = res.headers.get('mcp-session-id');
      expect(sid).toBeTruthy();
      expect(await res.text()).toContain(`"protocolVersion":"${version}"`);
      const stolen = await fetch(`${base}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token('someone-else', ['l1'])}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sid!, 'mcp-protocol-version': version },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }),
      });
      expect(stolen.status).toBe(404);
      expect(await stolen.json()).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32001, data: { code: 'MCP_SESSION_NOT_FOUND' } } });
    }
  });

  it('refuses missing tokens, foreign origins, roles and policies with stable codes', async () => {
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } };
    const post = (headers: Record<string, string>): Promise<Response> =>
      fetch(`${base}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(init) });
    const none = await post({});
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ jsonrpc: '2.0', id: null, error: { data: { code: 'AUTH_MISSING_TOKEN' } } });
    expect((await post({ authorization: 'Bearer not.a.token' })).status).toBe(401);
    const foreign = await post({ authorization: `Bearer ${token('x', ['l1'])}`, origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);

    const client = await mcpClient(base, token('operator', ['l2l3']));
    try {
      const visible = (await client.listTools()).tools.map((t) => t.name);
      expect(visible.some((n) => n.startsWith('vault.'))).toBe(false);
      await expect(client.callTool({ name: 'vault.echo', arguments: { message: 'x' } })).rejects.toMatchObject({ data: { code: 'TOOL_FORBIDDEN' } });
      await expect(client.callTool({ name: 'web.get-env', arguments: {} })).rejects.toMatchObject({ data: { code: 'POLICY_DENIED' } });
    } finally {
      await client.close();
    }
    const adminClient = await mcpClient(base, token('root', ['admin'], ['*']));
    try {
      const tools = (await adminClient.listTools()).tools.map((t) => t.name);
      expect(tools.filter((n) => n.startsWith('vault.'))).toEqual(['vault.echo']);
      expect(JSON.stringify((await adminClient.callTool({ name: 'vault.echo', arguments: { message: 'for admins' } })).content)).toContain('for admins');
    } finally {
      await adminClient.close();
    }
    await expect(callUnary(grpc.addServer.bind(grpc), { principal: agent, config: { name: 'x', transport: 'http', url: scripted.url } })).rejects.toMatchObject({ code: 'AUTH_FORBIDDEN' });
    await expect(callUnary(grpc.listPins.bind(grpc), { principal: agent, quarantinedOnly: false })).rejects.toMatchObject({ code: 'AUTH_FORBIDDEN' });
  });

  it('answers unknown tools and arguments that do not match the schema without calling upstream', async () => {
    const before = scripted.calls.get('echo') ?? 0;
    const client = await mcpClient(base, token('operator', ['l2l3']));
    try {
      const unknown = client.callTool({ name: 'scripted.nope', arguments: {} });
      await expect(unknown).rejects.toBeInstanceOf(McpError);
      await expect(client.callTool({ name: 'scripted.nope', arguments: {} })).rejects.toMatchObject({ code: -32602, data: { code: 'TOOL_NOT_FOUND' } });
      await expect(client.callTool({ name: 'scripted.echo', arguments: { message: 5 } })).rejects.toMatchObject({ code: -32602, data: { code: 'TOOL_INVALID_ARGUMENTS' } });
      await expect(client.callTool({ name: 'scripted.echo', arguments: { message: 'ok', extra: true } })).rejects.toMatchObject({ data: { code: 'TOOL_INVALID_ARGUMENTS' } });
    } finally {
      await client.close();
    }
    await expect(callTool(grpc, 'scripted.echo', {})).rejects.toMatchObject({ code: 'TOOL_INVALID_ARGUMENTS' });
    expect(scripted.calls.get('echo') ?? 0).toBe(before);
    const ok = await callTool(grpc, 'scripted.echo', { message: 'valid' });
    expect(JSON.stringify(ok.result.result)).toContain('echo: valid');
    expect(scripted.calls.get('echo')).toBe(before + 1);
  });

  it('fails a call whose stdio server is killed, restarts the server and serves the next call, leaving no zombie', async () => {
    const [child] = everythingChildren();
    expect(child).toBeDefined();
    const events: string[] = [];
    const call = (async () => {
      for await (const e of callStream(grpc.callTool.bind(grpc), { name: 'everything.trigger-long-running-operation', arguments: { duration: 10, steps: 10 }, principal: agent, workspace: 'ziggie', correlationId: 'kill', timeoutMs: 30_000 })) {
        events.push(e.event?.$case ?? '');
      }
    })();
    await waitFor(() => events.includes('progress'), { timeoutMs: 10_000, what: 'first progress' });
    process.kill(child!.pid, 'SIGKILL');
    const failure = await call.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(ZiggieError);
    expect(['UPSTREAM_UNAVAILABLE', 'TOOL_CALL_FAILED']).toContain((failure as ZiggieError).code);
    expect((failure as ZiggieError).message).toMatch(/everything/);
    await waitFor(async () => (await callUnary(grpc.listServers.bind(grpc), { principal: agent })).items.find((s) => s.name === 'everything')?.status === 'ready', { timeoutMs: 20_000, what: 'stdio server restarted' });
    // The catalog is rebuilt shortly after the reconnect (debounced).
    await waitFor(async () => (await listAll(grpc)).includes('everything.get-sum'), { timeoutMs: 10_000, what: 'catalog rebuilt after the restart' });
    const after = await callTool(grpc, 'everything.get-sum', { a: 1, b: 2 });
    expect(JSON.stringify(after.result.result)).toContain('3');
    const children = everythingChildren();
    expect(children).toHaveLength(1);
    expect(children[0]!.pid).not.toBe(child!.pid);
    expect(children.filter((c) => c.stat.startsWith('Z'))).toEqual([]);
  }, 40_000);

  it('times out an upstream that hangs, and refuses responses over the size limit', async () => {
    await expect(callTool(grpc, 'scripted.hang', {}, agent, 300)).rejects.toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
    await expect(callTool(grpc, 'scripted.big', { bytes: 200_000 })).rejects.toMatchObject({ code: 'UPSTREAM_RESPONSE_TOO_LARGE' });
    const small = await callTool(grpc, 'scripted.big', { bytes: 1000 });
    expect(small.result.isError).toBe(false);
  });

  it('opens the breaker of an upstream that keeps failing, half-opens it, and closes it after recovery', async () => {
    const breaker = async (): Promise<string | undefined> => (await callUnary(grpc.listServers.bind(grpc), { principal: agent })).items.find((s) => s.name === 'flaky')?.replicas[0]?.breaker;
    expect(await breaker()).toBe('closed');
    flaky.outage = true;
    for (let i = 0; i < 3; i++) await expect(callTool(grpc, 'flaky.echo', { message: `f${i}` })).rejects.toMatchObject({ code: 'TOOL_CALL_FAILED' });
    expect(await breaker()).toBe('open');
    const fast = await callTool(grpc, 'flaky.echo', { message: 'fast' }).catch((e: unknown) => e);
    expect(fast).toMatchObject({ code: 'UPSTREAM_CIRCUIT_OPEN', extras: { retryAfterSeconds: 1 } });
    // After the half-open delay one trial call goes through; still failing, it opens again.
    await new Promise((r) => setTimeout(r, 600));
    await expect(callTool(grpc, 'flaky.echo', { message: 'trial' })).rejects.toMatchObject({ code: 'TOOL_CALL_FAILED' });
    await expect(callTool(grpc, 'flaky.echo', { message: 'fast again' })).rejects.toMatchObject({ code: 'UPSTREAM_CIRCUIT_OPEN' });
    flaky.outage = false;
    await new Promise((r) => setTimeout(r, 600));
    const recovered = await callTool(grpc, 'flaky.echo', { message: 'recovered' });
    expect(JSON.stringify(recovered.result.result)).toContain('recovered');
    expect(await breaker()).toBe('closed');
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/ziggie_mcp_breaker_state\{[^}]*server="flaky"[^}]*\} 0/);
    expect(metrics).toMatch(/ziggie_mcp_calls_total\{[^}]*server="flaky",tool="flaky.echo",outcome="upstream_circuit_open"[^}]*\} 2/);
    expect(metrics).toMatch(/ziggie_mcp_upstream_up\{[^}]*server="everything"[^}]*\} 1/);
  }, 20_000);

  it('limits a tool to 10 concurrent calls: the 11th is refused with retry advice', async () => {
    const calls = Array.from({ length: 10 }, () => callTool(grpc, 'scripted.slow', {}));
    await waitFor(() => scripted.waiting() === 10, { timeoutMs: 10_000, what: '10 calls in flight upstream' });
    const eleventh = await callTool(grpc, 'scripted.slow', {}).catch((e: unknown) => e);
    expect(eleventh).toMatchObject({ code: 'TOOL_CONCURRENCY_LIMITED' });
    expect((eleventh as ZiggieError).extras.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(scripted.waiting()).toBe(10);
    scripted.releaseAll();
    const done = await Promise.all(calls);
    expect(done.every((d) => JSON.stringify(d.result.result).includes('released'))).toBe(true);
    const again = callTool(grpc, 'scripted.slow', {});
    await waitFor(() => scripted.waiting() === 1, { what: 'a new call admitted' });
    scripted.releaseAll();
    await again;
  }, 30_000);

  it('quarantines a changed tool definition until an admin approves it, and keeps pins across replicas and restarts', async () => {
    expect(JSON.stringify((await callTool(grpc, 'scripted.mutable', {})).result.result)).toContain('mutable');
    await scripted.changeDefinition('now exfiltrates secrets');
    await waitFor(async () => !(await listAll(grpc)).includes('scripted.mutable'), { timeoutMs: 10_000, what: 'changed tool to leave the catalog' });
    await expect(callTool(grpc, 'scripted.mutable', {})).rejects.toMatchObject({ code: 'TOOL_QUARANTINED' });
    const client = await mcpClient(base, token('operator', ['l2l3']));
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).not.toContain('scripted.mutable');
      await expect(client.callTool({ name: 'scripted.mutable', arguments: {} })).rejects.toMatchObject({ data: { code: 'TOOL_QUARANTINED' } });
    } finally {
      await client.close();
    }
    let pins: pb.ListPinsResponse = { items: [] };
    await waitFor(async () => (pins = await callUnary(grpc.listPins.bind(grpc), { principal: admin, quarantinedOnly: true })).items.length === 1, { what: 'the pending definition recorded' });
    const pin = pins.items[0]!;
    expect(pin).toMatchObject({ name: 'scripted.mutable', status: 'quarantined', pending: expect.objectContaining({ description: 'now exfiltrates secrets' }) });
    expect(pin.pendingHash).not.toBe(pin.pinnedHash);
    await expect(callUnary(grpc.approvePin.bind(grpc), { principal: agent, name: pin.name, hash: pin.pendingHash })).rejects.toMatchObject({ code: 'AUTH_FORBIDDEN' });
    await expect(callUnary(grpc.approvePin.bind(grpc), { principal: admin, name: pin.name, hash: pin.pinnedHash })).rejects.toMatchObject({ code: 'PIN_NOT_FOUND' });
    const approved = await callUnary(grpc.approvePin.bind(grpc), { principal: admin, name: pin.name, hash: pin.pendingHash });
    expect(approved).toMatchObject({ status: 'active', pinnedHash: pin.pendingHash, approvedBy: 'admin@test' });
    await waitFor(async () => (await listAll(grpc)).includes('scripted.mutable'), { what: 'approved tool back in the catalog' });
    expect(JSON.stringify((await callTool(grpc, 'scripted.mutable', {})).result.result)).toContain('exfiltrates');

    // A second replica on the same NATS shares the pins: the approved definition is active there.
    const second = await startGateway();
    try {
      expect(await listAll(second.client)).toContain('scripted.mutable');
      // Reverting the upstream to the first definition is a change too: quarantined on both.
      await scripted.changeDefinition('a tool whose definition the test changes');
      await waitFor(async () => !(await listAll(second.client)).includes('scripted.mutable') && !(await listAll(grpc)).includes('scripted.mutable'), { timeoutMs: 10_000, what: 'revert quarantined on both replicas' });
    } finally {
      second.client.close();
      await second.svc.stop();
    }
  }, 90_000);

  it('adds and removes upstreams at run time on every replica, refusing SSRF targets and bad configurations', async () => {
    const second = await startGateway();
    try {
      await expect(callUnary(grpc.addServer.bind(grpc), { principal: admin, config: { name: 'meta', transport: 'http', url: 'http://169.254.169.254/latest/meta-data' } })).rejects.toMatchObject({ code: 'URL_NOT_ALLOWED' });
      await expect(callUnary(grpc.addServer.bind(grpc), { principal: admin, config: { name: 'lan', transport: 'http', url: 'http://10.1.2.3/mcp' } })).rejects.toMatchObject({ code: 'URL_NOT_ALLOWED' });
      await expect(callUnary(grpc.addServer.bind(grpc), { principal: admin, config: { name: 'Bad Name', transport: 'http', url: scripted.url } })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
      await expect(callUnary(grpc.addServer.bind(grpc), { principal: admin, config: { name: 'x', transport: 'carrier-pigeon' } })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
      await expect(callUnary(grpc.addServer.bind(grpc), { principal: admin, config: { name: 'scripted', transport: 'http', url: scripted.url } })).rejects.toMatchObject({ code: 'SERVER_EXISTS' });

      const added = await callUnary(grpc.addServer.bind(grpc), { principal: admin, config: { name: 'extra', transport: 'http', url: scripted.url } });
      expect(added).toMatchObject({ name: 'extra', transport: 'http' });
      await waitFor(async () => (await listAll(second.client)).includes('extra.echo'), { timeoutMs: 10_000, what: 'the other replica to serve the new upstream' });
      expect(JSON.stringify((await callTool(second.client, 'extra.echo', { message: 'hot' })).result.result)).toContain('echo: hot');

      await expect(callUnary(grpc.removeServer.bind(grpc), { principal: admin, name: 'everything' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
      await expect(callUnary(grpc.removeServer.bind(grpc), { principal: admin, name: 'ghost' })).rejects.toMatchObject({ code: 'SERVER_NOT_FOUND' });
      await callUnary(second.client.removeServer.bind(second.client), { principal: admin, name: 'extra' });
      await waitFor(async () => !(await listAll(grpc)).includes('extra.echo'), { timeoutMs: 10_000, what: 'removal seen by the first replica' });
      await expect(callTool(grpc, 'extra.echo', { message: 'gone' })).rejects.toMatchObject({ code: 'TOOL_NOT_FOUND' });
    } finally {
      second.client.close();
      await second.svc.stop();
    }
  }, 60_000);

  it('keeps an MCP session working when its requests alternate between two replicas', async () => {
    const second = await startGateway();
    try {
      const bases = [base, second.base];
      let n = 0;
      const seen: string[] = [];
      // A load balancer without session affinity: every request goes to the other replica.
      const alternating: typeof fetch = (input, init) => {
        const url = new URL(input instanceof Request ? input.url : String(input));
        const target = bases[n++ % 2]!;
        seen.push(target);
        return fetch(`${target}${url.pathname}${url.search}`, init);
      };
      const client = await mcpClient(base, token('roaming', ['l1']), alternating);
      try {
        for (let i = 0; i < 4; i++) {
          const r = await client.callTool({ name: 'scripted.echo', arguments: { message: `hop ${i}` } });
          expect(JSON.stringify(r.content)).toContain(`hop ${i}`);
        }
        expect((await client.listTools()).tools.length).toBeGreaterThan(10);
      } finally {
        await client.close();
      }
      expect(new Set(seen).size).toBe(2);
    } finally {
      second.client.close();
      await second.svc.stop();
    }
  }, 60_000);
});
