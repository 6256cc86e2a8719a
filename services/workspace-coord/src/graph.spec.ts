import fc from 'fast-check';
import { DEFAULT_WORKSPACES } from '@ziggie/contracts';
import { affectedWorkspaces, cycleThrough, DependencyGraph, formatCycle } from './graph';

const graph = (edges: Record<string, string[]>): DependencyGraph => new Map(Object.entries(edges));
const defaults = graph(Object.fromEntries(DEFAULT_WORKSPACES.map((w) => [w.id, w.dependsOn])));

/** True when every node can be ordered after its dependencies (Kahn's algorithm). */
function isAcyclic(g: DependencyGraph): boolean {
  const remaining = new Map([...g].map(([id, deps]) => [id, new Set(deps.filter((d) => g.has(d)))]));
  let progressed = true;
  while (progressed) {
    progressed = false;
    for (const [id, deps] of remaining) {
      if ([...deps].every((d) => !remaining.has(d))) {
        remaining.delete(id);
        progressed = true;
      }
    }
  }
  return remaining.size === 0;
}

describe('cycleThrough', () => {
  it('finds a self-dependency', () => {
    expect(cycleThrough(graph({ a: ['a'] }), 'a')).toEqual(['a', 'a']);
  });

  it('names the path of a two- and a three-workspace cycle, starting and ending at the changed workspace', () => {
    expect(cycleThrough(graph({ a: ['b'], b: ['a'] }), 'a')).toEqual(['a', 'b', 'a']);
    expect(cycleThrough(graph({ a: ['b'], b: ['c'], c: ['a'] }), 'b')).toEqual(['b', 'c', 'a', 'b']);
    expect(formatCycle(['a', 'b', 'a'])).toBe('a → b → a');
  });

  it('reports the shortest of several cycles', () => {
    const g = graph({ a: ['b', 'x'], b: ['c'], c: ['d'], d: ['a'], x: ['a'] });
    expect(cycleThrough(g, 'a')).toEqual(['a', 'x', 'a']);
  });

  it('accepts diamonds and the default workspaces', () => {
    expect(cycleThrough(graph({ a: ['b', 'c'], b: ['d'], c: ['d'], d: [] }), 'a')).toBeUndefined();
    for (const w of DEFAULT_WORKSPACES) expect(cycleThrough(defaults, w.id)).toBeUndefined();
  });

  it('refuses ziggie depending on meowping-nft (which depends on it through ai-game-dev too)', () => {
    const changed = new Map(defaults);
    changed.set('ziggie', ['meowping-nft']);
    expect(cycleThrough(changed, 'ziggie')).toEqual(['ziggie', 'meowping-nft', 'ziggie']);
  });

  it('ignores dependencies on workspaces that are not in the graph', () => {
    expect(cycleThrough(graph({ a: ['ghost'] }), 'a')).toBeUndefined();
  });

  it('agrees with a topological sort on random changes to acyclic graphs', () => {
    const nodes = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
    // Edges only from later to earlier nodes: acyclic by construction.
    const dag = fc.array(fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 6 })), { maxLength: 20 }).map((pairs) => {
      const g = new Map<string, string[]>(nodes.map((n) => [n, []]));
      for (const [from, to] of pairs) if (to < from) g.get(nodes[from]!)!.push(nodes[to]!);
      return g;
    });
    fc.assert(
      fc.property(dag, fc.constantFrom(...nodes), fc.subarray(nodes), (g, node, deps) => {
        const changed = new Map(g);
        changed.set(node, deps);
        const cycle = cycleThrough(changed, node);
        expect(cycle === undefined).toBe(isAcyclic(changed));
        if (cycle) {
          expect(cycle[0]).toBe(node);
          expect(cycle[cycle.length - 1]).toBe(node);
          for (let i = 0; i + 1 < cycle.length; i++) expect(changed.get(cycle[i]!)).toContain(cycle[i + 1]);
        }
      }),
    );
  });
});

describe('affectedWorkspaces', () => {
  it('lists the given workspaces, then every dependent breadth first with the edge that reached it', () => {
    expect(affectedWorkspaces(defaults, ['ziggie'])).toEqual({
      workspaces: ['ziggie', 'ai-game-dev', 'meowping-nft', 'simstudio'],
      reasons: ['ai-game-dev depends on ziggie', 'meowping-nft depends on ziggie', 'simstudio depends on ziggie'],
    });
    expect(affectedWorkspaces(defaults, ['ai-game-dev'])).toEqual({ workspaces: ['ai-game-dev', 'meowping-nft'], reasons: ['meowping-nft depends on ai-game-dev'] });
    expect(affectedWorkspaces(defaults, ['fitflow'])).toEqual({ workspaces: ['fitflow'], reasons: [] });
  });

  it('follows chains transitively and keeps the given order, without repeating anything', () => {
    const chain = graph({ a: [], b: ['a'], c: ['b'], d: ['c', 'a'], e: [] });
    expect(affectedWorkspaces(chain, ['e', 'a', 'e', 'c'])).toEqual({
      workspaces: ['e', 'a', 'c', 'b', 'd'],
      reasons: ['b depends on a', 'd depends on a'],
    });
  });

  it('returns nothing for nothing', () => {
    expect(affectedWorkspaces(defaults, [])).toEqual({ workspaces: [], reasons: [] });
  });
});
