import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signDevToken } from '@ziggie/platform';
import { allocateFreePorts, startStack, StackHandle } from '../../cli/src/stack';

interface StepView {
  id: string;
  status: string;
  agentId: string | null;
  attempt: number;
  output: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
  dispatchedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  waitingReason: string | null;
  approvedBy: string | null;
  childTaskId: string | null;
  attempts: Array<{ number: number; status: string; error: { code: string; message: string } | null }>;
}
interface TaskView {
  id: string;
  status: string;
  priority: string;
  errorCode: string | null;
  errorMessage: string | null;
  failedStepId: string | null;
  output: Record<string, unknown> | null;
  notBefore: string | null;
  blueprint: string | null;
  parentTaskId: string | null;
  depth: number;
  createdAt: string;
  waves: Array<{ index: number; status: string; steps: StepView[] }>;
}

const echo = (id: string, message: string, extra: object = {}) => ({ id, capability: 'qa', input: { tool: 'everything.echo', arguments: { message } }, ...extra });
const longOp = (id: string, seconds: number, extra: object = {}) => ({
  id,
  capability: 'art',
  input: { tool: 'everything.trigger-long-running-operation', arguments: { duration: seconds, steps: 2 } },
  ...extra,
});
const stepsOf = (t: TaskView) => Object.fromEntries(t.waves.flatMap((w) => w.steps).map((s) => [s.id, s]));

/**
 * Orchestration semantics through the REST API of the real local stack: blueprints, approval
 * gates, governance policies and budgets, quality gates and retries, delayed start,
 * cancellation, priorities under a workspace concurrency limit, delegation and LLM steps.
 */
