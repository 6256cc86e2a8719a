import { Logger } from '@nestjs/common';
import { PayloadOf, Streams, Subject, ZiggieError } from '@ziggie/contracts';
import { createKysely, HealthRegistry, Insertable, json, Kysely, loadConfig, migrate, NatsService, sql } from '@ziggie/platform';
import type { Subscription } from 'nats';
// The modules it uses, not the support index: that also loads the multi-service cluster harness.
import { startNats, type NatsServerHandle } from '../../../test/support/nats';
import { startPostgres, type PostgresHandle } from '../../../test/support/postgres';
import { waitFor } from '../../../test/support/processes';
import { NewTask, TaskLifecycle } from '../src/engine/lifecycle';
import { lockTasks } from '../src/engine/steps';
import { AfterCommit, UnitOfWork } from '../src/engine/unit-of-work';
import { EventPublisher, TaskEvent } from '../src/events';
import { storedTaskEvents } from './support/events';
import { migrations, OrchestratorDb, StepTable } from '../src/migrations';
import { HeldLease, PoolLeases } from '../src/pool-leases';

jest.setTimeout(30_000);

type StepCancel = PayloadOf<Subject.StepCancel>;

const principal = { subject: 'ops@test', roles: ['admin'], workspaces: ['*'] };

/**
 * Leases are granted and taken back by workspace-coord, another service: the unit of work only
 * hands them to PoolLeases.release, so this records what it was handed.
 */
class RecordingLeases implements Pick<PoolLeases, 'release'> {
  readonly released: HeldLease[] = [];

  release(leases: Iterable<HeldLease>): void {
    this.released.push(...leases);
  }

  of(taskId: string): HeldLease[] {
    return this.released.filter((l) => l.holder.startsWith(`${taskId}.`));
  }
}

let ids = 0;
const newId = (what: string) => `tsk_${what}_${++ids}`;

interface StepSpec {
  id: string;
  action?: string;
  status?: string;
  pool?: string;
}

/** A task as TasksService submits it: its steps by wave, all pending unless told otherwise. */
function newTask(id: string, waves: Array<Array<string | StepSpec>>, opts: { status?: 'queued' | 'running'; notBefore?: Date; parent?: { taskId: string; stepId: string } } = {}): NewTask {
  const status = opts.status ?? 'running';
  const steps: Array<Insertable<StepTable>> = [];
  waves.forEach((wave, w) =>
    wave.forEach((s) => {
      const spec = typeof s === 'string' ? { id: s } : s;
      steps.push({
        task_id: id,
        id: spec.id,
        ordinal: steps.length,
        wave: w + 1,
        capability: 'qa',
        action: spec.action ?? 'tool',
        workspace: 'alpha',
        input: json<Record<string, unknown>>({ tool: 'everything.echo', arguments: { message: spec.id } }),
        depends_on: json<string[]>([]),
        retries: 0,
        timeout_ms: 30_000,
        status: spec.status ?? 'pending',
        pool: spec.pool ?? null,
        waiting_reason: spec.status === 'waiting_approval' ? 'waiting for approval' : null,
      });
    }),
  );
  return {
    task: {
      id,
      title: id,
      workspace: 'alpha',
      priority: 'P1',
      status,
      current_wave: status === 'running' ? 1 : 0,
      wave_count: waves.length,
      principal: json(principal),
      correlation_id: id,
      not_before: opts.notBefore ?? null,
      parent_task_id: opts.parent?.taskId ?? null,
      parent_step_id: opts.parent?.stepId ?? null,
    },
    steps,
    parent: opts.parent,
  };
}

const describeEvent = (e: TaskEvent): string => [e.seq, e.type, e.wave === undefined ? '' : `w${e.wave}`, e.stepId ?? '', e.status].filter((p) => p !== '').join(' ');

