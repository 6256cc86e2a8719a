import { useEffect, useMemo, useRef, useState } from 'react';
import { useQueries, useQuery } from '@tanstack/react-query';
import { useVirtualizer } from '@tanstack/react-virtual';
import { Link } from 'wouter';
import type { PageView, pb } from '@ziggie/contracts';
import { api, query } from '../api';
import { Card, ErrorBox, Loading, Status, TextFilter } from '../components/common';
import { allPages, flattenTree, type TreeRow } from '../tree';
import { useUrlFilters } from '../use-url-filters';
import { Meter } from './Overview';

const ROW_PX = 30;
/** The API's largest page; a branch with more children is read page after page. */
const CHILDREN_PAGE = 500;
const FILTERS = ['capability', 'workspace', 'level', 'status'] as const;

export function Agents({ focus }: { focus?: string }) {
  const { filters, set } = useUrlFilters(FILTERS);
  const searching = FILTERS.some((f) => filters[f]);
  const [expanded, setExpanded] = useState<Set<string>>(() => new Set());

  // The chain of command of an agent opened by its address: every ancestor expanded.
  const path = useQuery({
    queryKey: ['agents', 'path', focus],
    queryFn: ({ signal }) => api<PageView<pb.Agent>>(`/v1/agents/${encodeURIComponent(focus!)}/path`, { signal }),
    enabled: Boolean(focus),
  });
  useEffect(() => {
    if (path.data) setExpanded((old) => new Set([...old, ...path.data.items.filter((a) => a.id !== focus).map((a) => a.id)]));
  }, [path.data, focus]);

  const roots = useQuery({
    queryKey: ['agents', 'roots'],
    queryFn: ({ signal }) => api<PageView<pb.Agent>>('/v1/agents?level=0&limit=50', { signal }),
    enabled: !searching,
  });
  const found = useQuery({
    queryKey: ['agents', 'search', filters],
    queryFn: ({ signal }) => api<PageView<pb.Agent>>(`/v1/agents${query({ ...filters, limit: 500 })}`, { signal }),
    enabled: searching,
  });
  const open = [...expanded];
  const children = useQueries({
    queries: open.map((id) => ({
      queryKey: ['agents', 'children', id],
      queryFn: ({ signal }: { signal: AbortSignal }) =>
        allPages((cursor) => api<PageView<pb.Agent>>(`/v1/agents/${encodeURIComponent(id)}/children${query({ limit: CHILDREN_PAGE, cursor })}`, { signal })),
      staleTime: 60_000,
    })),
  });
  const byParent = new Map(open.map((id, i) => [id, children[i]?.data]));
  const rows: TreeRow[] = searching
    ? (found.data?.items ?? []).map((agent) => ({ agent, depth: 0, expanded: false, loading: false, leaf: true }))
    : flattenTree(roots.data?.items ?? [], (id) => byParent.get(id), expanded);
  const toggle = (id: string) =>
    setExpanded((old) => {
      const next = new Set(old);
      if (!next.delete(id)) next.add(id);
      return next;
    });
  const error = roots.error ?? found.error ?? path.error ?? children.find((c) => c.error)?.error;
  const selectedId = focus ?? null;
  return (
    <div className="agents">
      <h1>Agents</h1>
      <div className="filters">
        {FILTERS.map((f) => (
          <TextFilter key={f} label={f} name={f} value={filters[f]} onChange={(v) => set({ [f]: v })} />
        ))}
      </div>
      <ErrorBox error={error} />
      <div className="columns">
        <Card title={searching ? `Agents matching (${found.data?.total ?? '…'})` : 'Hierarchy L0 → L3'} testId="agent-tree">
          {(searching ? found.isPending : roots.isPending) ? <Loading what="agents" /> : <VirtualTree rows={rows} selected={selectedId} onToggle={toggle} />}
        </Card>
        {selectedId ? <AgentCard id={selectedId} /> : null}
      </div>
    </div>
  );
}

/** Only the rows in view are in the DOM, so an open tree of thousands of agents scrolls smoothly. */
function VirtualTree({ rows, selected, onToggle }: { rows: TreeRow[]; selected: string | null; onToggle(id: string): void }) {
  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({ count: rows.length, getScrollElement: () => scroller.current, estimateSize: () => ROW_PX, overscan: 10 });
  const first = useMemo(() => rows.findIndex((r) => r.agent.id === selected), [rows, selected]);
  useEffect(() => {
    if (first >= 0) virtual.scrollToIndex(first, { align: 'center' });
  }, [first, virtual]);
  return (
    <div className="tree" ref={scroller} data-rows={rows.length}>
      <div className="tree-inner" style={{ height: `${virtual.getTotalSize()}px` }}>
        {virtual.getVirtualItems().map((v) => {
          const r = rows[v.index]!;
          const a = r.agent;
          return (
            <div key={a.id} className={`tree-row${a.id === selected ? ' selected' : ''}`} style={{ transform: `translateY(${v.start}px)`, paddingLeft: `${r.depth * 18 + 4}px` }} data-agent={a.id} data-level={a.level}>
              {r.leaf ? (
                <span className="twisty" />
              ) : (
                <button className="twisty" onClick={() => onToggle(a.id)} aria-expanded={r.expanded} aria-label={`${r.expanded ? 'Collapse' : 'Expand'} ${a.id}`} data-toggle={a.id}>
                  {r.loading ? '…' : r.expanded ? '▾' : '▸'}
                </button>
              )}
              <span className="lvl">L{a.level}</span>
              <Link href={`/agents/${a.id}`}>{a.id}</Link>
              <span className="muted role">{a.role}</span>
              <Status value={a.status || 'unknown'} />
              <Meter fraction={Math.min(1, a.load)} />
              <span className="muted caps">{a.capabilities.join(', ')}</span>
            </div>
          );
        })}
      </div>
    </div>
  );
}

function AgentCard({ id }: { id: string }) {
  const q = useQuery({ queryKey: ['agents', 'one', id], queryFn: ({ signal }) => api<pb.Agent>(`/v1/agents/${encodeURIComponent(id)}`, { signal }) });
  if (q.isPending) return <Loading what={id} />;
  if (q.isError) return <ErrorBox error={q.error} />;
  const a = q.data;
  return (
    <Card title={`Agent ${a.id}`} testId="agent-card">
      <dl className="facts">
        <dt>Name</dt>
        <dd>{a.name}</dd>
        <dt>Level</dt>
        <dd>L{a.level}</dd>
        <dt>Role</dt>
        <dd>{a.role}</dd>
        <dt>Workspace</dt>
        <dd>{a.workspace}</dd>
        <dt>Parent</dt>
        <dd>{a.parentId ? <Link href={`/agents/${a.parentId}`}>{a.parentId}</Link> : '—'}</dd>
        <dt>Status</dt>
        <dd>
          <Status value={a.status || 'unknown'} /> load {a.load.toFixed(2)}
        </dd>
        <dt>Capabilities</dt>
        <dd>{a.capabilities.join(', ') || '—'}</dd>
        <dt>Last seen</dt>
        <dd>{a.lastSeenAt || '—'}</dd>
      </dl>
    </Card>
  );
}
