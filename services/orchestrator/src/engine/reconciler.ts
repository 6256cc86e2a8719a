import { Logger } from '@nestjs/common';
import { Consumers, StepDispatchPayload, Streams, Subject } from '@ziggie/contracts';
import { Kysely, NatsService, sql } from '@ziggie/platform';
import { EventPublisher } from '../events';
import { OrchestratorDb } from '../migrations';
import { PoolLeases } from '../pool-leases';
import { hasReferences } from '../templates';
import { dispatchPayload, DispatchPublisher, inputOf, outputsFor } from './dispatches';
import { TaskLifecycle } from './lifecycle';
import { ResultRecorder } from './results';
import { Scheduler } from './scheduler';
import { attemptIdOf, Candidate, Dispatch, StepResult } from './steps';

/** Dispatches not confirmed by JetStream this long after they committed are published again (same message id). */
const REPUBLISH_AFTER_MS = 2_000;
/** A dispatched step whose message is looked up, this long after JetStream confirmed it. */
const LOST_CHECK_AFTER_MS = 10_000;
/** Dispatched steps looked up per reconcile pass, oldest first. */
const LOST_CHECK_MAX = 200;
/** Messages of the steps stream one reconcile pass looks at when some are stranded. */
const SCAN_MAX = 2_000;

