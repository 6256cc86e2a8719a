import { Logger } from '@nestjs/common';
import { ZiggieError } from '@ziggie/contracts';
import { Insertable, json, Kysely, sql } from '@ziggie/platform';
import { Histogram } from 'prom-client';
import { checkSchema } from '../json-schema';
import { KeyedLock } from '../keyed-lock';
import { OrchestratorDb, StepRow, StepTable, TaskRow, TaskTable } from '../migrations';
import { resolveInput } from '../templates';
import { Batcher } from './batcher';
import { attemptIdOf, formatStepError, IN_FLIGHT, lockTasks, OPEN_STEP, StepError, TERMINAL_TASK, Trx } from './steps';
import { Effects, UnitOfWork } from './unit-of-work';

/** What deciding a task's next move needs of each of its steps. */
type TaskStep = Pick<StepRow, 'task_id' | 'id' | 'wave' | 'status' | 'error_code' | 'error_message' | 'finished_at'>;

/** A task as submitted: its row, its steps, and the delegate step that created it, if any. */
export interface NewTask {
  task: Insertable<TaskTable> & { id: string; status: 'queued' | 'running' };
  steps: Array<Insertable<StepTable>>;
  parent?: { taskId: string; stepId: string };
}

/** A task as inserted, with its steps in plan order (what a submission answers with). */
export interface Created {
  task: TaskRow;
  steps: StepRow[];
}

/** Tasks created in one transaction at most (a task row has 17 parameters; a statement takes 65,535). */
const CREATE_BATCH_MAX = 256;
/** Step rows per insert statement (17 parameters each). */
const STEP_ROWS_PER_INSERT = 500;
/** Task rows per ending statement. */
const TASK_ENDS_PER_UPDATE = 500;

/** How a task ends: its status, and for a failure the code, the message and where. */
interface TaskEnd {
  task: TaskRow;
  status: 'succeeded' | 'failed' | 'cancelled';
  code?: string;
  message?: string;
  wave: number;
  failedStepId?: string;
  output?: Record<string, unknown>;
  /** Every step of the task has succeeded (the caller just read them): nothing to stop. */
  allSucceeded?: boolean;
}

/**
 * A task's life: created, started (now or at its `notBefore`), its waves opened and closed as
 * their steps end, then succeeded, failed or cancelled; approval gates decided. Owns the writes
 * to `tasks`, and to `steps` when a task is created or ends.
 */
export class TaskLifecycle {
  private readonly logger = new Logger('engine');
  /** One transition of a task at a time in this process; the row lock covers other replicas. */
  private readonly lock = new KeyedLock();
  private readonly delayedStarts = new Map<string, NodeJS.Timeout>();
  private readonly creations = new Batcher<NewTask, Created | undefined>(CREATE_BATCH_MAX, (list) => this.createMany(list));

  constructor(
    private readonly uow: UnitOfWork,
    private readonly db: () => Kysely<OrchestratorDb>,
    private readonly remember: (taskId: string) => void,
    private readonly taskDuration?: Histogram<'status'>,
  ) {}

  /**
   * Inserts a task and its steps with their first events; undefined when a delegate step's child
   * already exists (two deliveries of the step raced). Submissions that arrive together share a
   * transaction (see Batcher).
   */
  create(t: NewTask): Promise<Created | undefined> {
    this.remember(t.task.id);
    return this.creations.add(t);
  }

  /** One transaction for the batch; if it fails, each task again on its own, so one bad task fails alone. */
  private async createMany(list: NewTask[]): Promise<Array<PromiseSettledResult<Created | undefined>>> {
    const insert = (some: NewTask[]) => this.uow.commit((trx, fx) => insertTasks(trx, fx, some));
    try {
      const created = await insert(list);
      return list.map((t) => ({ status: 'fulfilled', value: created.get(t.task.id) }));
    } catch (err) {
      if (list.length === 1) return [{ status: 'rejected', reason: err }];
      const outcomes: Array<PromiseSettledResult<Created | undefined>> = [];
      for (const t of list) {
        outcomes.push(
          await insert([t]).then(
            (created) => ({ status: 'fulfilled', value: created.get(t.task.id) }),
            (reason: unknown) => ({ status: 'rejected', reason }),
          ),
        );
      }
      return outcomes;
    }
  }

