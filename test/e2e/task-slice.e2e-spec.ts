import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dirname } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { signDevToken } from '@ziggie/platform';
import { allocateFreePorts, startStack, StackHandle } from '../../cli/src/stack';
import { DEMO_TASK } from '../../cli/src/demo';

/**
 * The whole slice, real all the way: REST with a JWT → gateway → orchestrator (gRPC) →
 * JetStream → agent-runtime → mcp-gateway (gRPC) → server-everything (stdio) → back.
 */
describe('a task end to end through the REST API of the local stack', () => {
  let dataDir: string;
  let stack: StackHandle;
  const token = (roles: string[], workspaces: string[] = ['*'], ttlSeconds = 600) =>
    signDevToken({ subject: `${roles.join('+') || 'nobody'}@e2e`, roles, workspaces, ttlSeconds }, { secret: stack.jwtSecret, issuer: 'ziggie-local', audience: 'ziggie-api' });
  const api = (path: string, init: RequestInit & { token?: string } = {}) =>
    fetch(`${stack.gatewayUrl}${path}`, {
      ...init,
      headers: { 'content-type': 'application/json', ...(init.token ? { authorization: `Bearer ${init.token}` } : {}), ...(init.headers ?? {}) },
    });

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'ziggie-e2e-'));
    // Polling from one token would exceed the per-user limit of an operator's defaults.
    stack = await startStack({ dataDir, ports: await allocateFreePorts(), logLevel: 'warn', env: { RATE_LIMIT_USER_PER_MIN: '100000', RATE_LIMIT_ADMIN_PER_MIN: '100000' } });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it('runs a multi-wave task calling real MCP tools and reports waves, steps and outputs', async () => {
    const res = await api('/v1/tasks', { method: 'POST', token: stack.adminToken, body: JSON.stringify(DEMO_TASK) });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { id: string; status: string };
    expect(res.headers.get('location')).toBe(`/v1/tasks/${created.id}`);
    expect(res.headers.get('x-request-id')).toBeTruthy();

    // The event stream replays from the start and closes after the terminal event.
    const events = await api(`/v1/tasks/${created.id}/events`, { token: stack.adminToken });
    expect(events.headers.get('content-type')).toContain('text/event-stream');
    const body = await events.text();
    const types = [...body.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
    expect(types[0]).toBe('task.queued');
    expect(types[types.length - 1]).toBe('task.succeeded');
    expect(types.filter((t) => t === 'wave.started')).toHaveLength(3);
    expect(types.filter((t) => t === 'step.succeeded')).toHaveLength(4);
    const seqs = [...body.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));

    const task = (await (await api(`/v1/tasks/${created.id}`, { token: stack.adminToken })).json()) as {
      status: string;
      waves: Array<{ index: number; status: string; steps: Array<{ id: string; status: string; agentId: string; output: { text: string } }> }>;
    };
    expect(task.status).toBe('succeeded');
    expect(task.waves.map((w) => [w.index, w.status, w.steps.map((s) => s.id)])).toEqual([
      [1, 'succeeded', ['brief', 'numbers']],
      [2, 'succeeded', ['render']],
      [3, 'succeeded', ['summary']],
    ]);
    const steps = Object.fromEntries(task.waves.flatMap((w) => w.steps).map((s) => [s.id, s]));
    expect(steps.numbers!.output.text).toContain('42');
    expect(steps.render!.output.text).toMatch(/Long running operation completed/);
    // The summary's input referenced earlier outputs, resolved before it ran.
    expect(steps.summary!.output.text).toBe('Echo: brief=Echo: Ziggie demo brief sum=The sum of 19 and 23 is 42.');
    for (const s of Object.values(steps)) expect(s.agentId).toMatch(/^l3-ziggie-/);
  }, 60_000);

  it('answers 401 for a missing, malformed or expired JWT with problem+json', async () => {
    const missing = await api('/v1/tasks', { method: 'POST', body: JSON.stringify(DEMO_TASK) });
    expect(missing.status).toBe(401);
    expect(missing.headers.get('content-type')).toContain('application/problem+json');
    expect(await missing.json()).toMatchObject({ status: 401, code: 'AUTH_MISSING_TOKEN' });
    const malformed = await api('/v1/tasks', { method: 'POST', token: 'not.a.jwt', body: JSON.stringify(DEMO_TASK) });
    expect(await malformed.json()).toMatchObject({ status: 401, code: 'AUTH_INVALID_TOKEN' });
    const expired = await api('/v1/tasks', { method: 'POST', token: token(['admin'], ['*'], -120), body: JSON.stringify(DEMO_TASK) });
    expect(await expired.json()).toMatchObject({ status: 401, code: 'AUTH_INVALID_TOKEN' });
  });

  it('answers 403 without agent:dispatch or outside the token\'s workspaces, and hides other workspaces\' tasks', async () => {
    const l2l3 = await api('/v1/tasks', { method: 'POST', token: token(['l2l3']), body: JSON.stringify(DEMO_TASK) });
    expect(l2l3.status).toBe(403);
    expect(await l2l3.json()).toMatchObject({ code: 'AUTH_FORBIDDEN' });
    const otherWs = await api('/v1/tasks', { method: 'POST', token: token(['l1'], ['fitflow']), body: JSON.stringify(DEMO_TASK) });
    expect(otherWs.status).toBe(403);
    expect(await otherWs.json()).toMatchObject({ code: 'AUTH_WORKSPACE_FORBIDDEN' });
    const list = (await (await api('/v1/tasks', { token: token(['l1'], ['fitflow']) })).json()) as { items: unknown[]; total: number };
    expect(list).toEqual({ items: [], total: 0 });
    const mine = (await (await api('/v1/tasks?limit=1', { token: stack.adminToken })).json()) as { items: Array<{ id: string }> };
    const hidden = await api(`/v1/tasks/${mine.items[0]!.id}`, { token: token(['l1'], ['fitflow']) });
    expect(hidden.status).toBe(404);
    expect(await hidden.json()).toMatchObject({ code: 'TASK_NOT_FOUND' });
  });

  it('refuses invalid plans with 400, a stable code and the reason', async () => {
    const submit = (plan: unknown, extra: object = {}) => api('/v1/tasks', { method: 'POST', token: stack.adminToken, body: JSON.stringify({ workspace: 'ziggie', plan, ...extra }) });
    const cycle = await submit({ steps: [{ id: 'a', capability: 'qa', dependsOn: ['c'] }, { id: 'b', capability: 'qa', dependsOn: ['a'] }, { id: 'c', capability: 'qa', dependsOn: ['b'] }] });
    expect(cycle.status).toBe(400);
    const cycleBody = (await cycle.json()) as { code: string; cycle: string[]; detail: string };
    expect(cycleBody.code).toBe('TASK_CYCLE');
    expect(cycleBody.cycle).toHaveLength(4);
    expect(cycleBody.detail).toMatch(/->/);
    expect(await (await submit({ steps: [{ id: 'a', capability: 'juggling', input: { tool: 'ziggie.noop' } }] })).json()).toMatchObject({ status: 400, code: 'TASK_UNKNOWN_CAPABILITY' });
    expect(await (await submit({ steps: [{ id: 'a', capability: 'qa', dependsOn: ['ghost'] }] })).json()).toMatchObject({ status: 400, code: 'TASK_UNKNOWN_DEPENDENCY' });
    expect(await (await submit({ steps: [{ id: 'A B', capability: 'qa' }] })).json()).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(await (await submit({ steps: [] })).json()).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(await (await submit({ steps: [{ id: 'a', capability: 'qa' }] }, { unknownField: 1 })).json()).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(await (await api('/v1/tasks', { method: 'POST', token: stack.adminToken, body: JSON.stringify({ workspace: 'nowhere', plan: { steps: [{ id: 'a', capability: 'qa', input: { tool: 'ziggie.noop' } }] } }) })).json()).toMatchObject({
      status: 400,
      code: 'TASK_UNKNOWN_WORKSPACE',
    });
    const badJson = await api('/v1/tasks', { method: 'POST', token: stack.adminToken, body: '{"workspace":' });
    expect(await badJson.json()).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
  });

  it('refuses at submission every plan that could only fail later, and creates nothing for it', async () => {
    const count = async () => ((await (await api('/v1/tasks?limit=1', { token: stack.adminToken })).json()) as { total: number }).total;
    const before = await count();
    const submit = async (steps: unknown[]) =>
      (await (await api('/v1/tasks', { method: 'POST', token: stack.adminToken, body: JSON.stringify({ workspace: 'ziggie', plan: { steps } }) })).json()) as Record<string, unknown>;
    const noop = (id: string, extra: object = {}) => ({ id, capability: 'qa', input: { tool: 'ziggie.noop' }, ...extra });
    const delegate = (id: string, steps: unknown[]) => ({ id, capability: 'code', action: 'delegate', input: { plan: { steps } } });

    expect(await submit([{ id: 'a', capability: 'qa', input: { tool: 42 } }])).toMatchObject({ status: 400, code: 'TASK_INVALID_PLAN', stepId: 'a', path: 'input.tool' });
    expect(await submit([noop('a', { qualityGate: { outputSchema: { type: 'objekt' } } })])).toMatchObject({ status: 400, code: 'TASK_INVALID_PLAN', stepId: 'a' });
    const deep = await submit([delegate('l1', [delegate('l2', [delegate('l3', [delegate('l4', [noop('leaf')])])])])]);
    expect(deep).toMatchObject({ status: 400, code: 'TASK_DEPTH_EXCEEDED' });
    expect(await submit([{ id: 'a', agent: 'no-such-agent', input: { tool: 'ziggie.noop' } }])).toMatchObject({ status: 400, code: 'TASK_UNKNOWN_AGENT', unknown: ['no-such-agent'] });
    const proto = await submit([noop('a'), noop('b', { dependsOn: ['a'], input: { tool: 'ziggie.noop', arguments: { x: '{{steps.a.output.__proto__.constructor}}' } } })]);
    expect(proto).toMatchObject({ status: 400, code: 'TASK_INVALID_PLAN', stepId: 'b' });
    expect(proto.detail).toContain('__proto__');
    const backref = await submit([noop('a', { qualityGate: { rejectPatterns: ['(a)\\1'] } })]);
    expect(backref).toMatchObject({ status: 400 });
    expect(backref.detail).toContain('"(a)\\\\1" is not a supported regular expression');
    expect(await count()).toBe(before);
  });

  it('runs a quality gate pattern that backtracks exponentially in JavaScript in linear time, and stays healthy', async () => {
    const text = `${'a'.repeat(5_000)}!`;
    const res = await api('/v1/tasks', {
      method: 'POST',
      token: stack.adminToken,
      body: JSON.stringify({
        workspace: 'ziggie',
        plan: { steps: [{ id: 'a', capability: 'qa', input: { tool: 'everything.echo', arguments: { message: text } }, qualityGate: { rejectPatterns: ['(a+)+$', '!$'] } }] },
      }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    await (await api(`/v1/tasks/${id}/events`, { token: stack.adminToken })).text();
    const task = (await (await api(`/v1/tasks/${id}`, { token: stack.adminToken })).json()) as { status: string; errorMessage: string };
    // The first pattern cannot match (the text ends in "!"); the second does, so the gate fails the step.
    expect(task.status).toBe('failed');
    expect(task.errorMessage).toContain('rejected content "!"');
    expect((await fetch(`http://127.0.0.1:${stack.ports.services.orchestrator.http}/healthz`)).status).toBe(200);
  });

  it('fails a task whose tool call fails, naming the step and the reason', async () => {
    const res = await api('/v1/tasks', {
      method: 'POST',
      token: stack.adminToken,
      body: JSON.stringify({ workspace: 'ziggie', plan: { steps: [{ id: 'ok', capability: 'qa', input: { tool: 'everything.echo', arguments: { message: 'x' } } }, { id: 'bad', capability: 'qa', dependsOn: ['ok'], input: { tool: 'everything.no-such-tool', arguments: {} } }] } }),
    });
    const { id } = (await res.json()) as { id: string };
    await (await api(`/v1/tasks/${id}/events`, { token: stack.adminToken })).text();
    const task = (await (await api(`/v1/tasks/${id}`, { token: stack.adminToken })).json()) as { status: string; errorCode: string; errorMessage: string };
    expect(task).toMatchObject({ status: 'failed', errorCode: 'TASK_STEP_FAILED' });
    expect(task.errorMessage).toMatch(/step bad failed: TOOL_NOT_FOUND/);
  }, 30_000);

  it('shows the seeded hierarchy, workspaces and the bundled MCP server', async () => {
    expect(await (await api('/v1/agents/summary', { token: stack.adminToken })).json()).toEqual({
      total: 1625,
      levels: [
        { level: 0, count: 1 },
        { level: 1, count: 22 },
        { level: 2, count: 176 },
        { level: 3, count: 1408 },
      ],
      elite: 15,
      bmad: 3,
    });
    const ws = (await (await api('/v1/workspaces', { token: stack.adminToken })).json()) as { items: Array<{ id: string }>; total: number };
    expect(ws.total).toBe(5);
    const servers = (await (await api('/v1/mcp/servers', { token: stack.adminToken })).json()) as { items: Array<{ name: string; status: string }> };
    expect(servers.items).toEqual([
      expect.objectContaining({ name: 'everything', transport: 'stdio', status: 'ready' }),
      expect.objectContaining({ name: 'files', transport: 'stdio', status: 'ready' }),
    ]);
  });

  it('serves the MCP catalog through REST: list, call (JSON and SSE), pins, and upstreams added and removed hot', async () => {
    const tools = (await (await api('/v1/mcp/tools?limit=500', { token: token(['l2l3']) })).json()) as { items: Array<{ name: string; hash: string }>; total: number };
    expect(tools.items.map((t) => t.name)).toEqual(expect.arrayContaining(['everything.echo', 'everything.get-sum']));

    const call = await api('/v1/mcp/tools/everything.get-sum/call', { method: 'POST', token: token(['l2l3'], ['ziggie']), body: JSON.stringify({ arguments: { a: 19, b: 23 } }) });
    expect(call.status).toBe(200);
    const body = (await call.json()) as { result: { content: Array<{ text: string }> }; isError: boolean };
    expect(body.isError).toBe(false);
    expect(JSON.stringify(body.result.content)).toContain('42');

    const sse = await api('/v1/mcp/tools/everything.trigger-long-running-operation/call', {
      method: 'POST',
      token: token(['l2l3'], ['ziggie']),
      headers: { accept: 'text/event-stream' },
      body: JSON.stringify({ arguments: { duration: 1, steps: 3 } }),
    });
    expect(sse.headers.get('content-type')).toContain('text/event-stream');
    const events = [...(await sse.text()).matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    expect(events.filter((e) => e === 'progress').length).toBeGreaterThanOrEqual(2);
    expect(events[events.length - 1]).toBe('result');

    const problem = async (res: Response) => ({ status: res.status, code: ((await res.json()) as { code: string }).code });
    expect(await problem(await api('/v1/mcp/tools/everything.nope/call', { method: 'POST', token: stack.adminToken, body: '{}' }))).toEqual({ status: 404, code: 'TOOL_NOT_FOUND' });
    expect(await problem(await api('/v1/mcp/tools/everything.get-sum/call', { method: 'POST', token: stack.adminToken, body: JSON.stringify({ arguments: { a: 'x' } }) }))).toEqual({ status: 400, code: 'TOOL_INVALID_ARGUMENTS' });
    expect(await problem(await api('/v1/mcp/tools/everything.echo/call', { method: 'POST', token: stack.adminToken, body: JSON.stringify({ arguments: {}, sneaky: 1 }) }))).toEqual({ status: 400, code: 'VALIDATION_FAILED' });

    const pins = (await (await api('/v1/mcp/pins', { token: stack.adminToken })).json()) as { items: Array<{ name: string; status: string; pinnedHash: string }> };
    const echoPin = pins.items.find((p) => p.name === 'everything.echo');
    expect(echoPin).toMatchObject({ status: 'active', pinnedHash: tools.items.find((t) => t.name === 'everything.echo')!.hash });
    expect(await problem(await api('/v1/mcp/pins', { token: token(['l2l3']) }))).toEqual({ status: 403, code: 'AUTH_FORBIDDEN' });

    const memory = join(dirname(require.resolve('@modelcontextprotocol/server-memory/package.json')), 'dist/index.js');
    const added = await api('/v1/mcp/servers', {
      method: 'POST',
      token: stack.adminToken,
      body: JSON.stringify({ name: 'memory', transport: 'stdio', command: process.execPath, args: [memory], env: { MEMORY_FILE_PATH: join(dataDir, 'memory.jsonl') } }),
    });
    expect(added.status).toBe(201);
    const hasMemory = async () => ((await (await api('/v1/mcp/tools?server=memory', { token: stack.adminToken })).json()) as { total: number }).total > 0;
    for (let i = 0; i < 100 && !(await hasMemory()); i++) await new Promise((r) => setTimeout(r, 100));
    const graph = await api('/v1/mcp/tools/memory.read_graph/call', { method: 'POST', token: stack.adminToken, body: JSON.stringify({ arguments: {} }) });
    expect(graph.status).toBe(200);
    expect(await problem(await api('/v1/mcp/servers', { method: 'POST', token: stack.adminToken, body: JSON.stringify({ name: 'meta', transport: 'http', url: 'http://169.254.169.254/' }) }))).toEqual({ status: 400, code: 'URL_NOT_ALLOWED' });
    expect((await api('/v1/mcp/servers/memory', { method: 'DELETE', token: stack.adminToken })).status).toBe(200);
    for (let i = 0; i < 50 && (await hasMemory()); i++) await new Promise((r) => setTimeout(r, 100));
    expect(await hasMemory()).toBe(false);
  }, 60_000);

  it('serves the whole catalog to a standard MCP client at the printed /mcp URL', async () => {
    const client = new Client({ name: 'e2e', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { requestInit: { headers: { authorization: `Bearer ${token(['l1'], ['ziggie'])}` } } }));
    try {
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name)).toContain('everything.echo');
      const echo = await client.callTool({ name: 'everything.echo', arguments: { message: 'through /mcp' } });
      expect(JSON.stringify(echo.content)).toContain('through /mcp');
    } finally {
      await client.close();
    }
  });

  it('serves health, readiness and Prometheus metrics on every service', async () => {
    for (const [name, p] of Object.entries(stack.ports.services)) {
      const ready = await fetch(`http://127.0.0.1:${p.http}/readyz`);
      expect([name, ready.status]).toEqual([name, 200]);
      const metrics = await (await fetch(`http://127.0.0.1:${p.http}/metrics`)).text();
      expect(metrics).toContain(`ziggie_process_resident_memory_bytes{service="${name}"}`);
    }
  });
});
