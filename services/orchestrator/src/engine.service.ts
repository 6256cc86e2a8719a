import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Consumers, PayloadOf, pb, Subject, ZiggieError } from '@ziggie/contracts';
import { callUnary, CONFIG, ConsumeHandle, DatabaseService, Kysely, MetricsService, NatsService, PeerClients, Transaction, json } from '@ziggie/platform';
import { Counter, Histogram } from 'prom-client';
import { OrchestratorConfig } from './config';
import { KeyedLock } from './keyed-lock';
import { OrchestratorDb, StepRow, TaskRow } from './migrations';
import { resolveInput } from './templates';

type Db = Kysely<OrchestratorDb> | Transaction<OrchestratorDb>;
type TaskEventType = PayloadOf<Subject.TaskEvent>['type'];
type EventFields = Partial<Pick<PayloadOf<Subject.TaskEvent>, 'wave' | 'stepId' | 'agentId' | 'message'>> & { status: string };

const TERMINAL_STEP = new Set(['succeeded', 'failed', 'cancelled']);

/**
 * Runs tasks: dispatches the current wave's steps over JetStream, records results once
 * (ledger keyed by step attempt), and moves to the next wave when one is done. Every
 * transition is published as a task event.
 */
@Injectable()
export class EngineService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('engine');
  private readonly lock = new KeyedLock();
  private consumers: ConsumeHandle[] = [];
  private reconcileTimer?: NodeJS.Timeout;
  private readonly transitions: Counter<'kind' | 'status'>;
  private readonly taskDuration: Histogram<'status'>;

  constructor(
    private readonly database: DatabaseService,
    private readonly nats: NatsService,
    private readonly peers: PeerClients,
    @Inject(CONFIG) private readonly config: OrchestratorConfig,
    metrics: MetricsService,
  ) {
    this.transitions = metrics.counter('ziggie_orchestrator_transitions_total', 'Task and step transitions', ['kind', 'status']);
    this.taskDuration = metrics.histogram('ziggie_task_duration_seconds', 'Submit to terminal state', ['status'], [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300]);
  }

  private get db(): Kysely<OrchestratorDb> {
    return this.database.db<OrchestratorDb>();
  }

  async onApplicationBootstrap(): Promise<void> {
    this.consumers.push(
      await this.nats.consume({
        spec: Consumers.resultRecorder,
        subject: Subject.StepResult,
        handler: (result) => this.recordResult(result),
      }),
      await this.nats.consume({
        spec: Consumers.deadLetters,
        subject: Subject.StepDeadLetter,
        handler: (dead) =>
          this.recordResult({
            taskId: dead.dispatch.taskId,
            stepId: dead.dispatch.stepId,
            attemptId: dead.dispatch.attemptId,
            agentId: dead.dispatch.agentId,
            status: 'failed',
            error: { code: 'STEP_DELIVERY_EXHAUSTED', message: dead.reason },
            startedAt: new Date().toISOString(),
            finishedAt: new Date().toISOString(),
          }),
      }),
    );
    // Work left unfinished by a previous run continues now, then periodically.
    void this.reconcile();
    this.reconcileTimer = setInterval(() => void this.reconcile(), this.config.extra.RECONCILE_INTERVAL_MS);
    this.reconcileTimer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.reconcileTimer);
    await Promise.allSettled(this.consumers.map((c) => c.stop()));
  }

  /** Publishes one task event with the task's next sequence number. */
  async emit(taskId: string, type: TaskEventType, fields: EventFields, db: Db = this.db): Promise<void> {
    const row = await db
      .updateTable('tasks')
      .set((eb) => ({ event_seq: eb('event_seq', '+', 1) }))
      .where('id', '=', taskId)
      .returning('event_seq')
      .executeTakeFirstOrThrow();
    const event: PayloadOf<Subject.TaskEvent> = { taskId, seq: row.event_seq, type, at: new Date().toISOString(), ...fields };
    this.transitions.inc({ kind: type.split('.')[0]!, status: fields.status });
    try {
      await this.nats.publish(Subject.TaskEvent, taskId, event, { msgId: `${taskId}:${row.event_seq}` });
    } catch (err) {
      // Events are a view of state kept in Postgres: a lost event never loses work.
      this.logger.warn(`could not publish ${type} for ${taskId}: ${String(err)}`);
    }
  }

  /** Moves a task forward: finishes it, or dispatches the pending steps of its current wave. */
  advance(taskId: string): Promise<void> {
    return this.lock.run(taskId, async () => {
      const toDispatch = await this.db.transaction().execute(async (trx) => {
        const task = await trx.selectFrom('tasks').selectAll().where('id', '=', taskId).forUpdate().executeTakeFirst();
        if (!task || TERMINAL_STEP.has(task.status)) return [];
        const steps = await trx.selectFrom('steps').selectAll().where('task_id', '=', taskId).orderBy('ordinal').execute();
        return this.plan(trx, task, steps);
      });
      for (const step of toDispatch) await this.dispatch(step);
    });
  }

  private async plan(trx: Transaction<OrchestratorDb>, task: TaskRow, steps: StepRow[]): Promise<StepRow[]> {
    const failed = steps.find((s) => s.status === 'failed');
    if (failed) {
      await this.finish(trx, task, 'failed', 'TASK_STEP_FAILED', `step ${failed.id} failed: ${failed.error ?? 'unknown error'}`, failed.wave);
      return [];
    }
    const open = steps.filter((s) => s.status !== 'succeeded');
    if (open.length === 0) {
      await this.finish(trx, task, 'succeeded', null, null, task.wave_count);
      return [];
    }
    const wave = Math.min(...open.map((s) => s.wave));
    if (task.current_wave < wave) {
      if (task.current_wave > 0) await this.emit(task.id, 'wave.succeeded', { wave: task.current_wave, status: 'succeeded' }, trx);
      if (task.status === 'queued') await this.emit(task.id, 'task.running', { status: 'running' }, trx);
      await trx.updateTable('tasks').set({ current_wave: wave, status: 'running', updated_at: new Date() }).where('id', '=', task.id).execute();
      await this.emit(task.id, 'wave.started', { wave, status: 'running' }, trx);
    }
    return open.filter((s) => s.wave === wave && s.status === 'pending');
  }

  private async finish(trx: Transaction<OrchestratorDb>, task: TaskRow, status: 'succeeded' | 'failed' | 'cancelled', code: string | null, message: string | null, wave: number): Promise<void> {
    const now = new Date();
    await trx
      .updateTable('steps')
      .set({ status: 'cancelled', finished_at: now })
      .where('task_id', '=', task.id)
      .where('status', 'in', ['pending', 'dispatched', 'running'])
      .execute();
    await trx
      .updateTable('tasks')
      .set({ status, error_code: code, error_message: message, finished_at: now, updated_at: now })
      .where('id', '=', task.id)
      .execute();
    if (status !== 'cancelled') await this.emit(task.id, status === 'succeeded' ? 'wave.succeeded' : 'wave.failed', { wave, status }, trx);
    await this.emit(task.id, `task.${status}`, { status, message: message ?? undefined }, trx);
    this.taskDuration.observe({ status }, (now.getTime() - new Date(task.created_at).getTime()) / 1000);
  }

  /** Cancels a task: pending and in-flight steps are cancelled; late results are ignored. */
  cancel(taskId: string, reason: string): Promise<void> {
    return this.lock.run(taskId, () =>
      this.db.transaction().execute(async (trx) => {
        const task = await trx.selectFrom('tasks').selectAll().where('id', '=', taskId).forUpdate().executeTakeFirst();
        if (!task || TERMINAL_STEP.has(task.status)) return;
        await this.finish(trx, task, 'cancelled', 'TASK_CANCELLED', reason, task.current_wave);
      }),
    );
  }

  private async outputsOf(taskId: string): Promise<Map<string, unknown>> {
    const rows = await this.db.selectFrom('steps').select(['id', 'output']).where('task_id', '=', taskId).where('status', '=', 'succeeded').execute();
    return new Map(rows.map((r) => [r.id, r.output]));
  }

  private async dispatch(step: StepRow): Promise<void> {
    const task = await this.db.selectFrom('tasks').select(['principal', 'correlation_id']).where('id', '=', step.task_id).executeTakeFirstOrThrow();
    let input: Record<string, unknown>;
    let agentId: string;
    try {
      input = resolveInput(step.input, await this.outputsOf(step.task_id));
      const registry = await this.peers.get('agent-registry', pb.AgentRegistryClient);
      const agent = await callUnary(registry.selectAgent.bind(registry), {
        capability: step.capability ?? '',
        workspace: step.workspace,
        agentId: step.agent ?? '',
      }, { peer: 'agent-registry' });
      agentId = agent.id;
    } catch (err) {
      const message = err instanceof ZiggieError ? `${err.code}: ${err.message}` : String(err);
      await this.failStep(step, message);
      return;
    }
    const attempt = step.attempt + 1;
    const attemptId = `${step.task_id}.${step.id}.${attempt}`;
    const updated = await this.db
      .updateTable('steps')
      .set({ status: 'dispatched', agent_id: agentId, attempt, dispatched_at: new Date(), error: null })
      .where('task_id', '=', step.task_id)
      .where('id', '=', step.id)
      .where('status', '=', 'pending')
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) return;
    await this.emit(step.task_id, 'step.dispatched', { wave: step.wave, stepId: step.id, agentId, status: 'dispatched' });
    await this.publishDispatch({ ...step, attempt, agent_id: agentId }, input, task.principal, attemptId);
  }

  private async publishDispatch(step: StepRow, input: Record<string, unknown>, principal: TaskRow['principal'], attemptId: string): Promise<void> {
    try {
      await this.nats.publish(
        Subject.StepDispatch,
        step.capability ?? 'agent',
        {
          taskId: step.task_id,
          stepId: step.id,
          attemptId,
          attempt: step.attempt,
          capability: step.capability ?? 'agent',
          action: step.action as 'tool',
          workspace: step.workspace,
          agentId: step.agent_id!,
          input,
          timeoutMs: step.timeout_ms,
          principal,
        },
        { msgId: attemptId },
      );
    } catch (err) {
      // The step stays dispatched in Postgres; reconcile publishes it again under the same id.
      this.logger.warn(`dispatch of ${attemptId} not published yet: ${String(err)}`);
    }
  }

  private async failStep(step: StepRow, message: string): Promise<void> {
    await this.db
      .updateTable('steps')
      .set({ status: 'failed', error: message, finished_at: new Date() })
      .where('task_id', '=', step.task_id)
      .where('id', '=', step.id)
      .execute();
    await this.emit(step.task_id, 'step.failed', { wave: step.wave, stepId: step.id, status: 'failed', message });
    void this.advance(step.task_id).catch((err: unknown) => this.logger.error(`advance ${step.task_id}: ${String(err)}`));
  }

  /** Records a step result once per attempt; duplicates and late results change nothing. */
  async recordResult(result: PayloadOf<Subject.StepResult>): Promise<void> {
    if (result.status === 'running') {
      const r = await this.db
        .updateTable('steps')
        .set({ status: 'running', started_at: new Date(result.startedAt) })
        .where('task_id', '=', result.taskId)
        .where('id', '=', result.stepId)
        .where('status', '=', 'dispatched')
        .where('attempt', '=', attemptNumber(result.attemptId))
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) > 0) {
        const step = await this.db.selectFrom('steps').select('wave').where('task_id', '=', result.taskId).where('id', '=', result.stepId).executeTakeFirstOrThrow();
        await this.emit(result.taskId, 'step.running', { wave: step.wave, stepId: result.stepId, agentId: result.agentId, status: 'running' });
      }
      return;
    }
    const outcome = await this.lock.run(result.taskId, () =>
      this.db.transaction().execute(async (trx) => {
        const fresh = await trx
          .insertInto('step_ledger')
          .values({ attempt_id: result.attemptId, task_id: result.taskId, step_id: result.stepId, status: result.status })
          .onConflict((oc) => oc.column('attempt_id').doNothing())
          .returning('attempt_id')
          .executeTakeFirst();
        if (!fresh) return undefined;
        const step = await trx.selectFrom('steps').selectAll().where('task_id', '=', result.taskId).where('id', '=', result.stepId).forUpdate().executeTakeFirst();
        if (!step || TERMINAL_STEP.has(step.status) || step.attempt !== attemptNumber(result.attemptId)) return undefined;
        const retry = result.status === 'failed' && step.attempt <= step.retries;
        const message = result.error ? `${result.error.code}: ${result.error.message}` : null;
        await trx
          .updateTable('steps')
          .set({
            status: retry ? 'pending' : result.status,
            output: result.output ? json(result.output) : null,
            error: message,
            started_at: step.started_at ?? new Date(result.startedAt),
            finished_at: retry ? null : new Date(result.finishedAt ?? Date.now()),
          })
          .where('task_id', '=', step.task_id)
          .where('id', '=', step.id)
          .execute();
        await this.emit(step.task_id, `step.${result.status}`, { wave: step.wave, stepId: step.id, agentId: result.agentId, status: result.status, message: message ?? undefined }, trx);
        return step.task_id;
      }),
    );
    if (outcome) await this.advance(outcome);
  }

  /** Continues unfinished tasks and republishes dispatches that may not have reached JetStream. */
  async reconcile(): Promise<void> {
    try {
      const tasks = await this.db.selectFrom('tasks').select('id').where('status', 'in', ['queued', 'running']).execute();
      for (const t of tasks) await this.advance(t.id);
      const stale = await this.db
        .selectFrom('steps')
        .innerJoin('tasks', 'tasks.id', 'steps.task_id')
        .selectAll('steps')
        .select(['tasks.principal as principal'])
        .where('steps.status', '=', 'dispatched')
        .where('steps.dispatched_at', '<', new Date(Date.now() - this.config.extra.RECONCILE_INTERVAL_MS))
        .execute();
      for (const s of stale) {
        const input = resolveInput(s.input, await this.outputsOf(s.task_id));
        await this.publishDispatch(s, input, s.principal, `${s.task_id}.${s.id}.${s.attempt}`);
      }
    } catch (err) {
      this.logger.warn(`reconcile failed: ${String(err)}`);
    }
  }
}

function attemptNumber(attemptId: string): number {
  return Number.parseInt(attemptId.slice(attemptId.lastIndexOf('.') + 1), 10);
}
