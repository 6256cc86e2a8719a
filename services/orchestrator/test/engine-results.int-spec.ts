import { QualityGate, Streams, Subject } from '@ziggie/contracts';
import { createKysely, HealthRegistry, json, Kysely, loadConfig, migrate, NatsService, sql } from '@ziggie/platform';
import { Migrator } from 'kysely';
// The modules, not the index: this suite needs no cluster.
import { startNats, type NatsServerHandle } from '../../../test/support/nats';
import { startPostgres, type PostgresHandle } from '../../../test/support/postgres';
import { waitFor } from '../../../test/support/processes';
import { TaskLifecycle } from '../src/engine/lifecycle';
import { ResultRecorder } from '../src/engine/results';
import { StepResult } from '../src/engine/steps';
import { UnitOfWork } from '../src/engine/unit-of-work';
import { EventPublisher } from '../src/events';
import { storedTaskEvents } from './support/events';
import { migrations, OrchestratorDb } from '../src/migrations';
import { HeldLease } from '../src/pool-leases';
import { ToolCapacity } from '../src/tool-capacity';

jest.setTimeout(30_000);

const principal = { subject: 'ops@test', roles: ['admin'], workspaces: ['*'] };
const STARTED = '2030-01-01T10:00:00.000Z';
const FINISHED = '2030-01-01T10:00:05.000Z';

interface StepSeed {
  id: string;
  wave?: number;
  /** The attempt out now; earlier ones are stored as failed. */
  attempt?: number;
  status?: 'dispatched' | 'running' | 'pending';
  retries?: number;
  retryBackoffMs?: number;
  qualityGate?: QualityGate;
  action?: string;
  input?: Record<string, unknown>;
  pool?: string;
  /** The workspace-coord lease the current attempt holds. */
  leaseId?: string;
}

const result = (taskId: string, stepId: string, attempt: number, fields: Partial<StepResult> = {}): StepResult => ({
  taskId,
  stepId,
  attemptId: `${taskId}.${stepId}.${attempt}`,
  agentId: 'l3-test',
  status: 'succeeded',
  output: { text: `${stepId} done` },
  startedAt: STARTED,
  finishedAt: FINISHED,
  ...fields,
});

