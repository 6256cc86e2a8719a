import { agentOf, RegistryDouble } from '../test/doubles';
import { Heartbeat, HostedAgents } from './agents';

describe('HostedAgents', () => {
  afterEach(() => jest.useRealTimers());

  const hosted = (registry: RegistryDouble, beats: Heartbeat[], counts: number[] = []) =>
    new HostedAgents(registry, (b) => beats.push(b), { runtimeId: 'rt-1', heartbeatMs: 5_000, refreshMs: 60_000, onCount: (n) => counts.push(n) });

  it('beats every hosted agent once per period with its load, from one timer', async () => {
    jest.useFakeTimers();
    const agents = Array.from({ length: 1625 }, (_, i) => agentOf(`a${i}`));
    const beats: Heartbeat[] = [];
    const counts: number[] = [];
    const h = hosted(new RegistryDouble(agents), beats, counts);
    h.start();
    await h.loaded;
    h.stepStarted('a7');
    beats.length = 0;
    jest.advanceTimersByTime(5_000);
    expect(beats).toHaveLength(1625);
    expect(beats.find((b) => b.agentId === 'a7')).toMatchObject({ status: 'busy', load: 1, runtimeId: 'rt-1' });
    expect(beats.find((b) => b.agentId === 'a8')).toMatchObject({ status: 'idle', load: 0 });
    expect(counts).toEqual([1625]);
    h.stop();
  });

  it('retries the registry in the background and refreshes the agents every period', async () => {
    jest.useFakeTimers();
    const registry = new RegistryDouble([agentOf('a')]);
    registry.failuresLeft = 2;
    const h = hosted(registry, []);
    h.start();
    expect(h.count).toBe(0);
    await jest.advanceTimersByTimeAsync(1_000 + 2_000);
    expect(h.count).toBe(1);
    registry.agents.push(agentOf('b'));
    await jest.advanceTimersByTimeAsync(60_000);
    expect(h.count).toBe(2);
    expect(registry.listAgentsCalls).toBe(4);
    h.stop();
  });

  it('beats busy and idle around a step, and offline for every agent on stop', async () => {
    const beats: Heartbeat[] = [];
    const h = hosted(new RegistryDouble([agentOf('a'), agentOf('b')]), beats);
    await h.refresh();
    h.stepStarted('a');
    h.stepStarted('a');
    h.stepEnded('a');
    expect(beats.map((b) => [b.agentId, b.status, b.load])).toEqual([
      ['a', 'busy', 1],
      ['a', 'busy', 2],
      ['a', 'busy', 1],
    ]);
    beats.length = 0;
    h.stop();
    expect(beats.map((b) => [b.agentId, b.status])).toEqual([
      ['a', 'offline'],
      ['b', 'offline'],
    ]);
    // Nothing beats after stop.
    h.stepEnded('a');
    expect(beats).toHaveLength(2);
  });

  it('knows each agent children from the hosted list', async () => {
    const h = hosted(new RegistryDouble([agentOf('p'), agentOf('c1', { parentId: 'p' }), agentOf('c2', { parentId: 'p' }), agentOf('x', { parentId: 'q' })]), []);
    await h.refresh();
    expect(h.children('p').map((a) => a.id)).toEqual(['c1', 'c2']);
    h.stop();
  });
});
