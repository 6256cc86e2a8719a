import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Consumers, PayloadOf, Subject } from '@ziggie/contracts';
import { CONFIG, ConsumeHandle, MetricsService, NatsService } from '@ziggie/platform';
import type { JsMsg, Subscription } from 'nats';
import { hostname } from 'node:os';
import { Gauge, Histogram } from 'prom-client';
import { abortKindOf, StepAborted } from './abort';
import { DelegateAction } from './actions/delegate';
import { LlmAction } from './actions/llm';
import { ToolAction } from './actions/tool';
import { Dispatch, failed, StepOutcome } from './actions/types';
import { HostedAgents } from './agents';
import { Attempts, FinalResult, InFlightAttempt } from './attempts';
import { ToolCatalog } from './catalog';
import { RuntimeConfig } from './config';
import { McpGatewayPeer, McpGatewayPort, OrchestratorPeer, OrchestratorPort, RegistryPeer, RegistryPort } from './peers';
import { Semaphore } from './semaphore';
import { outcomeOf, StepRunner } from './step-runner';

/** While a step runs, JetStream is told it is in progress this often (well inside ack_wait). */
export const PROGRESS_ACK_MS = 5_000;

/**
 * Hosts the logical agents of the hierarchy and executes the steps dispatched to them: tool
 * and LLM steps through the MCP gateway, delegate steps as child tasks. Results go back on
 * JetStream keyed by attempt id; cancels on core NATS abort the attempts they name.
 */