describe('orchestration through the REST API of the local stack', () => {
  let dataDir: string;
  let stack: StackHandle;
  const token = (roles: string[], workspaces: string[] = ['*']) =>
    signDevToken({ subject: `${roles.join('+')}@e2e`, roles, workspaces, ttlSeconds: 900 }, { secret: stack.jwtSecret, issuer: 'ziggie-local', audience: 'ziggie-api' });
  const api = (path: string, init: RequestInit & { token?: string } = {}) =>
    fetch(`${stack.gatewayUrl}${path}`, {
      ...init,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${init.token ?? stack.adminToken}`, ...(init.headers ?? {}) },
    });
  const post = async (path: string, body: unknown, t?: string) => api(path, { method: 'POST', body: JSON.stringify(body), token: t });
  const submit = async (body: object): Promise<TaskView> => {
    const res = await post('/v1/tasks', { workspace: 'ziggie', ...body });
    const json = (await res.json()) as TaskView;
    if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${JSON.stringify(json)}`);
    return json;
  };
  const getTask = async (id: string) => (await (await api(`/v1/tasks/${id}`)).json()) as TaskView;
  const waitTask = async (id: string, until: (t: TaskView) => boolean, timeoutMs = 45_000): Promise<TaskView> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const t = await getTask(id);
      if (until(t)) return t;
      if (Date.now() > deadline) throw new Error(`task ${id} did not reach the expected state: ${JSON.stringify(t, null, 1).slice(0, 2000)}`);
      await new Promise((r) => setTimeout(r, 150));
    }
  };
  const terminal = (t: TaskView) => ['succeeded', 'failed', 'cancelled'].includes(t.status);

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'ziggie-orch-e2e-'));
    stack = await startStack({
      dataDir,
      ports: await allocateFreePorts(),
      logLevel: 'warn',
      // One step at a time in simstudio, to observe priorities; a fast reconcile for delayed starts.
      // Polling from one token would exceed the per-user limit of an operator's defaults.
      env: { WORKSPACE_LIMITS: '{"simstudio":1}', RECONCILE_INTERVAL_MS: '1000', RATE_LIMIT_USER_PER_MIN: '100000', RATE_LIMIT_ADMIN_PER_MIN: '100000' },
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it('manages versioned blueprints: built-ins listed, create, duplicate version refused, run by name@version, bad inputs refused', async () => {
    const list = (await (await api('/v1/blueprints')).json()) as { items: Array<{ name: string; version: string; builtin: boolean }> };
    expect(list.items.filter((b) => b.builtin).map((b) => b.name).sort()).toEqual(['character-variations', 'comic-strip']);

    const blueprint = {
      name: 'greetings',
      version: '1.0.0',
      description: 'greets N people, then sums up',
      inputSchema: { type: 'object', properties: { who: { type: 'array', items: { type: 'string' }, minItems: 1 } }, required: ['who'] },
      outputSchema: { type: 'object', required: ['summary'] },
      template: {
        steps: [
          { id: 'greet', capability: 'content', fanOut: { forEach: '{{inputs.who}}' }, input: { tool: 'everything.echo', arguments: { message: 'hello {{fanOut.item}}' } } },
          { id: 'sum-up', capability: 'qa', dependsOn: ['greet'], input: { tool: 'everything.echo', arguments: { message: 'all: {{steps.greet.output.text}}' } } },
        ],
      },
      outputs: { summary: '{{steps.sum-up.output.text}}' },
    };
    const created = await post('/v1/blueprints', blueprint);
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/v1/blueprints/greetings/versions/1.0.0');
    expect(await (await post('/v1/blueprints', blueprint)).json()).toMatchObject({ status: 409, code: 'BLUEPRINT_EXISTS' });
    expect(await (await post('/v1/blueprints', { ...blueprint, version: '2.0.0' }, token(['l1']))).json()).toMatchObject({ status: 403, code: 'AUTH_FORBIDDEN' });
    expect(await (await post('/v1/blueprints', { ...blueprint, version: '2.0.0', template: { steps: [] } })).json()).toMatchObject({ status: 400, code: 'BLUEPRINT_INVALID' });
    expect(await (await api('/v1/blueprints/greetings')).json()).toMatchObject({ name: 'greetings', version: '1.0.0' });

    const bad = await post('/v1/tasks', { workspace: 'ziggie', blueprint: 'greetings@1.0.0', inputs: { who: [] } });
    expect(await bad.json()).toMatchObject({ status: 400, code: 'BLUEPRINT_INPUT_INVALID' });
    expect(await (await post('/v1/tasks', { workspace: 'ziggie', blueprint: 'greetings@9.9.9', inputs: {} })).json()).toMatchObject({ status: 404, code: 'BLUEPRINT_NOT_FOUND' });

    const task = await submit({ blueprint: 'greetings@1.0.0', inputs: { who: ['Ada', 'Grace', 'Linus'] } });
    expect(task.blueprint).toBe('greetings@1.0.0');
    const done = await waitTask(task.id, terminal);
    expect(done.status).toBe('succeeded');
    expect(done.waves.map((w) => w.steps.map((s) => s.id))).toEqual([['greet-1', 'greet-2', 'greet-3'], ['sum-up']]);
    const summary = String(done.output?.summary);
    for (const who of ['Ada', 'Grace', 'Linus']) expect(summary).toContain(`hello ${who}`);

    expect(await (await api('/v1/blueprints/comic-strip/versions/1.0.0', { method: 'DELETE' })).json()).toMatchObject({ status: 409, code: 'BLUEPRINT_BUILTIN' });
    expect((await api('/v1/blueprints/greetings/versions/1.0.0', { method: 'DELETE' })).status).toBe(204);
    expect(await (await api('/v1/blueprints/greetings')).json()).toMatchObject({ status: 404, code: 'BLUEPRINT_NOT_FOUND' });
  }, 60_000);

  it('holds an approval step until it is approved, and fails the task naming the step when one is rejected', async () => {
    const plan = { steps: [echo('draft', 'draft'), { id: 'sign-off', capability: 'qa', action: 'approval', dependsOn: ['draft'] }, echo('publish', 'published', { dependsOn: ['sign-off'] })] };
    const task = await submit({ plan });
    const waiting = await waitTask(task.id, (t) => stepsOf(t)['sign-off']?.status === 'waiting_approval');
    expect(waiting.status).toBe('running');
    expect(stepsOf(waiting).publish!.status).toBe('pending');
    expect(await (await post(`/v1/tasks/${task.id}/steps/publish/approve`, {})).json()).toMatchObject({ status: 409, code: 'STEP_NOT_WAITING_APPROVAL' });
    expect(await (await post(`/v1/tasks/${task.id}/steps/nope/approve`, {})).json()).toMatchObject({ status: 404, code: 'STEP_NOT_FOUND' });
    expect(await (await post(`/v1/tasks/${task.id}/steps/sign-off/approve`, { decision: 'maybe' })).json()).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    const approved = await post(`/v1/tasks/${task.id}/steps/sign-off/approve`, { comment: 'looks good' });
    expect(approved.status).toBe(200);
    const done = await waitTask(task.id, terminal);
    expect(done.status).toBe('succeeded');
    expect(stepsOf(done)['sign-off']).toMatchObject({ status: 'succeeded', approvedBy: 'admin@local', output: expect.objectContaining({ approved: true, comment: 'looks good' }) });

    const rejected = await submit({ plan });
    await waitTask(rejected.id, (t) => stepsOf(t)['sign-off']?.status === 'waiting_approval');
    await post(`/v1/tasks/${rejected.id}/steps/sign-off/approve`, { decision: 'reject', comment: 'not on brand' });
    const failed = await waitTask(rejected.id, terminal);
    expect(failed).toMatchObject({ status: 'failed', errorCode: 'STEP_REJECTED', failedStepId: 'sign-off' });
    expect(failed.errorMessage).toMatch(/step sign-off failed: STEP_REJECTED: rejected by admin@local: not on brand/);
    expect(stepsOf(failed).publish!.status).toBe('cancelled');
  }, 60_000);

  it('governs every dispatch: deny and require-approval policies with recorded decisions, and budgets refused at submission', async () => {
    const create = async (p: object) => {
      const res = await post('/v1/policies', p);
      expect(res.status).toBe(201);
      return ((await res.json()) as { id: string }).id;
    };
    expect(await (await post('/v1/policies', { name: 'x', effect: 'maybe' })).json()).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(await (await post('/v1/policies', { name: 'x', effect: 'deny' }, token(['l1']))).json()).toMatchObject({ status: 403, code: 'AUTH_FORBIDDEN' });
    const deny = await create({ name: 'no sums in fitflow', effect: 'deny', match: { tools: ['everything.get-*'], workspaces: ['fitflow'] }, priority: 10 });
    const approval = await create({ name: 'long work needs sign-off', effect: 'require_approval', match: { tools: ['everything.trigger-*'], workspaces: ['fitflow'] }, priority: 20 });
    const budget = await create({ name: 'at most 3 data steps', effect: 'deny', match: { capabilities: ['data'], workspaces: ['fitflow'] }, budget: { maxSteps: 3 } });
    try {
      const denied = await submit({ workspace: 'fitflow', plan: { steps: [{ id: 'sum', capability: 'data', input: { tool: 'everything.get-sum', arguments: { a: 1, b: 2 } } }] } });
      const failed = await waitTask(denied.id, terminal);
      expect(failed).toMatchObject({ status: 'failed', failedStepId: 'sum' });
      expect(failed.errorMessage).toMatch(/POLICY_DENIED: policy no sums in fitflow/);

      const held = await submit({ workspace: 'fitflow', plan: { steps: [longOp('render', 1)] } });
      const waiting = await waitTask(held.id, (t) => stepsOf(t).render?.status === 'waiting_approval');
      expect(stepsOf(waiting).render!.waitingReason).toMatch(/long work needs sign-off/);
      await post(`/v1/tasks/${held.id}/steps/render/approve`, {});
      const done = await waitTask(held.id, terminal);
      expect(done.status).toBe('succeeded');
      expect(stepsOf(done).render!.approvedBy).toBe('admin@local');

      const decisions = (await (await api(`/v1/tasks/${held.id}/decisions`)).json()) as { items: Array<{ effect: string; policyName: string; stepId: string }> };
      expect(decisions.items.map((d) => [d.stepId, d.policyName, d.effect]).sort()).toEqual(
        [
          ['render', 'approval gate', 'allow'],
          ['render', 'long work needs sign-off', 'allow'],
          ['render', 'long work needs sign-off', 'require_approval'],
        ].sort(),
      );
      const all = (await (await api(`/v1/policies/decisions?taskId=${denied.id}`)).json()) as { items: Array<{ effect: string }> };
      expect(all.items.map((d) => d.effect)).toEqual(['deny']);

      const overBudget = await post('/v1/tasks', {
        workspace: 'fitflow',
        plan: { steps: ['a', 'b', 'c', 'd'].map((id) => ({ id, capability: 'data', input: { tool: 'everything.echo', arguments: { message: id } } })) },
      });
      expect(overBudget.status).toBe(403);
      expect(await overBudget.json()).toMatchObject({ code: 'TASK_BUDGET_EXCEEDED', detail: expect.stringMatching(/4 matching steps, the budget is 3/) });

      const listed = (await (await api('/v1/policies')).json()) as { items: Array<{ id: string; name: string }>; total: number };
      expect(listed.items.map((p) => p.id)).toEqual([deny, approval, budget]);
      const updated = await api(`/v1/policies/${deny}`, { method: 'PUT', body: JSON.stringify({ name: 'no sums in fitflow', effect: 'deny', enabled: false, match: { tools: ['everything.get-*'] } }) });
      expect(await updated.json()).toMatchObject({ id: deny, enabled: false });
    } finally {
      for (const id of [deny, approval, budget]) expect((await api(`/v1/policies/${id}`, { method: 'DELETE' })).status).toBe(204);
    }
    expect(await (await api(`/v1/policies/${deny}`)).json()).toMatchObject({ status: 404, code: 'POLICY_NOT_FOUND' });
  }, 90_000);

  it('fails a step whose output fails its quality gate after its retries, with the reason and every attempt', async () => {
    const task = await submit({
      plan: { steps: [echo('draft', 'contains forbidden words', { retries: 1, qualityGate: { rejectPatterns: ['forbidden'] } }), echo('after', 'never', { dependsOn: ['draft'] })] },
    });
    const done = await waitTask(task.id, terminal);
    expect(done).toMatchObject({ status: 'failed', failedStepId: 'draft' });
    expect(done.errorMessage).toMatch(/QUALITY_GATE_FAILED: output contains rejected content "forbidden"/);
    const draft = stepsOf(done).draft!;
    expect(draft.attempts.map((a) => [a.number, a.status])).toEqual([
      [1, 'failed'],
      [2, 'failed'],
    ]);
    expect(stepsOf(done).after!.status).toBe('cancelled');
    const invalid = await post('/v1/tasks', { workspace: 'ziggie', plan: { steps: [echo('x', 'x', { qualityGate: { rejectPatterns: ['('] } })] } });
    // Refused at the edge by the shared plan schema, naming the pattern and RE2's reason.
    const refused = (await invalid.json()) as { status: number; code: string; detail: string };
    expect(refused).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(refused.detail).toContain('pattern "(" is not a supported regular expression');
  }, 60_000);

  it('starts a task no earlier than notBefore', async () => {
    const notBefore = new Date(Date.now() + 2_500).toISOString();
    const task = await submit({ notBefore, plan: { steps: [echo('later', 'later')] } });
    expect(task.status).toBe('queued');
    expect(task.notBefore).toBe(notBefore);
    const done = await waitTask(task.id, terminal);
    expect(done.status).toBe('succeeded');
    expect(new Date(stepsOf(done).later!.dispatchedAt!).getTime()).toBeGreaterThanOrEqual(new Date(notBefore).getTime());
  }, 30_000);

  it('cancels a running task: in-flight steps are cancelled and nothing is left waiting', async () => {
    const task = await submit({ plan: { steps: [longOp('slow', 20), echo('next', 'never', { dependsOn: ['slow'] })] } });
    await waitTask(task.id, (t) => stepsOf(t).slow?.status === 'running');
    const res = await post(`/v1/tasks/${task.id}/cancel`, { reason: 'changed my mind' });
    expect(res.status).toBe(200);
    const done = await waitTask(task.id, terminal);
    expect(done).toMatchObject({ status: 'cancelled', errorCode: 'TASK_CANCELLED', errorMessage: 'changed my mind' });
    expect(Object.values(stepsOf(done)).map((s) => s.status)).toEqual(['cancelled', 'cancelled']);
  }, 30_000);

  it('dispatches by priority within a workspace concurrency limit (P0 before queued P2s, one at a time)', async () => {
    const p2 = [];
    for (let i = 0; i < 3; i++) p2.push(await submit({ workspace: 'simstudio', priority: 'P2', plan: { steps: [longOp(`low-${i}`, 1)] } }));
    const p0 = await submit({ workspace: 'simstudio', priority: 'P0', plan: { steps: [longOp('urgent', 1)] } });
    const all = await Promise.all([...p2, p0].map((t) => waitTask(t.id, terminal, 60_000)));
    for (const t of all) expect(t.status).toBe('succeeded');
    const step = (t: TaskView) => t.waves[0]!.steps[0]!;
    const byDispatch = [...all].sort((a, b) => new Date(step(a).dispatchedAt!).getTime() - new Date(step(b).dispatchedAt!).getTime());
    // The first P2 was already running when P0 arrived; P0 takes the next slot.
    expect(byDispatch.map((t) => t.priority)).toEqual(['P2', 'P0', 'P2', 'P2']);
    // Never two in flight at once in simstudio.
    for (let i = 1; i < byDispatch.length; i++) {
      expect(new Date(step(byDispatch[i]!).dispatchedAt!).getTime()).toBeGreaterThanOrEqual(new Date(step(byDispatch[i - 1]!).finishedAt!).getTime());
    }
  }, 90_000);

  it('delegates a step into a child plan run by the delegating agent\'s children, once', async () => {
    const task = await submit({
      plan: {
        steps: [
          {
            id: 'research-brief',
            capability: 'research',
            action: 'delegate',
            input: { plan: { steps: [echo('collect', 'sources', { capability: 'research' }), echo('digest', 'digest', { capability: 'research', dependsOn: ['collect'] })] } },
          },
        ],
      },
    });
    const done = await waitTask(task.id, terminal, 60_000);
    expect(done.status).toBe('succeeded');
    const parentStep = stepsOf(done)['research-brief']!;
    expect(parentStep.agentId).toMatch(/^l1-ziggie-/);
    const childId = parentStep.childTaskId!;
    expect(parentStep.output).toMatchObject({ childTaskId: childId });
    const child = await getTask(childId);
    expect(child).toMatchObject({ status: 'succeeded', parentTaskId: task.id, depth: 1 });
    for (const s of Object.values(stepsOf(child))) expect(s.agentId).toMatch(new RegExp(`^l2-${parentStep.agentId!.slice(3)}-`));
    const children = (await (await api(`/v1/tasks?parentTaskId=${task.id}`)).json()) as { total: number };
    expect(children.total).toBe(1);
  }, 90_000);

  it('fails an LLM step clearly when no LLM is configured', async () => {
    const task = await submit({ plan: { steps: [{ id: 'write', capability: 'content', action: 'llm', input: { prompt: 'Write a haiku' } }] } });
    const done = await waitTask(task.id, terminal);
    expect(done).toMatchObject({ status: 'failed', failedStepId: 'write' });
    expect(done.errorMessage).toMatch(/LLM_NOT_CONFIGURED/);
  }, 30_000);
});