  /** A task that must not start yet is started by a timer (and by reconcile, after a restart). */
  scheduleStart(taskId: string, notBefore: Date): void {
    const delay = notBefore.getTime() - Date.now();
    if (delay > 2 ** 31 - 1) return;
    clearTimeout(this.delayedStarts.get(taskId));
    const timer = setTimeout(() => {
      this.delayedStarts.delete(taskId);
      void this.advance(taskId).catch((err: unknown) => this.logger.error(`start ${taskId}: ${String(err)}`));
    }, Math.max(0, delay));
    timer.unref();
    this.delayedStarts.set(taskId, timer);
  }

  hasDelayedStart(taskId: string): boolean {
    return this.delayedStarts.has(taskId);
  }

  stop(): void {
    for (const t of this.delayedStarts.values()) clearTimeout(t);
    this.delayedStarts.clear();
  }

  /** Moves a task forward: starts it, fails it, closes its wave and opens the next, or ends it. */
  advance(taskId: string): Promise<void> {
    return this.lock.run(taskId, () =>
      this.uow.commit(async (trx, fx) => {
        const task = (await lockTasks(trx, [taskId])).get(taskId);
        if (task) await this.advanceLocked(trx, fx, [task]);
      }),
    );
  }

  /**
   * Moves tasks this transaction has locked on: starts a queued one that may start, fails one
   * with a failed step, or, once its current wave has no open step, starts the next wave or ends
   * it. A result batch advances many tasks at once, so each kind of write is one statement for
   * all of them: the running tasks' steps are read in one query, the tasks that start, move to
   * their next wave or end are updated in one statement each.
   */
  async advanceLocked(trx: Trx, fx: Effects, tasks: TaskRow[]): Promise<void> {
    const running: TaskRow[] = [];
    const starting: TaskRow[] = [];
    for (const task of tasks) {
      if (TERMINAL_TASK.has(task.status)) continue;
      if (task.status !== 'queued') running.push(task);
      else if (!task.not_before || new Date(task.not_before).getTime() <= Date.now()) starting.push(task);
    }
    if (starting.length > 0) {
      await trx
        .updateTable('tasks')
        .set({ status: 'running', current_wave: 1, updated_at: new Date() })
        .where('id', 'in', starting.map((t) => t.id))
        .execute();
      for (const task of starting) {
        fx.events.add(task.id, 'task.running', { status: 'running' });
        fx.events.add(task.id, 'wave.started', { wave: 1, status: 'running' });
      }
      fx.pump = true;
    }
    if (running.length === 0) return;
    const rows = await trx
      .selectFrom('steps')
      // Not their outputs: a wide wave is advanced after every result batch, and outputs can be large.
      .select(['task_id', 'id', 'wave', 'status', 'error_code', 'error_message', 'finished_at'])
      .where('task_id', 'in', running.map((t) => t.id))
      .execute();
    const stepsOf: Map<string, TaskStep[]> = byTask(rows);
    const ends: TaskEnd[] = [];
    const done: TaskRow[] = [];
    const nextWaves: Array<{ id: string; wave: number }> = [];
    for (const task of running) {
      const steps = stepsOf.get(task.id) ?? [];
      // The first step to have failed (by when it finished) names the task's failure.
      const failed = steps
        .filter((s) => s.status === 'failed')
        .sort((a, b) => (a.finished_at?.getTime() ?? Number.POSITIVE_INFINITY) - (b.finished_at?.getTime() ?? Number.POSITIVE_INFINITY))[0];
      if (failed) {
        const error: StepError = { code: failed.error_code ?? 'STEP_FAILED', message: failed.error_message ?? 'unknown error' };
        ends.push({
          task,
          status: 'failed',
          code: error.code === 'STEP_REJECTED' ? 'STEP_REJECTED' : 'TASK_STEP_FAILED',
          message: `step ${failed.id} failed: ${formatStepError(error)}`,
          wave: failed.wave,
          failedStepId: failed.id,
        });
        continue;
      }
      if (steps.some((s) => s.wave === task.current_wave && (OPEN_STEP as readonly string[]).includes(s.status))) continue;
      const unfinished = steps.filter((s) => s.status !== 'succeeded').map((s) => s.wave);
      if (unfinished.length === 0) {
        done.push(task);
        continue;
      }
      const next = Math.min(...unfinished);
      fx.events.add(task.id, 'wave.succeeded', { wave: task.current_wave, status: 'succeeded' });
      fx.events.add(task.id, 'wave.started', { wave: next, status: 'running' });
      nextWaves.push({ id: task.id, wave: next });
    }
    if (nextWaves.length > 0) {
      await sql`
        update tasks t set current_wave = v.wave, updated_at = now()
        from (values ${sql.join(nextWaves.map((w) => sql`(${w.id}, ${w.wave}::int)`))}) as v(id, wave)
        where t.id = v.id`.execute(trx);
      fx.pump = true;
    }
    ends.push(...(await this.outputsOf(trx, done)));
    await this.finish(trx, fx, ends);
  }

