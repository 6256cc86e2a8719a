/**
 * A layered layout of a dependency graph (a task's steps, the workspaces): every node in a layer
 * below everything it depends on, edges from a dependency to what depends on it.
 *
 * Written here rather than taken from dagre: the layers are known (a task's waves) or one
 * topological pass away, and dagre would lay a wave of 1,625 steps out as one row some 330,000 px
 * wide, which would have to be wrapped into rows afterwards anyway.
 */

export interface GraphItem {
  id: string;
  dependsOn: readonly string[];
  /** The layer when the caller knows it (a step's wave); computed from the dependencies otherwise. */
  layer?: number;
}

export interface PlacedNode {
  id: string;
  /** 0-based, top to bottom. */
  layer: number;
  x: number;
  y: number;
}

export interface GraphEdge {
  id: string;
  /** The dependency. */
  source: string;
  /** What depends on it. */
  target: string;
}

export interface GraphLayout {
  nodes: PlacedNode[];
  edges: GraphEdge[];
  width: number;
  height: number;
  /** Dependencies named by an item that are not in the graph (another workspace the token cannot see), as `item → dependency`. */
  dangling: string[];
  /** Items on a cycle, placed in a last layer of their own: a graph the API refuses, shown rather than lost. */
  cyclic: string[];
}

export interface GraphOptions {
  nodeWidth: number;
  nodeHeight: number;
  gapX: number;
  gapY: number;
  /** A layer wider than this wraps into several rows, so a wave of 1,625 steps stays a readable block. */
  maxPerRow: number;
}

export const DEFAULT_GRAPH_OPTIONS: GraphOptions = { nodeWidth: 180, nodeHeight: 52, gapX: 24, gapY: 56, maxPerRow: 32 };

/** Longest path from a root: roots are layer 0. Items left over by Kahn's algorithm are on a cycle. */
function computeLayers(items: readonly GraphItem[], known: ReadonlySet<string>): { layer: Map<string, number>; cyclic: string[] } {
  const indegree = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const item of items) {
    const deps = item.dependsOn.filter((d) => known.has(d) && d !== item.id);
    indegree.set(item.id, deps.length);
    for (const d of deps) {
      const list = dependents.get(d);
      if (list) list.push(item.id);
      else dependents.set(d, [item.id]);
    }
  }
  const layer = new Map<string, number>();
  const ready = items.filter((i) => indegree.get(i.id) === 0).map((i) => i.id);
  for (const id of ready) layer.set(id, 0);
  for (let head = 0; head < ready.length; head++) {
    const id = ready[head]!;
    for (const next of dependents.get(id) ?? []) {
      layer.set(next, Math.max(layer.get(next) ?? 0, layer.get(id)! + 1));
      const left = indegree.get(next)! - 1;
      indegree.set(next, left);
      if (left === 0) ready.push(next);
    }
  }
  const cyclic = items.filter((i) => indegree.get(i.id)! > 0).map((i) => i.id);
  return { layer, cyclic };
}

/**
 * Places the items layer by layer. Within a layer, nodes are ordered by the mean position of their
 * dependencies in the layers above (one barycenter pass), ties kept in input order, so the same
 * graph always gets the same picture. Duplicate ids keep their first occurrence.
 */
export function layoutGraph(input: readonly GraphItem[], options: Partial<GraphOptions> = {}): GraphLayout {
  const o = { ...DEFAULT_GRAPH_OPTIONS, ...options };
  const seen = new Set<string>();
  const items = input.filter((i) => !seen.has(i.id) && seen.add(i.id));
  const known = seen;
  const computed = items.some((i) => i.layer === undefined) ? computeLayers(items, known) : { layer: new Map<string, number>(), cyclic: [] };
  const cyclic = new Set(computed.cyclic);
  const lastLayer = Math.max(-1, ...[...computed.layer.values()]);
  const layerOf = (i: GraphItem): number => (i.layer !== undefined ? i.layer : cyclic.has(i.id) ? lastLayer + 1 : computed.layer.get(i.id)!);

  const edges: GraphEdge[] = [];
  const dangling: string[] = [];
  for (const item of items) {
    for (const d of new Set(item.dependsOn)) {
      if (known.has(d) && d !== item.id) edges.push({ id: `${d}->${item.id}`, source: d, target: item.id });
      else if (!known.has(d)) dangling.push(`${item.id} → ${d}`);
    }
  }

  // Layers as given may be sparse or start anywhere (waves start at 1): draw them contiguous from 0.
  const layerValues = [...new Set(items.map(layerOf))].sort((a, b) => a - b);
  const rank = new Map(layerValues.map((v, i) => [v, i]));
  const layers: Array<Array<{ item: GraphItem; index: number }>> = layerValues.map(() => []);
  items.forEach((item, index) => layers[rank.get(layerOf(item))!]!.push({ item, index }));

  // Column of each placed node, as a fraction of its row's width, for the barycenter of the next layer.
  const position = new Map<string, number>();
  const nodes: PlacedNode[] = [];
  const stepX = o.nodeWidth + o.gapX;
  const stepY = o.nodeHeight + o.gapY;
  const rowWidth = (n: number): number => n * stepX - o.gapX;
  const width = Math.max(0, ...layers.map((l) => rowWidth(Math.min(l.length, o.maxPerRow))));
  let row = 0;
  layers.forEach((layer, layerIndex) => {
    const keyed = layer.map(({ item, index }) => {
      const placed = item.dependsOn.map((d) => position.get(d)).filter((p): p is number => p !== undefined);
      return { item, index, key: placed.length > 0 ? placed.reduce((a, b) => a + b, 0) / placed.length : Number.POSITIVE_INFINITY };
    });
    // Nodes with no placed dependency keep their input order after the others (a root layer keeps it whole).
    keyed.sort((a, b) => (a.key === b.key ? a.index - b.index : a.key === Number.POSITIVE_INFINITY ? 1 : b.key === Number.POSITIVE_INFINITY ? -1 : a.key - b.key));
    keyed.forEach(({ item }, i) => {
      const rowOfLayer = Math.floor(i / o.maxPerRow);
      const column = i % o.maxPerRow;
      const inRow = Math.min(o.maxPerRow, keyed.length - rowOfLayer * o.maxPerRow);
      const offset = (width - rowWidth(inRow)) / 2;
      nodes.push({ id: item.id, layer: layerIndex, x: offset + column * stepX, y: (row + rowOfLayer) * stepY });
      position.set(item.id, inRow > 1 ? column / (inRow - 1) : 0.5);
    });
    row += Math.max(1, Math.ceil(keyed.length / o.maxPerRow));
  });
  return { nodes, edges, width, height: Math.max(0, row * stepY - o.gapY), dangling, cyclic: [...cyclic] };
}