describe('TaskLifecycle and UnitOfWork on PostgreSQL and a nats-server', () => {
  let pg: PostgresHandle | undefined;
  let server: NatsServerHandle | undefined;
  let db: Kysely<OrchestratorDb>;
  let nats: NatsService;
  let cancelSub: Subscription;
  const cancels: StepCancel[] = [];
  const leases = new RecordingLeases();
  let uow: UnitOfWork;
  let lifecycle: TaskLifecycle;
  /** What the after-commit hooks were asked to do, in order ("pump", "advance:<id>", "cancelChildren:<id>"). */
  const calls: string[] = [];
  /** Advances and child cancellations the hooks started, awaited by settle(). */
  const pending: Array<Promise<void>> = [];

  beforeAll(async () => {
    pg = await startPostgres();
    db = createKysely<OrchestratorDb>(pg.url);
    await migrate(db as Kysely<unknown>, 'orchestrator', migrations);
    server = await startNats();
    const config = loadConfig('orchestrator', undefined, { ZIGGIE_JWT_SECRET: 'integration-secret-0123', NATS_URL: server.url });
    nats = new NatsService(config, { streams: [Streams.events], consumers: [] }, new HealthRegistry());
    await nats.start();
    cancelSub = nats.subscribeCore(Subject.StepCancel, (c) => cancels.push(c));
    uow = new UnitOfWork(() => db, nats, new EventPublisher(nats, () => db), leases, undefined);
    lifecycle = new TaskLifecycle(uow, () => db, () => undefined);
    // As EngineService wires them, minus the scheduler: a pump is only recorded.
    uow.wire({
      advance: (taskId) => {
        calls.push(`advance:${taskId}`);
        const p = lifecycle.advance(taskId);
        pending.push(p);
        return p;
      },
      pump: () => calls.push('pump'),
      cancelChildren: (parentIds) => {
        for (const id of parentIds) calls.push(`cancelChildren:${id}`);
        const p = lifecycle.cancelChildren(parentIds);
        pending.push(p);
        return p;
      },
    });
  }, 60_000);

  afterEach(async () => {
    await settle();
    await uow.flushCarried();
  });

  afterAll(async () => {
    lifecycle?.stop();
    cancelSub?.unsubscribe();
    await nats?.onApplicationShutdown();
    await db?.destroy();
    await server?.stop();
    await pg?.stop();
  });

  /** Waits for what the hooks started, including what those started in turn. */
  async function settle(): Promise<void> {
    while (pending.length > 0) await Promise.all(pending.splice(0));
  }

  const eventsOf = (taskId: string) => storedTaskEvents(nats, taskId);

  const published = async (taskId: string) => (await eventsOf(taskId)).map(describeEvent);
  const outboxOf = async (taskId: string) => (await db.selectFrom('event_outbox').select('seq').where('task_id', '=', taskId).orderBy('seq').execute()).map((r) => r.seq);
  const taskRow = (id: string) => db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirst();
  const stepRows = (taskId: string) => db.selectFrom('steps').selectAll().where('task_id', '=', taskId).orderBy('ordinal').execute();
  const statuses = async (taskId: string) => Object.fromEntries((await stepRows(taskId)).map((s) => [s.id, s.status]));
  const attempts = async (taskId: string) =>
    (await db.selectFrom('step_attempts').selectAll().where('task_id', '=', taskId).orderBy('step_id').orderBy('attempt').execute()).map((a) => ({
      attempt: `${a.step_id}.${a.attempt}`,
      status: a.status,
      finished: a.finished_at !== null,
    }));

  async function setStep(taskId: string, stepId: string, fields: Partial<Insertable<StepTable>>): Promise<void> {
    const r = await db.updateTable('steps').set(fields).where('task_id', '=', taskId).where('id', '=', stepId).executeTakeFirst();
    expect(r.numUpdatedRows).toBe(1n);
  }

  /** A step a runtime holds: dispatched or running, with its attempt rows (the last one in flight). */
  async function inFlight(taskId: string, stepId: string, status: 'dispatched' | 'running', attempt: number, leaseId: string | null): Promise<void> {
    await setStep(taskId, stepId, { status, attempt, dispatched_at: new Date(), agent_id: 'l3-qa' });
    for (let a = 1; a <= attempt; a++) {
      const last = a === attempt;
      await db
        .insertInto('step_attempts')
        .values({
          task_id: taskId,
          step_id: stepId,
          attempt: a,
          agent_id: 'l3-qa',
          status: last ? status : 'failed',
          error_code: last ? null : 'TOOL_ERROR',
          error_message: last ? null : 'earlier attempt failed',
          dispatched_at: new Date(),
          finished_at: last ? null : new Date(),
          lease_id: last ? leaseId : null,
        })
        .execute();
    }
  }

  const succeeded = (taskId: string, stepId: string, output: Record<string, unknown>) =>
    setStep(taskId, stepId, { status: 'succeeded', output: json(output), finished_at: new Date() });

  const cancelsOf = (taskId: string) => cancels.filter((c) => c.taskId === taskId);
  const waitForCancel = (taskId: string) => waitFor(() => cancelsOf(taskId).length > 0, { timeoutMs: 5_000, what: `a StepCancel notice for ${taskId}` });

  async function errorOf(p: Promise<unknown>): Promise<ZiggieError> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ZiggieError);
    return err as ZiggieError;
  }

  describe('create', () => {
    it('inserts a running task with its steps, publishes task.queued, task.running and wave.started as 1, 2, 3, and the next transaction clears them from the outbox', async () => {
      const id = newId('create');
      const before = calls.length;
      expect(await lifecycle.create(newTask(id, [['a', 'b'], ['c']]))).toBeDefined();

      const task = await taskRow(id);
      expect(task).toMatchObject({ status: 'running', current_wave: 1, wave_count: 2, event_seq: 3, finished_at: null });
      expect((await stepRows(id)).map((s) => `${s.id} w${s.wave} ${s.status}`)).toEqual(['a w1 pending', 'b w1 pending', 'c w2 pending']);
      expect(await published(id)).toEqual(['1 task.queued queued', '2 task.running running', '3 wave.started w1 running']);
      expect(calls.slice(before)).toEqual(['pump']);

      // Published, still in the outbox: the housekeeping rides on the next transaction.
      expect(await outboxOf(id)).toEqual([1, 2, 3]);
      expect(uow.pendingHousekeeping).toEqual({ outbox: 3, published: 0 });
      const queued = newId('create');
      expect(await lifecycle.create(newTask(queued, [['a']], { status: 'queued', notBefore: new Date(Date.now() + 3_600_000) }))).toBeDefined();
      expect(await outboxOf(id)).toEqual([]);
      expect(await outboxOf(queued)).toEqual([1]);
      expect(uow.pendingHousekeeping).toEqual({ outbox: 1, published: 0 });
      await uow.flushCarried();
      expect(await outboxOf(queued)).toEqual([]);
      expect(uow.pendingHousekeeping).toEqual({ outbox: 0, published: 0 });
    });

    it('gives a queued task only task.queued and no scheduling round', async () => {
      const id = newId('queued');
      const before = calls.length;
      expect(await lifecycle.create(newTask(id, [['a']], { status: 'queued', notBefore: new Date(Date.now() + 3_600_000) }))).toBeDefined();
      expect(await taskRow(id)).toMatchObject({ status: 'queued', current_wave: 0, event_seq: 1 });
      expect(await statuses(id)).toEqual({ a: 'pending' });
      expect(await published(id)).toEqual(['1 task.queued queued']);
      expect(calls.slice(before)).toEqual([]);
    });

    it('links a delegate step to its child once: a second child for the same parent step returns nothing and writes nothing', async () => {
      const parent = newId('parent');
      await lifecycle.create(newTask(parent, [[{ id: 'delegate', action: 'delegate' }]]));
      const child = newId('child');
      expect(await lifecycle.create(newTask(child, [['x']], { parent: { taskId: parent, stepId: 'delegate' } }))).toBeDefined();
      expect((await stepRows(parent))[0]!.child_task_id).toBe(child);
      await uow.flushCarried();

      const before = calls.length;
      const twin = newId('child');
      expect(await lifecycle.create(newTask(twin, [['x']], { parent: { taskId: parent, stepId: 'delegate' } }))).toBeUndefined();
      expect(await taskRow(twin)).toBeUndefined();
      expect(await stepRows(twin)).toEqual([]);
      expect(await outboxOf(twin)).toEqual([]);
      expect(await published(twin)).toEqual([]);
      expect((await stepRows(parent))[0]!.child_task_id).toBe(child);
      expect(uow.pendingHousekeeping).toEqual({ outbox: 0, published: 0 });
      expect(calls.slice(before)).toEqual([]);
    });
    it('writes submissions that arrive together in one transaction and answers each with its rows as inserted', async () => {
      const ids = [newId('together'), newId('together'), newId('together')];
      const created = await Promise.all(ids.map((id, i) => lifecycle.create(newTask(id, i === 2 ? [['b', 'a'], ['c']] : [['a']]))));

      expect(created.map((c) => c?.task.id)).toEqual(ids);
      expect(created[2]!.steps.map((s) => `${s.id} w${s.wave} ${s.status}`)).toEqual(['b w1 pending', 'a w1 pending', 'c w2 pending']);
      for (const [i, id] of ids.entries()) {
        // As inserted: its first events are numbered afterwards, in the same transaction.
        expect({ ...created[i]!.task, event_seq: 3 }).toEqual(await taskRow(id));
        expect(created[i]!.steps).toEqual(await stepRows(id));
        expect(await published(id)).toEqual(['1 task.queued queued', '2 task.running running', '3 wave.started w1 running']);
      }
      // Rows written by one transaction carry its id.
      const writers = await sql<{ xmin: string }>`select distinct xmin::text from tasks where id in (${sql.join(ids)})`.execute(db);
      expect(writers.rows).toHaveLength(1);
    });

    it('fails a bad submission alone: the tasks submitted with it are created', async () => {
      const [good1, bad, good2] = [newId('good'), newId('bad'), newId('good')];
      // Two steps with one id: the steps' primary key refuses the second.
      const outcomes = await Promise.allSettled([lifecycle.create(newTask(good1, [['a']])), lifecycle.create(newTask(bad, [['a', 'a']])), lifecycle.create(newTask(good2, [['a']]))]);

      expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(String((outcomes[1] as PromiseRejectedResult).reason)).toMatch(/duplicate key/);
      expect(await taskRow(bad)).toBeUndefined();
      expect(await stepRows(bad)).toEqual([]);
      expect(await published(bad)).toEqual([]);
      for (const id of [good1, good2]) {
        expect(await taskRow(id)).toMatchObject({ status: 'running', event_seq: 3 });
        expect(await published(id)).toEqual(['1 task.queued queued', '2 task.running running', '3 wave.started w1 running']);
      }
    });
  });

  describe('advance', () => {
    it('moves many tasks in one transaction: one ends, one fails, one opens its next wave, each task row written once by that transaction', async () => {
      const [ends, fails, moves] = [newId('batch-end'), newId('batch-fail'), newId('batch-move')];
      await Promise.all([lifecycle.create(newTask(ends, [['a']])), lifecycle.create(newTask(fails, [['a']])), lifecycle.create(newTask(moves, [['a'], ['b']]))]);
      await succeeded(ends, 'a', { text: 'A' });
      await setStep(fails, 'a', { status: 'failed', error_code: 'TOOL_ERROR', error_message: 'boom', finished_at: new Date() });
      await succeeded(moves, 'a', { text: 'A' });

      await uow.commit(async (trx, fx) => {
        const locked = await lockTasks(trx, [ends, fails, moves]);
        await lifecycle.advanceLocked(trx, fx, [...locked.values()]);
      });

      expect(await taskRow(ends)).toMatchObject({ status: 'succeeded', output: { steps: { a: { text: 'A' } } }, error_code: null });
      expect(await taskRow(fails)).toMatchObject({ status: 'failed', error_code: 'TASK_STEP_FAILED', error_message: 'step a failed: TOOL_ERROR: boom', failed_step_id: 'a', output: null });
      expect(await taskRow(moves)).toMatchObject({ status: 'running', current_wave: 2 });
      expect((await published(ends)).slice(3)).toEqual(['4 wave.succeeded w1 succeeded', '5 task.succeeded succeeded']);
      expect((await published(fails)).slice(3)).toEqual(['4 wave.failed w1 failed', '5 task.failed failed']);
      expect((await published(moves)).slice(3)).toEqual(['4 wave.succeeded w1 succeeded', '5 wave.started w2 running']);
      const writers = await sql<{ xmin: string }>`select distinct xmin::text from tasks where id in (${ends}, ${fails}, ${moves})`.execute(db);
      expect(writers.rows).toHaveLength(1);
      // One query for the children of both ended tasks.
      expect(calls).toEqual(expect.arrayContaining([`cancelChildren:${ends}`, `cancelChildren:${fails}`]));
    });

    it('leaves a wave with an open step alone, opens the next wave once it has none, and ends the task with the last wave\'s outputs', async () => {
      const id = newId('waves');
      await lifecycle.create(newTask(id, [['a', 'b'], ['c', 'd']]));
      await succeeded(id, 'a', { text: 'A' });
      await inFlight(id, 'b', 'running', 1, null);

      await lifecycle.advance(id);
      expect(await taskRow(id)).toMatchObject({ status: 'running', current_wave: 1, event_seq: 3 });

      await succeeded(id, 'b', { text: 'B' });
      const before = calls.length;
      await lifecycle.advance(id);
      expect(await taskRow(id)).toMatchObject({ status: 'running', current_wave: 2, event_seq: 5 });
      expect((await published(id)).slice(3)).toEqual(['4 wave.succeeded w1 succeeded', '5 wave.started w2 running']);
      expect(calls.slice(before)).toEqual(['pump']);

      await succeeded(id, 'c', { text: 'C' });
      await succeeded(id, 'd', { n: 4 });
      await lifecycle.advance(id);
      const done = await taskRow(id);
      expect(done).toMatchObject({ status: 'succeeded', error_code: null, error_message: null, failed_step_id: null, output: { steps: { c: { text: 'C' }, d: { n: 4 } } } });
      expect(done!.finished_at).toBeInstanceOf(Date);
      expect((await published(id)).slice(5)).toEqual(['6 wave.succeeded w2 succeeded', '7 task.succeeded succeeded']);
      expect(calls).toContain(`cancelChildren:${id}`);

      // An ended task stays as it is.
      await lifecycle.advance(id);
      expect((await taskRow(id))!.event_seq).toBe(7);
    });

    it('fails the task on its first failed step: open steps and in-flight attempts cancelled, runtimes told, leases given back', async () => {
      const id = newId('fail');
      await lifecycle.create(newTask(id, [['a', 'b', 'c', 'd', 'f'], ['e']]));
      await succeeded(id, 'a', { text: 'A' });
      await inFlight(id, 'c', 'dispatched', 1, 'lease-c');
      await setStep(id, 'c', { pool: 'gpu' });
      await inFlight(id, 'd', 'running', 2, null);
      // Two failures: the one that finished first names the task's failure, though it comes later
      // in the plan and was written last.
      await setStep(id, 'b', { status: 'failed', error_code: 'STEP_TIMEOUT', error_message: 'no result within 30000 ms', finished_at: new Date(Date.now() + 1_000) });
      await setStep(id, 'f', { status: 'failed', error_code: 'TOOL_ERROR', error_message: 'boom', finished_at: new Date() });

      await lifecycle.advance(id);

      const message = 'step f failed: TOOL_ERROR: boom';
      const task = await taskRow(id);
      expect(task).toMatchObject({ status: 'failed', error_code: 'TASK_STEP_FAILED', error_message: message, failed_step_id: 'f', output: null });
      expect(task!.finished_at).toBeInstanceOf(Date);
      expect(await statuses(id)).toEqual({ a: 'succeeded', b: 'failed', c: 'cancelled', d: 'cancelled', f: 'failed', e: 'cancelled' });
      for (const s of await stepRows(id)) if (s.status === 'cancelled') expect(s.finished_at).toBeInstanceOf(Date);
      expect(await attempts(id)).toEqual([
        { attempt: 'c.1', status: 'cancelled', finished: true },
        { attempt: 'd.1', status: 'failed', finished: true },
        { attempt: 'd.2', status: 'cancelled', finished: true },
      ]);

      const events = (await eventsOf(id)).slice(3);
      expect(events.map((e) => e.seq)).toEqual([4, 5, 6, 7, 8]);
      const stepCancels = events.slice(0, 3);
      expect(stepCancels.map((e) => `${e.type} ${e.stepId} w${e.wave}`).sort()).toEqual(['step.cancelled c w1', 'step.cancelled d w1', 'step.cancelled e w2']);
      for (const e of stepCancels) expect(e.message).toBe(message);
      expect(events.slice(3).map(describeEvent)).toEqual(['7 wave.failed w1 failed', '8 task.failed failed']);
      expect(events[4]!.message).toBe(message);

      await waitForCancel(id);
      expect(cancelsOf(id)).toHaveLength(1);
      expect({ ...cancelsOf(id)[0]!, attemptIds: [...cancelsOf(id)[0]!.attemptIds].sort() }).toEqual({ taskId: id, attemptIds: [`${id}.c.1`, `${id}.d.2`], reason: message });
      expect(leases.of(id)).toEqual([{ holder: `${id}.c.1`, pool: 'gpu' }]);
    });

    it('keeps STEP_REJECTED as the task\'s code when a rejected step fails it', async () => {
      const id = newId('rejected');
      await lifecycle.create(newTask(id, [['a', 'b']]));
      await setStep(id, 'a', { status: 'failed', error_code: 'STEP_REJECTED', error_message: 'rejected by lead@test', finished_at: new Date() });

      await lifecycle.advance(id);

      expect(await taskRow(id)).toMatchObject({ status: 'failed', error_code: 'STEP_REJECTED', error_message: 'step a failed: STEP_REJECTED: rejected by lead@test', failed_step_id: 'a' });
      expect(await statuses(id)).toEqual({ a: 'failed', b: 'cancelled' });
      expect((await published(id)).slice(3)).toEqual(['4 step.cancelled w1 b cancelled', '5 wave.failed w1 failed', '6 task.failed failed']);
      // Nothing was in flight: no notice, no lease.
      expect(leases.of(id)).toEqual([]);
    });

    it('advanceLocked moves every task the transaction locked: starts a queued one that may start, leaves a delayed one, skips an ended one', async () => {
      const ready = newId('ready');
      const delayed = newId('delayed');
      const waveDone = newId('wavedone');
      const ended = newId('ended');
      await lifecycle.create(newTask(ready, [['a']], { status: 'queued', notBefore: new Date(Date.now() - 1_000) }));
      await lifecycle.create(newTask(delayed, [['a']], { status: 'queued', notBefore: new Date(Date.now() + 3_600_000) }));
      await lifecycle.create(newTask(waveDone, [['a'], ['b']]));
      await succeeded(waveDone, 'a', {});
      await lifecycle.create(newTask(ended, [['a']]));
      await lifecycle.cancel(ended, 'not needed');
      const endedSeq = (await taskRow(ended))!.event_seq;

      const before = calls.length;
      await uow.commit(async (trx, fx) => {
        const locked = await lockTasks(trx, [ready, delayed, waveDone, ended]);
        await lifecycle.advanceLocked(trx, fx, [...locked.values()]);
      });

      expect(await taskRow(ready)).toMatchObject({ status: 'running', current_wave: 1 });
      expect(await published(ready)).toEqual(['1 task.queued queued', '2 task.running running', '3 wave.started w1 running']);
      expect(await taskRow(delayed)).toMatchObject({ status: 'queued', current_wave: 0, event_seq: 1 });
      expect(await taskRow(waveDone)).toMatchObject({ status: 'running', current_wave: 2 });
      expect((await published(waveDone)).slice(3)).toEqual(['4 wave.succeeded w1 succeeded', '5 wave.started w2 running']);
      expect(await taskRow(ended)).toMatchObject({ status: 'cancelled', event_seq: endedSeq });
      expect(calls.slice(before)).toEqual(['pump']);
    });
  });

  describe('cancel', () => {
    it('cancels a task with its open steps and running children, and does nothing to a task that has ended', async () => {
      const id = newId('cancel');
      await lifecycle.create(newTask(id, [['a', { id: 'sub', action: 'delegate' }], ['b']]));
      await inFlight(id, 'a', 'running', 1, 'lease-a');
      await setStep(id, 'a', { pool: 'cpu' });
      const child = newId('cancelchild');
      await lifecycle.create(newTask(child, [['x']], { parent: { taskId: id, stepId: 'sub' } }));
      await inFlight(id, 'sub', 'running', 1, null);

      await lifecycle.cancel(id, 'operator said stop');
      await settle();

      const task = await taskRow(id);
      expect(task).toMatchObject({ status: 'cancelled', error_code: 'TASK_CANCELLED', error_message: 'operator said stop', failed_step_id: null });
      expect(await statuses(id)).toEqual({ a: 'cancelled', sub: 'cancelled', b: 'cancelled' });
      expect(await attempts(id)).toEqual([
        { attempt: 'a.1', status: 'cancelled', finished: true },
        { attempt: 'sub.1', status: 'cancelled', finished: true },
      ]);
      const events = (await published(id)).slice(3);
      expect(events.slice(0, 3).map((e) => e.replace(/^\d+ /, '')).sort()).toEqual(['step.cancelled w1 a cancelled', 'step.cancelled w1 sub cancelled', 'step.cancelled w2 b cancelled']);
      expect(events.slice(3)).toEqual(['7 task.cancelled cancelled']);
      await waitForCancel(id);
      expect(cancelsOf(id).map((c) => ({ ...c, attemptIds: [...c.attemptIds].sort() }))).toEqual([{ taskId: id, attemptIds: [`${id}.a.1`, `${id}.sub.1`], reason: 'operator said stop' }]);
      expect(leases.of(id)).toEqual([{ holder: `${id}.a.1`, pool: 'cpu' }]);
      // The child went with its parent, through the cancelChildren hook.
      expect(calls).toContain(`cancelChildren:${id}`);
      expect(await taskRow(child)).toMatchObject({ status: 'cancelled', error_code: 'TASK_CANCELLED', error_message: `parent task ${id} ended` });

      const seq = (await taskRow(id))!.event_seq;
      const noticesBefore = cancelsOf(id).length;
      const callsBefore = calls.length;
      await lifecycle.cancel(id, 'again');
      const again = await taskRow(id);
      expect(again).toMatchObject({ status: 'cancelled', error_message: 'operator said stop', event_seq: seq });
      expect(again!.finished_at).toEqual(task!.finished_at);
      expect(await published(id)).toHaveLength(seq);
      expect(calls.slice(callsBefore)).toEqual([]);
      expect(cancelsOf(id)).toHaveLength(noticesBefore);
      expect(leases.of(id)).toHaveLength(1);

      // A task that does not exist is no error either.
      await expect(lifecycle.cancel(newId('missing'), 'nothing')).resolves.toBeUndefined();
    });
  });

  describe('decide', () => {
    it('approves an approval step: it succeeds with who approved it, and the task advances to its end', async () => {
      const id = newId('approve');
      await lifecycle.create(newTask(id, [[{ id: 'gate', action: 'approval', status: 'waiting_approval' }]]));

      await lifecycle.decide(id, 'gate', 'lead@test', true, 'ship it');
      expect(calls).toContain(`advance:${id}`);
      await settle();

      const [gate] = await stepRows(id);
      expect(gate).toMatchObject({ status: 'succeeded', approved_by: 'lead@test', waiting_reason: null, output: { approved: true, approvedBy: 'lead@test', comment: 'ship it' } });
      expect(gate!.finished_at).toBeInstanceOf(Date);
      const decisions = await db.selectFrom('policy_decisions').selectAll().where('task_id', '=', id).execute();
      expect(decisions).toMatchObject([{ id: `${id}.gate.gate.0`, step_id: 'gate', policy_id: 'approval-gate', effect: 'allow', reason: 'approved by lead@test: ship it', subject: 'lead@test', workspace: 'alpha' }]);
      expect(await taskRow(id)).toMatchObject({ status: 'succeeded', output: { steps: { gate: { approved: true, approvedBy: 'lead@test' } } } });
      expect((await published(id)).slice(3)).toEqual(['4 step.approved w1 gate approved', '5 step.succeeded w1 gate succeeded', '6 wave.succeeded w1 succeeded', '7 task.succeeded succeeded']);
    });

    it('sends a step a policy held for approval back to scheduling when approved', async () => {
      const id = newId('policygate');
      await lifecycle.create(newTask(id, [[{ id: 'deploy', status: 'waiting_approval' }]]));
      const before = calls.length;

      await lifecycle.decide(id, 'deploy', 'lead@test', true, '');

      expect((await stepRows(id))[0]).toMatchObject({ status: 'pending', approved_by: 'lead@test', waiting_reason: null, output: null });
      expect(calls.slice(before)).toEqual(['pump']);
      expect(await taskRow(id)).toMatchObject({ status: 'running' });
      expect((await published(id)).slice(3)).toEqual(['4 step.approved w1 deploy approved']);
    });

    it('rejects a step: it fails with STEP_REJECTED and the task advances to failed', async () => {
      const id = newId('reject');
      await lifecycle.create(newTask(id, [[{ id: 'gate', action: 'approval', status: 'waiting_approval' }, 'other']]));

      await lifecycle.decide(id, 'gate', 'lead@test', false, 'too risky');
      await settle();

      expect((await stepRows(id))[0]).toMatchObject({ status: 'failed', error_code: 'STEP_REJECTED', error_message: 'rejected by lead@test: too risky', waiting_reason: null });
      expect(await db.selectFrom('policy_decisions').select(['effect', 'reason']).where('task_id', '=', id).execute()).toEqual([{ effect: 'deny', reason: 'rejected by lead@test: too risky' }]);
      expect(await taskRow(id)).toMatchObject({
        status: 'failed',
        error_code: 'STEP_REJECTED',
        error_message: 'step gate failed: STEP_REJECTED: rejected by lead@test: too risky',
        failed_step_id: 'gate',
      });
      expect(await statuses(id)).toEqual({ gate: 'failed', other: 'cancelled' });
      expect((await published(id)).slice(3)).toEqual(['4 step.rejected w1 gate failed', '5 step.cancelled w1 other cancelled', '6 wave.failed w1 failed', '7 task.failed failed']);
    });

    it('refuses a step that is not waiting for approval, an unknown step and an unknown task, writing nothing', async () => {
      const id = newId('refuse');
      await lifecycle.create(newTask(id, [['a']]));
      await uow.flushCarried();
      const before = calls.length;

      const notWaiting = await errorOf(lifecycle.decide(id, 'a', 'lead@test', true, ''));
      expect(notWaiting.code).toBe('STEP_NOT_WAITING_APPROVAL');
      expect(notWaiting.extras).toEqual({ status: 'pending' });
      expect((await errorOf(lifecycle.decide(id, 'nope', 'lead@test', false, ''))).code).toBe('STEP_NOT_FOUND');
      expect((await errorOf(lifecycle.decide(newId('missing'), 'a', 'lead@test', true, ''))).code).toBe('TASK_NOT_FOUND');

      expect(await statuses(id)).toEqual({ a: 'pending' });
      expect(await db.selectFrom('policy_decisions').select('id').where('task_id', '=', id).execute()).toEqual([]);
      expect((await taskRow(id))!.event_seq).toBe(3);
      expect(await published(id)).toHaveLength(3);
      expect(calls.slice(before)).toEqual([]);
    });
  });

  describe('UnitOfWork.commit', () => {
    /** A unit of work of its own, whose hooks record what a reader outside the transaction sees of a task. */
    function probedUnitOfWork(taskId: string) {
      const released = new RecordingLeases();
      const seen: Array<{ hook: string; status: Promise<string | undefined> }> = [];
      const probe = (hook: string) => seen.push({ hook, status: taskRow(taskId).then((t) => t?.status) });
      const u = new UnitOfWork(() => db, nats, new EventPublisher(nats, () => db), {
          release: (l) => {
            released.release(l);
            probe('release');
          },
        }, undefined);
      const hooks: AfterCommit = {
        advance: async () => void probe('advance'),
        pump: () => void probe('pump'),
        cancelChildren: async () => void probe('cancelChildren'),
      };
      u.wire(hooks);
      return { u, released, seen };
    }

    it('publishes nothing and writes nothing when the work throws, and keeps the housekeeping it carried for the next transaction', async () => {
      const id = newId('rollback');
      const { u, released, seen } = probedUnitOfWork(id);
      await u.commit(async (trx, fx) => {
        await trx.insertInto('tasks').values(newTask(id, [['a']]).task).execute();
        fx.events.add(id, 'task.running', { status: 'running' });
      });
      expect(await outboxOf(id)).toEqual([1]);
      expect(u.pendingHousekeeping).toEqual({ outbox: 1, published: 0 });
      seen.length = 0;
      released.released.length = 0;

      await expect(
        u.commit(async (trx, fx) => {
          await trx.updateTable('tasks').set({ status: 'failed', error_code: 'X' }).where('id', '=', id).execute();
          fx.events.add(id, 'task.failed', { status: 'failed' });
          fx.events.add(id, 'wave.failed', { status: 'failed', wave: 1 });
          fx.cancels.push({ taskId: id, attemptIds: [`${id}.a.1`], reason: 'rolled back' });
          fx.releases.push({ holder: `${id}.a.1`, pool: 'gpu' });
          fx.advance.add(id);
          fx.cancelChildrenOf.push(id);
          fx.pump = true;
          throw new Error('work failed');
        }),
      ).rejects.toThrow('work failed');

      expect(await taskRow(id)).toMatchObject({ status: 'running', error_code: null, event_seq: 1 });
      expect(await outboxOf(id)).toEqual([1]);
      expect(await published(id)).toEqual(['1 task.running running']);
      expect(seen).toEqual([]);
      expect(released.released).toEqual([]);
      expect(u.pendingHousekeeping).toEqual({ outbox: 1, published: 0 });

      // A notice of a later commit arrives, on the same connection after where a rolled-back one would be: none was sent.
      const marker = newId('marker');
      await u.commit(async (_trx, fx) => {
        fx.cancels.push({ taskId: marker, attemptIds: [], reason: 'marker' });
      });
      await waitForCancel(marker);
      expect(cancelsOf(id)).toEqual([]);
      // That commit carried the housekeeping the failed one gave back.
      expect(await outboxOf(id)).toEqual([]);
      expect(u.pendingHousekeeping).toEqual({ outbox: 0, published: 0 });
    });

    it('publishes events, tells runtimes, gives leases back and calls the hooks only once the transaction has committed', async () => {
      const id = newId('aftercommit');
      const { u, released, seen } = probedUnitOfWork(id);
      const cancelsBefore = cancels.length;

      const result = await u.commit(async (trx, fx) => {
        await trx.insertInto('tasks').values(newTask(id, [['a']]).task).execute();
        fx.events.add(id, 'task.running', { status: 'running' });
        fx.cancels.push({ taskId: id, attemptIds: [`${id}.a.1`], reason: 'stop' });
        fx.releases.push({ holder: `${id}.a.1`, pool: 'gpu' });
        fx.advance.add(id);
        fx.cancelChildrenOf.push(id);
        fx.pump = true;
        // Everything is asked for; nothing may have happened yet.
        expect(seen).toEqual([]);
        expect(released.released).toEqual([]);
        expect(await published(id)).toEqual([]);
        return 'done';
      });

      expect(result).toBe('done');
      expect(seen.map((s) => s.hook)).toEqual(['release', 'cancelChildren', 'advance', 'pump']);
      // Each saw the task a reader outside the transaction sees only after the commit.
      expect(await Promise.all(seen.map((s) => s.status))).toEqual(['running', 'running', 'running', 'running']);
      expect(released.released).toEqual([{ holder: `${id}.a.1`, pool: 'gpu' }]);
      expect(await published(id)).toEqual(['1 task.running running']);
      await waitForCancel(id);
      expect(cancels.slice(cancelsBefore).filter((c) => c.taskId === id)).toEqual([{ taskId: id, attemptIds: [`${id}.a.1`], reason: 'stop' }]);
    });

    it('logs a cancelChildren hook that rejects instead of leaving an unhandled rejection behind', async () => {
      const id = newId('childrenfail');
      const u = new UnitOfWork(() => db, nats, new EventPublisher(nats, () => db), new RecordingLeases(), undefined);
      let hookCalls = 0;
      u.wire({
        advance: () => Promise.resolve(),
        pump: () => undefined,
        cancelChildren: () => {
          hookCalls++;
          return Promise.reject(new Error('db down'));
        },
      });
      // Jest fails a test that leaves an unhandled rejection behind; the warning shows it was caught.
      const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
      try {
        await u.commit(async (_trx, fx) => {
          fx.cancelChildrenOf.push(id);
        });
        for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));

        expect(hookCalls).toBe(1);
        expect(warn).toHaveBeenCalledWith(`cancel children of ${id}: Error: db down`);
      } finally {
        warn.mockRestore();
      }
    });
  });
});