describe('ResultRecorder on a Postgres server and a nats-server', () => {
  let pg: PostgresHandle | undefined;
  let server: NatsServerHandle | undefined;
  let db: Kysely<OrchestratorDb>;
  let nats: NatsService;
  let uow: UnitOfWork;
  let lifecycle: TaskLifecycle;
  let toolCapacity: ToolCapacity;
  let recorder: ResultRecorder;
  /** Leases given back: workspace-coord's lease release is another service, recorded here instead. */
  const released: HeldLease[] = [];
  /** Tasks advanced by a transaction of their own after a commit (results advance theirs in the same one). */
  const advancedAfterCommit: string[] = [];
  const cancels: Array<{ taskId: string; attemptIds: string[]; reason: string }> = [];

  beforeAll(async () => {
    [pg, server] = await Promise.all([startPostgres(), startNats()]);
    db = createKysely<OrchestratorDb>(pg.url);
    await migrate(db as Kysely<unknown>, 'orchestrator', migrations);
    const config = loadConfig('orchestrator', undefined, { ZIGGIE_JWT_SECRET: 'integration-secret-0123', NATS_URL: server.url });
    nats = new NatsService(config, { streams: [Streams.events], consumers: [] }, new HealthRegistry());
    await nats.start();
    nats.subscribeCore(Subject.StepCancel, (c) => cancels.push(c));
    uow = new UnitOfWork(() => db, nats, new EventPublisher(nats, () => db), { release: (l) => released.push(...l) }, undefined);
    lifecycle = new TaskLifecycle(uow, () => db, () => undefined);
    uow.wire({
      advance: (id) => {
        advancedAfterCommit.push(id);
        return lifecycle.advance(id);
      },
      pump: () => undefined,
      cancelChildren: async () => {},
    });
    toolCapacity = new ToolCapacity();
    recorder = new ResultRecorder(uow, lifecycle, toolCapacity, 100);
  }, 60_000);

  afterAll(async () => {
    await nats?.onApplicationShutdown();
    await db?.destroy();
    await pg?.stop();
    await server?.stop();
  });

  async function seedTasks(tasks: Array<{ id: string; waveCount?: number; steps: StepSeed[] }>): Promise<void> {
    await db
      .insertInto('tasks')
      .values(
        tasks.map((t) => ({
          id: t.id,
          title: t.id,
          workspace: 'alpha',
          priority: 'P1',
          status: 'running',
          current_wave: 1,
          wave_count: t.waveCount ?? 1,
          principal: json(principal),
          correlation_id: t.id,
        })),
      )
      .execute();
    const steps = tasks.flatMap((t) => t.steps.map((s, ordinal) => ({ taskId: t.id, s, ordinal })));
    await db
      .insertInto('steps')
      .values(
        steps.map(({ taskId, s, ordinal }) => ({
          task_id: taskId,
          id: s.id,
          ordinal,
          wave: s.wave ?? 1,
          capability: 'qa',
          action: s.action ?? 'llm',
          workspace: 'alpha',
          input: json(s.input ?? { prompt: s.id }),
          depends_on: json([]),
          retries: s.retries ?? 0,
          retry_backoff_ms: s.retryBackoffMs ?? 0,
          timeout_ms: 30_000,
          status: s.status ?? 'dispatched',
          attempt: s.status === 'pending' ? 0 : (s.attempt ?? 1),
          agent_id: 'l3-test',
          dispatched_at: new Date(),
          quality_gate: s.qualityGate ? json(s.qualityGate) : null,
          pool: s.pool ?? null,
        })),
      )
      .execute();
    const attempts = steps.flatMap(({ taskId, s }) => {
      if (s.status === 'pending') return [];
      const current = s.attempt ?? 1;
      return Array.from({ length: current }, (_, i) => i + 1).map((attempt) => ({
        task_id: taskId,
        step_id: s.id,
        attempt,
        agent_id: 'l3-test',
        status: attempt === current ? (s.status ?? 'dispatched') : 'failed',
        error_code: attempt === current ? null : 'TOOL_FAILED',
        error_message: attempt === current ? null : 'earlier attempt',
        dispatched_at: new Date(),
        lease_id: attempt === current ? (s.leaseId ?? null) : null,
      }));
    });
    if (attempts.length > 0) await db.insertInto('step_attempts').values(attempts).execute();
  }

  const stepRow = (taskId: string, stepId: string) => db.selectFrom('steps').selectAll().where('task_id', '=', taskId).where('id', '=', stepId).executeTakeFirstOrThrow();
  const attemptRow = (taskId: string, stepId: string, attempt: number) =>
    db.selectFrom('step_attempts').selectAll().where('task_id', '=', taskId).where('step_id', '=', stepId).where('attempt', '=', attempt).executeTakeFirstOrThrow();
  const taskRow = (taskId: string) => db.selectFrom('tasks').selectAll().where('id', '=', taskId).executeTakeFirstOrThrow();
  const ledgerOf = (taskId: string) => db.selectFrom('step_ledger').select(['attempt_id', 'status']).where('task_id', '=', taskId).orderBy('attempt_id').execute();
  /** The id of the transaction that last wrote a row: rows written by one transaction share it. */
  const xmin = async (table: 'tasks' | 'steps' | 'step_attempts' | 'step_ledger', where: string) =>
    (await sql<{ x: string }>`select xmin::text as x from ${sql.table(table)} where ${sql.raw(where)}`.execute(db)).rows.map((r) => r.x);

  const eventsOf = (taskId: string) => storedTaskEvents(nats, taskId);
  const typesOf = async (taskId: string) => (await eventsOf(taskId)).map((e) => `${e.type}${e.stepId ? `:${e.stepId}` : ''}`);

  it('records a succeeded result: the step with its output, the attempt, step.succeeded, and the single-step task succeeded in the same transaction', async () => {
    await seedTasks([{ id: 'tsk_ok', steps: [{ id: 'a' }] }]);

    await recorder.record([result('tsk_ok', 'a', 1, { output: { text: 'all done', score: 3 } })]);

    const step = await stepRow('tsk_ok', 'a');
    expect(step).toMatchObject({
      status: 'succeeded',
      output: { text: 'all done', score: 3 },
      error_code: null,
      error_message: null,
      started_at: new Date(STARTED),
      finished_at: new Date(FINISHED),
      next_attempt_at: null,
      waiting_reason: null,
    });
    expect(await attemptRow('tsk_ok', 'a', 1)).toMatchObject({ status: 'succeeded', started_at: new Date(STARTED), finished_at: new Date(FINISHED), error_code: null });
    expect(await ledgerOf('tsk_ok')).toEqual([{ attempt_id: 'tsk_ok.a.1', status: 'succeeded' }]);
    const task = await taskRow('tsk_ok');
    expect(task).toMatchObject({ status: 'succeeded', output: { steps: { a: { text: 'all done', score: 3 } } }, error_code: null, event_seq: 3 });
    expect(task.finished_at).toBeInstanceOf(Date);

    const events = await eventsOf('tsk_ok');
    expect(events.map((e) => [e.seq, e.type, e.status])).toEqual([
      [1, 'step.succeeded', 'succeeded'],
      [2, 'wave.succeeded', 'succeeded'],
      [3, 'task.succeeded', 'succeeded'],
    ]);
    expect(events[0]).toMatchObject({ taskId: 'tsk_ok', stepId: 'a', wave: 1, agentId: 'l3-test' });
    // One transaction wrote the step, its attempt, its ledger row and the task's end; no second one advanced it.
    const ids = [
      ...(await xmin('steps', "task_id = 'tsk_ok'")),
      ...(await xmin('step_attempts', "task_id = 'tsk_ok'")),
      ...(await xmin('step_ledger', "task_id = 'tsk_ok'")),
      ...(await xmin('tasks', "id = 'tsk_ok'")),
    ];
    expect(ids).toHaveLength(4);
    expect(new Set(ids).size).toBe(1);
    expect(advancedAfterCommit).not.toContain('tsk_ok');
  });

  it('records the same result once, whether it comes twice in one batch or again later: one ledger row, one event, nothing rewritten', async () => {
    // Two waves: the task stays running, so a second recording would show as a second step.succeeded.
    await seedTasks([{ id: 'tsk_dup', waveCount: 2, steps: [{ id: 'a' }, { id: 'b', wave: 2, status: 'pending' }] }]);
    const r = result('tsk_dup', 'a', 1);

    await recorder.record([r, r]);
    const stepAfterFirst = await xmin('steps', "task_id = 'tsk_dup' and id = 'a'");
    const attemptAfterFirst = await xmin('step_attempts', "task_id = 'tsk_dup'");
    expect(await typesOf('tsk_dup')).toEqual(['step.succeeded:a', 'wave.succeeded', 'wave.started']);

    await recorder.record([r]);
    await recorder.record([{ ...r, status: 'failed', output: undefined, error: { code: 'TOOL_FAILED', message: 'a late contradiction' } }]);

    expect(await ledgerOf('tsk_dup')).toEqual([{ attempt_id: 'tsk_dup.a.1', status: 'succeeded' }]);
    expect(await typesOf('tsk_dup')).toEqual(['step.succeeded:a', 'wave.succeeded', 'wave.started']);
    expect(await stepRow('tsk_dup', 'a')).toMatchObject({ status: 'succeeded', output: { text: 'a done' }, error_code: null });
    expect(await xmin('steps', "task_id = 'tsk_dup' and id = 'a'")).toEqual(stepAfterFirst);
    expect(await xmin('step_attempts', "task_id = 'tsk_dup'")).toEqual(attemptAfterFirst);
    expect(await taskRow('tsk_dup')).toMatchObject({ status: 'running', current_wave: 2, event_seq: 3 });
  });

  it('ignores results and running notices for an older attempt than the step is on', async () => {
    await seedTasks([{ id: 'tsk_old', steps: [{ id: 'a', attempt: 2, retries: 3 }] }]);
    const before = await xmin('steps', "task_id = 'tsk_old'");

    await recorder.record([result('tsk_old', 'a', 1, { status: 'running', output: undefined, finishedAt: undefined })]);
    await recorder.record([result('tsk_old', 'a', 1)]);
    await recorder.record([result('tsk_old', 'a', 1, { status: 'failed', output: undefined, error: { code: 'TOOL_FAILED', message: 'stale' } })]);

    expect(await stepRow('tsk_old', 'a')).toMatchObject({ status: 'dispatched', attempt: 2, output: null, started_at: null, finished_at: null, error_code: null });
    expect(await xmin('steps', "task_id = 'tsk_old'")).toEqual(before);
    expect(await attemptRow('tsk_old', 'a', 1)).toMatchObject({ status: 'failed', error_message: 'earlier attempt', finished_at: null });
    expect(await attemptRow('tsk_old', 'a', 2)).toMatchObject({ status: 'dispatched', started_at: null, finished_at: null });
    expect(await eventsOf('tsk_old')).toEqual([]);
    expect(await taskRow('tsk_old')).toMatchObject({ status: 'running', event_seq: 0 });
  });

  it('moves many dispatched steps to running in one call, with their attempts and step.running events', async () => {
    await seedTasks([
      { id: 'tsk_run1', steps: [{ id: 'a' }, { id: 'b' }, { id: 'c' }] },
      { id: 'tsk_run2', steps: [{ id: 'x' }, { id: 'y', attempt: 2, retries: 1 }] },
    ]);
    const notice = (taskId: string, stepId: string, attempt: number, agentId: string) =>
      result(taskId, stepId, attempt, { status: 'running', output: undefined, finishedAt: undefined, agentId });

    await recorder.record([
      notice('tsk_run1', 'a', 1, 'agent-a'),
      notice('tsk_run1', 'b', 1, 'agent-b'),
      notice('tsk_run1', 'c', 1, 'agent-c'),
      notice('tsk_run2', 'x', 1, 'agent-x'),
      // Stale: step y is on its second attempt.
      notice('tsk_run2', 'y', 1, 'agent-y'),
    ]);

    const steps = await db.selectFrom('steps').select(['task_id', 'id', 'status', 'started_at']).where('task_id', 'in', ['tsk_run1', 'tsk_run2']).orderBy('task_id').orderBy('id').execute();
    expect(steps).toEqual([
      { task_id: 'tsk_run1', id: 'a', status: 'running', started_at: new Date(STARTED) },
      { task_id: 'tsk_run1', id: 'b', status: 'running', started_at: new Date(STARTED) },
      { task_id: 'tsk_run1', id: 'c', status: 'running', started_at: new Date(STARTED) },
      { task_id: 'tsk_run2', id: 'x', status: 'running', started_at: new Date(STARTED) },
      { task_id: 'tsk_run2', id: 'y', status: 'dispatched', started_at: null },
    ]);
    const attempts = await db
      .selectFrom('step_attempts')
      .select(['task_id', 'step_id', 'attempt', 'status', 'started_at'])
      .where('task_id', 'in', ['tsk_run1', 'tsk_run2'])
      .orderBy('task_id')
      .orderBy('step_id')
      .orderBy('attempt')
      .execute();
    expect(attempts).toEqual([
      { task_id: 'tsk_run1', step_id: 'a', attempt: 1, status: 'running', started_at: new Date(STARTED) },
      { task_id: 'tsk_run1', step_id: 'b', attempt: 1, status: 'running', started_at: new Date(STARTED) },
      { task_id: 'tsk_run1', step_id: 'c', attempt: 1, status: 'running', started_at: new Date(STARTED) },
      { task_id: 'tsk_run2', step_id: 'x', attempt: 1, status: 'running', started_at: new Date(STARTED) },
      { task_id: 'tsk_run2', step_id: 'y', attempt: 1, status: 'failed', started_at: null },
      { task_id: 'tsk_run2', step_id: 'y', attempt: 2, status: 'dispatched', started_at: null },
    ]);
    expect((await eventsOf('tsk_run1')).map((e) => [e.type, e.stepId, e.agentId, e.status, e.wave])).toEqual([
      ['step.running', 'a', 'agent-a', 'running', 1],
      ['step.running', 'b', 'agent-b', 'running', 1],
      ['step.running', 'c', 'agent-c', 'running', 1],
    ]);
    expect((await eventsOf('tsk_run2')).map((e) => [e.type, e.stepId, e.agentId])).toEqual([['step.running', 'x', 'agent-x']]);
    // The running notices went through one transaction.
    expect(new Set(await xmin('steps', "task_id in ('tsk_run1', 'tsk_run2') and status = 'running'")).size).toBe(1);

    // A second notice for a running step changes nothing.
    await recorder.record([notice('tsk_run1', 'a', 1, 'agent-a')]);
    expect(await eventsOf('tsk_run1')).toHaveLength(3);
  });

  it('puts a failed step with retries left back to pending after a backoff: step.retrying, the attempt failed with its code and message', async () => {
    await seedTasks([{ id: 'tsk_retry', steps: [{ id: 'a', retries: 2, retryBackoffMs: 60_000, status: 'running' }] }]);
    const before = Date.now();
    await recorder.record([result('tsk_retry', 'a', 1, { status: 'failed', output: undefined, error: { code: 'TOOL_FAILED', message: 'upstream said no' } })]);
    const after = Date.now();

    const step = await stepRow('tsk_retry', 'a');
    expect(step).toMatchObject({ status: 'pending', attempt: 1, finished_at: null, capacity_waits: 0, error_code: 'TOOL_FAILED', error_message: 'upstream said no' });
    // First retry: half the backoff fixed, half random.
    expect(step.next_attempt_at).toBeInstanceOf(Date);
    expect(step.next_attempt_at!.getTime()).toBeGreaterThanOrEqual(before + 30_000);
    expect(step.next_attempt_at!.getTime()).toBeLessThanOrEqual(after + 60_000);
    expect(step.waiting_reason).toBe(`retry 2 of 3 after ${step.next_attempt_at!.toISOString()}`);
    expect(await attemptRow('tsk_retry', 'a', 1)).toMatchObject({ status: 'failed', error_code: 'TOOL_FAILED', error_message: 'upstream said no', finished_at: new Date(FINISHED) });
    expect((await eventsOf('tsk_retry')).map((e) => [e.type, e.stepId, e.status, e.message])).toEqual([['step.retrying', 'a', 'pending', 'TOOL_FAILED: upstream said no']]);
    expect(await taskRow('tsk_retry')).toMatchObject({ status: 'running', error_code: null, finished_at: null });
  });

  it('fails a step with no retry left, and its task with TASK_STEP_FAILED; the other in-flight step is cancelled and its runtime told', async () => {
    await seedTasks([{ id: 'tsk_fail', steps: [{ id: 'a', attempt: 2, retries: 1, status: 'running' }, { id: 'b' }] }]);

    await recorder.record([result('tsk_fail', 'a', 2, { status: 'failed', output: undefined, error: { code: 'TOOL_FAILED', message: 'upstream said no' } })]);

    expect(await stepRow('tsk_fail', 'a')).toMatchObject({
      status: 'failed',
      attempt: 2,
      error_code: 'TOOL_FAILED',
      error_message: 'upstream said no',
      finished_at: new Date(FINISHED),
      next_attempt_at: null,
      waiting_reason: null,
    });
    expect(await attemptRow('tsk_fail', 'a', 2)).toMatchObject({ status: 'failed', error_code: 'TOOL_FAILED', error_message: 'upstream said no' });
    expect(await taskRow('tsk_fail')).toMatchObject({
      status: 'failed',
      error_code: 'TASK_STEP_FAILED',
      error_message: 'step a failed: TOOL_FAILED: upstream said no',
      failed_step_id: 'a',
    });
    expect(await stepRow('tsk_fail', 'b')).toMatchObject({ status: 'cancelled' });
    expect(await attemptRow('tsk_fail', 'b', 1)).toMatchObject({ status: 'cancelled' });
    expect((await eventsOf('tsk_fail')).map((e) => [e.type, e.stepId, e.message])).toEqual([
      ['step.failed', 'a', 'TOOL_FAILED: upstream said no'],
      ['step.cancelled', 'b', 'step a failed: TOOL_FAILED: upstream said no'],
      ['wave.failed', undefined, undefined],
      ['task.failed', undefined, 'step a failed: TOOL_FAILED: upstream said no'],
    ]);
    await waitFor(() => cancels.some((c) => c.taskId === 'tsk_fail'), { timeoutMs: 5_000, what: 'the cancel notice for tsk_fail' });
    expect(cancels.filter((c) => c.taskId === 'tsk_fail')).toEqual([{ taskId: 'tsk_fail', attemptIds: ['tsk_fail.b.1'], reason: 'step a failed: TOOL_FAILED: upstream said no' }]);
  });

  it('fails a succeeded result whose output its quality gate rejects with QUALITY_GATE_FAILED, and passes one the gate accepts', async () => {
    const gate: QualityGate = { rejectPatterns: ['lorem\\s+ipsum', 'as an ai'] };
    await seedTasks([{ id: 'tsk_gate', steps: [{ id: 'clean', qualityGate: gate }, { id: 'dirty', qualityGate: gate }] }]);

    await recorder.record([
      result('tsk_gate', 'clean', 1, { output: { text: 'A proper summary.' } }),
      result('tsk_gate', 'dirty', 1, { output: { text: 'Lorem  Ipsum dolor sit amet' } }),
    ]);

    const reason = 'output contains rejected content "Lorem  Ipsum" (pattern "lorem\\\\s+ipsum")';
    expect(await stepRow('tsk_gate', 'clean')).toMatchObject({ status: 'succeeded', error_code: null });
    expect(await stepRow('tsk_gate', 'dirty')).toMatchObject({
      status: 'failed',
      output: { text: 'Lorem  Ipsum dolor sit amet' },
      error_code: 'QUALITY_GATE_FAILED',
      error_message: reason,
    });
    expect(await attemptRow('tsk_gate', 'dirty', 1)).toMatchObject({ status: 'failed', error_code: 'QUALITY_GATE_FAILED', error_message: reason });
    expect(await ledgerOf('tsk_gate')).toEqual([
      { attempt_id: 'tsk_gate.clean.1', status: 'succeeded' },
      { attempt_id: 'tsk_gate.dirty.1', status: 'succeeded' },
    ]);
    expect(await taskRow('tsk_gate')).toMatchObject({ status: 'failed', error_code: 'TASK_STEP_FAILED', error_message: `step dirty failed: QUALITY_GATE_FAILED: ${reason}` });
    expect(await typesOf('tsk_gate')).toEqual(['step.succeeded:clean', 'step.failed:dirty', 'wave.failed', 'task.failed']);
  });

  it('keeps a step refused for tool capacity pending without using a retry, and learns the tool\'s limit', async () => {
    const capacity = new ToolCapacity();
    const capacityRecorder = new ResultRecorder(uow, lifecycle, capacity, 100);
    await seedTasks([{ id: 'tsk_cap', steps: [{ id: 'echo', action: 'tool', input: { tool: 'everything.echo', arguments: {} }, retries: 0 }] }]);
    expect(capacity.active).toBe(false);
    const message = 'everything.echo admits 3 calls at once for ops@test';

    const before = Date.now();
    await capacityRecorder.record([
      result('tsk_cap', 'echo', 1, { status: 'failed', output: undefined, error: { code: 'TOOL_CONCURRENCY_LIMITED', message, retryAfterSeconds: 2, limit: 3, scope: 'tool' } }),
    ]);
    const after = Date.now();

    const step = await stepRow('tsk_cap', 'echo');
    expect(step).toMatchObject({ status: 'pending', attempt: 1, capacity_waits: 1, finished_at: null });
    expect(step.next_attempt_at!.getTime()).toBeGreaterThanOrEqual(before + 2_000);
    expect(step.next_attempt_at!.getTime()).toBeLessThanOrEqual(after + 2_400);
    expect(step.waiting_reason).toBe(`waiting for capacity (TOOL_CONCURRENCY_LIMITED: ${message}); next attempt after ${step.next_attempt_at!.toISOString()}`);
    expect(await attemptRow('tsk_cap', 'echo', 1)).toMatchObject({ status: 'refused', error_code: 'TOOL_CONCURRENCY_LIMITED', error_message: message, finished_at: new Date(FINISHED) });
    expect((await eventsOf('tsk_cap')).map((e) => [e.type, e.stepId, e.status, e.message])).toEqual([['step.waiting', 'echo', 'pending', step.waiting_reason]]);
    expect(await taskRow('tsk_cap')).toMatchObject({ status: 'running', error_code: null });

    expect(capacity.active).toBe(true);
    expect(capacity.keysOf('ops@test', 'everything.echo')).toEqual([{ key: expect.any(String), limit: 3, label: 'tool everything.echo for caller ops@test' }]);
    // The limit is the caller's for that tool, not the server's.
    expect(capacity.keysOf('ops@test', 'everything.add')).toEqual([]);
    expect(capacity.full(capacity.inFlight([{ subject: 'ops@test', tool: 'everything.echo', n: 2 }]))).toEqual([]);
    expect(capacity.full(capacity.inFlight([{ subject: 'ops@test', tool: 'everything.echo', n: 3 }]))).toEqual([
      { scope: 'tool', subject: 'ops@test', tool: 'everything.echo', reason: 'waiting for capacity: tool everything.echo for caller ops@test admits 3 calls at once' },
    ]);
  });

  it('gives the lease of every attempt that ends back to workspace-coord, under the attempt id as holder', async () => {
    released.length = 0;
    await seedTasks([
      {
        id: 'tsk_lease',
        steps: [
          { id: 'render', pool: 'gpu', leaseId: 'lease-7' },
          { id: 'upscale', pool: 'gpu', leaseId: 'lease-8', attempt: 1, retries: 1 },
          { id: 'caption' },
        ],
      },
    ]);

    await recorder.record([
      result('tsk_lease', 'render', 1),
      result('tsk_lease', 'upscale', 1, { status: 'failed', output: undefined, error: { code: 'TOOL_FAILED', message: 'out of memory' } }),
      result('tsk_lease', 'caption', 1),
    ]);

    expect([...released].sort((a, b) => a.holder.localeCompare(b.holder))).toEqual([
      { holder: 'tsk_lease.render.1', pool: 'gpu' },
      { holder: 'tsk_lease.upscale.1', pool: 'gpu' },
    ]);
    expect(await stepRow('tsk_lease', 'upscale')).toMatchObject({ status: 'pending' });
  });

  it('records results enqueued concurrently in batches of at most its batch size, and resolves every one', async () => {
    const n = 250;
    const ids = Array.from({ length: n }, (_, i) => `tsk_q${String(i).padStart(3, '0')}`);
    await seedTasks(ids.map((id) => ({ id, steps: [{ id: 'a' }] })));

    const settled = await Promise.allSettled(ids.map((id) => recorder.enqueue(result(id, 'a', 1))));

    expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(n);
    const steps = await db.selectFrom('steps').select(['status']).where('task_id', 'in', ids).execute();
    expect(steps.filter((s) => s.status === 'succeeded')).toHaveLength(n);
    const tasks = await db.selectFrom('tasks').select(['status']).where('id', 'in', ids).execute();
    expect(tasks.filter((t) => t.status === 'succeeded')).toHaveLength(n);
    // Rows written by one transaction share its id: 100 + 100 + 50.
    const perTransaction = new Map<string, number>();
    for (const x of await xmin('steps', "task_id like 'tsk_q%'")) perTransaction.set(x, (perTransaction.get(x) ?? 0) + 1);
    expect([...perTransaction.values()].sort((a, b) => b - a)).toEqual([100, 100, 50]);
    expect(await typesOf(ids[n - 1]!)).toEqual(['step.succeeded:a', 'wave.succeeded', 'task.succeeded']);

    // Once the queue has drained, the next result starts a new batch of its own.
    await seedTasks([{ id: 'tsk_q_late', steps: [{ id: 'a' }] }]);
    await recorder.enqueue(result('tsk_q_late', 'a', 1));
    expect(await stepRow('tsk_q_late', 'a')).toMatchObject({ status: 'succeeded' });
  });

  it('gives an attempt its own start time, not the step\'s from an earlier attempt, and leaves a refused step\'s started_at as it was', async () => {
    const OLD = '2029-12-31T09:00:00.000Z';
    await seedTasks([
      { id: 'tsk_start2', steps: [{ id: 'a', attempt: 2, retries: 1 }] },
      { id: 'tsk_start_ref', steps: [{ id: 'echo', action: 'tool', input: { tool: 'everything.echo', arguments: {} } }] },
    ]);
    // The step's started_at is attempt 1's; attempt 2 sent no running notice, so its row has none.
    await db.updateTable('steps').set({ started_at: new Date(OLD) }).where('task_id', '=', 'tsk_start2').where('id', '=', 'a').execute();
    expect(await attemptRow('tsk_start2', 'a', 2)).toMatchObject({ started_at: null });

    await recorder.record([result('tsk_start2', 'a', 2)]);

    expect(await attemptRow('tsk_start2', 'a', 2)).toMatchObject({ status: 'succeeded', started_at: new Date(STARTED), finished_at: new Date(FINISHED) });
    expect(await attemptRow('tsk_start2', 'a', 1)).toMatchObject({ status: 'failed', started_at: null });

    // A capacity refusal started nothing: the step keeps no start time; the refused attempt has the result's.
    expect(await stepRow('tsk_start_ref', 'echo')).toMatchObject({ started_at: null });
    await recorder.record([
      result('tsk_start_ref', 'echo', 1, {
        status: 'failed',
        output: undefined,
        error: { code: 'TOOL_CONCURRENCY_LIMITED', message: 'everything.echo is busy', retryAfterSeconds: 2 },
      }),
    ]);

    expect(await stepRow('tsk_start_ref', 'echo')).toMatchObject({ status: 'pending', capacity_waits: 1, started_at: null });
    expect(await attemptRow('tsk_start_ref', 'echo', 1)).toMatchObject({ status: 'refused', started_at: new Date(STARTED), finished_at: new Date(FINISHED) });
  });
});

