import { useQuery } from '@tanstack/react-query';
import { Link } from 'wouter';
import type { PageView, pb } from '@ziggie/contracts';
import { api } from '../api';
import { ago, Card, ErrorBox, Loading, Status } from '../components/common';

/** Workspaces with health, dependencies and port ranges; one workspace's health report and port leases. */
export function Workspaces({ focus }: { focus?: string }) {
  const q = useQuery({ queryKey: ['workspaces', 'list'], queryFn: ({ signal }) => api<PageView<pb.Workspace>>('/v1/workspaces?limit=500', { signal }) });
  if (q.isPending) return <Loading what="workspaces" />;
  if (q.isError) return <ErrorBox error={q.error} />;
  const byId = new Set(q.data.items.map((w) => w.id));
  return (
    <div className="workspaces">
      <h1>Workspaces</h1>
      <div className="columns">
        <Card title={`Workspaces (${q.data.total})`} testId="workspace-list">
          <table className="list">
            <thead>
              <tr>
                <th>Workspace</th>
                <th>Priority</th>
                <th>Health</th>
                <th>Depends on</th>
                <th>Ports</th>
              </tr>
            </thead>
            <tbody>
              {q.data.items.map((w) => (
                <tr key={w.id} data-workspace={w.id} className={w.id === focus ? 'selected' : ''}>
                  <td>
                    <Link href={`/workspaces/${w.id}`}>{w.name || w.id}</Link>
                    <div className="muted">{w.id}</div>
                  </td>
                  <td>{w.priority}</td>
                  <td>
                    <Status value={w.health || 'unknown'} />
                    {w.healthReasons.length > 0 ? <div className="muted">{w.healthReasons.join('; ')}</div> : null}
                  </td>
                  <td>
                    {w.dependsOn.length === 0
                      ? '—'
                      : w.dependsOn.map((d, i) => (
                          <span key={d}>
                            {i > 0 ? ', ' : ''}
                            {byId.has(d) ? <Link href={`/workspaces/${d}`}>{d}</Link> : d}
                          </span>
                        ))}
                  </td>
                  <td className="muted">{w.portRange ? `${w.portRange.start}–${w.portRange.end}` : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Card>
        {focus ? <WorkspaceCard id={focus} /> : null}
      </div>
    </div>
  );
}

function WorkspaceCard({ id }: { id: string }) {
  const health = useQuery({ queryKey: ['workspaces', 'health', id], queryFn: ({ signal }) => api<pb.WorkspaceHealth>(`/v1/workspaces/${encodeURIComponent(id)}/health`, { signal }) });
  const ports = useQuery({
    queryKey: ['workspaces', 'ports', id],
    queryFn: ({ signal }) => api<{ range: pb.PortRange | null; items: pb.PortLease[] }>(`/v1/workspaces/${encodeURIComponent(id)}/ports`, { signal }),
  });
  return (
    <Card title={`Workspace ${id}`} testId="workspace-card">
      <ErrorBox error={health.error ?? ports.error} />
      {health.data ? (
        <>
          <p>
            <Status value={health.data.status} /> <span className="muted">computed {ago(health.data.computedAt)}</span>
          </p>
          <ul>
            {health.data.reasons.map((r) => (
              <li key={r}>{r}</li>
            ))}
          </ul>
          <p className="muted">
            Tasks in the health window: {health.data.tasksRunning} running · {health.data.tasksSucceeded} succeeded · {health.data.tasksFailed} failed ·{' '}
            <Link href={`/tasks?workspace=${encodeURIComponent(id)}`}>tasks</Link>
          </p>
        </>
      ) : null}
      <h3>Port leases</h3>
      {ports.data ? (
        ports.data.items.length === 0 ? (
          <p className="muted">None{ports.data.range ? ` (range ${ports.data.range.start}–${ports.data.range.end})` : ''}.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th className="num">Port</th>
                <th>Service</th>
                <th>Holder</th>
                <th>Expires</th>
              </tr>
            </thead>
            <tbody>
              {ports.data.items.map((l) => (
                <tr key={l.port}>
                  <td className="num">{l.port}</td>
                  <td>{l.service}</td>
                  <td>{l.holder}</td>
                  <td className="muted">{l.expiresAt}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      ) : null}
    </Card>
  );
}
