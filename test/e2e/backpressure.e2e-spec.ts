import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocateFreePorts, startStack, StackHandle } from '../../cli/src/stack';

interface AttemptView {
  number: number;
  status: string;
  error: { code: string; message: string } | null;
  dispatchedAt: string | null;
  finishedAt: string | null;
}
interface StepView {
  id: string;
  status: string;
  attempt: number;
  retries: number;
  attempts: AttemptView[];
}
interface TaskView {
  id: string;
  status: string;
  waves: Array<{ steps: StepView[] }>;
}

const CONCURRENCY = 2;
const TASKS = 10;

/**
 * Capacity is a reason to wait, not to fail: with the MCP gateway admitting 2 concurrent calls
 * per tool, 10 one-step tasks without retries calling one slow tool at once all succeed. The
 * calls the gateway refused (TOOL_CONCURRENCY_LIMITED, retryAfterSeconds 1) show as refused
 * attempts, the step waits at least that long before its next one, and no retry is used.
 */
describe('backpressure: steps refused for capacity wait and succeed', () => {
  let dataDir: string;
  let stack: StackHandle;
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${stack.gatewayUrl}${path}`, { ...init, headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.adminToken}` } });

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'ziggie-backpressure-e2e-'));
    stack = await startStack({
      dataDir,
      ports: await allocateFreePorts(),
      logLevel: 'warn',
      env: { MCP_TOOL_CONCURRENCY: String(CONCURRENCY), RATE_LIMIT_USER_PER_MIN: '100000', RATE_LIMIT_ADMIN_PER_MIN: '100000' },
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it(`runs ${TASKS} tasks at once on a tool limited to ${CONCURRENCY} calls, each without retries, and every one succeeds`, async () => {
    const ids = await Promise.all(
      Array.from({ length: TASKS }, async (_, i) => {
        const res = await api('/v1/tasks', {
          method: 'POST',
          body: JSON.stringify({
            title: `backpressure ${i}`,
            workspace: 'ziggie',
            plan: {
              steps: [{ id: 'slow', capability: 'art', retries: 0, input: { tool: 'everything.trigger-long-running-operation', arguments: { duration: 0.5, steps: 1 } } }],
            },
          }),
        });
        const body = (await res.json()) as { id: string };
        expect(res.status).toBe(201);
        return body.id;
      }),
    );

    const deadline = Date.now() + 90_000;
    let tasks: TaskView[] = [];
    for (;;) {
      tasks = await Promise.all(ids.map(async (id) => (await (await api(`/v1/tasks/${id}`)).json()) as TaskView));
      if (tasks.every((t) => ['succeeded', 'failed', 'cancelled'].includes(t.status)) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }

    expect(tasks.map((t) => t.status)).toEqual(ids.map(() => 'succeeded'));
    const steps = tasks.map((t) => t.waves[0]!.steps[0]!);
    for (const s of steps) {
      expect(s.retries).toBe(0);
      // Only the last attempt ran; every earlier one was refused for capacity.
      expect(s.attempts.at(-1)?.status).toBe('succeeded');
      for (const a of s.attempts.slice(0, -1)) {
        expect(a.status).toBe('refused');
        expect(a.error?.code).toBe('TOOL_CONCURRENCY_LIMITED');
      }
    }
    const refused = steps.flatMap((s) => s.attempts.map((a, i) => ({ a, next: s.attempts[i + 1] })).filter(({ a }) => a.status === 'refused'));
    // Ten slow calls at once against two slots: some were refused (the first round knows no limit yet).
    expect(refused.length).toBeGreaterThan(0);
    for (const { a, next } of refused) {
      // The gateway said "retry in 1 s": the next attempt was not dispatched before that.
      expect(Date.parse(next!.dispatchedAt!) - Date.parse(a.finishedAt!)).toBeGreaterThanOrEqual(1000);
    }
  }, 150_000);

  it('holds steps back once it learned the limit, and shows why they wait', async () => {
    const submit = () =>
      api('/v1/tasks', {
        method: 'POST',
        body: JSON.stringify({
          title: 'hold the slots',
          workspace: 'ziggie',
          plan: { steps: [{ id: 'slow', capability: 'art', input: { tool: 'everything.trigger-long-running-operation', arguments: { duration: 3, steps: 1 } } }] },
        }),
      }).then(async (r) => ((await r.json()) as { id: string }).id);
    const ids = await Promise.all(Array.from({ length: CONCURRENCY + 1 }, submit));
    const deadline = Date.now() + 30_000;
    let held: { status: string; attempt: number; attempts: unknown[]; waitingReason: string | null } | undefined;
    while (!held && Date.now() < deadline) {
      for (const id of ids) {
        const t = (await (await api(`/v1/tasks/${id}`)).json()) as { waves: Array<{ steps: Array<{ status: string; attempt: number; attempts: unknown[]; waitingReason: string | null }> }> };
        const s = t.waves[0]!.steps[0]!;
        if (s.status === 'pending' && s.waitingReason) held = s;
      }
      if (!held) await new Promise((r) => setTimeout(r, 100));
    }
    // The first test's refusals taught the scheduler the gateway's limit for this caller and tool:
    // the third step is not dispatched to be refused, it waits for one of the two to finish.
    expect(held).toMatchObject({
      status: 'pending',
      attempts: [],
      attempt: 0,
      waitingReason: `waiting for capacity: tool everything.trigger-long-running-operation for caller admin@local admits ${CONCURRENCY} calls at once`,
    });
    for (const id of ids) await api(`/v1/tasks/${id}/cancel`, { method: 'POST', body: '{}' });
  }, 60_000);
});
