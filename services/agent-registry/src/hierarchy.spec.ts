import { CAPABILITY_DOMAINS, DEFAULT_WORKSPACES } from '@ziggie/contracts';
import { AgentSeed, generateDefaultHierarchy, generateHierarchy, generateHierarchyOfSize, syntheticWorkspaces } from './hierarchy';

/** Unique ids, and every parent exists one level up and comes before its children. */
function expectWellFormed(agents: AgentSeed[]): void {
  const position = new Map(agents.map((a, i) => [a.id, i]));
  expect(position.size).toBe(agents.length);
  const problems: string[] = [];
  for (const [i, a] of agents.entries()) {
    if (a.parentId === null) continue;
    const p = position.get(a.parentId);
    if (p === undefined || p > i || agents[p]!.level !== a.level - 1) problems.push(`${a.id} → ${a.parentId}`);
  }
  expect(problems).toEqual([]);
}

describe('generateDefaultHierarchy', () => {
  const agents = generateDefaultHierarchy();
  const byLevel = (level: number) => agents.filter((a) => a.level === level && a.team === null);

  it('generates the 1,625 agents of the default seed', () => {
    expect(agents).toHaveLength(1625);
    expect(new Set(agents.map((a) => a.id)).size).toBe(1625);
  });

  it('has 1 coordinator, 22 L1 (8, 5, 4, 3, 2 by workspace), 176 L2, 1,408 L3, 15 elite and 3 BMAD', () => {
    expect(byLevel(0)).toHaveLength(1);
    expect(byLevel(1)).toHaveLength(22);
    expect(byLevel(1).map((a) => a.workspace)).toEqual(DEFAULT_WORKSPACES.flatMap((w) => Array(w.l1Specialists).fill(w.id)));
    expect(byLevel(2)).toHaveLength(176);
    expect(byLevel(3)).toHaveLength(1408);
    expect(agents.filter((a) => a.team?.startsWith('elite-'))).toHaveLength(15);
    expect(agents.filter((a) => a.team === 'bmad')).toHaveLength(3);
  });

  it('links every agent to an existing parent one level up', () => {
    const index = new Map(agents.map((a) => [a.id, a]));
    for (const a of agents.filter((x) => x.level > 0)) {
      const parent = index.get(a.parentId!);
      expect(parent).toBeDefined();
      expect(parent!.level).toBe(a.level - 1);
    }
  });

  it('gives every workspace L3 agents for every capability domain', () => {
    for (const ws of DEFAULT_WORKSPACES) {
      const caps = new Set(byLevel(3).filter((a) => a.workspace === ws.id).flatMap((a) => a.capabilities));
      expect([...caps].sort()).toEqual([...CAPABILITY_DOMAINS].sort());
    }
  });
});

describe('generateHierarchy (any size)', () => {
  it('scales L1 per workspace and the fan-out below', () => {
    const agents = generateHierarchy({ l1Scale: 2, l2PerL1: 3, l3PerL2: 2, teams: false });
    // 1 + 44 L1 × (1 + 3 + 6)
    expect(agents).toHaveLength(1 + 44 * 10);
    expect(agents.filter((a) => a.team !== null)).toHaveLength(0);
    expectWellFormed(agents);
    expect(agents.filter((a) => a.workspace === 'meowping-nft' && a.level === 1).map((a) => a.id)).toEqual(['l1-meowping-nft-01', 'l1-meowping-nft-02', 'l1-meowping-nft-03', 'l1-meowping-nft-04']);
  });

  it('adds synthetic workspaces', () => {
    const workspaces = syntheticWorkspaces(12);
    expect(workspaces[0]).toMatchObject({ id: 'ws-0001', l1Specialists: 4 });
    expect(new Set(workspaces.map((w) => w.id)).size).toBe(12);
    const agents = generateHierarchy({ workspaces });
    expect(agents).toHaveLength(1 + 18 + 12 * 4 * 73);
    expect(new Set(agents.map((a) => a.workspace))).toEqual(new Set(workspaces.map((w) => w.id)));
    expectWellFormed(agents);
  });

  it('produces exactly the size asked for, up to 100,000 agents', () => {
    const big = generateHierarchyOfSize(100_000);
    expect(big).toHaveLength(100_000);
    expectWellFormed(big);
    expect(big.filter((a) => a.team !== null)).toHaveLength(18);
    expect(big.filter((a) => a.level === 3).length).toBeGreaterThan(85_000);
    // Every workspace keeps L3 agents for every domain.
    for (const ws of DEFAULT_WORKSPACES) {
      const caps = new Set(big.filter((a) => a.workspace === ws.id && a.level === 3).flatMap((a) => a.capabilities));
      expect(caps.size).toBe(CAPABILITY_DOMAINS.length);
    }
    expect(generateHierarchyOfSize(1625).map((a) => a.id).sort()).toEqual(generateDefaultHierarchy().map((a) => a.id).sort());
    expect(generateHierarchyOfSize(19)).toHaveLength(19);
    expect(() => generateHierarchyOfSize(10)).toThrow(RangeError);
  });
});