@Injectable()
export class RuntimeService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('runtime');
  readonly runtimeId = `${hostname()}-${process.pid}`;
  readonly agents: HostedAgents;
  private readonly attempts = new Attempts();
  private readonly runner: StepRunner;
  private readonly workSlots: Semaphore;
  private consumer?: ConsumeHandle;
  private cancels?: Subscription;
  private readonly stepDuration: Histogram<'action' | 'status'>;
  private readonly inFlight: Gauge<'action'>;

  constructor(
    private readonly nats: NatsService,
    @Inject(McpGatewayPeer) gateway: McpGatewayPort,
    @Inject(RegistryPeer) registry: RegistryPort,
    @Inject(OrchestratorPeer) orchestrator: OrchestratorPort,
    @Inject(CONFIG) private readonly config: RuntimeConfig,
    metrics: MetricsService,
  ) {
    this.stepDuration = metrics.histogram('ziggie_step_duration_seconds', 'Step execution time in the runtime', ['action', 'status'], [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 120]);
    this.inFlight = metrics.gauge('ziggie_runtime_steps_in_flight', 'Steps this runtime holds, by action', ['action']);
    const hosted = metrics.gauge('ziggie_runtime_hosted_agents', 'Agents this runtime hosts and beats for', []);
    const catalog = new ToolCatalog(gateway);
    this.agents = new HostedAgents(registry, (beat) => this.nats.publishCore(Subject.AgentHeartbeat, beat.agentId, beat), {
      runtimeId: this.runtimeId,
      heartbeatMs: config.extra.HEARTBEAT_INTERVAL_MS,
      refreshMs: config.extra.RUNTIME_AGENTS_REFRESH_MS,
      onCount: (n) => hosted.set(n),
    });
    this.runner = new StepRunner({
      tool: new ToolAction(gateway, catalog),
      llm: new LlmAction(gateway, catalog, { tool: config.extra.RUNTIME_LLM_TOOL, model: config.extra.RUNTIME_LLM_MODEL }),
      // Agents hosted by this process are alive whatever status the registry last recorded for them.
      delegate: new DelegateAction(orchestrator, registry, (id) => this.agents.children(id).map((a) => (a.status === 'offline' ? { ...a, status: 'idle' } : a))),
    });
    this.workSlots = new Semaphore(config.extra.RUNTIME_CONCURRENCY);
  }

  async onApplicationBootstrap(): Promise<void> {
    this.cancels = this.nats.subscribeCore(Subject.StepCancel, (cancel) => this.onCancel(cancel));
    // The registry may be down: agents load in the background and steps are consumed meanwhile.
    this.agents.start();
    this.consumer = await this.nats.consume({
      spec: Consumers.stepWorkers,
      subject: Subject.StepDispatch,
      concurrency: this.config.extra.RUNTIME_CONCURRENCY + this.config.extra.RUNTIME_DELEGATE_CONCURRENCY,
      handler: (dispatch, msg) => this.execute(dispatch, msg),
      onExhausted: async (dispatch, msg, error) => {
        await this.nats.publish(
          Subject.StepDeadLetter,
          undefined,
          { dispatch, deliveries: msg.info.deliveryCount, reason: `delivery failed ${msg.info.deliveryCount} times: ${String(error)}` },
          { msgId: `${dispatch.attemptId}:dead` },
        );
      },
    });
  }

  /**
   * Before NATS and the gRPC clients close: stop pulling, give running steps half the grace
   * period, hand the rest back to the stream for another runtime, then beat every agent offline.
   */
  async beforeApplicationShutdown(): Promise<void> {
    const handBack = setTimeout(() => this.attempts.abortAll(new StepAborted('shutdown', 'the runtime is shutting down')), this.config.shutdownGraceMs / 2);
    try {
      await this.consumer?.stop();
      await this.attempts.settled();
    } finally {
      clearTimeout(handBack);
    }
    this.cancels?.unsubscribe();
    this.agents.stop();
  }

  private onCancel(cancel: PayloadOf<Subject.StepCancel>): void {
    const aborted = this.attempts.cancel(cancel);
    if (aborted > 0) this.logger.log(`cancelled ${aborted} attempt(s) of task ${cancel.taskId}: ${cancel.reason}`);
  }

  /** Handles one delivery; resolving acks it, throwing naks it for redelivery. */
  private async execute(dispatch: Dispatch, msg: JsMsg): Promise<void> {
    const finished = this.attempts.finished(dispatch.attemptId);
    if (finished) {
      // A redelivery of an attempt already done here: its result again, never its work.
      await this.publishResult(dispatch, finished);
      return;
    }
    const running = this.attempts.running(dispatch.attemptId);
    if (running) {
      await this.whileWorking(msg, running.done);
      return;
    }
    const attempt = this.attempts.begin(dispatch);
    this.agents.stepStarted(dispatch.agentId);
    this.inFlight.inc({ action: dispatch.action });
    const progress = setInterval(() => msg.working(), PROGRESS_ACK_MS);
    try {
      const { outcome, startedAt } = await this.outcome(dispatch, attempt, () => msg.working());
      const result: FinalResult = { ...outcome, startedAt, finishedAt: new Date().toISOString() };
      // Remembered before publishing: if the publish fails, the redelivery only publishes again.
      this.attempts.recordFinished(dispatch.attemptId, result);
      await this.publishResult(dispatch, result);
    } catch (err) {
      if (abortKindOf(err) !== 'shutdown') throw err;
      // Not a failure of the step: straight back to the stream, without counting against its deliveries' backoff.
      msg.nak();
    } finally {
      clearInterval(progress);
      attempt.end();
      this.agents.stepEnded(dispatch.agentId);
      this.inFlight.dec({ action: dispatch.action });
    }
  }

  private async outcome(dispatch: Dispatch, attempt: InFlightAttempt, onProgress: () => void): Promise<{ outcome: StepOutcome; startedAt: string }> {
    const cancelled = this.attempts.cancelledReason(dispatch);
    if (cancelled !== undefined) {
      return { outcome: failed('TASK_CANCELLED', `step ${dispatch.stepId} cancelled before it started: ${cancelled}`), startedAt: new Date().toISOString() };
    }
    let release = () => {};
    if (dispatch.action !== 'delegate') {
      try {
        release = await this.workSlots.acquire(attempt.signal);
      } catch (err) {
        return { outcome: outcomeOf(err, dispatch), startedAt: new Date().toISOString() };
      }
    }
    const startedAt = new Date().toISOString();
    const notice = this.runningNotice(dispatch, startedAt);
    try {
      const end = this.stepDuration.startTimer({ action: dispatch.action });
      const outcome = await this.runner.run(dispatch, attempt, onProgress);
      end({ status: outcome.status });
      if (outcome.status === 'failed') this.logger.debug(`step ${dispatch.taskId}/${dispatch.stepId} failed: ${outcome.error.code} ${outcome.error.message}`);
      return { outcome, startedAt };
    } finally {
      clearTimeout(notice);
      release();
    }
  }

  /** The `running` notice of a step still at work after RUNTIME_RUNNING_NOTICE_MS; cleared when it ends sooner. */
  private runningNotice(dispatch: Dispatch, startedAt: string): NodeJS.Timeout {
    const send = () =>
      void this.publishResult(dispatch, { status: 'running', startedAt }).catch((err: unknown) => {
        // Only the notice is lost: the result still says when the step started.
        this.logger.warn(`running notice of ${dispatch.attemptId} not sent: ${String(err)}`);
      });
    const delay = this.config.extra.RUNTIME_RUNNING_NOTICE_MS;
    if (delay === 0) {
      send();
      return setTimeout(() => undefined, 0);
    }
    return setTimeout(send, delay);
  }

  /** Keeps a duplicate delivery alive while the first one finishes. */
  private async whileWorking(msg: JsMsg, done: Promise<void>): Promise<void> {
    const progress = setInterval(() => msg.working(), PROGRESS_ACK_MS);
    try {
      await done;
    } finally {
      clearInterval(progress);
    }
  }

  private async publishResult(dispatch: Dispatch, fields: FinalResult): Promise<void> {
    await this.nats.publish(
      Subject.StepResult,
      undefined,
      { taskId: dispatch.taskId, stepId: dispatch.stepId, attemptId: dispatch.attemptId, agentId: dispatch.agentId, ...fields },
      { msgId: `${dispatch.attemptId}:${fields.status}` },
    );
  }
}
