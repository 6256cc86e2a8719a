import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Consumers, PayloadOf, pb, Subject, ZiggieError } from '@ziggie/contracts';
import { callStream, CONFIG, ConsumeHandle, MetricsService, NatsService, PeerClients } from '@ziggie/platform';
import type { JsMsg } from 'nats';
import { hostname } from 'node:os';
import { Histogram } from 'prom-client';
import { RuntimeConfig } from './config';
import { toolOutput } from './tool-output';

type Dispatch = PayloadOf<Subject.StepDispatch>;
type StepOutcome = { status: 'succeeded'; output: Record<string, unknown> } | { status: 'failed'; output?: Record<string, unknown>; error: { code: string; message: string } };

/** While a step runs, JetStream is told it is in progress this often (well inside ack_wait). */
const PROGRESS_ACK_MS = 5_000;

/**
 * Hosts the logical agents of the hierarchy and executes the steps dispatched to them.
 * Tool steps call the MCP gateway; results go back on JetStream, keyed by attempt id.
 */
@Injectable()
export class RuntimeService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('runtime');
  private readonly runtimeId = `${hostname()}-${process.pid}`;
  private readonly running = new Map<string, number>();
  private consumer?: ConsumeHandle;
  private heartbeatTimer?: NodeJS.Timeout;
  private readonly stepDuration: Histogram<'action' | 'status'>;

  constructor(
    private readonly nats: NatsService,
    private readonly peers: PeerClients,
    @Inject(CONFIG) private readonly config: RuntimeConfig,
    metrics: MetricsService,
  ) {
    this.stepDuration = metrics.histogram('ziggie_step_duration_seconds', 'Step execution time in the runtime', ['action', 'status'], [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 120]);
  }

  async onApplicationBootstrap(): Promise<void> {
    this.consumer = await this.nats.consume({
      spec: Consumers.stepWorkers,
      subject: Subject.StepDispatch,
      concurrency: this.config.extra.RUNTIME_CONCURRENCY,
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
    this.heartbeatTimer = setInterval(() => this.beatBusyAgents(), this.config.extra.HEARTBEAT_INTERVAL_MS);
    this.heartbeatTimer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.heartbeatTimer);
    await this.consumer?.stop();
  }

  private heartbeat(agentId: string): void {
    const load = this.running.get(agentId) ?? 0;
    try {
      this.nats.publishCore(Subject.AgentHeartbeat, agentId, { agentId, status: load > 0 ? 'busy' : 'idle', load, runtimeId: this.runtimeId, at: new Date().toISOString() });
    } catch (err) {
      this.logger.debug(`heartbeat for ${agentId} not sent: ${String(err)}`);
    }
  }

  private beatBusyAgents(): void {
    for (const agentId of this.running.keys()) this.heartbeat(agentId);
  }

  private async execute(dispatch: Dispatch, msg: JsMsg): Promise<void> {
    const startedAt = new Date().toISOString();
    this.running.set(dispatch.agentId, (this.running.get(dispatch.agentId) ?? 0) + 1);
    this.heartbeat(dispatch.agentId);
    const progress = setInterval(() => msg.working(), PROGRESS_ACK_MS);
    const end = this.stepDuration.startTimer({ action: dispatch.action });
    try {
      await this.publishResult(dispatch, { status: 'running', startedAt });
      const outcome = await this.run(dispatch, () => msg.working());
      end({ status: outcome.status });
      // A result that cannot be published throws: the dispatch is redelivered and the ledger dedups.
      await this.publishResult(dispatch, { ...outcome, startedAt, finishedAt: new Date().toISOString() });
    } finally {
      clearInterval(progress);
      const left = (this.running.get(dispatch.agentId) ?? 1) - 1;
      if (left > 0) this.running.set(dispatch.agentId, left);
      else this.running.delete(dispatch.agentId);
      this.heartbeat(dispatch.agentId);
    }
  }

  private async publishResult(dispatch: Dispatch, fields: Pick<PayloadOf<Subject.StepResult>, 'status' | 'startedAt'> & Partial<PayloadOf<Subject.StepResult>>): Promise<void> {
    await this.nats.publish(
      Subject.StepResult,
      undefined,
      { taskId: dispatch.taskId, stepId: dispatch.stepId, attemptId: dispatch.attemptId, agentId: dispatch.agentId, ...fields },
      { msgId: `${dispatch.attemptId}:${fields.status}` },
    );
  }

  private async run(dispatch: Dispatch, onProgress: () => void): Promise<StepOutcome> {
    try {
      switch (dispatch.action) {
        case 'tool':
          return await this.runTool(dispatch, onProgress);
        default:
          return { status: 'failed', error: { code: 'UNIMPLEMENTED', message: `action ${dispatch.action} is not supported by this runtime yet` } };
      }
    } catch (err) {
      const code = err instanceof ZiggieError ? err.code : 'TOOL_CALL_FAILED';
      return { status: 'failed', error: { code, message: err instanceof Error ? err.message : String(err) } };
    }
  }

  private async runTool(dispatch: Dispatch, onProgress: () => void): Promise<StepOutcome> {
    const tool = dispatch.input.tool;
    const args = dispatch.input.arguments ?? {};
    if (typeof tool !== 'string' || typeof args !== 'object' || args === null || Array.isArray(args)) {
      return { status: 'failed', error: { code: 'VALIDATION_FAILED', message: 'a tool step needs input.tool (string) and input.arguments (object)' } };
    }
    const gateway = await this.peers.get('mcp-gateway', pb.McpGatewayClient);
    const request: pb.CallToolRequest = {
      name: tool,
      arguments: args as Record<string, unknown>,
      principal: dispatch.principal,
      workspace: dispatch.workspace,
      correlationId: dispatch.correlationId ?? '',
      timeoutMs: dispatch.timeoutMs,
    };
    for await (const event of callStream(gateway.callTool.bind(gateway), request, { timeoutMs: dispatch.timeoutMs + 1000, peer: 'mcp-gateway' })) {
      if (event.event?.$case === 'progress') onProgress();
      if (event.event?.$case === 'result') {
        const output = toolOutput(event.event.value.result ?? {});
        if (event.event.value.isError) return { status: 'failed', output, error: { code: 'TOOL_CALL_FAILED', message: String(output.text) || 'tool reported an error' } };
        return { status: 'succeeded', output };
      }
    }
    return { status: 'failed', error: { code: 'TOOL_CALL_FAILED', message: 'the tool call ended without a result' } };
  }
}
