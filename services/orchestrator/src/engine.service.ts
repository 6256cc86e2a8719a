import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Consumers, PayloadOf, pb, Streams, Subject, StepDispatchPayload, ZiggieError } from '@ziggie/contracts';
import { callUnary, CONFIG, ConsumeHandle, DatabaseService, json, Kysely, MetricsService, NatsService, PeerClients, sql, TraceContexts, Transaction } from '@ziggie/platform';
import type { Subscription } from 'nats';
import { Counter, Gauge, Histogram } from 'prom-client';
import { OrchestratorConfig } from './config';
import { clearOutbox, EventBatch, EventPublisher, TaskEvent } from './events';
import { evaluatePolicies, PolicyRule, toolsOf } from './governance';
import { KeyedLock } from './keyed-lock';
import { OrchestratorDb, StepRow, TaskRow } from './migrations';
import { PoliciesService } from './policies.service';
import { HeldLease, LeaseDecision, MAX_LEASES_PER_CALL, PoolLeases, PoolSkips } from './pool-leases';
import { checkSchema } from './json-schema';
import { checkQualityGate } from './quality';
import { nextMove } from './retry-policy';
import { FullLimit, ToolCapacity } from './tool-capacity';
import { hasReferences, resolveInput } from './templates';

type Trx = Transaction<OrchestratorDb>;
type StepResult = PayloadOf<Subject.StepResult>;
type Dispatch = PayloadOf<Subject.StepDispatch>;

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const OPEN_STEP = ['pending', 'dispatched', 'running', 'waiting_approval'] as const;
const IN_FLIGHT = ['dispatched', 'running'] as const;
/** Only one orchestrator replica runs a scheduling round at a time (Postgres advisory lock). */
const PUMP_LOCK_KEY = 0x5a1991e;
const PUMP_TICK_MS = 1_000;
/** Results whose publish was not confirmed this long after dispatch are published again (same message id). */
const REPUBLISH_AFTER_MS = 2_000;
const MAX_DELIVERIES_ADVISORY = `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${Streams.steps.name}.${Consumers.stepWorkers.durable}`;

/** What a transaction asks to happen once it has committed. */
class Effects {
  readonly events = new EventBatch();
  readonly cancels: Array<PayloadOf<Subject.StepCancel>> = [];
  /** Tasks whose child tasks must be cancelled. */
  readonly cancelChildrenOf: string[] = [];
  readonly advance = new Set<string>();
  /** Leases of attempts that ended, given back to workspace-coord. */
  readonly releases: HeldLease[] = [];
  pump = false;
  written: TaskEvent[] = [];
}

/** Housekeeping the next transaction writes (see EngineService.carried). */
interface Carried {
  outbox: Array<{ taskId: string; seq: number }>;
  published: Array<{ taskId: string; stepId: string }>;
}

/** What a result changes: its step's row and its attempt's row, written for a whole batch at once. */
interface AttemptEnding {
  step: {
    task_id: string;
    id: string;
    status: string;
    /** JSON text, or null. */
    output: string | null;
    error: string | null;
    started_at: Date;
    finished_at: Date | null;
    next_attempt_at: Date | null;
    waiting_reason: string | null;
    capacity_waits: number;
    child_task_id: string | null;
  };
  attempt: { attempt: number; status: string; finished_at: Date; holder: string; pool: string };
}

/** What deciding a task's next move needs of each of its steps. */
type TaskStep = Pick<StepRow, 'task_id' | 'id' | 'wave' | 'status' | 'error' | 'finished_at'>;

type Candidate = StepRow & { task_priority: string; principal: TaskRow['principal']; correlation_id: string; task_depth: number };

/** The tool steps (`s`, of task `t`) a reached limit holds back: one caller's calls of a tool, or a server's. */
function heldBy(full: FullLimit) {
  const which =
    full.scope === 'tool'
      ? sql`t.principal->>'subject' = ${full.subject} and s.input->>'tool' = ${full.tool}`
      : sql`split_part(s.input->>'tool', '.', 1) = ${full.server}`;
  return sql`(s.action = 'tool' and jsonb_typeof(s.input->'tool') = 'string' and ${which})`;
}

/** Leaves out of a round the tool steps whose caller's tool or server is at the gateway's limit. */
function fullToolFilter(full: FullLimit[]) {
  if (full.length === 0) return sql``;
  return sql`and not (${sql.join(full.map(heldBy), sql` or `)})`;
}

/** Leave out the pool steps a round would only be refused leases for. */
function poolSkipFilter(skips: PoolSkips) {
  if (skips.allPools) return sql`and (s.pool is null or s.action = 'approval')`;
  if (skips.pools.length === 0) return sql``;
  const refused = skips.pools.map((p) => sql`(s.pool = ${p.pool} and t.priority in (${sql.join(p.priorities)}))`);
  return sql`and (s.pool is null or s.action = 'approval' or not (${sql.join(refused, sql` or `)}))`;
}

type GrantedLease = HeldLease & { leaseId: string };

/** What a scheduling round hands from its transaction to after the commit. */
interface Round {
  outgoing: Dispatch[];
  /** Leases granted in the round, by holder; those not dispatched in the end are given back. */
  granted: Map<string, GrantedLease>;
  /** Attempt ids the round dispatched. */
  dispatched: Set<string>;
}

const attemptIdOf = (taskId: string, stepId: string, attempt: number) => `${taskId}.${stepId}.${attempt}`;
/** The attempt id a pending step is dispatched as (its lease holder). */
const nextAttemptIdOf = (step: StepRow) => attemptIdOf(step.task_id, step.id, step.attempt + 1);

export function attemptNumber(attemptId: string): number {
  return Number.parseInt(attemptId.slice(attemptId.lastIndexOf('.') + 1), 10);
}

/**
 * Runs tasks. State lives in Postgres and every transition happens in a transaction that
 * locks the task row first (then steps), so two replicas can share the work:
 * - advance(): starts a task, closes a wave and opens the next, or ends the task;
 * - pump(): one scheduling round — ready steps of current waves by priority with aging,
 *   within workspace limits, through the governance policies, pool steps with a lease from
 *   workspace-coord, to agents chosen by the registry, published on JetStream
 *   (Nats-Msg-Id = attempt id);
 * - results: recorded in batches, once per attempt (step_ledger), quality gates checked,
 *   retries with backoff scheduled;
 * - reconcile(): republishes what a crash left unpublished, fails timed-out steps, starts
 *   delayed tasks, and advances anything stalled.
 * Task events go through an outbox and are published after commit.
 */
