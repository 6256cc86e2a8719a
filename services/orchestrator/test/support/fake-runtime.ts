// An agent runtime stand-in on the real step work queue: it takes every dispatch from the shared
// `agent-runtime` consumer, reports it running, holds it for a while and reports it succeeded
// (JetStream, message ids per attempt), and records how many steps of each pool ran at once.
import { Consumers, PayloadOf, Streams, Subject } from '@ziggie/contracts';
import { AckPolicy, connect, DeliverPolicy, JsMsg, nanos, NatsConnection } from 'nats';

type Dispatch = PayloadOf<Subject.StepDispatch>;
type StepResult = PayloadOf<Subject.StepResult>;

export class FakeRuntime {
  readonly dispatches: Dispatch[] = [];
  /** The most steps of a pool running at once. */
  readonly peak = new Map<string, number>();
  private readonly running = new Map<string, Dispatch>();
  private readonly holds = new Set<NodeJS.Timeout>();
  private stopped = false;
  private loop?: Promise<void>;

  private constructor(
    private readonly nc: NatsConnection,
    /** How long each step runs. */
    public holdMs: number,
  ) {}

  /** Call once the orchestrator has created the streams. */
  static async start(natsUrl: string, holdMs: number): Promise<FakeRuntime> {
    const nc = await connect({ servers: natsUrl });
    const spec = Consumers.stepWorkers;
    const jsm = await nc.jetstreamManager();
    await jsm.consumers.add(spec.stream, {
      durable_name: spec.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: spec.filterSubject,
      ack_wait: nanos(spec.ackWaitSeconds * 1000),
      max_deliver: spec.maxDeliver,
      max_ack_pending: spec.maxAckPending,
    });
    const runtime = new FakeRuntime(nc, holdMs);
    const messages = await (await nc.jetstream().consumers.get(Streams.steps.name, spec.durable)).consume({ max_messages: 100 });
    runtime.loop = (async () => {
      for await (const m of messages) {
        if (runtime.stopped) break;
        // A result published after the test stopped NATS has nobody to reach.
        void runtime.handle(m).catch(() => undefined);
      }
    })();
    return runtime;
  }

  inFlight(pool?: string): number {
    return [...this.running.values()].filter((d) => !pool || d.pool === pool).length;
  }

  private async handle(m: JsMsg): Promise<void> {
    const d = JSON.parse(Buffer.from(m.data).toString('utf8')) as Dispatch;
    this.dispatches.push(d);
    this.running.set(d.attemptId, d);
    if (d.pool) this.peak.set(d.pool, Math.max(this.peak.get(d.pool) ?? 0, this.inFlight(d.pool)));
    const startedAt = new Date().toISOString();
    await this.publish({ taskId: d.taskId, stepId: d.stepId, attemptId: d.attemptId, agentId: d.agentId, status: 'running', startedAt }, 'running');
    await new Promise<void>((resolve) => {
      const hold = setTimeout(() => {
        this.holds.delete(hold);
        resolve();
      }, this.holdMs);
      this.holds.add(hold);
    });
    this.running.delete(d.attemptId);
    await this.publish(
      { taskId: d.taskId, stepId: d.stepId, attemptId: d.attemptId, agentId: d.agentId, status: 'succeeded', output: { text: `done ${d.stepId}` }, startedAt, finishedAt: new Date().toISOString() },
      'final',
    );
    m.ack();
  }

  private async publish(result: StepResult, kind: string): Promise<void> {
    await this.nc.jetstream().publish(Subject.StepResult, Buffer.from(JSON.stringify(result)), { msgID: `${result.attemptId}:${kind}` });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // Steps still held never finish: the test is over.
    for (const hold of this.holds) clearTimeout(hold);
    await this.nc.drain().catch(() => undefined);
    await this.loop?.catch(() => undefined);
  }
}