  /**
   * How tasks whose every step succeeded end: with the blueprint's output mapping (checked
   * against its schema), else the last wave's outputs; the steps' outputs read in one query.
   */
  private async outputsOf(trx: Trx, tasks: TaskRow[]): Promise<TaskEnd[]> {
    if (tasks.length === 0) return [];
    const rows = await trx
      .selectFrom('steps')
      .select(['task_id', 'id', 'output', 'wave'])
      .where('task_id', 'in', tasks.map((t) => t.id))
      .execute();
    const stepsOf = byTask(rows);
    return tasks.map((task): TaskEnd => {
      const steps = stepsOf.get(task.id) ?? [];
      const invalid = (message: string, output?: Record<string, unknown>): TaskEnd => ({
        task,
        status: 'failed',
        code: 'TASK_OUTPUT_INVALID',
        message,
        wave: task.wave_count,
        output,
        allSucceeded: true,
      });
      if (!task.output_template) {
        const last = Math.max(...steps.map((r) => r.wave));
        const output = { steps: Object.fromEntries(steps.filter((r) => r.wave === last).map((r) => [r.id, r.output])) };
        return { task, status: 'succeeded', wave: task.wave_count, output, allSucceeded: true };
      }
      let output: Record<string, unknown>;
      try {
        output = resolveInput(task.output_template, new Map(steps.map((r) => [r.id, r.output])), { taskId: task.id });
      } catch (err) {
        return invalid(`task output cannot be assembled: ${(err as Error).message}`);
      }
      const wrong = task.output_schema ? checkSchema(task.output_schema, output) : undefined;
      if (wrong) return invalid(`task output does not match the blueprint's output schema: ${wrong}`, output);
      return { task, status: 'succeeded', wave: task.wave_count, output, allSucceeded: true };
    });
  }

  /** Ends tasks: their open steps are cancelled (runtimes told, leases given back), then the task rows (one statement) and their events. */
  private async finish(trx: Trx, fx: Effects, ends: TaskEnd[]): Promise<void> {
    if (ends.length === 0) return;
    const now = new Date();
    for (const end of ends) if (!end.allSucceeded) await this.stopOpenSteps(trx, fx, end.task.id, end.message ?? end.status, now);
    for (let i = 0; i < ends.length; i += TASK_ENDS_PER_UPDATE) {
      const values = ends
        .slice(i, i + TASK_ENDS_PER_UPDATE)
        .map(
          (e) =>
            sql`(${e.task.id}, ${e.status}, ${e.code ?? null}::text, ${e.message ?? null}::text, ${e.failedStepId ?? null}::text, ${e.output ? JSON.stringify(e.output) : null}::jsonb)`,
        );
      await sql`
        update tasks t set status = v.status, error_code = v.error_code, error_message = v.error_message, failed_step_id = v.failed_step_id,
                           output = v.output, finished_at = ${now}, updated_at = ${now}
        from (values ${sql.join(values)}) as v(id, status, error_code, error_message, failed_step_id, output)
        where t.id = v.id`.execute(trx);
    }
    for (const end of ends) {
      const { task, status } = end;
      if (status !== 'cancelled') fx.events.add(task.id, status === 'succeeded' ? 'wave.succeeded' : 'wave.failed', { wave: end.wave, status });
      fx.events.add(task.id, `task.${status}`, { status, message: end.message });
      fx.cancelChildrenOf.push(task.id);
      this.taskDuration?.observe({ status }, (now.getTime() - new Date(task.created_at).getTime()) / 1000);
    }
    fx.pump = true;
  }

