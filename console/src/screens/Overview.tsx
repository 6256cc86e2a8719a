import { useQuery } from '@tanstack/react-query';
import { Link } from 'wouter';
import type { OverviewMcpView, OverviewView, PageView, pb, PoolView } from '@ziggie/contracts';
import { api } from '../api';
import { deniedReason } from '../auth';
import { Card, ErrorBox, Loading, Status } from '../components/common';
import { useSession } from '../session';

/** Agents' live status comes from heartbeats, which are not events: the overview rereads it now and then. */
const AGENT_REFRESH_MS = 30_000;

export function Overview() {
  // ['tasks', ...]: a task starting or ending refreshes it (LiveProvider); so does the agent refresh.
  const q = useQuery({ queryKey: ['tasks', 'overview'], queryFn: ({ signal }) => api<OverviewView>('/v1/overview', { signal }), refetchInterval: AGENT_REFRESH_MS });
  if (q.isPending) return <Loading what="the overview" />;
  if (q.isError) return <ErrorBox error={q.error} />;
  const o = q.data;
  const busy = o.agents.byLevel.reduce((s, l) => s + l.busy, 0);
  const idle = o.agents.byLevel.reduce((s, l) => s + l.idle, 0);
  const health = (h: string) => o.workspaces.filter((w) => w.health === h).length;
  return (
    <div className="overview" data-testid="overview" data-at={o.at}>
      <h1>Overview</h1>
      <div className="tiles">
        <Tile label="Agents" value={o.agents.total} sub={`${busy} busy · ${idle} idle`} testId="tile-agents" />
        <Tile label="Tasks running" value={o.tasks.running} sub={`${o.tasks.queued} queued`} testId="tile-running" href="/tasks?status=running" />
        <Tile label="Tasks completed" value={o.tasks.succeeded} sub={`${o.tasks.failed} failed · ${o.tasks.cancelled} cancelled`} testId="tile-succeeded" href="/tasks?status=succeeded" />
        <Tile
          label="Completed in the last hour"
          value={o.tasksLastHour.succeeded}
          sub={`${o.tasksLastHour.failed} failed · ${o.tasksLastHour.cancelled} cancelled in the last hour`}
          testId="tile-last-hour"
        />
        {o.mcp ? (
          <Tile
            label="MCP calls per minute"
            value={o.mcp.callsPerMinute}
            sub={`p95 ${ms(o.mcp.p95Ms)} · ${o.mcp.errorsPerMinute} errors/min (last 5 min)`}
            testId="tile-mcp"
            href="/mcp"
          />
        ) : null}
        <Tile label="Workspaces" value={o.workspaces.length} sub={`${health('on-track')} on track · ${health('at-risk')} at risk · ${health('blocked')} blocked`} testId="tile-workspaces" />
      </div>
      <div className="columns">
        <Card title="Agents by level" testId="agents-by-level">
          <table>
            <thead>
              <tr>
                <th>Level</th>
                <th className="num">Busy</th>
                <th className="num">Idle</th>
                <th className="num">Offline</th>
                <th>Load</th>
              </tr>
            </thead>
            <tbody>
              {o.agents.byLevel.map((l) => {
                const total = l.busy + l.idle + l.offline;
                return (
                  <tr key={l.level}>
                    <td>
                      <Link href={`/agents?level=${l.level}`}>L{l.level}</Link>
                    </td>
                    <td className="num">{l.busy}</td>
                    <td className="num">{l.idle}</td>
                    <td className="num">{l.offline}</td>
                    <td>
                      <Meter fraction={total ? l.busy / total : 0} />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </Card>
        <Card title="Workspace health" testId="workspace-health">
          <table>
            <thead>
              <tr>
                <th>Workspace</th>
                <th>Priority</th>
                <th>Health</th>
                <th>Reasons</th>
              </tr>
            </thead>
            <tbody>
              {o.workspaces.map((w) => (
                <tr key={w.id}>
                  <td>
                    <Link href={`/workspaces/${encodeURIComponent(w.id)}`}>{w.name || w.id}</Link>
                  </td>
                  <td>{w.priority}</td>
                  <td>
                    <Status value={w.health || 'unknown'} />
                  </td>
                  <td className="muted">{w.healthReasons.join('; ') || '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Card>
        <McpTools mcp={o.mcp} />
        <Pools />
        <Breakers />
      </div>
    </div>
  );
}

/** A latency from the MCP figures: none without calls. */
function ms(v: number | null): string {
  if (v === null) return '—';
  return v >= 1000 ? `${(v / 1000).toLocaleString('en', { maximumFractionDigits: 1 })} s` : `${v.toLocaleString('en', { maximumFractionDigits: 1 })} ms`;
}

/** The most called tools of the last hour with their p95 (estimated from latency buckets, as Grafana does). */
function McpTools({ mcp }: { mcp: OverviewMcpView | null }) {
  const session = useSession();
  const denied = deniedReason(session, 'mcp:call');
  return (
    <Card title="MCP tools, last hour" testId="mcp-top-tools">
      {denied ? <p className="muted">Hidden: {denied}</p> : null}
      {!denied && !mcp ? <p className="muted">No figures: mcp-gateway did not answer.</p> : null}
      {mcp && mcp.topTools.length === 0 ? <p className="muted">No tool calls in the last hour.</p> : null}
      {mcp && mcp.topTools.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th>Tool</th>
              <th className="num">Calls/min</th>
              <th className="num">Calls</th>
              <th className="num">Errors</th>
              <th className="num">p95</th>
            </tr>
          </thead>
          <tbody>
            {mcp.topTools.map((t) => (
              <tr key={t.tool} data-tool={t.tool}>
                <td>{t.tool}</td>
                <td className="num">{t.callsPerMinute}</td>
                <td className="num">{t.calls}</td>
                <td className="num">{t.errors}</td>
                <td className="num" data-testid="tool-p95">
                  {ms(t.p95Ms)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Card>
  );
}

function Tile({ label, value, sub, testId, href }: { label: string; value: number; sub: string; testId: string; href?: string }) {
  const body = (
    <>
      <span className="tile-label">{label}</span>
      <span className="tile-value" data-testid={`${testId}-value`}>
        {value.toLocaleString('en')}
      </span>
      <span className="tile-sub muted">{sub}</span>
    </>
  );
  return (
    <div className="tile" data-testid={testId}>
      {href ? <Link href={href}>{body}</Link> : body}
    </div>
  );
}

export function Meter({ fraction }: { fraction: number }) {
  return (
    <span className="meter" role="meter" aria-valuenow={Math.round(fraction * 100)} aria-valuemin={0} aria-valuemax={100}>
      <span className="meter-fill" style={{ width: `${Math.round(fraction * 100)}%` }} />
    </span>
  );
}

function Pools() {
  const q = useQuery({ queryKey: ['pools'], queryFn: ({ signal }) => api<{ items: PoolView[] }>('/v1/pools', { signal }), refetchInterval: AGENT_REFRESH_MS });
  return (
    <Card title="Pools" testId="pools">
      <ErrorBox error={q.error} />
      {q.isPending ? <Loading what="pools" /> : null}
      <table>
        <thead>
          <tr>
            <th>Pool</th>
            <th>Kind</th>
            <th className="num">In use</th>
            <th className="num">Leases</th>
            <th className="num">Replicas</th>
            <th className="num">Queue</th>
          </tr>
        </thead>
        <tbody>
          {(q.data?.items ?? []).map((p) => (
            <tr key={p.name}>
              <td>{p.name}</td>
              <td>{p.kind ?? '—'}</td>
              <td className="num">
                {p.inUse ?? '—'}/{p.capacity ?? '—'}
              </td>
              <td className="num">{p.leases ?? '—'}</td>
              <td className="num">{p.inference ? `${p.inference.readyReplicas}/${p.inference.replicas}` : '—'}</td>
              <td className="num">{p.inference ? p.inference.queueDepth : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Card>
  );
}

/** Open circuit breakers of the MCP upstreams: a replica that stopped answering is taken out of rotation. */
function Breakers() {
  const session = useSession();
  const denied = deniedReason(session, 'mcp:call');
  const q = useQuery({
    queryKey: ['mcp', 'servers'],
    queryFn: ({ signal }) => api<PageView<pb.Server>>('/v1/mcp/servers', { signal }),
    refetchInterval: AGENT_REFRESH_MS,
    enabled: !denied,
  });
  const servers = q.data?.items ?? [];
  const open = servers.flatMap((s) => s.replicas.filter((r) => r.breaker !== 'closed').map((r) => `${s.name}#${r.id} ${r.breaker}`));
  return (
    <Card title="MCP upstreams" testId="breakers">
      {denied ? <p className="muted">Hidden: {denied}</p> : null}
      <ErrorBox error={q.error} />
      {q.data ? (
        <p>
          <span data-testid="breakers-open">{open.length}</span> breakers open · {servers.filter((s) => s.status === 'ready').length}/{servers.length} servers ready
          {open.length > 0 ? <span className="muted"> ({open.join(', ')})</span> : null}
        </p>
      ) : null}
    </Card>
  );
}
