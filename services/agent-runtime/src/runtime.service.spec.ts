import { PayloadOf, Subject } from '@ziggie/contracts';
import { ConsumeOptions, loadConfig, MetricsService, NatsService } from '@ziggie/platform';
import type { JsMsg } from 'nats';
import { agentOf, dispatchOf, McpGatewayDouble, OrchestratorDouble, RegistryDouble, textResult, untilAborted } from '../test/doubles';
import { Dispatch } from './actions/types';
import { RuntimeConfig, runtimeEnv } from './config';
import { RuntimeService } from './runtime.service';

type Published = { subject: Subject; payload: Record<string, unknown>; msgId?: string };

/** The NatsService surface the runtime uses, recording what it publishes. */
class NatsDouble {
  readonly published: Published[] = [];
  readonly beats: PayloadOf<Subject.AgentHeartbeat>[] = [];
  cancel?: (payload: PayloadOf<Subject.StepCancel>) => void;
  consumed?: ConsumeOptions<Subject.StepDispatch>;

  async publish(subject: Subject, _suffix: string | undefined, payload: Record<string, unknown>, opts: { msgId?: string } = {}): Promise<object> {
    this.published.push({ subject, payload, msgId: opts.msgId });
    return {};
  }

  publishCore(subject: Subject, suffix: string, payload: PayloadOf<Subject.AgentHeartbeat>): void {
    if (subject !== Subject.AgentHeartbeat || suffix !== payload.agentId) throw new Error(`NatsDouble: unexpected core publish on ${subject}`);
    this.beats.push(payload);
  }

  subscribeCore(subject: Subject, handler: (payload: PayloadOf<Subject.StepCancel>) => void): { unsubscribe: () => void } {
    if (subject !== Subject.StepCancel) throw new Error(`NatsDouble: unexpected subscription to ${subject}`);
    this.cancel = handler;
    return { unsubscribe: () => (this.cancel = undefined) };
  }

  async consume(opts: ConsumeOptions<Subject.StepDispatch>): Promise<{ stop: () => Promise<void> }> {
    this.consumed = opts;
    return { stop: async () => undefined };
  }

  results(attemptId: string): Published[] {
    return this.published.filter((p) => p.subject === Subject.StepResult && p.payload.attemptId === attemptId);
  }
}

function msgDouble(): JsMsg & { naks: number } {
  const msg = { naks: 0, info: { deliveryCount: 1 }, working: () => undefined, nak: () => msg.naks++ };
  return msg as unknown as JsMsg & { naks: number };
}

const until = async (check: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!check()) throw new Error('condition not reached');
};