  private async stopOpenSteps(trx: Trx, fx: Effects, taskId: string, reason: string, now: Date): Promise<void> {
    const inFlight = await trx.selectFrom('steps').select(['id', 'attempt', 'pool']).where('task_id', '=', taskId).where('status', 'in', [...IN_FLIGHT]).execute();
    const stopped = await trx
      .updateTable('steps')
      .set({ status: 'cancelled', finished_at: now, waiting_reason: null })
      .where('task_id', '=', taskId)
      .where('status', 'in', [...OPEN_STEP])
      .returning(['id', 'wave'])
      .execute();
    if (inFlight.length > 0) {
      const ended = await trx
        .updateTable('step_attempts')
        .set({ status: 'cancelled', finished_at: now })
        .where('task_id', '=', taskId)
        .where('status', 'in', [...IN_FLIGHT])
        .returning(['step_id', 'attempt', 'lease_id'])
        .execute();
      const poolOf = new Map(inFlight.map((s) => [s.id, s.pool]));
      for (const a of ended) if (a.lease_id) fx.releases.push({ holder: attemptIdOf(taskId, a.step_id, a.attempt), pool: poolOf.get(a.step_id) ?? '' });
      fx.cancels.push({ taskId, attemptIds: inFlight.map((s) => attemptIdOf(taskId, s.id, s.attempt)), reason });
    }
    for (const s of stopped) fx.events.add(taskId, 'step.cancelled', { wave: s.wave, stepId: s.id, status: 'cancelled', message: reason });
  }

  /** Cancels a task: pending and in-flight steps are cancelled and runtimes told; late results are ignored. */
  cancel(taskId: string, reason: string): Promise<void> {
    this.remember(taskId);
    return this.lock.run(taskId, () =>
      this.uow.commit(async (trx, fx) => {
        const task = (await lockTasks(trx, [taskId])).get(taskId);
        if (!task || TERMINAL_TASK.has(task.status)) return;
        await this.finish(trx, fx, [{ task, status: 'cancelled', code: 'TASK_CANCELLED', message: reason, wave: task.current_wave }]);
      }),
    );
  }

  /** Cancels the child tasks (delegate steps') still open of tasks that ended, in one query for all of them. */
  async cancelChildren(parentIds: string[]): Promise<void> {
    if (parentIds.length === 0) return;
    const children = await this.db()
      .selectFrom('tasks')
      .select(['id', 'parent_task_id'])
      .where('parent_task_id', 'in', parentIds)
      .where('status', 'in', ['queued', 'running'])
      .execute();
    for (const c of children) {
      await this.cancel(c.id, `parent task ${c.parent_task_id} ended`).catch((err: unknown) => this.logger.warn(`cancel child ${c.id}: ${String(err)}`));
    }
  }