@Injectable()
export class EngineService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('engine');
  private readonly lock = new KeyedLock();
  /**
   * Each task's trace, as of the last request or result that touched it: a scheduling round (and
   * its events) covers many tasks, and each dispatch and event goes out in its own task's trace.
   */
  private readonly traces = new TraceContexts();
  private readonly publisher: EventPublisher;
  private consumers: ConsumeHandle[] = [];
  private advisories?: Subscription;
  private timers: NodeJS.Timeout[] = [];
  private readonly delayedStarts = new Map<string, NodeJS.Timeout>();
  private pumping?: Promise<void>;
  private pumpAgain = false;
  private stopped = false;
  private readonly resultQueue: Array<{ result: StepResult; done: (err?: unknown) => void }> = [];
  private resultFlush?: Promise<void>;
  private readonly transitions: Counter<'kind' | 'status'>;
  private readonly taskDuration: Histogram<'status'>;
  private readonly decisions: Counter<'effect'>;
  /**
   * Housekeeping after a publish, written by the next transaction instead of one of its own (a
   * commit each): events to clear from the outbox, dispatches JetStream confirmed. A crash loses
   * only this, and the loss means publishing again under the same message id.
   */
  private carried: Carried = { outbox: [], published: [] };
  /** Concurrency limits of the MCP gateway, learned from its refusals. */
  private readonly toolCapacity = new ToolCapacity();

  constructor(
    private readonly database: DatabaseService,
    private readonly nats: NatsService,
    private readonly peers: PeerClients,
    private readonly policies: PoliciesService,
    private readonly leases: PoolLeases,
    @Inject(CONFIG) private readonly config: OrchestratorConfig,
    metrics: MetricsService,
  ) {
    this.publisher = new EventPublisher(nats, () => this.db, this.traces);
    // A released lease may let a waiting pool step through.
    leases.onReleased(() => this.schedulePump());
    this.transitions = metrics.counter('ziggie_orchestrator_transitions_total', 'Task and step transitions', ['kind', 'status']);
    this.taskDuration = metrics.histogram('ziggie_task_duration_seconds', 'Submit to terminal state', ['status'], [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300]);
    this.decisions = metrics.counter('ziggie_policy_decisions_total', 'Governance decisions before dispatch', ['effect']);
    // From zero, so the first completion after a start counts in rate() and increase().
    for (const status of ['succeeded', 'failed', 'cancelled']) {
      this.transitions.inc({ kind: 'task', status }, 0);
      this.taskDuration.zero({ status });
    }
    for (const status of ['running', 'succeeded', 'failed']) this.transitions.inc({ kind: 'wave', status }, 0);
    this.registerProgressGauges(metrics);
  }

  private get db(): Kysely<OrchestratorDb> {
    return this.database.db<OrchestratorDb>();
  }

  /**
   * Live tasks and the waves of running tasks (completed, running, pending), read from the
   * database at scrape time: every replica reports the same totals, so dashboards take max().
   */
  private registerProgressGauges(metrics: MetricsService): void {
    let last = { queued: 0, running: 0, completed: 0, pending: 0 };
    const query = async (): Promise<typeof last> => {
      try {
        const row = await sql<{ queued: string; running: string; completed: string | null; pending: string | null }>`
          select count(*) filter (where status = 'queued') as queued,
            count(*) filter (where status = 'running') as running,
            sum(current_wave - 1) filter (where status = 'running') as completed,
            sum(wave_count - current_wave) filter (where status = 'running') as pending
          from tasks where status in ('queued', 'running')`.execute(this.db);
        const r = row.rows[0];
        if (r) last = { queued: Number(r.queued), running: Number(r.running), completed: Number(r.completed ?? 0), pending: Number(r.pending ?? 0) };
      } catch {
        // Not started or stopping: the last values stand.
      }
      return last;
    };
    let inFlight: Promise<typeof last> | undefined;
    // Both gauges are collected concurrently by one scrape: they share one query.
    const read = (): Promise<typeof last> => (inFlight ??= query().finally(() => (inFlight = undefined)));
    const tasks: Gauge<'status'> = new Gauge({
      name: 'ziggie_orchestrator_live_tasks',
      help: 'Tasks not yet finished, by status',
      labelNames: ['status'],
      registers: [metrics.registry],
      collect: async () => {
        const v = await read();
        tasks.set({ status: 'queued' }, v.queued);
        tasks.set({ status: 'running' }, v.running);
      },
    });
    const waves: Gauge<'state'> = new Gauge({
      name: 'ziggie_orchestrator_live_waves',
      help: 'Waves of running tasks: completed, running (one per task) and pending',
      labelNames: ['state'],
      registers: [metrics.registry],
      collect: async () => {
        const v = await read();
        waves.set({ state: 'completed' }, v.completed);
        waves.set({ state: 'running' }, v.running);
        waves.set({ state: 'pending' }, v.pending);
      },
    });
  }

  private get extra() {
    return this.config.extra;
  }

  async onApplicationBootstrap(): Promise<void> {
    this.consumers.push(
      await this.nats.consume({
        spec: Consumers.resultRecorder,
        subject: Subject.StepResult,
        concurrency: this.extra.RESULT_BATCH_MAX,
        handler: (result) => this.enqueueResult(result),
      }),
      await this.nats.consume({
        spec: Consumers.deadLetters,
        subject: Subject.StepDeadLetter,
        handler: (dead) => this.enqueueResult(exhausted(dead.dispatch, dead.reason)),
      }),
    );
    // A step whose every delivery crashed its runtime never reaches onExhausted: JetStream's advisory tells.
    this.advisories = this.nats.connection.subscribe(MAX_DELIVERIES_ADVISORY, {
      callback: (err, msg) => {
        if (err) return;
        void this.onMaxDeliveries(msg.data).catch((e: unknown) => this.logger.warn(`max-deliveries advisory: ${String(e)}`));
      },
    });
    // Work left unfinished by a previous run continues now, then periodically.
    void this.reconcile(0);
    this.timers.push(
      setInterval(() => void this.reconcile(), this.extra.RECONCILE_INTERVAL_MS),
      setInterval(() => this.schedulePump(), PUMP_TICK_MS),
      // When no transaction comes by to carry the housekeeping, a small one does.
      setInterval(() => void this.flushCarried(), PUMP_TICK_MS),
    );
    for (const t of this.timers) t.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    for (const t of this.delayedStarts.values()) clearTimeout(t);
    this.advisories?.unsubscribe();
    await Promise.allSettled(this.consumers.map((c) => c.stop()));
    await this.pumping?.catch(() => undefined);
    await this.flushCarried();
  }

  // ---------------------------------------------------------------------------------------
  // Transactions and their after-commit effects

  private async commit<T>(work: (trx: Trx, fx: Effects) => Promise<T>): Promise<T> {
    const fx = new Effects();
    const carried = this.takeCarried();
    let result: T;
    try {
      result = await this.db.transaction().execute(async (trx) => {
        const r = await work(trx, fx);
        fx.written = await fx.events.write(trx);
        await this.writeCarried(trx, carried);
        return r;
      });
    } catch (err) {
      this.putBack(carried);
      throw err;
    }
    await this.afterCommit(fx);
    return result;
  }

  private takeCarried(): Carried {
    const taken = this.carried;
    this.carried = { outbox: [], published: [] };
    return taken;
  }

  private putBack(c: Carried): void {
    this.carried.outbox.push(...c.outbox);
    this.carried.published.push(...c.published);
  }

  /** Last in a transaction, after its own locks: the marks skip rows others hold, so they never wait. */
  private async writeCarried(trx: Trx, c: Carried): Promise<void> {
    await clearOutbox(trx, c.outbox);
    for (let i = 0; i < c.published.length; i += 1000) {
      const chunk = c.published.slice(i, i + 1000);
      // Rows a result transaction holds are skipped: a result means the dispatch arrived, and the
      // step has left `dispatched` or is about to.
      await sql`
        update steps set published_at = now()
        where (task_id, id) in (
          select task_id, id from steps
          where (task_id, id) in (${sql.join(chunk.map((d) => sql`(${d.taskId}, ${d.stepId})`))})
            and status in ('dispatched', 'running') and published_at is null
          for update skip locked)`.execute(trx);
    }
  }

  private async flushCarried(): Promise<void> {
    if (this.carried.outbox.length === 0 && this.carried.published.length === 0) return;
    const carried = this.takeCarried();
    try {
      await this.db.transaction().execute((trx) => this.writeCarried(trx, carried));
    } catch (err) {
      this.putBack(carried);
      this.logger.warn(`outbox cleanup and dispatch confirmations: ${String(err)}`);
    }
  }

  private async afterCommit(fx: Effects): Promise<void> {
    for (const e of fx.written) this.transitions.inc({ kind: e.type.split('.')[0]!, status: e.status });
    const sent = await this.publisher.publish(fx.written).catch((err: unknown) => {
      this.logger.warn(`events: ${String(err)}`);
      return [];
    });
    for (const e of sent) this.carried.outbox.push({ taskId: e.taskId, seq: e.seq });
    for (const c of fx.cancels) {
      try {
        this.nats.publishCore(Subject.StepCancel, c.taskId, c);
      } catch (err) {
        this.logger.warn(`cancel notice for ${c.taskId} not sent: ${String(err)}`);
      }
    }
    this.leases.release(fx.releases);
    for (const parent of fx.cancelChildrenOf) void this.cancelChildren(parent);
    for (const taskId of fx.advance) void this.advance(taskId).catch((err: unknown) => this.logger.error(`advance ${taskId}: ${String(err)}`));
    if (fx.pump) this.schedulePump();
  }

  /** Locks task rows in id order: every transaction takes tasks before steps, so replicas never deadlock. */
  private async lockTasks(trx: Trx, ids: Iterable<string>): Promise<Map<string, TaskRow>> {
    const list = [...new Set(ids)].sort();
    if (list.length === 0) return new Map();
    const rows = await trx.selectFrom('tasks').selectAll().where('id', 'in', list).orderBy('id').forUpdate().execute();
    return new Map(rows.map((r) => [r.id, r]));
  }

  // ---------------------------------------------------------------------------------------
  // Task lifecycle

  /** Events of a freshly inserted task; call inside its insert transaction. */
  taskCreated(fx: EventBatch, taskId: string, started: boolean): void {
    this.traces.remember(taskId);
    fx.add(taskId, 'task.queued', { status: 'queued' });
    if (started) {
      fx.add(taskId, 'task.running', { status: 'running' });
      fx.add(taskId, 'wave.started', { wave: 1, status: 'running' });
    }
  }

  /** Runs `work` in a transaction with after-commit effects; for callers outside the engine. */
  run<T>(work: (trx: Trx, events: EventBatch) => Promise<T>): Promise<T> {
    return this.commit((trx, fx) => {
      fx.pump = true;
      return work(trx, fx.events);
    });
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

  /** Moves a task forward: starts it, fails it, closes its wave and opens the next, or ends it. */
  advance(taskId: string): Promise<void> {
    return this.lock.run(taskId, () =>
      this.commit(async (trx, fx) => {
        await this.advanceLocked(trx, fx, (await this.lockTasks(trx, [taskId])).get(taskId));
      }),
    );
  }

  /** The body of advance() for a task row this transaction has locked. */
  private async advanceLocked(trx: Trx, fx: Effects, task: TaskRow | undefined): Promise<void> {
    if (task) await this.advanceMany(trx, fx, [task]);
  }

  /**
   * Moves locked tasks on: starts a queued one that may start, fails one with a failed step, or,
   * once its current wave has no open step, starts the next wave or ends it. The running tasks'
   * steps are read in one query for all of them (a result batch advances many tasks at once).
   */
  private async advanceMany(trx: Trx, fx: Effects, tasks: TaskRow[]): Promise<void> {
    const running: TaskRow[] = [];
    for (const task of tasks) {
      if (TERMINAL.has(task.status)) continue;
      if (task.status !== 'queued') {
        running.push(task);
        continue;
      }
      if (task.not_before && new Date(task.not_before).getTime() > Date.now()) continue;
      await trx.updateTable('tasks').set({ status: 'running', current_wave: 1, updated_at: new Date() }).where('id', '=', task.id).execute();
      fx.events.add(task.id, 'task.running', { status: 'running' });
      fx.events.add(task.id, 'wave.started', { wave: 1, status: 'running' });
      fx.pump = true;
    }
    if (running.length === 0) return;
    const stepsOf = new Map<string, TaskStep[]>();
    const rows = await trx
      .selectFrom('steps')
      // Not their outputs: a wide wave is advanced after every result batch, and outputs can be large.
      .select(['task_id', 'id', 'wave', 'status', 'error', 'finished_at'])
      .where('task_id', 'in', running.map((t) => t.id))
      .execute();
    for (const r of rows) stepsOf.set(r.task_id, [...(stepsOf.get(r.task_id) ?? []), r]);
    for (const task of running) {
      const steps = stepsOf.get(task.id) ?? [];
      // The first step to have failed (by when it finished) names the task's failure.
      const failed = steps
        .filter((s) => s.status === 'failed')
        .sort((a, b) => (a.finished_at?.getTime() ?? Number.POSITIVE_INFINITY) - (b.finished_at?.getTime() ?? Number.POSITIVE_INFINITY))[0];
      if (failed) {
        const reason = failed.error ?? 'unknown error';
        const code = reason.startsWith('STEP_REJECTED') ? 'STEP_REJECTED' : 'TASK_STEP_FAILED';
        await this.finish(trx, fx, task, 'failed', code, `step ${failed.id} failed: ${reason}`, failed.wave, failed.id);
        continue;
      }
      if (steps.some((s) => s.wave === task.current_wave && (OPEN_STEP as readonly string[]).includes(s.status))) continue;
      const unfinished = steps.filter((s) => s.status !== 'succeeded').map((s) => s.wave);
      if (unfinished.length === 0) {
        await this.succeed(trx, fx, task);
        continue;
      }
      const next = Math.min(...unfinished);
      fx.events.add(task.id, 'wave.succeeded', { wave: task.current_wave, status: 'succeeded' });
      await trx.updateTable('tasks').set({ current_wave: next, updated_at: new Date() }).where('id', '=', task.id).execute();
      fx.events.add(task.id, 'wave.started', { wave: next, status: 'running' });
      fx.pump = true;
    }
  }

  /** The task output: the blueprint's output mapping (checked against its schema), else the last wave's outputs. */
  private async succeed(trx: Trx, fx: Effects, task: TaskRow): Promise<void> {
    const rows = await trx.selectFrom('steps').select(['id', 'output', 'wave']).where('task_id', '=', task.id).execute();
    let output: Record<string, unknown>;
    if (task.output_template) {
      try {
        output = resolveInput(task.output_template, new Map(rows.map((r) => [r.id, r.output])), { taskId: task.id });
      } catch (err) {
        await this.finish(trx, fx, task, 'failed', 'TASK_OUTPUT_INVALID', `task output cannot be assembled: ${(err as Error).message}`, task.wave_count, null);
        return;
      }
      const invalid = task.output_schema ? checkSchema(task.output_schema, output) : undefined;
      if (invalid) {
        await this.finish(trx, fx, task, 'failed', 'TASK_OUTPUT_INVALID', `task output does not match the blueprint's output schema: ${invalid}`, task.wave_count, null, output);
        return;
      }
    } else {
      const last = Math.max(...rows.map((r) => r.wave));
      output = { steps: Object.fromEntries(rows.filter((r) => r.wave === last).map((r) => [r.id, r.output])) };
    }
    await this.finish(trx, fx, task, 'succeeded', null, null, task.wave_count, null, output, true);
  }

  private async finish(
    trx: Trx,
    fx: Effects,
    task: TaskRow,
    status: 'succeeded' | 'failed' | 'cancelled',
    code: string | null,
    message: string | null,
    wave: number,
    failedStepId: string | null,
    output?: Record<string, unknown>,
    /** Every step of the task has succeeded (the caller just read them): nothing to stop. */
    allSucceeded = false,
  ): Promise<void> {
    const now = new Date();
    const inFlight = allSucceeded
      ? []
      : await trx.selectFrom('steps').select(['id', 'attempt', 'pool']).where('task_id', '=', task.id).where('status', 'in', [...IN_FLIGHT]).execute();
    const stopped = allSucceeded
      ? []
      : await trx
          .updateTable('steps')
          .set({ status: 'cancelled', finished_at: now, waiting_reason: null })
          .where('task_id', '=', task.id)
          .where('status', 'in', [...OPEN_STEP])
          .returning(['id', 'wave'])
          .execute();
    if (inFlight.length > 0) {
      const ended = await trx
        .updateTable('step_attempts')
        .set({ status: 'cancelled', finished_at: now })
        .where('task_id', '=', task.id)
        .where('status', 'in', [...IN_FLIGHT])
        .returning(['step_id', 'attempt', 'lease_id'])
        .execute();
      const poolOf = new Map(inFlight.map((s) => [s.id, s.pool]));
      for (const a of ended) if (a.lease_id) fx.releases.push({ holder: attemptIdOf(task.id, a.step_id, a.attempt), pool: poolOf.get(a.step_id) ?? '' });
      fx.cancels.push({ taskId: task.id, attemptIds: inFlight.map((s) => attemptIdOf(task.id, s.id, s.attempt)), reason: message ?? status });
    }
    for (const s of stopped) fx.events.add(task.id, 'step.cancelled', { wave: s.wave, stepId: s.id, status: 'cancelled', message: message ?? undefined });
    await trx
      .updateTable('tasks')
      .set({
        status,
        error_code: code,
        error_message: message,
        finished_at: now,
        updated_at: now,
        failed_step_id: failedStepId,
        output: output ? json(output) : null,
      })
      .where('id', '=', task.id)
      .execute();
    if (status !== 'cancelled') fx.events.add(task.id, status === 'succeeded' ? 'wave.succeeded' : 'wave.failed', { wave, status });
    fx.events.add(task.id, `task.${status}`, { status, message: message ?? undefined });
    fx.cancelChildrenOf.push(task.id);
    fx.pump = true;
    this.taskDuration.observe({ status }, (now.getTime() - new Date(task.created_at).getTime()) / 1000);
  }

  /** Cancels a task: pending and in-flight steps are cancelled and runtimes told; late results are ignored. */
  cancel(taskId: string, reason: string): Promise<void> {
    this.traces.remember(taskId);
    return this.lock.run(taskId, () =>
      this.commit(async (trx, fx) => {
        const task = (await this.lockTasks(trx, [taskId])).get(taskId);
        if (!task || TERMINAL.has(task.status)) return;
        await this.finish(trx, fx, task, 'cancelled', 'TASK_CANCELLED', reason, task.current_wave, null);
      }),
    );
  }

  private async cancelChildren(parentId: string): Promise<void> {
    const children = await this.db.selectFrom('tasks').select('id').where('parent_task_id', '=', parentId).where('status', 'in', ['queued', 'running']).execute();
    for (const c of children) await this.cancel(c.id, `parent task ${parentId} ended`).catch((err: unknown) => this.logger.warn(`cancel child ${c.id}: ${String(err)}`));
  }

  /** Approves or rejects a step waiting at its gate (an approval step, or a policy asking for approval). */
  async decide(taskId: string, stepId: string, subject: string, approve: boolean, comment: string): Promise<void> {
    this.traces.remember(taskId);
    await this.lock.run(taskId, () =>
      this.commit(async (trx, fx) => {
        const task = (await this.lockTasks(trx, [taskId])).get(taskId);
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
            .set({ status: 'failed', error: `STEP_REJECTED: rejected by ${subject}${note}`, finished_at: now, waiting_reason: null })
            .where('task_id', '=', taskId)
            .where('id', '=', stepId)
            .execute();
          fx.events.add(taskId, 'step.rejected', { wave: step.wave, stepId, status: 'failed', message: `rejected by ${subject}${note}` });
          fx.advance.add(taskId);
          return;
        }
        fx.events.add(taskId, 'step.approved', { wave: step.wave, stepId, status: 'approved', message: `approved by ${subject}${note}` });
        if (step.action === 'approval') {
          await trx
            .updateTable('steps')
            .set({ status: 'succeeded', approved_by: subject, output: json({ approved: true, approvedBy: subject, comment, at: now.toISOString() }), started_at: step.started_at ?? now, finished_at: now, waiting_reason: null })
            .where('task_id', '=', taskId)
            .where('id', '=', stepId)
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

  // ---------------------------------------------------------------------------------------
  // Scheduling and dispatch

  /** Asks for a scheduling round; rounds never overlap in a process and repeat while work is found. */
  schedulePump(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = (async () => {
      try {
        do {
          this.pumpAgain = false;
          const n = await this.pumpOnce().catch((err: unknown) => {
            this.logger.warn(`scheduling round failed: ${String(err)}`);
            return 0;
          });
          if (n >= this.extra.DISPATCH_BATCH) this.pumpAgain = true;
        } while (this.pumpAgain && !this.stopped);
      } finally {
        this.pumping = undefined;
      }
    })();
  }

  /** Steps in flight (dispatched or running) per workspace. */
  private async inFlightCounts(trx: Trx): Promise<Map<string, number>> {
    const rows = await trx
      .selectFrom('steps')
      .select(['workspace', (eb) => eb.fn.countAll<string>().as('n')])
      .where('status', 'in', [...IN_FLIGHT])
      .groupBy('workspace')
      .execute();
    return new Map(rows.map((r) => [r.workspace, Number(r.n)]));
  }

  private workspaceLimit(ws: string): number {
    return this.extra.WORKSPACE_LIMITS[ws] ?? this.extra.WORKSPACE_MAX_IN_FLIGHT;
  }

  /** One scheduling round; returns how many candidate steps it looked at. */
  private async pumpOnce(): Promise<number> {
    // Read before the transaction, which (with its advisory lock) stays as short as it can.
    const rules = await this.policies.rules();
    const round: Round = { outgoing: [], granted: new Map(), dispatched: new Set() };
    let looked: number;
    try {
      looked = await this.commit((trx, fx) => this.scheduleRound(trx, fx, rules, round));
    } catch (err) {
      // The round rolled back (here when the commit itself failed): none of its leases is in use.
      if (round.granted.size > 0) await this.leases.releaseNow(round.granted.values());
      throw err;
    }
    // Granted, but the step failed before dispatch (no agent, unresolvable input). Awaited, so
    // this process's next round never asks for a holder whose release is still on its way.
    const unused = [...round.granted.values()].filter((l) => !round.dispatched.has(l.holder));
    if (unused.length > 0) await this.leases.releaseNow(unused);
    await this.publishDispatches(round.outgoing);
    return looked;
  }

  /** The body of a round, in its transaction: picks the steps, then dispatches them. */
  private async scheduleRound(trx: Trx, fx: Effects, rules: PolicyRule[], round: Round): Promise<number> {
    const locked = await sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(${PUMP_LOCK_KEY}) as ok`.execute(trx);
    if (!locked.rows[0]?.ok) {
      // Another replica is scheduling; look again shortly.
      return 0;
    }
    const inFlight = await this.inFlightCounts(trx);
    const fullWorkspaces = [...inFlight].filter(([ws, n]) => n >= this.workspaceLimit(ws)).map(([ws]) => ws);
    // Steps of a tool at the gateway's limit stay out of the round (they would fill it and hold back
    // every step behind them); they show why they wait.
    const toolCalls = await this.toolCallsInFlight(trx);
    const fullTools = toolCalls ? this.toolCapacity.full(toolCalls) : [];
    for (const full of fullTools) await this.holdForTool(trx, fx, full);
    const aging = this.extra.PRIORITY_AGING_SECONDS;
    const candidates = (
      await sql<Candidate>`
        select s.*, t.priority as task_priority, t.principal, t.correlation_id, t.depth as task_depth
        from steps s join tasks t on t.id = s.task_id
        where s.status = 'pending' and t.status = 'running' and s.wave = t.current_wave
          and (s.next_attempt_at is null or s.next_attempt_at <= now())
          ${fullWorkspaces.length ? sql`and s.workspace not in (${sql.join(fullWorkspaces)})` : sql``}
          ${poolSkipFilter(this.leases.skips())}
          ${fullToolFilter(fullTools)}
        order by (case t.priority when 'P0' then 0 when 'P1' then 1 else 2 end)
                   - floor(extract(epoch from (now() - t.created_at)) / ${aging}),
                 t.created_at, t.id, s.ordinal
        limit ${this.extra.DISPATCH_BATCH}`.execute(trx)
    ).rows;
    if (candidates.length === 0) return 0;
    const tasks = await this.lockTasks(trx, candidates.map((c) => c.task_id));
    const budgets = await this.dispatchedCounts(trx, [...tasks.keys()]);
    const capacityWaits = new Map<string, Candidate[]>();
    const chosen: Candidate[] = [];
    for (const step of candidates) {
      const task = tasks.get(step.task_id);
      if (!task || task.status !== 'running') continue;
      if (step.action === 'approval') {
        await this.hold(trx, fx, step, 'waiting for approval');
        continue;
      }
      const wsCount = inFlight.get(step.workspace) ?? 0;
      if (wsCount >= this.workspaceLimit(step.workspace)) continue;
      const used = budgets.get(step.task_id) ?? { steps: 0, gpu: 0 };
      const decision = evaluatePolicies(rules, {
        capability: step.capability,
        tools: toolsOf(step.action, step.input),
        workspace: step.workspace,
        roles: step.principal.roles,
        action: step.action,
        pool: step.pool,
        gpu: step.gpu,
        dispatchedSteps: used.steps,
        dispatchedGpuSteps: used.gpu,
      });
      this.decisions.inc({ effect: decision.effect });
      if (decision.policy) {
        const approvedBefore = !!step.approved_by && decision.effect === 'require_approval';
        const effect = approvedBefore ? 'allow' : decision.effect;
        const recorded = await trx
          .insertInto('policy_decisions')
          .values({
            // One record per attempt and outcome: a step held for approval, then allowed, has both.
            id: `${step.task_id}.${step.id}.${step.attempt + 1}.${effect}`,
            task_id: step.task_id,
            step_id: step.id,
            policy_id: decision.policy.id,
            policy_name: decision.policy.name,
            effect,
            reason: approvedBefore ? `${decision.reason}; approved by ${step.approved_by}` : decision.reason,
            workspace: step.workspace,
            subject: step.principal.subject,
          })
          .onConflict((oc) => oc.column('id').doNothing())
          .returning('id')
          .executeTakeFirst();
        // A pool step waiting for its lease is decided again in every round that tries it: one event per record.
        if (recorded) fx.events.add(step.task_id, 'policy.decision', { wave: step.wave, stepId: step.id, status: decision.effect, message: decision.reason });
      }
      if (decision.effect === 'deny') {
        await this.failUndispatched(trx, fx, step, `POLICY_DENIED: ${decision.reason}`);
        continue;
      }
      if (decision.effect === 'require_approval' && !step.approved_by) {
        await this.hold(trx, fx, step, `waiting for approval: ${decision.reason}`);
        continue;
      }
      const tool = step.action === 'tool' && typeof step.input.tool === 'string' ? step.input.tool : undefined;
      if (toolCalls && tool) {
        const admitted = this.toolCapacity.admit(step.principal.subject, tool, toolCalls);
        if (!admitted.ok) {
          if (step.waiting_reason !== admitted.reason) capacityWaits.set(admitted.reason, [...(capacityWaits.get(admitted.reason) ?? []), step]);
          continue;
        }
      }
      inFlight.set(step.workspace, wsCount + 1);
      budgets.set(step.task_id, { steps: used.steps + 1, gpu: used.gpu + (step.gpu ? 1 : 0) });
      chosen.push(step);
    }
    for (const [reason, steps] of capacityWaits) await this.markWaiting(trx, fx, steps, reason);
    if (chosen.length === 0) return candidates.length;
    try {
      await this.dispatchChosen(trx, fx, chosen, round);
    } catch (err) {
      // Given back before the rollback ends the round's advisory lock, so no other round can
      // have been granted the same holders in between.
      await this.leases.releaseNow(round.granted.values());
      round.granted.clear();
      throw err;
    }
    return candidates.length;
  }

  /** Leases for the pool steps, agents for all, inputs resolved, then one statement marks them dispatched. */
  private async dispatchChosen(trx: Trx, fx: Effects, chosen: Candidate[], round: Round): Promise<void> {
    const leased = await this.leaseFor(trx, fx, chosen, round.granted);
    if (leased.length === 0) return;
    const agents = await this.selectAgents(leased);
    const outputs = await this.outputsFor(trx, leased.filter((s) => hasReferences(s.input)).map((s) => s.task_id));
    const ready: Array<{ step: Candidate; agentId: string; input: Record<string, unknown>; leaseId: string | null }> = [];
    for (const [i, step] of leased.entries()) {
      const pick = agents[i]!;
      if ('error' in pick) {
        await this.failUndispatched(trx, fx, step, pick.error);
        continue;
      }
      let input = step.input;
      try {
        if (hasReferences(input)) input = resolveInput(input, outputs.get(step.task_id) ?? new Map(), { taskId: step.task_id });
      } catch (err) {
        await this.failUndispatched(trx, fx, step, `TASK_INVALID_PLAN: ${(err as Error).message}`);
        continue;
      }
      const lease = step.pool ? round.granted.get(nextAttemptIdOf(step)) : undefined;
      ready.push({ step, agentId: pick.agentId, input, leaseId: lease?.leaseId ?? null });
    }
    const dispatched = await this.markDispatched(
      trx,
      ready.map((r) => ({ taskId: r.step.task_id, stepId: r.step.id, agentId: r.agentId, leaseId: r.leaseId })),
    );
    for (const r of ready) {
      const attempt = dispatched.get(`${r.step.task_id}/${r.step.id}`);
      if (attempt === undefined) continue;
      round.dispatched.add(attemptIdOf(r.step.task_id, r.step.id, attempt));
      fx.events.add(r.step.task_id, 'step.dispatched', { wave: r.step.wave, stepId: r.step.id, agentId: r.agentId, status: 'dispatched' });
      round.outgoing.push(this.dispatchPayload(r.step, r.agentId, attempt, r.input));
    }
  }

  /**
   * The chosen steps that may be dispatched now: steps without a pool, and pool steps that were
   * granted a lease (one AcquireLeases call for the round, in its priority order, holder = the
   * attempt id the step is about to get). Refused steps stay pending with the reason.
   *
   * The call is made inside the round's transaction, after every other check: leases are asked
   * only for steps that are about to be dispatched, under the advisory lock, so no other round
   * can ask for the same holders meanwhile and a rollback gives them back first. Asking before
   * the transaction would mean guessing the round's steps from a read another replica's round
   * could overtake, and giving back leases that round may have been granted for the same holder
   * (acquisition is idempotent per holder). The price is bounded: a round already waits for the
   * registry's SelectAgents here, the call has a short deadline, a round without pool steps
   * makes none, and once workspace-coord failed or refused a pool, rounds skip those steps
   * until a lease is released or reconcile runs.
   */
  private async leaseFor(trx: Trx, fx: Effects, chosen: Candidate[], granted: Map<string, GrantedLease>): Promise<Candidate[]> {
    const poolSteps = chosen.filter((s) => s.pool);
    if (poolSteps.length === 0) return chosen;
    // One call per round, within what workspace-coord takes in one; the rest go next round.
    const asked = poolSteps.slice(0, MAX_LEASES_PER_CALL);
    if (asked.length < poolSteps.length) fx.pump = true;
    const decisions = await this.leases.acquire(
      asked.map((s) => ({ holder: nextAttemptIdOf(s), pool: s.pool!, workspace: s.workspace, priority: s.task_priority, timeoutMs: s.timeout_ms })),
    );
    const waiting = new Map<string, Candidate[]>();
    const leased: Candidate[] = [];
    for (const step of chosen) {
      if (!step.pool) {
        leased.push(step);
        continue;
      }
      const holder = nextAttemptIdOf(step);
      const decision: LeaseDecision | undefined = decisions.get(holder);
      if (!decision) continue;
      if (decision.granted) {
        granted.set(holder, { holder, pool: step.pool, leaseId: decision.leaseId });
        leased.push(step);
      } else if (step.waiting_reason !== decision.waitingReason) {
        const same = waiting.get(decision.waitingReason) ?? [];
        same.push(step);
        waiting.set(decision.waitingReason, same);
      }
    }
    for (const [reason, steps] of waiting) await this.markWaiting(trx, fx, steps, reason);
    return leased;
  }

  /**
   * Tool calls in flight per caller and tool, when the gateway's limits are known (undefined
   * otherwise: nothing to hold steps to).
   */
  private async toolCallsInFlight(trx: Trx): Promise<Map<string, number> | undefined> {
    if (!this.toolCapacity.active) return undefined;
    const rows = await sql<{ subject: string; tool: string; n: number }>`
      select t.principal->>'subject' as subject, s.input->>'tool' as tool, count(*)::int as n
      from steps s join tasks t on t.id = s.task_id
      where s.status in ('dispatched', 'running') and s.action = 'tool' and jsonb_typeof(s.input->'tool') = 'string'
      group by 1, 2`.execute(trx);
    return this.toolCapacity.inFlight(rows.rows);
  }

  /** The ready steps a reached tool or server limit holds back get its reason (once) and a step.waiting event. */
  private async holdForTool(trx: Trx, fx: Effects, full: FullLimit): Promise<void> {
    const held = await sql<{ task_id: string; id: string; wave: number }>`
      update steps s set waiting_reason = ${full.reason}, next_attempt_at = null
      from tasks t
      where t.id = s.task_id and t.status = 'running' and s.wave = t.current_wave and s.status = 'pending'
        and (s.next_attempt_at is null or s.next_attempt_at <= now())
        and ${heldBy(full)}
        and s.waiting_reason is distinct from ${full.reason}
      returning s.task_id, s.id, s.wave`.execute(trx);
    for (const h of held.rows) fx.events.add(h.task_id, 'step.waiting', { wave: h.wave, stepId: h.id, status: 'pending', message: full.reason });
  }

  /**
   * Steps that must wait for capacity (a pool lease refused, a tool at the gateway's limit) stay
   * pending with the reason and without a retry time: a release or a finished call lets them
   * through (workspace stats count pool steps waiting this way as blocked).
   */
  private async markWaiting(trx: Trx, fx: Effects, steps: Candidate[], reason: string): Promise<void> {
    for (let i = 0; i < steps.length; i += 1000) {
      const chunk = steps.slice(i, i + 1000);
      await trx
        .updateTable('steps')
        .set({ waiting_reason: reason, next_attempt_at: null })
        .where(({ eb, refTuple, tuple }) => eb(refTuple('task_id', 'id'), 'in', chunk.map((s) => tuple(s.task_id, s.id))))
        .execute();
    }
    for (const s of steps) fx.events.add(s.task_id, 'step.waiting', { wave: s.wave, stepId: s.id, status: 'pending', message: reason });
  }

  /** Steps (and GPU steps) each task has dispatched so far, for budgets. */
  private async dispatchedCounts(trx: Trx, taskIds: string[]): Promise<Map<string, { steps: number; gpu: number }>> {
    if (taskIds.length === 0) return new Map();
    const rows = await trx
      .selectFrom('steps')
      .select(['task_id', sql<string>`count(*) filter (where attempt > 0)`.as('steps'), sql<string>`count(*) filter (where attempt > 0 and gpu)`.as('gpu')])
      .where('task_id', 'in', taskIds)
      .groupBy('task_id')
      .execute();
    return new Map(rows.map((r) => [r.task_id, { steps: Number(r.steps), gpu: Number(r.gpu) }]));
  }

  private async hold(trx: Trx, fx: Effects, step: StepRow, reason: string): Promise<void> {
    await trx.updateTable('steps').set({ status: 'waiting_approval', waiting_reason: reason }).where('task_id', '=', step.task_id).where('id', '=', step.id).execute();
    fx.events.add(step.task_id, 'step.waiting', { wave: step.wave, stepId: step.id, status: 'waiting_approval', message: reason });
  }

  /** A step that cannot be dispatched (policy, no agent, unresolvable input) fails for good. */
  private async failUndispatched(trx: Trx, fx: Effects, step: StepRow, message: string): Promise<void> {
    await trx.updateTable('steps').set({ status: 'failed', error: message, finished_at: new Date(), waiting_reason: null }).where('task_id', '=', step.task_id).where('id', '=', step.id).execute();
    fx.events.add(step.task_id, 'step.failed', { wave: step.wave, stepId: step.id, status: 'failed', message });
    fx.advance.add(step.task_id);
  }

  /** One registry call for the whole round. A delegate step goes to an agent one level below the task's. */
  private async selectAgents(steps: Candidate[]): Promise<Array<{ agentId: string } | { error: string }>> {
    const registry = await this.peers.get('agent-registry', pb.AgentRegistryClient);
    const res = await callUnary(
      registry.selectAgents.bind(registry),
      {
        requests: steps.map((s) => ({
          capability: s.capability ?? '',
          workspace: s.workspace,
          agentId: s.agent ?? '',
          level: s.action === 'delegate' ? Math.min(s.task_depth + 1, 2) : 0,
          filterLevel: s.action === 'delegate' && !s.agent,
          withChildren: s.action === 'delegate' && !s.agent,
        })),
      },
      { peer: 'agent-registry', timeoutMs: 10_000 },
    );
    return steps.map((_, i) => {
      const r = res.results[i];
      if (r?.agent && !r.errorCode) return { agentId: r.agent.id };
      return { error: `${r?.errorCode || 'AGENT_UNAVAILABLE'}: ${r?.errorMessage || 'no agent selected'}` };
    });
  }

  private async outputsFor(trx: Trx, taskIds: string[]): Promise<Map<string, Map<string, unknown>>> {
    const byTask = new Map<string, Map<string, unknown>>();
    const ids = [...new Set(taskIds)];
    if (ids.length === 0) return byTask;
    const rows = await trx.selectFrom('steps').select(['task_id', 'id', 'output']).where('task_id', 'in', ids).where('status', '=', 'succeeded').execute();
    for (const r of rows) {
      const m = byTask.get(r.task_id) ?? new Map<string, unknown>();
      m.set(r.id, r.output);
      byTask.set(r.task_id, m);
    }
    return byTask;
  }

  /** pending → dispatched for many steps in one statement; returns the new attempt numbers. */
  private async markDispatched(trx: Trx, rows: Array<{ taskId: string; stepId: string; agentId: string; leaseId: string | null }>): Promise<Map<string, number>> {
    const leaseOf = new Map(rows.map((r) => [`${r.taskId}/${r.stepId}`, r.leaseId]));
    const result = new Map<string, number>();
    for (let i = 0; i < rows.length; i += 1000) {
      const chunk = rows.slice(i, i + 1000);
      const values = sql.join(chunk.map((r) => sql`(${r.taskId}, ${r.stepId}, ${r.agentId})`));
      const updated = await sql<{ task_id: string; id: string; attempt: number; dispatched_at: Date }>`
        update steps as s
        set status = 'dispatched', attempt = s.attempt + 1, agent_id = v.agent_id, dispatched_at = now(),
            published_at = null, waiting_reason = null, error = null, next_attempt_at = null
        from (values ${values}) as v(task_id, id, agent_id)
        where s.task_id = v.task_id and s.id = v.id and s.status = 'pending'
        returning s.task_id, s.id, s.attempt, s.agent_id, s.dispatched_at`.execute(trx);
      const attempts = updated.rows as Array<{ task_id: string; id: string; attempt: number; agent_id: string; dispatched_at: Date }>;
      for (const u of attempts) result.set(`${u.task_id}/${u.id}`, u.attempt);
      if (attempts.length > 0) {
        await trx
          .insertInto('step_attempts')
          .values(
            attempts.map((u) => ({
              task_id: u.task_id,
              step_id: u.id,
              attempt: u.attempt,
              agent_id: u.agent_id,
              status: 'dispatched',
              dispatched_at: u.dispatched_at,
              lease_id: leaseOf.get(`${u.task_id}/${u.id}`) ?? null,
            })),
          )
          .onConflict((oc) => oc.columns(['task_id', 'step_id', 'attempt']).doNothing())
          .execute();
      }
    }
    return result;
  }

  private dispatchPayload(step: Candidate, agentId: string, attempt: number, input: Record<string, unknown>): Dispatch {
    return StepDispatchPayload.parse({
      taskId: step.task_id,
      stepId: step.id,
      attemptId: attemptIdOf(step.task_id, step.id, attempt),
      attempt,
      capability: step.capability ?? 'agent',
      action: step.action,
      workspace: step.workspace,
      agentId,
      input,
      timeoutMs: step.timeout_ms,
      correlationId: step.correlation_id,
      principal: step.principal,
      depth: step.task_depth,
      priority: step.task_priority,
      pool: step.pool ?? undefined,
    });
  }

  /** Publishes dispatches (in order, concurrently) and records which JetStream confirmed. */
  private async publishDispatches(list: Dispatch[]): Promise<void> {
    if (list.length === 0) return;
    const results = await Promise.allSettled(list.map((d) => this.traces.run(d.taskId, () => this.nats.publish(Subject.StepDispatch, d.capability, d, { msgId: d.attemptId }))));
    const confirmed = list.filter((_, i) => results[i]!.status === 'fulfilled');
    if (confirmed.length < list.length) {
      // The steps stay dispatched in Postgres; reconcile publishes them again under the same id.
      this.logger.warn(`${list.length - confirmed.length} dispatches not confirmed by JetStream yet`);
    }
    for (const d of confirmed) this.carried.published.push({ taskId: d.taskId, stepId: d.stepId });
  }

  // ---------------------------------------------------------------------------------------
  // Results

  /** Results are recorded in batches (one transaction for many); the message is acked once its batch commits. */
  enqueueResult(result: StepResult): Promise<void> {
    // The next wave continues the trace from this result (the consumer's span).
    this.traces.remember(result.taskId);
    return new Promise((resolve, reject) => {
      this.resultQueue.push({ result, done: (err) => (err ? reject(err) : resolve()) });
      this.resultFlush ??= new Promise<void>((r) => setImmediate(r)).then(() => this.flushResults());
    });
  }

  private async flushResults(): Promise<void> {
    try {
      while (this.resultQueue.length > 0) {
        const batch = this.resultQueue.splice(0, this.extra.RESULT_BATCH_MAX);
        try {
          await this.recordResults(batch.map((b) => b.result));
          for (const b of batch) b.done();
        } catch (err) {
          for (const b of batch) b.done(err);
        }
      }
    } finally {
      this.resultFlush = undefined;
    }
  }

  /** Records step results once per attempt; duplicates and late results change nothing. */
  async recordResults(results: StepResult[]): Promise<void> {
    await this.commit(async (trx, fx) => {
      const tasks = await this.lockTasks(trx, results.map((r) => r.taskId));
      const now = new Date();
      await this.recordRunning(trx, fx, results.filter((x) => x.status === 'running'));
      const terminal = results.filter((x) => x.status !== 'running');
      if (terminal.length === 0) return;
      const fresh = new Set(
        (
          await trx
            .insertInto('step_ledger')
            .values(terminal.map((r) => ({ attempt_id: r.attemptId, task_id: r.taskId, step_id: r.stepId, status: r.status })))
            .onConflict((oc) => oc.column('attempt_id').doNothing())
            .returning('attempt_id')
            .execute()
        ).map((r) => r.attempt_id),
      );
      if (fresh.size === 0) return;
      const steps = await trx
        .selectFrom('steps')
        .selectAll()
        .where(({ eb, refTuple, tuple }) => eb(refTuple('task_id', 'id'), 'in', terminal.map((r) => tuple(r.taskId, r.stepId))))
        .execute();
      const byKey = new Map(steps.map((s) => [`${s.task_id}/${s.id}`, s]));
      const ends: AttemptEnding[] = [];
      for (const r of terminal) {
        if (!fresh.has(r.attemptId)) continue;
        fresh.delete(r.attemptId);
        const step = byKey.get(`${r.taskId}/${r.stepId}`);
        const attempt = attemptNumber(r.attemptId);
        if (!step || !IN_FLIGHT.includes(step.status as (typeof IN_FLIGHT)[number]) || step.attempt !== attempt) continue;
        let status: 'succeeded' | 'failed' = r.status === 'succeeded' ? 'succeeded' : 'failed';
        let message = r.error ? `${r.error.code}: ${r.error.message}` : null;
        if (status === 'succeeded') {
          const gate = checkQualityGate(step.quality_gate, r.output ?? {});
          if (gate) {
            status = 'failed';
            message = `QUALITY_GATE_FAILED: ${gate}`;
          }
        }
        const move = nextMove(
          { attempt: step.attempt, retries: step.retries, capacityWaits: step.capacity_waits, retryBackoffMs: step.retry_backoff_ms },
          { status, code: r.error?.code, message: r.error?.message, retryAfterSeconds: r.error?.retryAfterSeconds },
          now,
        );
        const again = move.kind !== 'done';
        const childTaskId = typeof r.output?.childTaskId === 'string' ? r.output.childTaskId : step.child_task_id;
        const startedAt = step.started_at ?? new Date(r.startedAt);
        ends.push({
          step: {
            task_id: step.task_id,
            id: step.id,
            status: again ? 'pending' : status,
            output: r.output ? JSON.stringify(r.output) : null,
            error: message,
            started_at: startedAt,
            finished_at: again ? null : new Date(r.finishedAt ?? now),
            next_attempt_at: again ? move.at : null,
            waiting_reason: again ? move.reason : null,
            capacity_waits: move.kind === 'wait' ? step.capacity_waits + 1 : step.capacity_waits,
            child_task_id: childTaskId,
          },
          attempt: {
            attempt,
            // A refused attempt did no work: it shows as refused, not failed.
            status: move.kind === 'wait' ? 'refused' : status,
            finished_at: new Date(r.finishedAt ?? now),
            holder: r.attemptId,
            pool: step.pool ?? '',
          },
        });
        if (move.kind === 'wait') {
          const scope = r.error?.scope;
          if (r.error?.limit !== undefined && (scope === 'tool' || scope === 'server') && r.error.code === 'TOOL_CONCURRENCY_LIMITED') {
            const subject = tasks.get(step.task_id)?.principal.subject;
            const tool = typeof step.input.tool === 'string' ? step.input.tool : undefined;
            if (subject && tool) this.toolCapacity.learn({ subject, tool, scope, limit: r.error.limit });
          }
          fx.events.add(step.task_id, 'step.waiting', { wave: step.wave, stepId: step.id, agentId: r.agentId, status: 'pending', message: move.reason });
        } else if (move.kind === 'retry') {
          fx.events.add(step.task_id, 'step.retrying', { wave: step.wave, stepId: step.id, agentId: r.agentId, status: 'pending', message: message ?? undefined });
        } else {
          fx.events.add(step.task_id, `step.${status}`, { wave: step.wave, stepId: step.id, agentId: r.agentId, status, message: message ?? undefined });
          fx.advance.add(step.task_id);
        }
      }
      await this.writeEndings(trx, fx, ends);
      // The tasks are locked already: moving them on here saves a transaction per result.
      await this.advanceMany(trx, fx, [...fx.advance].flatMap((id) => tasks.get(id) ?? []));
      fx.advance.clear();
      fx.pump = true;
    });
  }

  /** `running` notices: dispatched → running for many steps in two statements, and their events. */
  private async recordRunning(trx: Trx, fx: Effects, notices: StepResult[]): Promise<void> {
    for (let i = 0; i < notices.length; i += 1000) {
      const chunk = notices.slice(i, i + 1000);
      const agentOf = new Map(chunk.map((r) => [`${r.taskId}/${r.stepId}/${attemptNumber(r.attemptId)}`, r.agentId]));
      const values = sql.join(chunk.map((r) => sql`(${r.taskId}, ${r.stepId}, ${attemptNumber(r.attemptId)}::int, ${new Date(r.startedAt)}::timestamptz)`));
      const started = await sql<{ task_id: string; id: string; wave: number; attempt: number; started_at: Date }>`
        update steps s set status = 'running', started_at = v.started_at
        from (values ${values}) as v(task_id, id, attempt, started_at)
        where s.task_id = v.task_id and s.id = v.id and s.status = 'dispatched' and s.attempt = v.attempt
        returning s.task_id, s.id, s.wave, s.attempt, s.started_at`.execute(trx);
      if (started.rows.length === 0) continue;
      await sql`
        update step_attempts a set status = 'running', started_at = v.started_at
        from (values ${sql.join(started.rows.map((r) => sql`(${r.task_id}, ${r.id}, ${r.attempt}::int, ${r.started_at}::timestamptz)`))}) as v(task_id, step_id, attempt, started_at)
        where a.task_id = v.task_id and a.step_id = v.step_id and a.attempt = v.attempt`.execute(trx);
      for (const r of started.rows) {
        fx.events.add(r.task_id, 'step.running', { wave: r.wave, stepId: r.id, agentId: agentOf.get(`${r.task_id}/${r.id}/${r.attempt}`), status: 'running' });
      }
    }
  }

  /** The steps and attempts that results ended, each in one multi-row statement; leases of ended attempts go back. */
  private async writeEndings(trx: Trx, fx: Effects, ends: AttemptEnding[]): Promise<void> {
    for (let i = 0; i < ends.length; i += 500) {
      const chunk = ends.slice(i, i + 500);
      const steps = sql.join(
        chunk.map(
          ({ step: s }) =>
            sql`(${s.task_id}, ${s.id}, ${s.status}, ${s.output}::jsonb, ${s.error}::text, ${s.started_at}::timestamptz, ${s.finished_at}::timestamptz,
                 ${s.next_attempt_at}::timestamptz, ${s.waiting_reason}::text, ${s.capacity_waits}::int, ${s.child_task_id}::text)`,
        ),
      );
      await sql`
        update steps s set status = v.status, output = v.output, error = v.error, started_at = v.started_at, finished_at = v.finished_at,
                           next_attempt_at = v.next_attempt_at, waiting_reason = v.waiting_reason, capacity_waits = v.capacity_waits, child_task_id = v.child_task_id
        from (values ${steps}) as v(task_id, id, status, output, error, started_at, finished_at, next_attempt_at, waiting_reason, capacity_waits, child_task_id)
        where s.task_id = v.task_id and s.id = v.id`.execute(trx);
      const attempts = sql.join(
        chunk.map(
          ({ step: s, attempt: a }) =>
            sql`(${s.task_id}, ${s.id}, ${a.attempt}::int, ${a.status}, ${s.error}::text, ${s.started_at}::timestamptz, ${a.finished_at}::timestamptz)`,
        ),
      );
      const ended = await sql<{ task_id: string; step_id: string; lease_id: string | null }>`
        update step_attempts a set status = v.status, error = v.error, started_at = v.started_at, finished_at = v.finished_at
        from (values ${attempts}) as v(task_id, step_id, attempt, status, error, started_at, finished_at)
        where a.task_id = v.task_id and a.step_id = v.step_id and a.attempt = v.attempt
        returning a.task_id, a.step_id, a.lease_id`.execute(trx);
      const byStep = new Map(chunk.map((e) => [`${e.step.task_id}/${e.step.id}`, e.attempt]));
      for (const row of ended.rows) {
        const a = byStep.get(`${row.task_id}/${row.step_id}`);
        if (row.lease_id && a) fx.releases.push({ holder: a.holder, pool: a.pool });
      }
    }
  }

  private async onMaxDeliveries(data: Uint8Array): Promise<void> {
    const advisory = JSON.parse(Buffer.from(data).toString('utf8')) as { stream_seq?: number; deliveries?: number };
    if (!advisory.stream_seq) return;
    const stored = await this.nats.manager.streams.getMessage(Streams.steps.name, { seq: advisory.stream_seq });
    const parsed = StepDispatchPayload.safeParse(JSON.parse(Buffer.from(stored.data).toString('utf8')));
    if (!parsed.success) return;
    await this.enqueueResult(exhausted(parsed.data, `delivered ${advisory.deliveries ?? Consumers.stepWorkers.maxDeliver} times without a result (agent runtimes crashed or stalled)`));
    await this.nats.manager.streams.deleteMessage(Streams.steps.name, advisory.stream_seq).catch(() => undefined);
  }

  // ---------------------------------------------------------------------------------------
  // Reconcile

  /** Continues unfinished work after a crash and catches what timers missed. */
  async reconcile(outboxAgeMs = 2_000): Promise<void> {
    // Leases also free up elsewhere (other replicas, expiry): refused pools are asked again.
    this.leases.forgetRefusals();
    try {
      await this.publisher.flushLeftovers(outboxAgeMs);
      await this.republishUnconfirmed();
      await this.failTimedOut();
      const stalled = await sql<{ id: string }>`
        select t.id from tasks t
        where t.status = 'queued' and (t.not_before is null or t.not_before <= now())
        union
        select t.id from tasks t
        where t.status = 'running' and not exists (
          select 1 from steps s where s.task_id = t.id and s.wave = t.current_wave
            and s.status in ('pending', 'dispatched', 'running', 'waiting_approval'))
        union
        select s.task_id from steps s join tasks t on t.id = s.task_id
        where t.status = 'running' and s.status = 'failed'`.execute(this.db);
      for (const t of stalled.rows) await this.advance(t.id);
      const delayed = await this.db.selectFrom('tasks').select(['id', 'not_before']).where('status', '=', 'queued').where('not_before', '>', new Date()).execute();
      for (const t of delayed) if (!this.delayedStarts.has(t.id)) this.scheduleStart(t.id, new Date(t.not_before!));
      this.schedulePump();
    } catch (err) {
      this.logger.warn(`reconcile failed: ${String(err)}`);
    }
  }

  /** Dispatches committed but never confirmed by JetStream (a crash or an outage in between). */
  private async republishUnconfirmed(): Promise<void> {
    const rows = await this.db
      .selectFrom('steps')
      .innerJoin('tasks', 'tasks.id', 'steps.task_id')
      .selectAll('steps')
      .select(['tasks.priority as task_priority', 'tasks.principal as principal', 'tasks.correlation_id as correlation_id', 'tasks.depth as task_depth'])
      .where('steps.status', '=', 'dispatched')
      .where('steps.published_at', 'is', null)
      .where('steps.dispatched_at', '<', new Date(Date.now() - REPUBLISH_AFTER_MS))
      .limit(5_000)
      .execute();
    if (rows.length === 0) return;
    const outputs = await this.db.transaction().execute((trx) => this.outputsFor(trx, rows.filter((s) => hasReferences(s.input)).map((s) => s.task_id)));
    const list: Dispatch[] = [];
    for (const s of rows) {
      try {
        const input = hasReferences(s.input) ? resolveInput(s.input, outputs.get(s.task_id) ?? new Map(), { taskId: s.task_id }) : s.input;
        list.push(this.dispatchPayload(s as Candidate, s.agent_id!, s.attempt, input));
      } catch (err) {
        this.logger.warn(`cannot republish ${s.task_id}/${s.id}: ${String(err)}`);
      }
    }
    await this.publishDispatches(list);
  }

  /** Running steps past their timeout (plus grace) fail with STEP_TIMEOUT; their runtime is told to stop. */
  private async failTimedOut(): Promise<void> {
    const grace = this.extra.STEP_TIMEOUT_GRACE_MS;
    const rows = await sql<{ task_id: string; id: string; attempt: number; agent_id: string; started_at: Date; timeout_ms: number }>`
      select task_id, id, attempt, agent_id, started_at, timeout_ms from steps
      where status = 'running' and started_at + ((timeout_ms + ${grace}) * interval '1 millisecond') < now()
      limit 1000`.execute(this.db);
    if (rows.rows.length === 0) return;
    const now = new Date().toISOString();
    await this.recordResults(
      rows.rows.map((s) => ({
        taskId: s.task_id,
        stepId: s.id,
        attemptId: attemptIdOf(s.task_id, s.id, s.attempt),
        agentId: s.agent_id,
        status: 'failed' as const,
        error: { code: 'STEP_TIMEOUT', message: `no result within ${s.timeout_ms} ms (+${grace} ms grace)` },
        startedAt: new Date(s.started_at).toISOString(),
        finishedAt: now,
      })),
    );
    for (const s of rows.rows) {
      this.nats.publishCore(Subject.StepCancel, s.task_id, { taskId: s.task_id, attemptIds: [attemptIdOf(s.task_id, s.id, s.attempt)], reason: 'step timed out' });
    }
  }
}

function exhausted(dispatch: Dispatch, reason: string): StepResult {
  const at = new Date().toISOString();
  return {
    taskId: dispatch.taskId,
    stepId: dispatch.stepId,
    attemptId: dispatch.attemptId,
    agentId: dispatch.agentId,
    status: 'failed',
    error: { code: 'STEP_DELIVERY_EXHAUSTED', message: reason },
    startedAt: at,
    finishedAt: at,
  };
}
