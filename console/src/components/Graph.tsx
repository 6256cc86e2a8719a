import { memo, useMemo, useRef } from 'react';
import { Background, Controls, Handle, MarkerType, Position, ReactFlow, type Edge, type Node, type NodeProps } from '@xyflow/react';
// Bundled by Vite as a file: the page's CSP (style-src 'self') refuses a <style> element.
import '@xyflow/react/dist/style.css';
import { DEFAULT_GRAPH_OPTIONS, layoutGraph, type GraphItem } from '../graph';

/** One node as a screen describes it: what it depends on, what it is called and its status (the node's colour). */
export interface GraphNodeInput extends GraphItem {
  label: string;
  detail?: string;
  status: string;
  /** The tooltip: what the node does not have room for. */
  title?: string;
}

export interface GraphProps {
  items: readonly GraphNodeInput[];
  selected?: string | null;
  onSelect?(id: string): void;
  testId?: string;
  /** Says what a dependency outside the graph is, e.g. "a workspace this token cannot see". */
  danglingMeans?: string;
}

type ItemData = { id: string; label: string; detail?: string; status: string; title?: string; selected: boolean };
type ItemNode = Node<ItemData, 'item'>;

/** Above this many nodes the first view shows the first FIRST_VIEW nodes, not all of them (zoom out or fit to see the whole). */
const FIT_ALL_UP_TO = 120;
const FIRST_VIEW = 12;
// The colour of .react-flow__edge-path in styles.css: a marker is an SVG attribute, not styled by CSS.
const ARROW = { type: MarkerType.ArrowClosed, color: '#7b8894' };

function sameData(a: ItemData, b: ItemData): boolean {
  return a.label === b.label && a.detail === b.detail && a.status === b.status && a.title === b.title && a.selected === b.selected;
}

const ItemNodeView = memo(function ItemNodeView({ data }: NodeProps<ItemNode>) {
  return (
    <div className={`graph-node status-${data.status.replace(/[^a-z-_]/gi, '')}${data.selected ? ' graph-node-selected' : ''}`} title={data.title} data-node={data.id} data-status={data.status}>
      <Handle type="target" position={Position.Top} isConnectable={false} />
      <div className="graph-node-label">{data.label}</div>
      <div className="graph-node-detail">
        {data.status.replace(/_/g, ' ')}
        {data.detail ? ` · ${data.detail}` : ''}
      </div>
      <Handle type="source" position={Position.Bottom} isConnectable={false} />
    </div>
  );
});

// A stable object: React Flow warns and remounts every node when nodeTypes changes identity.
const nodeTypes = { item: ItemNodeView };

/**
 * A dependency graph, laid out in layers (graph.ts) and drawn with React Flow: pan, zoom, click a
 * node to select it. Loaded on demand (React.lazy) so React Flow is not part of the first load.
 */
export default function Graph({ items, selected = null, onSelect, testId, danglingMeans }: GraphProps) {
  // The layout depends on ids and edges only: a status change recolours without moving anything.
  const shape = items.map((i) => `${i.id}:${i.layer ?? ''}:${i.dependsOn.join(',')}`).join('|');
  // Keyed by `shape`, exactly what the layout reads of `items`, not by the array refetched on every event.
  const layout = useMemo(() => layoutGraph(items), [shape]);
  const byId = useMemo(() => new Map(items.map((i) => [i.id, i])), [items]);
  // Node and edge objects kept from one render to the next while they do not change: React Flow
  // then skips them, so selecting a step or a status event redraws a few nodes, not 1,625.
  const nodeCache = useRef(new Map<string, ItemNode>());
  const edgeCache = useRef(new Map<string, Edge>());
  const nodes = useMemo<ItemNode[]>(() => {
    const next = new Map<string, ItemNode>();
    const list = layout.nodes.map((n) => {
      const item = byId.get(n.id)!;
      const data: ItemData = { id: n.id, label: item.label, detail: item.detail, status: item.status, title: item.title, selected: n.id === selected };
      const old = nodeCache.current.get(n.id);
      const node: ItemNode =
        old && old.position.x === n.x && old.position.y === n.y && sameData(old.data, data)
          ? old
          : {
              id: n.id,
              type: 'item',
              position: { x: n.x, y: n.y },
              // Known sizes: React Flow can fit the view and skip nodes out of view before measuring them.
              width: DEFAULT_GRAPH_OPTIONS.nodeWidth,
              height: DEFAULT_GRAPH_OPTIONS.nodeHeight,
              data,
            };
      next.set(n.id, node);
      return node;
    });
    nodeCache.current = next;
    return list;
  }, [layout, byId, selected]);
  const edges = useMemo<Edge[]>(() => {
    const next = new Map<string, Edge>();
    const list = layout.edges.map((e) => {
      const className = selected && (e.source === selected || e.target === selected) ? 'graph-edge-selected' : undefined;
      const old = edgeCache.current.get(e.id);
      const edge = old && old.className === className && old.source === e.source && old.target === e.target ? old : { id: e.id, source: e.source, target: e.target, markerEnd: ARROW, className };
      next.set(e.id, edge);
      return edge;
    });
    edgeCache.current = next;
    return list;
  }, [layout, selected]);
  const fitViewOptions = useMemo(
    () => ({ padding: 0.1, maxZoom: 1, nodes: layout.nodes.length > FIT_ALL_UP_TO ? layout.nodes.slice(0, FIRST_VIEW).map((n) => ({ id: n.id })) : undefined }),
    [layout],
  );
  return (
    <div className="graph-box" data-testid={testId} data-nodes={layout.nodes.length} data-edges={layout.edges.length}>
      <div className="graph">
        <ReactFlow
          nodes={nodes}
          edges={edges}
          nodeTypes={nodeTypes}
          colorMode="dark"
          fitView
          fitViewOptions={fitViewOptions}
          minZoom={0.02}
          maxZoom={2}
          nodesDraggable={false}
          nodesConnectable={false}
          elementsSelectable={false}
          onlyRenderVisibleElements
          onNodeClick={onSelect ? (_, node) => onSelect(node.id) : undefined}
        >
          <Background />
          <Controls showInteractive={false} />
        </ReactFlow>
      </div>
      {layout.dangling.length > 0 ? (
        <p className="muted graph-note" data-testid="graph-dangling">
          Not drawn{danglingMeans ? ` (${danglingMeans})` : ''}: {layout.dangling.join(', ')}
        </p>
      ) : null}
      {layout.cyclic.length > 0 ? <p className="muted graph-note">On a cycle, drawn last: {layout.cyclic.join(', ')}</p> : null}
      {layout.nodes.length > FIT_ALL_UP_TO ? <p className="muted graph-note">{layout.nodes.length} nodes: the view starts at the top; zoom out or use the fit button to see all.</p> : null}
    </div>
  );
}