  /** Approves or rejects a step waiting at its gate (an approval step, or a policy asking for approval). */
  async decide(taskId: string, stepId: string, subject: string, approve: boolean, comment: string): Promise<void> {
    this.remember(taskId);
    await this.lock.run(taskId, () =>
      this.uow.commit(async (trx, fx) => {
        const task = (await lockTasks(trx, [taskId])).get(taskId);
        if (!task) throw new ZiggieError('TASK_NOT_FOUND', `task ${taskId} not found`);
        const step = await trx.selectFrom('steps').selectAll().where('task_id', '=', taskId).where('id', '=', stepId).forUpdate().executeTakeFirst();
        if (!step) throw new ZiggieError('STEP_NOT_FOUND', `task ${taskId} has no step ${stepId}`);
        if (step.status !== 'waiting_approval') {
          throw new ZiggieError('STEP_NOT_WAITING_APPROVAL', `step ${stepId} is ${step.status}, not waiting for approval`, { status: step.status });
        }
        const now = new Date();
        const note = comment ? `: ${comment}` : '';
        await trx
          .insertInto('policy_decisions')
          .values({
            id: `${taskId}.${stepId}.gate.${step.attempt}`,
            task_id: taskId,
            step_id: stepId,
            policy_id: 'approval-gate',
            policy_name: 'approval gate',
            effect: approve ? 'allow' : 'deny',
            reason: `${approve ? 'approved' : 'rejected'} by ${subject}${note}`,
            workspace: step.workspace,
            subject,
          })
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
        if (!approve) {
          await trx
            .updateTable('steps')
            .where('task_id', '=', taskId)
            .where('id', '=', stepId)
            .set({ status: 'failed', error_code: 'STEP_REJECTED', error_message: `rejected by ${subject}${note}`, finished_at: now, waiting_reason: null })
            .execute();
          fx.events.add(taskId, 'step.rejected', { wave: step.wave, stepId, status: 'failed', message: `rejected by ${subject}${note}` });
          fx.advance.add(taskId);
          return;
        }
        fx.events.add(taskId, 'step.approved', { wave: step.wave, stepId, status: 'approved', message: `approved by ${subject}${note}` });
        if (step.action === 'approval') {
          await trx
            .updateTable('steps')
            .where('task_id', '=', taskId)
            .where('id', '=', stepId)
            .set({ status: 'succeeded', approved_by: subject, output: json({ approved: true, approvedBy: subject, comment, at: now.toISOString() }), started_at: step.started_at ?? now, finished_at: now, waiting_reason: null })
            .execute();
          fx.events.add(taskId, 'step.succeeded', { wave: step.wave, stepId, status: 'succeeded' });
          fx.advance.add(taskId);
        } else {
          await trx.updateTable('steps').set({ status: 'pending', approved_by: subject, waiting_reason: null }).where('task_id', '=', taskId).where('id', '=', stepId).execute();
          fx.pump = true;
        }
      }),
    );
  }
}

/** Rows grouped by their task (a wide wave is thousands of steps: appended, never copied). */
function byTask<R extends { task_id: string }>(rows: R[]): Map<string, R[]> {
  const out = new Map<string, R[]>();
  for (const r of rows) {
    const list = out.get(r.task_id);
    if (list) list.push(r);
    else out.set(r.task_id, [r]);
  }
  return out;
}

/**
 * Inserts tasks and their steps in multi-row statements, with each task's first events. A task
 * whose delegate step has a child already is left out (and its steps with it).
 */
async function insertTasks(trx: Trx, fx: Effects, list: NewTask[]): Promise<Map<string, Created>> {
  const inserted = await trx
    .insertInto('tasks')
    .values(list.map((t) => t.task))
    .onConflict((oc) => oc.columns(['parent_task_id', 'parent_step_id']).where('parent_task_id', 'is not', null).doNothing())
    .returningAll()
    .execute();
  const created = new Map<string, Created>(inserted.map((task) => [task.id, { task, steps: [] }]));
  const kept = list.filter((t) => created.has(t.task.id));
  const steps = kept.flatMap((t) => t.steps);
  for (let i = 0; i < steps.length; i += STEP_ROWS_PER_INSERT) {
    for (const row of await trx.insertInto('steps').values(steps.slice(i, i + STEP_ROWS_PER_INSERT)).returningAll().execute()) created.get(row.task_id)!.steps.push(row);
  }
  for (const t of kept) {
    if (t.parent) {
      await trx.updateTable('steps').set({ child_task_id: t.task.id }).where('task_id', '=', t.parent.taskId).where('id', '=', t.parent.stepId).execute();
    }
    fx.events.add(t.task.id, 'task.queued', { status: 'queued' });
    if (t.task.status === 'running') {
      fx.events.add(t.task.id, 'task.running', { status: 'running' });
      fx.events.add(t.task.id, 'wave.started', { wave: 1, status: 'running' });
      fx.pump = true;
    }
  }
  for (const c of created.values()) c.steps.sort((a, b) => a.ordinal - b.ordinal);
  return created;
}
