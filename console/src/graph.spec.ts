import { type GraphItem, layoutGraph } from './graph';

const opts = { nodeWidth: 100, nodeHeight: 20, gapX: 10, gapY: 30, maxPerRow: 4 };
const at = (layout: ReturnType<typeof layoutGraph>, id: string) => layout.nodes.find((n) => n.id === id)!;

describe('layoutGraph', () => {
  const diamond: GraphItem[] = [
    { id: 'd', dependsOn: ['b', 'c'] },
    { id: 'c', dependsOn: ['a'] },
    { id: 'b', dependsOn: ['a'] },
    { id: 'a', dependsOn: [] },
  ];

  it('puts a diamond in three layers, each node below its dependencies, with one edge per dependency', () => {
    const g = layoutGraph(diamond, opts);
    expect(Object.fromEntries(g.nodes.map((n) => [n.id, n.layer]))).toEqual({ a: 0, b: 1, c: 1, d: 2 });
    expect(g.edges.map((e) => e.id).sort()).toEqual(['a->b', 'a->c', 'b->d', 'c->d']);
    expect(g.edges.find((e) => e.id === 'a->b')).toEqual({ id: 'a->b', source: 'a', target: 'b' });
    expect([at(g, 'a').y, at(g, 'b').y, at(g, 'd').y]).toEqual([0, 50, 100]);
    // The middle layer is two nodes wide, centred; the single nodes sit in the middle of it.
    expect(g.width).toBe(210);
    expect(g.height).toBe(120);
    expect(at(g, 'a').x).toBe(55);
    expect(at(g, 'd').x).toBe(55);
    expect(g.dangling).toEqual([]);
    expect(g.cyclic).toEqual([]);
  });

  it('uses the layers it is given (a task\'s waves, from 1) and draws them contiguous from 0', () => {
    const g = layoutGraph([{ id: 'a', dependsOn: [], layer: 1 }, { id: 'b', dependsOn: ['a'], layer: 3 }], opts);
    expect(g.nodes.map((n) => [n.id, n.layer, n.y])).toEqual([['a', 0, 0], ['b', 1, 50]]);
  });

  it('is deterministic: the same graph gives the same picture', () => {
    expect(layoutGraph(diamond, opts)).toEqual(layoutGraph(diamond.map((i) => ({ ...i })), opts));
  });

  it('orders a layer by where its dependencies are, to keep edges from crossing', () => {
    const g = layoutGraph(
      [
        { id: 'left', dependsOn: [] },
        { id: 'right', dependsOn: [] },
        { id: 'under-right', dependsOn: ['right'] },
        { id: 'under-left', dependsOn: ['left'] },
      ],
      opts,
    );
    expect(at(g, 'under-left').x).toBeLessThan(at(g, 'under-right').x);
    expect(at(g, 'left').x).toBeLessThan(at(g, 'right').x);
  });

  it('wraps a wide layer into rows and starts the next layer below the last of them', () => {
    const wide: GraphItem[] = [{ id: 'root', dependsOn: [] }, ...Array.from({ length: 10 }, (_, i) => ({ id: `s${i}`, dependsOn: ['root'] })), { id: 'join', dependsOn: Array.from({ length: 10 }, (_, i) => `s${i}`) }];
    const g = layoutGraph(wide, opts);
    const rows = new Set(g.nodes.filter((n) => n.layer === 1).map((n) => n.y));
    expect([...rows]).toEqual([50, 100, 150]);
    expect(at(g, 'join').y).toBe(200);
    expect(g.width).toBe(4 * 110 - 10);
    expect(g.edges).toHaveLength(20);
    // The last row holds two nodes, centred under the full rows above.
    expect(g.nodes.filter((n) => n.y === 150).map((n) => n.x)).toEqual([110, 220]);
  });

  it('keeps a wave of 1,625 steps fast', () => {
    const wide: GraphItem[] = [...Array.from({ length: 1625 }, (_, i) => ({ id: `s${i}`, dependsOn: [], layer: 1 })), { id: 'join', dependsOn: Array.from({ length: 1625 }, (_, i) => `s${i}`), layer: 2 }];
    const started = performance.now();
    const g = layoutGraph(wide);
    expect(performance.now() - started).toBeLessThan(200);
    expect(g.nodes).toHaveLength(1626);
    expect(g.edges).toHaveLength(1625);
    expect(new Set(g.nodes.map((n) => `${n.x},${n.y}`)).size).toBe(1626);
  });

  it('lists dependencies outside the graph and draws no edge for them', () => {
    const g = layoutGraph([{ id: 'web', dependsOn: ['hidden', 'api'] }, { id: 'api', dependsOn: [] }], opts);
    expect(g.edges.map((e) => e.id)).toEqual(['api->web']);
    expect(g.dangling).toEqual(['web → hidden']);
    expect(at(g, 'web').layer).toBe(1);
  });

  it('places the nodes of a cycle in a last layer of their own instead of looping', () => {
    const g = layoutGraph([{ id: 'root', dependsOn: [] }, { id: 'x', dependsOn: ['root', 'y'] }, { id: 'y', dependsOn: ['x'] }], opts);
    expect(g.cyclic).toEqual(['x', 'y']);
    expect([at(g, 'root').layer, at(g, 'x').layer, at(g, 'y').layer]).toEqual([0, 1, 1]);
  });

  it('keeps the first of duplicate ids and ignores a node depending on itself', () => {
    const g = layoutGraph([{ id: 'a', dependsOn: ['a'] }, { id: 'a', dependsOn: [] }], opts);
    expect(g.nodes).toHaveLength(1);
    expect(g.edges).toEqual([]);
    expect(g.cyclic).toEqual([]);
  });

  it('answers an empty layout for no items', () => {
    expect(layoutGraph([], opts)).toEqual({ nodes: [], edges: [], width: 0, height: 0, dangling: [], cyclic: [] });
  });
});
