import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Consumers, Streams, Subject } from '@ziggie/contracts';
import { CONFIG, ConsumeHandle, DatabaseService, Kysely, MetricsService, NatsService, PeerClients, TraceContexts } from '@ziggie/platform';
import type { Subscription } from 'nats';
import { OrchestratorConfig } from './config';
import { DispatchPublisher } from './engine/dispatches';
import { Created, NewTask, TaskLifecycle } from './engine/lifecycle';
import { registerProgressGauges } from './engine/progress-gauges';
import { exhausted, Reconciler } from './engine/reconciler';
import { ResultRecorder } from './engine/results';
import { Scheduler } from './engine/scheduler';
import { UnitOfWork } from './engine/unit-of-work';
import { EventPublisher } from './events';
import { OrchestratorDb } from './migrations';
import { PoliciesService } from './policies.service';
import { PoolLeases } from './pool-leases';
import { ToolCapacity } from './tool-capacity';

const TICK_MS = 1_000;
const MAX_DELIVERIES_ADVISORY = `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${Streams.steps.name}.${Consumers.stepWorkers.durable}`;

/**
 * Runs tasks. State lives in Postgres and every transition happens in a transaction that locks
 * the task row first (then steps), so replicas can share the work. The parts, one job each:
 * - UnitOfWork: a transaction and what happens after it commits (events, cancels, leases);
 * - TaskLifecycle: creation, start, waves opened and closed, the end, cancel, approvals;
 * - Scheduler: scheduling rounds and dispatch;
 * - ResultRecorder: results in batches, once per attempt, retries and capacity waits;
 * - Reconciler: what a crash or an outage left unfinished.
 * This class wires them to NATS, timers and the application's lifecycle.
 */
@Injectable()
export class EngineService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('engine');
  /**
   * Each task's trace, as of the last request or result that touched it: a scheduling round (and
   * its events) covers many tasks, and each dispatch and event goes out in its own task's trace.
   */
  private readonly traces = new TraceContexts();
  private readonly uow: UnitOfWork;
  private readonly lifecycle: TaskLifecycle;
  private readonly scheduler: Scheduler;
  private readonly results: ResultRecorder;
  private readonly reconciler: Reconciler;
  private consumers: ConsumeHandle[] = [];
  private advisories?: Subscription;
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly database: DatabaseService,
    private readonly nats: NatsService,
    peers: PeerClients,
    policies: PoliciesService,
    leases: PoolLeases,
    @Inject(CONFIG) private readonly config: OrchestratorConfig,
    metrics: MetricsService,
  ) {
    const db = (): Kysely<OrchestratorDb> => this.database.db<OrchestratorDb>();
    const extra = config.extra;
    const transitions = metrics.counter('ziggie_orchestrator_transitions_total', 'Task and step transitions', ['kind', 'status']);
    const taskDuration = metrics.histogram('ziggie_task_duration_seconds', 'Submit to terminal state', ['status'], [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300]);
    const decisions = metrics.counter('ziggie_policy_decisions_total', 'Governance decisions before dispatch', ['effect']);
    // From zero, so the first completion after a start counts in rate() and increase().
    for (const status of ['succeeded', 'failed', 'cancelled']) {
      transitions.inc({ kind: 'task', status }, 0);
      taskDuration.zero({ status });
    }
    for (const status of ['running', 'succeeded', 'failed']) transitions.inc({ kind: 'wave', status }, 0);
    registerProgressGauges(metrics, db);

    const remember = (taskId: string) => this.traces.remember(taskId);
    const events = new EventPublisher(nats, db, this.traces);
    /** Concurrency limits of the MCP gateway, learned from its refusals. */
    const toolCapacity = new ToolCapacity();
    this.uow = new UnitOfWork(db, nats, events, leases, transitions);
    const dispatches = new DispatchPublisher(nats, this.traces, this.uow);
    this.lifecycle = new TaskLifecycle(this.uow, db, remember, taskDuration);
    this.scheduler = new Scheduler(this.uow, peers, policies, leases, toolCapacity, dispatches, extra, decisions);
    this.results = new ResultRecorder(this.uow, this.lifecycle, toolCapacity, extra.RESULT_BATCH_MAX, remember);
    this.reconciler = new Reconciler(db, nats, events, dispatches, leases, this.lifecycle, this.scheduler, this.results, extra.STEP_TIMEOUT_GRACE_MS);
    this.uow.wire({
      advance: (taskId) => this.lifecycle.advance(taskId),
      pump: () => this.scheduler.schedulePump(),
      cancelChildren: (parentIds) => this.lifecycle.cancelChildren(parentIds),
    });
    // A released lease may let a waiting pool step through.
    leases.onReleased(() => this.scheduler.schedulePump());
  }

  async onApplicationBootstrap(): Promise<void> {
    this.consumers.push(
      await this.nats.consume({
        spec: Consumers.resultRecorder,
        subject: Subject.StepResult,
        concurrency: this.config.extra.RESULT_BATCH_MAX,
        handler: (result) => this.results.enqueue(result),
      }),
      await this.nats.consume({
        spec: Consumers.deadLetters,
        subject: Subject.StepDeadLetter,
        handler: (dead) => this.results.enqueue(exhausted(dead.dispatch, dead.reason)),
      }),
    );
    // A step whose every delivery crashed its runtime never reaches onExhausted: JetStream's advisory tells.
    this.advisories = this.nats.connection.subscribe(MAX_DELIVERIES_ADVISORY, {
      callback: (err, msg) => {
        if (err) return;
        void this.reconciler.onMaxDeliveries(msg.data).catch((e: unknown) => this.logger.warn(`max-deliveries advisory: ${String(e)}`));
      },
    });
    // Work left unfinished by a previous run continues now, then periodically.
    void this.reconciler.run(0);
    this.timers.push(
      setInterval(() => void this.reconciler.run(), this.config.extra.RECONCILE_INTERVAL_MS),
      setInterval(() => this.scheduler.schedulePump(), TICK_MS),
      setInterval(() => void this.uow.flushCarried(), TICK_MS),
    );
    for (const t of this.timers) t.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.lifecycle.stop();
    this.advisories?.unsubscribe();
    await Promise.allSettled(this.consumers.map((c) => c.stop()));
    await this.scheduler.stop();
    await this.uow.flushCarried();
  }

  /** Inserts a submitted task (undefined: a delegate step's child exists already); a delayed one gets its start timer. */
  async create(task: NewTask): Promise<Created | undefined> {
    const created = await this.lifecycle.create(task);
    if (created && task.task.status === 'queued' && task.task.not_before) this.lifecycle.scheduleStart(task.task.id, new Date(task.task.not_before));
    return created;
  }

  cancel(taskId: string, reason: string): Promise<void> {
    return this.lifecycle.cancel(taskId, reason);
  }

  decide(taskId: string, stepId: string, subject: string, approve: boolean, comment: string): Promise<void> {
    return this.lifecycle.decide(taskId, stepId, subject, approve, comment);
  }
}
