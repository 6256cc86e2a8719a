import { PayloadOf, Streams, Subject, subjectFor, subjectWildcard } from '@ziggie/contracts';
import { bootstrapService, RunningService } from '@ziggie/platform';
import { connect, headers, JetStreamClient, NatsConnection } from 'nats';
import { definition } from '../src/service';
import { startNats, waitFor, type NatsServerHandle } from '../../../test/support';
import { agentOf, dispatchOf, McpGatewayDouble, OrchestratorDouble, RegistryDouble, serverOf, stepOf, taskOf, textResult, untilAborted } from './doubles';
import { serveDoubles, ServedDoubles } from './grpc-doubles';

type Result = PayloadOf<Subject.StepResult>;
type Beat = PayloadOf<Subject.AgentHeartbeat>;
type Dispatch = PayloadOf<Subject.StepDispatch>;

const json = (data: Uint8Array): unknown => JSON.parse(Buffer.from(data).toString('utf8'));

jest.setTimeout(30_000);

describe('agent-runtime against a real nats-server, with its gRPC peers as doubles', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let peers: ServedDoubles;
  let runtime: RunningService | undefined;
  const gateway = new McpGatewayDouble([], [serverOf('fs', 'stdio')]);
  const agents = [agentOf('l1-ziggie-1', { level: 1 }), agentOf('l2-ziggie-code', { level: 2, parentId: 'l1-ziggie-1', capabilities: ['code'] })];
  agents.push(...['a', 'b', 'c'].map((x) => agentOf(`l3-ziggie-code-${x}`, { parentId: 'l2-ziggie-code', capabilities: ['code'] })));
  const registry = new RegistryDouble(agents);
  const orchestrator = new OrchestratorDouble();
  const results: Result[] = [];
  const beats: Beat[] = [];

  const dispatch = (fields: Partial<Dispatch>, msgId?: string): Promise<unknown> => {
    const d = dispatchOf(fields);
    const h = headers();
    h.set('Nats-Msg-Id', msgId ?? d.attemptId);
    return js.publish(subjectFor(Subject.StepDispatch, d.capability), Buffer.from(JSON.stringify(d)), { headers: h });
  };
  const finalOf = async (attemptId: string): Promise<Result> => {
    await waitFor(() => results.some((r) => r.attemptId === attemptId && r.status !== 'running'), { timeoutMs: 15_000, what: `the result of ${attemptId}` });
    return results.find((r) => r.attemptId === attemptId && r.status !== 'running')!;
  };
  /** Results stored in the results stream for an attempt (JetStream keeps one per msgId). */
  const storedResults = async (attemptId: string): Promise<Result[]> => {
    const jsm = await nc.jetstreamManager();
    const { first_seq, last_seq } = (await jsm.streams.info(Streams.results.name)).state;
    const stored: Result[] = [];
    for (let seq = first_seq; seq <= last_seq; seq++) {
      const m = await jsm.streams.getMessage(Streams.results.name, { seq });
      if (m.subject === Subject.StepResult) stored.push(json(m.data) as Result);
    }
    return stored.filter((r) => r.attemptId === attemptId);
  };
  const workQueueEmpty = async (): Promise<boolean> => (await (await nc.jetstreamManager()).streams.info(Streams.steps.name)).state.messages === 0;

  const startRuntime = (): Promise<RunningService> =>
    bootstrapService(definition, {
      ZIGGIE_JWT_SECRET: 'integration-secret-0123456789',
      NATS_URL: nats.url,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      LOG_LEVEL: 'warn',
      MCP_GATEWAY_GRPC_ADDR: peers.address,
      AGENT_REGISTRY_GRPC_ADDR: peers.address,
      ORCHESTRATOR_GRPC_ADDR: peers.address,
      HEARTBEAT_INTERVAL_MS: '500',
      SHUTDOWN_GRACE_MS: '1000',
    });

  beforeAll(async () => {
    nats = await startNats();
    peers = await serveDoubles({ gateway, registry, orchestrator });
    nc = await connect({ servers: nats.url });
    nc.subscribe(Subject.StepResult, { callback: (_err, m) => results.push(json(m.data) as Result) });
    nc.subscribe(subjectWildcard(Subject.AgentHeartbeat), { callback: (_err, m) => beats.push(json(m.data) as Beat) });
    runtime = await startRuntime();
    js = nc.jetstream();
  }, 60_000);

  afterAll(async () => {
    await runtime?.stop();
    await nc?.drain();
    await peers?.stop();
    await nats?.stop();
  }, 30_000);

  it('beats for every hosted agent, fetched from the registry over every page', async () => {
    await waitFor(() => agents.every((a) => beats.some((b) => b.agentId === a.id)), { timeoutMs: 10_000, what: 'a heartbeat from every hosted agent' });
    const first = beats.find((b) => b.agentId === 'l3-ziggie-code-c')!;
    expect(first).toMatchObject({ status: 'idle', load: 0 });
    expect(first.runtimeId).toMatch(/-\d+$/);
    // Beats keep coming, period after period.
    const seen = beats.filter((b) => b.agentId === 'l1-ziggie-1').length;
    await waitFor(() => beats.filter((b) => b.agentId === 'l1-ziggie-1').length > seen, { timeoutMs: 5_000, what: 'the next heartbeat period' });
  });

  it('runs a noop step once: one succeeded result, and the work queue is emptied', async () => {
    const noop = { taskId: 'tsk_noop', attemptId: 'tsk_noop.a.1', input: { tool: 'ziggie.noop', arguments: { n: 7 } } };
    await dispatch(noop);
    const result = await finalOf('tsk_noop.a.1');
    expect(result).toMatchObject({ status: 'succeeded', output: { text: 'ok', echo: { n: 7 } }, agentId: 'l2-ziggie-code' });
    await waitFor(workQueueEmpty, { timeoutMs: 5_000, what: 'the dispatch to be acked' });
    // The same attempt delivered again: its stored result is republished, and JetStream keeps one.
    const published = results.length;
    await dispatch(noop, 'tsk_noop.a.1:again');
    await waitFor(async () => (await workQueueEmpty()) && results.length > published, { timeoutMs: 5_000, what: 'the second delivery to be handled' });
    expect(results.slice(published).map((r) => r.status)).toEqual(['succeeded']);
    const stored = await storedResults('tsk_noop.a.1');
    // A noop ends well within RUNTIME_RUNNING_NOTICE_MS: no running notice, one result.
    expect(stored.map((r) => r.status)).toEqual(['succeeded']);
    expect(gateway.calls).toHaveLength(0);
  });

  it('calls the first candidate tool the gateway catalog has, over gRPC', async () => {
    gateway.on('fs.echo', (args) => textResult(`echo ${String(args.text)}`));
    await dispatch({ taskId: 'tsk_cand', attemptId: 'tsk_cand.a.1', input: { tool: ['comfyui.generate_image', 'fs.echo'], arguments: { text: 'hi' } } });
    expect(await finalOf('tsk_cand.a.1')).toMatchObject({ status: 'succeeded', output: { text: 'echo hi', tool: 'fs.echo' } });
    expect(gateway.calls.at(-1)).toMatchObject({ name: 'fs.echo', workspace: 'ziggie', arguments: { text: 'hi' } });
  });

  it('aborts a long step on a cancel: TASK_CANCELLED, the gateway call is cancelled, the message acked', async () => {
    gateway.on('slow.wait', (_args, { signal }) => untilAborted(signal));
    await dispatch({ taskId: 'tsk_cancel', attemptId: 'tsk_cancel.a.1', timeoutMs: 60_000, input: { tool: 'slow.wait', arguments: {} } });
    await waitFor(() => results.some((r) => r.attemptId === 'tsk_cancel.a.1' && r.status === 'running') && gateway.calls.some((c) => c.name === 'slow.wait'), {
      timeoutMs: 10_000,
      what: 'the long step to start',
    });
    const cancel: PayloadOf<Subject.StepCancel> = { taskId: 'tsk_cancel', attemptIds: ['tsk_cancel.a.1'], reason: 'cancelled by an operator' };
    nc.publish(subjectFor(Subject.StepCancel, 'tsk_cancel'), Buffer.from(JSON.stringify(cancel)));
    expect(await finalOf('tsk_cancel.a.1')).toMatchObject({ status: 'failed', error: { code: 'TASK_CANCELLED', message: expect.stringContaining('cancelled by an operator') } });
    await waitFor(() => gateway.cancelled.includes('slow.wait'), { timeoutMs: 5_000, what: 'the gateway to see the call cancelled' });
    await waitFor(workQueueEmpty, { timeoutMs: 5_000, what: 'the cancelled dispatch to be acked' });
  });

  it('fails a step that outlives its timeout with STEP_TIMEOUT', async () => {
    await dispatch({ taskId: 'tsk_slow', attemptId: 'tsk_slow.a.1', timeoutMs: 300, input: { tool: 'slow.wait', arguments: {} } });
    expect(await finalOf('tsk_slow.a.1')).toMatchObject({ status: 'failed', error: { code: 'STEP_TIMEOUT' } });
  });

  it('fails an llm step with LLM_NOT_CONFIGURED when the gateway has no LLM adapter', async () => {
    await dispatch({ taskId: 'tsk_llm', attemptId: 'tsk_llm.a.1', action: 'llm', input: { prompt: 'Say hi' } });
    const result = await finalOf('tsk_llm.a.1');
    expect(result).toMatchObject({ status: 'failed', error: { code: 'LLM_NOT_CONFIGURED' } });
    expect(result.error!.message).toMatch(/Ollama or OpenAI-compatible/);
  });

  it('delegates a plan as a child task for the agent children and returns its outputs', async () => {
    orchestrator.states = [
      taskOf('tsk_child', { status: 'running' }),
      taskOf('tsk_child', { status: 'succeeded', output: { summary: 'done' }, waves: [{ index: 0, status: 'succeeded', steps: [stepOf('c1', { text: 'one' }), stepOf('c2', { text: 'two' })] }] }),
    ];
    await dispatch({
      taskId: 'tsk_parent',
      stepId: 'fan',
      attemptId: 'tsk_parent.fan.1',
      action: 'delegate',
      agentId: 'l2-ziggie-code',
      depth: 1,
      input: { plan: { steps: [{ id: 'c1', capability: 'code', input: { tool: 'ziggie.noop' } }, { id: 'c2', capability: 'code' }] } },
    });
    expect(await finalOf('tsk_parent.fan.1')).toMatchObject({
      status: 'succeeded',
      output: { childTaskId: 'tsk_child', output: { summary: 'done' }, steps: { c1: { text: 'one' }, c2: { text: 'two' } } },
    });
    const submitted = orchestrator.submitted.at(-1)!;
    expect(submitted).toMatchObject({ parentTaskId: 'tsk_parent', parentStepId: 'fan', depth: 2, title: 'Delegated by l2-ziggie-code: fan' });
    expect(submitted.plan!.steps.map((s) => s.agent)).toEqual(['l3-ziggie-code-a', 'l3-ziggie-code-b']);
    expect(submitted.plan!.steps[0]!.input).toEqual({ tool: 'ziggie.noop' });
  });

  it('beats every hosted agent offline when it stops', async () => {
    const before = beats.length;
    await runtime!.stop();
    runtime = undefined;
    await waitFor(() => agents.every((a) => beats.slice(before).some((b) => b.agentId === a.id && b.status === 'offline')), {
      timeoutMs: 5_000,
      what: 'offline heartbeats for every agent',
    });
  });
});
