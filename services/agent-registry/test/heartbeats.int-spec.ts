import { connect, NatsConnection } from 'nats';
import { pb, PayloadOf, Subject, subjectFor, ZiggieError } from '@ziggie/contracts';
import { callUnary, RunningService } from '@ziggie/platform';
import { waitFor } from '../../../test/support';
import { startRegistry, type RegistryUnderTest } from './registry-harness';

const AGENT = 'l3-fitflow-01-01-01';

describe('agent-registry heartbeats over a real nats-server', () => {
  let under: RegistryUnderTest;
  let svc: RunningService;
  let registry: pb.AgentRegistryClient;
  let publisher: NatsConnection;
  const timers: NodeJS.Timeout[] = [];

  beforeAll(async () => {
    under = await startRegistry({ AGENT_OFFLINE_AFTER_SECONDS: '1' });
    ({ svc, registry } = under);
    publisher = await connect({ servers: under.nats.url });
  }, 60_000);

  afterAll(async () => {
    for (const t of timers) clearInterval(t);
    await publisher?.close();
    await under?.stop();
  });

  const beat = (agentId: string, runtimeId: string, status: 'idle' | 'busy' | 'offline', load: number): void => {
    const payload: PayloadOf<Subject.AgentHeartbeat> = { agentId, status, load, runtimeId, at: new Date().toISOString() };
    publisher.publish(subjectFor(Subject.AgentHeartbeat, agentId), JSON.stringify(payload));
  };
  /** Beats every 100 ms until stopped, like a runtime hosting the agent. */
  const keepBeating = (agentId: string, runtimeId: string, status: 'idle' | 'busy', load: number): (() => void) => {
    beat(agentId, runtimeId, status, load);
    const timer = setInterval(() => beat(agentId, runtimeId, status, load), 100);
    timers.push(timer);
    return () => clearInterval(timer);
  };
  const getAgent = (id: string) => callUnary(registry.getAgent.bind(registry), { id });
  const select = (r: Partial<pb.SelectAgentRequest>) => callUnary(registry.selectAgent.bind(registry), { capability: '', workspace: '', agentId: '', level: 0, filterLevel: false, withChildren: false, ...r });
  /** A sample from /metrics: the series of `name` carrying every given label. */
  const metric = async (name: string, labels: Record<string, string>): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${svc.httpPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
    return line ? Number(line.split(' ').pop()) : 0;
  };

  it('aggregates two runtimes, drops the silent one, then goes offline when both are silent', async () => {
    expect(await getAgent(AGENT)).toMatchObject({ status: 'idle', load: 0, lastSeenAt: '' });

    const stopR1 = keepBeating(AGENT, 'runtime-1', 'busy', 2);
    const stopR2 = keepBeating(AGENT, 'runtime-2', 'idle', 1);
    await waitFor(async () => (await getAgent(AGENT)).load === 3, { what: 'load from both runtimes', timeoutMs: 10_000 });
    const both = await getAgent(AGENT);
    expect(both.status).toBe('busy');
    expect(Date.parse(both.lastSeenAt)).toBeGreaterThan(0);

    // Busy at 3, it is not the pick among the idle design agents of its L2 parent.
    const picked = await select({ capability: 'design', workspace: 'fitflow', level: 3, filterLevel: true });
    expect(picked.id).not.toBe(AGENT);
    expect(picked).toMatchObject({ level: 3, workspace: 'fitflow', status: 'idle' });

    stopR1();
    await waitFor(async () => (await getAgent(AGENT)).load === 1, { what: 'runtime-1 to go stale', timeoutMs: 10_000 });
    expect(await getAgent(AGENT)).toMatchObject({ status: 'idle', load: 1 });

    stopR2();
    await waitFor(async () => (await getAgent(AGENT)).status === 'offline', { what: 'the agent to go offline', timeoutMs: 10_000 });
    expect((await getAgent(AGENT)).load).toBe(0);
    await expect(select({ agentId: AGENT })).rejects.toMatchObject({ code: 'AGENT_UNAVAILABLE' });

    // One beat brings it back.
    beat(AGENT, 'runtime-3', 'idle', 0);
    await waitFor(async () => (await getAgent(AGENT)).status === 'idle', { what: 'the agent to come back', timeoutMs: 10_000 });
    expect((await select({ agentId: AGENT })).id).toBe(AGENT);
  }, 60_000);

  it('reports an explicit offline beat at once, and ignores invalid beats and unknown agents', async () => {
    const agent = 'l3-simstudio-02-03-04';
    const unknownBefore = await metric('ziggie_agent_heartbeats_total', { result: 'unknown_agent' });
    beat(agent, 'runtime-1', 'busy', 1);
    await waitFor(async () => (await getAgent(agent)).status === 'busy', { what: 'busy', timeoutMs: 10_000 });
    publisher.publish(subjectFor(Subject.AgentHeartbeat, agent), JSON.stringify({ agentId: agent, status: 'sleeping', load: -1 }));
    beat('no-such-agent', 'runtime-1', 'busy', 5);
    beat(agent, 'runtime-1', 'offline', 0);
    await waitFor(async () => (await getAgent(agent)).status === 'offline', { what: 'offline', timeoutMs: 10_000 });
    expect(await metric('ziggie_agent_heartbeats_total', { result: 'unknown_agent' })).toBe(unknownBefore + 1);
    expect(await metric('ziggie_agents', { level: '3', status: 'offline' })).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('serves selection batches, the hierarchy and the A2A card over gRPC', async () => {
    const batch = await callUnary(registry.selectAgents.bind(registry), {
      requests: [
        { capability: 'qa', workspace: 'meowping-nft', agentId: '', level: 0, filterLevel: false, withChildren: false },
        { capability: 'qa', workspace: 'meowping-nft', agentId: '', level: 0, filterLevel: false, withChildren: false },
        { capability: 'qa', workspace: 'nowhere', agentId: '', level: 0, filterLevel: false, withChildren: false },
      ],
    });
    expect(batch.results.map((r) => r.errorCode)).toEqual(['', '', 'AGENT_UNAVAILABLE']);
    expect(batch.results[0]!.agent!.id).not.toBe(batch.results[1]!.agent!.id);

    const path = await callUnary(registry.getPath.bind(registry), { id: 'l3-ziggie-03-02-01' });
    expect(path.agents.map((a) => a.id)).toEqual(['l0-coordinator', 'l1-ziggie-03', 'l2-ziggie-03-02', 'l3-ziggie-03-02-01']);
    const subtree = await callUnary(registry.getSubtree.bind(registry), { id: 'l1-ziggie-03', maxDepth: 1, page: { limit: 5, cursor: '' } });
    expect({ total: subtree.total, n: subtree.items.length, next: subtree.nextCursor !== '' }).toEqual({ total: 8, n: 5, next: true });
    const children = await callUnary(registry.listChildren.bind(registry), { id: 'l0-coordinator', page: { limit: 100, cursor: '' } });
    expect(children.total).toBe(40);
    expect(await callUnary(registry.getHierarchySummary.bind(registry), { workspaces: ['fitflow'] })).toMatchObject({ total: 365, elite: 0, bmad: 0 });

    const { card } = await callUnary(registry.getAgentCard.bind(registry), { id: 'bmad-qa', baseUrl: 'https://ziggie.example.com' });
    expect(card).toMatchObject({
      name: 'BMAD qa',
      version: '0.1.0',
      supportedInterfaces: [{ url: 'https://ziggie.example.com/v1/agents/bmad-qa', protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' }],
      capabilities: { streaming: true, pushNotifications: false },
      skills: [expect.objectContaining({ id: 'qa' }), expect.objectContaining({ id: 'code' })],
      securityRequirements: [{ schemes: { bearer: { list: [] } } }],
    });
    const missing = await callUnary(registry.getAgentCard.bind(registry), { id: 'ghost', baseUrl: 'https://z.example' }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ZiggieError);
    expect(missing).toMatchObject({ code: 'NOT_FOUND', message: 'agent ghost not found' });
  }, 30_000);
});