describe("migration '0005-step-error-codes' on a Postgres server", () => {
  let pg: PostgresHandle | undefined;
  let db: Kysely<OrchestratorDb> | undefined;

  afterAll(async () => {
    await db?.destroy();
    await pg?.stop();
  });

  it('splits the "CODE: message" text of steps and attempts written before into a code and a message', async () => {
    pg = await startPostgres();
    db = createKysely<OrchestratorDb>(pg.url);
    // The platform's migrate() runs everything; kysely's Migrator with the first four stops before 0005,
    // on the migration table the platform uses.
    const before = Object.fromEntries(Object.entries(migrations).filter(([name]) => name < '0005'));
    const { error, results } = await new Migrator({
      db,
      provider: { getMigrations: () => Promise.resolve(before) },
      migrationTableName: 'orchestrator_migration',
      migrationLockTableName: 'orchestrator_migration_lock',
    }).migrateToLatest();
    expect(error).toBeUndefined();
    expect(results?.map((r) => r.migrationName)).toEqual(['0001_tasks', '0002_scheduling_governance_blueprints', '0003_pool_leases_workspace_stats', '0004_capacity_waits']);

    await sql`insert into tasks (id, title, workspace, priority, status, wave_count, principal, correlation_id)
              values ('tsk_old', 'old', 'alpha', 'P1', 'failed', 1, ${JSON.stringify(principal)}::jsonb, 'tsk_old')`.execute(db);
    await sql`insert into steps (task_id, id, ordinal, wave, action, workspace, input, depends_on, retries, timeout_ms, status, error) values
              ('tsk_old', 'limited', 0, 1, 'tool', 'alpha', '{}', '[]', 0, 1000, 'failed', 'TOOL_RATE_LIMITED: slow down'),
              ('tsk_old', 'plain', 1, 1, 'llm', 'alpha', '{}', '[]', 0, 1000, 'failed', 'plain text'),
              ('tsk_old', 'fine', 2, 1, 'llm', 'alpha', '{}', '[]', 0, 1000, 'succeeded', null)`.execute(db);
    await sql`insert into step_attempts (task_id, step_id, attempt, status, error, dispatched_at) values
              ('tsk_old', 'limited', 1, 'failed', 'TOOL_RATE_LIMITED: slow down', now()),
              ('tsk_old', 'plain', 1, 'failed', 'plain text', now()),
              ('tsk_old', 'fine', 1, 'succeeded', null, now())`.execute(db);

    // 0005 and whatever came after it.
    expect(await migrate(db as Kysely<unknown>, 'orchestrator', migrations)).toEqual(Object.keys(migrations).filter((name) => name >= '0005'));

    const expected = [
      { id: 'fine', error_code: null, error_message: null },
      { id: 'limited', error_code: 'TOOL_RATE_LIMITED', error_message: 'slow down' },
      { id: 'plain', error_code: 'STEP_FAILED', error_message: 'plain text' },
    ];
    expect(await db.selectFrom('steps').select(['id', 'error_code', 'error_message']).orderBy('id').execute()).toEqual(expected);
    expect(await db.selectFrom('step_attempts').select(['step_id as id', 'error_code', 'error_message']).orderBy('step_id').execute()).toEqual(expected);
    const left = await sql<{ table_name: string }>`
      select table_name from information_schema.columns
      where table_schema = current_schema() and table_name in ('steps', 'step_attempts') and column_name = 'error'`.execute(db);
    expect(left.rows).toEqual([]);
  });
});