describe('RuntimeService', () => {
  let nats: NatsDouble;
  let gateway: McpGatewayDouble;
  let registry: RegistryDouble;
  let metrics: MetricsService;
  let runtime: RuntimeService;

  const start = async (env: Record<string, string> = {}) => {
    // The running notice as each step starts, unless a test says otherwise (see the notice's own tests).
    const config = loadConfig('agent-runtime', runtimeEnv, { ZIGGIE_JWT_SECRET: 'unit-secret-0123456789', SHUTDOWN_GRACE_MS: '0', RUNTIME_RUNNING_NOTICE_MS: '0', ...env }) as RuntimeConfig;
    runtime = new RuntimeService(nats as unknown as NatsService, gateway, registry, new OrchestratorDouble(), config, metrics);
    await runtime.onApplicationBootstrap();
  };
  const run = (dispatch: Dispatch, msg = msgDouble()) => nats.consumed!.handler(dispatch, msg);
  const gauge = async (name: string) => (await metrics.registry.getSingleMetric(name)!.get()).values.reduce((n, v) => n + v.value, 0);

  beforeEach(() => {
    nats = new NatsDouble();
    gateway = new McpGatewayDouble();
    registry = new RegistryDouble([agentOf('l2-x'), agentOf('l3-a', { parentId: 'l2-x' })]);
    metrics = new MetricsService('agent-runtime');
  });

  afterEach(async () => {
    await runtime?.beforeApplicationShutdown();
  });

  it('runs a noop step: running, then succeeded once, keyed by attempt and status', async () => {
    await start();
    await run(dispatchOf({ attemptId: 'tsk_1.a.1', agentId: 'l3-a', input: { tool: 'ziggie.noop', arguments: { x: 1 } } }));
    expect(nats.results('tsk_1.a.1').map((r) => [r.msgId, r.payload.status])).toEqual([
      ['tsk_1.a.1:running', 'running'],
      ['tsk_1.a.1:succeeded', 'succeeded'],
    ]);
    expect(nats.results('tsk_1.a.1')[1]!.payload.output).toEqual({ text: 'ok', echo: { x: 1 } });
    // The agent was busy while the step ran, and idle again after.
    const beats = nats.beats.filter((b) => b.agentId === 'l3-a' && b.load > 0);
    expect(beats[0]).toMatchObject({ status: 'busy', load: 1, runtimeId: runtime.runtimeId });
    expect(nats.beats.filter((b) => b.agentId === 'l3-a').at(-1)).toMatchObject({ status: 'idle', load: 0 });
    expect(await gauge('ziggie_runtime_steps_in_flight')).toBe(0);
  });

  it('sends no running notice for a step done within RUNTIME_RUNNING_NOTICE_MS: its result says when it started', async () => {
    await start({ RUNTIME_RUNNING_NOTICE_MS: '5000' });
    const before = Date.now();
    await run(dispatchOf({ attemptId: 'tsk_1.q.1', agentId: 'l3-a', input: { tool: 'ziggie.noop', arguments: {} } }));
    const results = nats.results('tsk_1.q.1');
    expect(results.map((r) => [r.msgId, r.payload.status])).toEqual([['tsk_1.q.1:succeeded', 'succeeded']]);
    expect(Date.parse(String(results[0]!.payload.startedAt))).toBeGreaterThanOrEqual(before - 1);
  });

  it('sends the running notice of a step still at work after RUNTIME_RUNNING_NOTICE_MS, with the time it started', async () => {
    let finish!: () => void;
    gateway.on('fs.slow', () => new Promise((resolve) => (finish = () => resolve(textResult('done')))));
    await start({ RUNTIME_RUNNING_NOTICE_MS: '30' });
    const first = run(dispatchOf({ attemptId: 'tsk_1.w.1', input: { tool: 'fs.slow' } }));
    await until(() => nats.results('tsk_1.w.1').length === 1);
    finish();
    await first;
    const [running, done] = nats.results('tsk_1.w.1');
    expect([running!.payload.status, done!.payload.status]).toEqual(['running', 'succeeded']);
    expect(running!.payload.startedAt).toBe(done!.payload.startedAt);
  });

  it('republishes the stored result of a redelivered finished attempt without running it again', async () => {
    let calls = 0;
    gateway.on('fs.count', () => textResult(`call ${++calls}`));
    await start();
    const dispatch = dispatchOf({ attemptId: 'tsk_1.a.7', input: { tool: 'fs.count', arguments: {} } });
    await run(dispatch);
    await run(dispatch);
    expect(calls).toBe(1);
    const finals = nats.results('tsk_1.a.7').filter((r) => r.payload.status !== 'running');
    expect(finals).toHaveLength(2);
    expect(finals[1]).toEqual(finals[0]);
    expect(finals[1]!.payload.output).toMatchObject({ text: 'call 1' });
  });

  it('holds a duplicate delivery of an attempt in flight until the first finishes, without running it twice', async () => {
    let finish!: () => void;
    let calls = 0;
    gateway.on('fs.slow', () => {
      calls++;
      return new Promise((resolve) => (finish = () => resolve(textResult('done'))));
    });
    await start();
    const dispatch = dispatchOf({ attemptId: 'tsk_1.d.1', input: { tool: 'fs.slow' } });
    const first = run(dispatch);
    await until(() => calls === 1);
    let duplicateDone = false;
    const duplicate = run(dispatch).then(() => (duplicateDone = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(duplicateDone).toBe(false);
    finish();
    await Promise.all([first, duplicate]);
    expect(calls).toBe(1);
    expect(nats.results('tsk_1.d.1').map((r) => r.payload.status)).toEqual(['running', 'succeeded']);
  });

  it('aborts a running step on a cancel for its task: TASK_CANCELLED, and the tool call is cancelled', async () => {
    gateway.on('slow.wait', (_args, { signal }) => untilAborted(signal));
    await start();
    const done = run(dispatchOf({ taskId: 'tsk_9', attemptId: 'tsk_9.a.1', input: { tool: 'slow.wait' } }));
    await until(() => gateway.calls.length === 1);
    nats.cancel!({ taskId: 'tsk_9', attemptIds: [], reason: 'cancelled by operator' });
    await done;
    expect(nats.results('tsk_9.a.1').at(-1)!.payload).toMatchObject({ status: 'failed', error: { code: 'TASK_CANCELLED', message: expect.stringContaining('cancelled by operator') } });
    expect(gateway.cancelled).toEqual(['slow.wait']);
  });

  it('does not start a dispatch whose task was cancelled before it arrived', async () => {
    await start();
    nats.cancel!({ taskId: 'tsk_8', attemptIds: [], reason: 'gone' });
    await run(dispatchOf({ taskId: 'tsk_8', attemptId: 'tsk_8.a.1', input: { tool: 'never.called' } }));
    expect(nats.results('tsk_8.a.1').map((r) => [r.payload.status, (r.payload.error as { code: string } | undefined)?.code])).toEqual([['failed', 'TASK_CANCELLED']]);
    expect(gateway.calls).toHaveLength(0);
  });

  it('fails a step past its timeout with STEP_TIMEOUT', async () => {
    gateway.on('slow.wait', (_args, { signal }) => untilAborted(signal));
    await start();
    await run(dispatchOf({ attemptId: 'tsk_1.t.1', timeoutMs: 30, input: { tool: 'slow.wait' } }));
    expect(nats.results('tsk_1.t.1').at(-1)!.payload).toMatchObject({ status: 'failed', error: { code: 'STEP_TIMEOUT' } });
  });

  it('runs no more work steps at once than RUNTIME_CONCURRENCY; a queued step starts when a slot frees', async () => {
    gateway.on('slow.wait', (_args, { signal }) => untilAborted(signal));
    await start({ RUNTIME_CONCURRENCY: '1' });
    const first = run(dispatchOf({ taskId: 'tsk_a', attemptId: 'tsk_a.a.1', input: { tool: 'slow.wait' } }));
    await until(() => gateway.calls.length === 1);
    const second = run(dispatchOf({ taskId: 'tsk_b', attemptId: 'tsk_b.a.1', input: { tool: 'ziggie.noop' } }));
    await new Promise((r) => setTimeout(r, 20));
    expect(nats.results('tsk_b.a.1')).toHaveLength(0);
    nats.cancel!({ taskId: 'tsk_a', attemptIds: [], reason: 'free the slot' });
    await Promise.all([first, second]);
    expect(nats.results('tsk_b.a.1').at(-1)!.payload.status).toBe('succeeded');
  });

  it('beats for every hosted agent, and on shutdown hands running steps back and beats them offline', async () => {
    gateway.on('slow.wait', (_args, { signal }) => untilAborted(signal));
    await start();
    await runtime.agents.loaded;
    expect(await gauge('ziggie_runtime_hosted_agents')).toBe(2);
    runtime.agents.beatAll();
    expect(new Set(nats.beats.map((b) => b.agentId))).toEqual(new Set(['l2-x', 'l3-a']));
    const msg = msgDouble();
    const done = run(dispatchOf({ attemptId: 'tsk_1.s.1', input: { tool: 'slow.wait' } }), msg);
    await until(() => gateway.calls.length === 1);
    await runtime.beforeApplicationShutdown();
    await done;
    expect(msg.naks).toBe(1);
    expect(nats.results('tsk_1.s.1').map((r) => r.payload.status)).toEqual(['running']);
    const offline = nats.beats.filter((b) => b.status === 'offline').map((b) => b.agentId);
    expect(new Set(offline)).toEqual(new Set(['l2-x', 'l3-a']));
  });

  it('keeps consuming while the registry is unreachable and loads the agents once it answers', async () => {
    registry.failuresLeft = 1;
    await start();
    await run(dispatchOf({ attemptId: 'tsk_1.n.1', input: { tool: 'ziggie.noop' } }));
    expect(nats.results('tsk_1.n.1').at(-1)!.payload.status).toBe('succeeded');
    await runtime.agents.loaded;
    expect(registry.listAgentsCalls).toBe(2);
    expect(runtime.agents.count).toBe(2);
  });
});
