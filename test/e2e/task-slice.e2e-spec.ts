import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
    stack = await startStack({ dataDir, ports: await allocateFreePorts(), logLevel: 'warn' });
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
    expect(await (await submit({ steps: [{ id: 'a', capability: 'juggling' }] })).json()).toMatchObject({ status: 400, code: 'TASK_UNKNOWN_CAPABILITY' });
    expect(await (await submit({ steps: [{ id: 'a', capability: 'qa', dependsOn: ['ghost'] }] })).json()).toMatchObject({ status: 400, code: 'TASK_UNKNOWN_DEPENDENCY' });
    expect(await (await submit({ steps: [{ id: 'A B', capability: 'qa' }] })).json()).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(await (await submit({ steps: [] })).json()).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(await (await submit({ steps: [{ id: 'a', capability: 'qa' }] }, { unknownField: 1 })).json()).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(await (await api('/v1/tasks', { method: 'POST', token: stack.adminToken, body: JSON.stringify({ workspace: 'nowhere', plan: { steps: [{ id: 'a', capability: 'qa' }] } }) })).json()).toMatchObject({
      status: 400,
      code: 'TASK_UNKNOWN_WORKSPACE',
    });
    const badJson = await api('/v1/tasks', { method: 'POST', token: stack.adminToken, body: '{"workspace":' });
    expect(await badJson.json()).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
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
    expect(servers.items).toEqual([expect.objectContaining({ name: 'everything', transport: 'stdio', status: 'ready' })]);
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
