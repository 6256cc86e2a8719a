import type { pb } from '@ziggie/contracts';
import { flattenTree } from './tree';

const agent = (id: string, level: number, parentId = ''): pb.Agent => ({ id, name: id, level, parentId, role: 'r', workspace: 'w', capabilities: [], status: 'idle', load: 0, lastSeenAt: '' });

describe('flattenTree', () => {
  const l0 = agent('l0', 0);
  const kids: Record<string, pb.Agent[]> = {
    l0: [agent('l1-a', 1, 'l0'), agent('l1-b', 1, 'l0')],
    'l1-a': [agent('l2-a', 2, 'l1-a')],
    'l2-a': [agent('l3-a', 3, 'l2-a')],
  };

  it('shows only expanded branches, depth first, with their depth', () => {
    const rows = flattenTree([l0], (id) => kids[id], new Set(['l0', 'l1-a', 'l2-a']));
    expect(rows.map((r) => [r.agent.id, r.depth, r.expanded, r.leaf])).toEqual([
      ['l0', 0, true, false],
      ['l1-a', 1, true, false],
      ['l2-a', 2, true, false],
      ['l3-a', 3, false, true],
      ['l1-b', 1, false, false],
    ]);
    expect(flattenTree([l0], (id) => kids[id], new Set())).toHaveLength(1);
  });

  it('marks an expanded branch whose children are still loading', () => {
    expect(flattenTree([l0], () => undefined, new Set(['l0']))[0]).toMatchObject({ expanded: true, loading: true });
  });

  it('stops at a cycle in the data', () => {
    const loop = { a: [agent('b', 1)], b: [agent('a', 2)] } as Record<string, pb.Agent[]>;
    expect(flattenTree([agent('a', 0)], (id) => loop[id], new Set(['a', 'b'])).map((r) => r.agent.id)).toEqual(['a', 'b']);
  });
});
