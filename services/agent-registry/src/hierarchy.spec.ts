import { CAPABILITY_DOMAINS, DEFAULT_WORKSPACES } from '@ziggie/contracts';
import { generateDefaultHierarchy } from './hierarchy';

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