/** A result for a dispatch no runtime could finish (every delivery crashed or stalled). */
export function exhausted(dispatch: Dispatch, reason: string): StepResult {
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

/**
 * Continues what a crash or an outage left unfinished, and catches what timers missed: events
 * left in the outbox, dispatches of ended attempts a nats-server crash left in the work queue,
 * dispatches JetStream never confirmed or confirmed and then lost, running steps past their
 * timeout, tasks due to start, and tasks with nothing open in their current wave.
 */
export class Reconciler {
  private readonly logger = new Logger('engine');

  constructor(
    private readonly db: () => Kysely<OrchestratorDb>,
    private readonly nats: NatsService,
    private readonly events: EventPublisher,
    private readonly dispatches: DispatchPublisher,
    private readonly leases: Pick<PoolLeases, 'forgetRefusals'>,
    private readonly lifecycle: TaskLifecycle,
    private readonly scheduler: Pick<Scheduler, 'schedulePump'>,
    private readonly results: Pick<ResultRecorder, 'record' | 'enqueue'>,
    private readonly timeoutGraceMs: number,
  ) {}

  async run(outboxAgeMs = 2_000): Promise<void> {
    // Leases also free up elsewhere (other replicas, expiry): refused pools are asked again.
    this.leases.forgetRefusals();
    try {
      await this.events.flushLeftovers(outboxAgeMs);
      await this.dropStaleDispatches();
      await this.recoverLostDispatches();
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
        where t.status = 'running' and s.status = 'failed'`.execute(this.db());
      for (const t of stalled.rows) await this.lifecycle.advance(t.id);
      const delayed = await this.db().selectFrom('tasks').select(['id', 'not_before']).where('status', '=', 'queued').where('not_before', '>', new Date()).execute();
      for (const t of delayed) if (!this.lifecycle.hasDelayedStart(t.id)) this.lifecycle.scheduleStart(t.id, new Date(t.not_before!));
      this.scheduler.schedulePump();
    } catch (err) {
      this.logger.warn(`reconcile failed: ${String(err)}`);
    }
  }

  /**
   * Dispatches the work-queue stream still holds for attempts that are over. Normally each message
   * of the stream waits for its delivery or for its acknowledgement; a nats-server killed with
   * SIGKILL can come back with some messages its consumer had delivered and had acknowledged (or
   * then redelivered) still in the stream, never delivered again and never removed. Those whose
   * attempt PostgreSQL no longer has in flight are deleted (at most SCAN_MAX looked at per pass);
   * the scan runs only when the stream holds more messages than its consumer accounts for.
   */
  private async dropStaleDispatches(): Promise<void> {
    const jsm = this.nats.manager;
    const consumer = await jsm.consumers.info(Streams.steps.name, Consumers.stepWorkers.durable).catch(() => undefined);
    if (!consumer) return;
    if ((await jsm.streams.info(Streams.steps.name)).state.messages <= consumer.num_pending + consumer.num_ack_pending) return;
    // Only now the list of deleted sequences, which a busy work queue makes long.
    const info = await jsm.streams.info(Streams.steps.name, { deleted_details: true });
    const deleted = new Set(info.state.deleted ?? []);
    const last = Math.min(consumer.delivered.stream_seq, info.state.first_seq + SCAN_MAX - 1);
    const held: Array<{ seq: number; dispatch: Dispatch }> = [];
    for (let seq = info.state.first_seq; seq <= last; seq++) {
      if (deleted.has(seq)) continue;
      const stored = await jsm.streams.getMessage(Streams.steps.name, { seq }).catch(() => undefined);
      const parsed = stored ? StepDispatchPayload.safeParse(JSON.parse(Buffer.from(stored.data).toString('utf8'))) : undefined;
      if (parsed?.success) held.push({ seq, dispatch: parsed.data });
    }
    if (held.length === 0) return;
    const live = await this.db()
      .selectFrom('steps')
      .select(['task_id', 'id', 'attempt'])
      .where(({ eb, refTuple, tuple }) => eb(refTuple('task_id', 'id'), 'in', held.map((h) => tuple(h.dispatch.taskId, h.dispatch.stepId))))
      .where('status', 'in', ['dispatched', 'running'])
      .execute();
    const inFlight = new Set(live.map((s) => attemptIdOf(s.task_id, s.id, s.attempt)));
    const stale = held.filter((h) => !inFlight.has(h.dispatch.attemptId));
    for (const h of stale) await jsm.streams.deleteMessage(Streams.steps.name, h.seq, false).catch(() => undefined);
    if (stale.length > 0) this.logger.warn(`removed ${stale.length} dispatch(es) of attempts already over that ${Streams.steps.name} still held`);
  }

  /**
   * Dispatches JetStream confirmed and then lost: a nats-server killed with SIGKILL can come back
   * without messages it had acknowledged. A step still `dispatched` a while after its publish was
   * confirmed has its message looked up (by the stream sequence the confirmation gave); when the
   * message is gone, every result and dead letter JetStream holds has been recorded, and the step is still
   * `dispatched` on the same attempt, nothing will ever deliver it: it is marked unconfirmed and
   * republished under the same message id (next step of reconcile). A message gone because a
   * runtime finished it means its result is in the results stream, which the consumer check covers.
   */
  private async recoverLostDispatches(): Promise<void> {
    const jsm = this.nats.manager;
    // A dispatched step's message stays in the stream until its runtime is done with it (running
    // steps' too, until their results are in): fewer messages than such steps means some may be
    // gone, or results wait to be recorded. Otherwise there is nothing to look up.
    const { n } = await this.db()
      .selectFrom('steps')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('status', 'in', ['dispatched', 'running'])
      .where('dispatch_seq', 'is not', null)
      .executeTakeFirstOrThrow();
    if (Number(n) <= (await jsm.streams.info(Streams.steps.name)).state.messages) return;
    const quiet = new Date(Date.now() - LOST_CHECK_AFTER_MS);
    const rows = await this.db()
      .selectFrom('steps')
      .select(['task_id', 'id', 'attempt', 'dispatch_seq'])
      .where('status', '=', 'dispatched')
      .where('dispatch_seq', 'is not', null)
      .where('published_at', '<', quiet)
      .orderBy('published_at')
      .limit(LOST_CHECK_MAX)
      .execute();
    if (rows.length === 0) return;
    const missing: typeof rows = [];
    for (const r of rows) {
      const stored = await jsm.streams.getMessage(Streams.steps.name, { seq: Number(r.dispatch_seq) }).catch(() => undefined);
      if (stored?.header.get('Nats-Msg-Id') !== attemptIdOf(r.task_id, r.id, r.attempt)) missing.push(r);
    }
    if (missing.length === 0) return;
    // Results and dead letters JetStream still holds may be those of these very steps.
    for (const consumer of [Consumers.resultRecorder, Consumers.deadLetters]) {
      const info = await jsm.consumers.info(consumer.stream, consumer.durable).catch(() => undefined);
      if (!info || info.num_pending > 0 || info.num_ack_pending > 0) return;
    }
    const lost = await this.db()
      .updateTable('steps')
      .set({ published_at: null, dispatch_seq: null })
      .where(({ eb, refTuple, tuple }) => eb(refTuple('task_id', 'id'), 'in', missing.map((m) => tuple(m.task_id, m.id))))
      .where('status', '=', 'dispatched')
      .where(({ eb, or, and }) => or(missing.map((m) => and([eb('task_id', '=', m.task_id), eb('id', '=', m.id), eb('attempt', '=', m.attempt), eb('dispatch_seq', '=', m.dispatch_seq)]))))
      .returning(['task_id', 'id'])
      .execute();
    if (lost.length > 0) this.logger.warn(`${lost.length} dispatch(es) JetStream had confirmed are no longer in ${Streams.steps.name}: published again`);
  }

  /** Dispatches committed but never confirmed by JetStream (a crash or an outage in between). */
  private async republishUnconfirmed(): Promise<void> {
    const rows: Candidate[] = await this.db()
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
    const outputs = await outputsFor(this.db(), rows.filter((s) => hasReferences(s.input)).map((s) => s.task_id));
    const list: Dispatch[] = [];
    for (const s of rows) {
      try {
        list.push(dispatchPayload(s, s.agent_id!, s.attempt, inputOf(s, outputs)));
      } catch (err) {
        this.logger.warn(`cannot republish ${s.task_id}/${s.id}: ${String(err)}`);
      }
    }
    await this.dispatches.publish(list);
  }

  /** Running steps past their timeout (plus grace) fail with STEP_TIMEOUT; their runtime is told to stop. */
  private async failTimedOut(): Promise<void> {
    const grace = this.timeoutGraceMs;
    const rows = await sql<{ task_id: string; id: string; attempt: number; agent_id: string; started_at: Date; timeout_ms: number }>`
      select task_id, id, attempt, agent_id, started_at, timeout_ms from steps
      where status = 'running' and started_at + ((timeout_ms + ${grace}) * interval '1 millisecond') < now()
      limit 1000`.execute(this.db());
    if (rows.rows.length === 0) return;
    const now = new Date().toISOString();
    await this.results.record(
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

  /** JetStream's advisory for a step whose every delivery crashed its runtime (it never reaches onExhausted). */
  async onMaxDeliveries(data: Uint8Array): Promise<void> {
    const advisory = JSON.parse(Buffer.from(data).toString('utf8')) as { stream_seq?: number; deliveries?: number };
    if (!advisory.stream_seq) return;
    const stored = await this.nats.manager.streams.getMessage(Streams.steps.name, { seq: advisory.stream_seq });
    const parsed = StepDispatchPayload.safeParse(JSON.parse(Buffer.from(stored.data).toString('utf8')));
    if (!parsed.success) return;
    await this.results.enqueue(exhausted(parsed.data, `delivered ${advisory.deliveries ?? Consumers.stepWorkers.maxDeliver} times without a result (agent runtimes crashed or stalled)`));
    await this.nats.manager.streams.deleteMessage(Streams.steps.name, advisory.stream_seq).catch(() => undefined);
  }
}
