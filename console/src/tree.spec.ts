import type { pb } from '@ziggie/contracts';
import { allPages, flattenTree } from './tree';

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

describe('allPages', () => {
  const pages: Record<string, { items: number[]; total: number; nextCursor?: string }> = {
    first: { items: [1, 2], total: 5, nextCursor: 'c2' },
    c2: { items: [3, 4], total: 5, nextCursor: 'c3' },
    c3: { items: [5], total: 5 },
  };

  it('reads page after page until there is no next cursor', async () => {
    const asked: Array<string | undefined> = [];
    const items = await allPages(async (cursor) => {
      asked.push(cursor);
      return pages[cursor ?? 'first']!;
    });
    expect(items).toEqual([1, 2, 3, 4, 5]);
    expect(asked).toEqual([undefined, 'c2', 'c3']);
  });

  it('stops at a cursor that does not move and after the most pages it may read', async () => {
    let calls = 0;
    const stuck = await allPages(async (cursor) => {
      calls++;
      return { items: [calls], total: 99, nextCursor: cursor ?? 'same' };
    });
    expect(stuck).toEqual([1, 2]);
    let n = 0;
    const endless = await allPages(async () => ({ items: [n], total: 1e9, nextCursor: `c${++n}` }), 3);
    expect(endless).toEqual([0, 1, 2]);
  });

  it('lets a failing page fail the whole read', async () => {
    await expect(allPages(async (cursor) => (cursor ? Promise.reject(new Error('503')) : pages.first!))).rejects.toThrow('503');
  });
});
