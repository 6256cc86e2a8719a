import { type FormEvent, lazy, Suspense, useMemo, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useLocation } from 'wouter';
import type { PageView, pb } from '@ziggie/contracts';
import { api } from '../api';
import { deniedReason } from '../auth';
import { ago, Card, Denied, ErrorBox, Loading, Status } from '../components/common';
import { useSession } from '../session';

// React Flow is loaded with the first graph shown, not with the page.
const Graph = lazy(() => import('../components/Graph'));

const PRIORITIES = ['P0', 'P1', 'P2'];
const path = (id: string) => `/v1/workspaces/${encodeURIComponent(id)}`;

/** Workspaces with health, dependencies (as a graph) and port ranges; one workspace's health report and port leases; create, edit and delete with `workspace:manage`. */
export function Workspaces({ focus }: { focus?: string }) {
  const session = useSession();
  const [, navigate] = useLocation();
  const q = useQuery({ queryKey: ['workspaces', 'list'], queryFn: ({ signal }) => api<PageView<pb.Workspace>>('/v1/workspaces?limit=500', { signal }) });
  const items = useMemo(
    () =>
      (q.data?.items ?? []).map((w) => ({
        id: w.id,
        dependsOn: w.dependsOn,
        label: w.name || w.id,
        detail: `${w.id} · ${w.priority}`,
        status: w.health || 'unknown',
        title: `${w.id}: ${w.health || 'unknown'}${w.healthReasons.length > 0 ? ` (${w.healthReasons.join('; ')})` : ''}`,
      })),
    [q.data],
  );
  if (q.isPending) return <Loading what="workspaces" />;
  if (q.isError) return <ErrorBox error={q.error} />;
  const byId = new Set(q.data.items.map((w) => w.id));
  const manageDenied = deniedReason(session, 'workspace:manage');
  const focused = focus ? q.data.items.find((w) => w.id === focus) : undefined;
  return (
    <div className="workspaces">
      <h1>Workspaces</h1>
      <Card title="Dependencies" testId="workspace-graph-card">
        <p className="muted graph-legend">An arrow goes from a workspace to the workspaces that depend on it; colour is health. Click a workspace to open it.</p>
        <Suspense fallback={<Loading what="the graph" />}>
          <Graph items={items} selected={focus ?? null} onSelect={(id) => navigate(`/workspaces/${id}`)} testId="workspace-graph" danglingMeans="workspaces this token cannot see" />
        </Suspense>
      </Card>
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
                  <td data-priority>{w.priority}</td>
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
        {focus ? (
          <div>
            <WorkspaceCard id={focus} />
            {focused ? <EditWorkspace key={focused.id} workspace={focused} all={q.data.items} denied={manageDenied} /> : null}
          </div>
        ) : (
          <CreateWorkspace all={q.data.items} denied={manageDenied} />
        )}
      </div>
    </div>
  );
}

/** The fields of a workspace as the form edits them: text, so a half-typed port is not lost. */
interface Draft {
  id: string;
  name: string;
  priority: string;
  owner: string;
  description: string;
  dependsOn: string[];
  portStart: string;
  portEnd: string;
}

function draftOf(w: pb.Workspace): Draft {
  return {
    id: w.id,
    name: w.name,
    priority: w.priority,
    owner: w.owner,
    description: w.description ?? '',
    dependsOn: [...w.dependsOn],
    portStart: w.portRange ? String(w.portRange.start) : '',
    portEnd: w.portRange ? String(w.portRange.end) : '',
  };
}

/** The port range to send: both ends or neither (the gateway checks the numbers). */
function portRangeOf(d: Draft): { start: number; end: number } | undefined {
  if (!d.portStart.trim() && !d.portEnd.trim()) return undefined;
  return { start: Number(d.portStart), end: Number(d.portEnd) };
}

/** The fields that differ from the workspace, as PATCH takes them (`dependsOn` replaces the list). */
function changesOf(w: pb.Workspace, d: Draft): Record<string, unknown> {
  const was = draftOf(w);
  const changes: Record<string, unknown> = {};
  for (const k of ['name', 'priority', 'owner', 'description'] as const) if (d[k] !== was[k]) changes[k] = d[k];
  if ([...d.dependsOn].sort().join() !== [...was.dependsOn].sort().join()) changes.dependsOn = d.dependsOn;
  if (d.portStart !== was.portStart || d.portEnd !== was.portEnd) changes.portRange = portRangeOf(d);
  return changes;
}

function CreateWorkspace({ all, denied }: { all: pb.Workspace[]; denied: string | null }) {
  const client = useQueryClient();
  const [, navigate] = useLocation();
  const empty: Draft = { id: '', name: '', priority: 'P1', owner: '', description: '', dependsOn: [], portStart: '', portEnd: '' };
  const [draft, setDraft] = useState<Draft>(empty);
  const create = useMutation({
    mutationFn: (d: Draft) =>
      api<pb.Workspace>('/v1/workspaces', {
        method: 'POST',
        body: { id: d.id, name: d.name, priority: d.priority, owner: d.owner, description: d.description || undefined, dependsOn: d.dependsOn, portRange: portRangeOf(d) },
      }),
    onSuccess: (w) => {
      void client.invalidateQueries({ queryKey: ['workspaces'] });
      setDraft(empty);
      navigate(`/workspaces/${w.id}`);
    },
  });
  return (
    <Card title="New workspace" testId="workspace-create">
      <WorkspaceForm draft={draft} onChange={setDraft} all={all} denied={denied} creating pending={create.isPending} submitLabel="Create workspace" onSubmit={() => create.mutate(draft)} />
      <ErrorBox error={create.error} />
    </Card>
  );
}

function EditWorkspace({ workspace, all, denied }: { workspace: pb.Workspace; all: pb.Workspace[]; denied: string | null }) {
  const client = useQueryClient();
  const [, navigate] = useLocation();
  const [draft, setDraft] = useState<Draft>(() => draftOf(workspace));
  const [confirmDelete, setConfirmDelete] = useState(false);
  const changes = changesOf(workspace, draft);
  const update = useMutation({
    mutationFn: (body: Record<string, unknown>) => api<pb.Workspace>(path(workspace.id), { method: 'PATCH', body }),
    onSuccess: (w) => {
      setDraft(draftOf(w));
      void client.invalidateQueries({ queryKey: ['workspaces'] });
    },
  });
  const remove = useMutation({
    mutationFn: () => api<void>(path(workspace.id), { method: 'DELETE' }).catch((err: unknown) => {
      // 204 has no body to read as JSON: the request succeeded.
      if (err instanceof SyntaxError) return;
      throw err;
    }),
    onSuccess: () => {
      navigate('/workspaces');
      // The deleted workspace's own queries (health, ports) are dropped, not refetched: they would answer 404.
      const its = (q: { queryKey: readonly unknown[] }) => q.queryKey.includes(workspace.id);
      client.removeQueries({ queryKey: ['workspaces'], predicate: its });
      void client.invalidateQueries({ queryKey: ['workspaces'], predicate: (q) => !its(q) });
    },
  });
  return (
    <Card title={`Edit ${workspace.id}`} testId="workspace-edit">
      <WorkspaceForm
        draft={draft}
        onChange={setDraft}
        all={all}
        denied={denied}
        pending={update.isPending}
        submitLabel="Save changes"
        nothingToSave={Object.keys(changes).length === 0}
        onSubmit={() => update.mutate(changes)}
      />
      <div data-testid="workspace-edit-error">
        <ErrorBox error={update.error} />
      </div>
      <h3>Delete</h3>
      <p className="muted">Refused while another workspace depends on it or it holds a live lease.</p>
      <p>
        {confirmDelete ? (
          <>
            <button className="danger" disabled={Boolean(denied) || remove.isPending} onClick={() => remove.mutate()} data-testid="workspace-delete-confirm">
              Delete {workspace.id} now
            </button>{' '}
            <button type="button" onClick={() => setConfirmDelete(false)}>
              Keep it
            </button>
          </>
        ) : (
          <button className="danger" disabled={Boolean(denied)} title={denied ?? undefined} onClick={() => setConfirmDelete(true)} data-testid="workspace-delete">
            Delete workspace
          </button>
        )}{' '}
        <Denied reason={denied} />
      </p>
      <ErrorBox error={remove.error} />
    </Card>
  );
}

function WorkspaceForm({
  draft,
  onChange,
  all,
  denied,
  creating = false,
  pending,
  submitLabel,
  nothingToSave = false,
  onSubmit,
}: {
  draft: Draft;
  onChange(d: Draft): void;
  all: pb.Workspace[];
  denied: string | null;
  creating?: boolean;
  pending: boolean;
  submitLabel: string;
  nothingToSave?: boolean;
  onSubmit(): void;
}) {
  const set = (changes: Partial<Draft>) => onChange({ ...draft, ...changes });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onSubmit();
  };
  const others = all.filter((w) => w.id !== draft.id).map((w) => w.id);
  // A dependency the list does not hold (a workspace this token cannot see) stays checked and sent.
  const choices = [...others, ...draft.dependsOn.filter((d) => !others.includes(d))];
  const disabled = Boolean(denied);
  return (
    <form className="workspace-form" onSubmit={submit}>
      <fieldset disabled={disabled}>
        <div className="row">
          {creating ? (
            <label className="field">
              <span>Id</span>
              <input name="ws-id" value={draft.id} onChange={(e) => set({ id: e.target.value })} required placeholder="lowercase-id" />
            </label>
          ) : null}
          <label className="field">
            <span>Name</span>
            <input name="ws-name" value={draft.name} onChange={(e) => set({ name: e.target.value })} required />
          </label>
          <label className="field">
            <span>Priority</span>
            <select name="ws-priority" value={draft.priority} onChange={(e) => set({ priority: e.target.value })}>
              {PRIORITIES.map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
          </label>
          <label className="field">
            <span>Owner</span>
            <input name="ws-owner" value={draft.owner} onChange={(e) => set({ owner: e.target.value })} required />
          </label>
        </div>
        <label className="field">
          <span>Description</span>
          <input name="ws-description" value={draft.description} onChange={(e) => set({ description: e.target.value })} />
        </label>
        <div className="row">
          <label className="field">
            <span>First port</span>
            <input name="ws-port-start" inputMode="numeric" value={draft.portStart} onChange={(e) => set({ portStart: e.target.value })} placeholder={creating ? 'assigned' : ''} />
          </label>
          <label className="field">
            <span>Last port</span>
            <input name="ws-port-end" inputMode="numeric" value={draft.portEnd} onChange={(e) => set({ portEnd: e.target.value })} placeholder={creating ? 'assigned' : ''} />
          </label>
        </div>
        <div className="field">
          <span>Depends on</span>
          <div className="checks" data-testid="ws-depends-on">
            {choices.length === 0 ? <span className="muted">no other workspace</span> : null}
            {choices.map((id) => (
              <label key={id}>
                <input
                  type="checkbox"
                  name="ws-depends-on"
                  value={id}
                  checked={draft.dependsOn.includes(id)}
                  onChange={(e) => set({ dependsOn: e.target.checked ? [...draft.dependsOn, id] : draft.dependsOn.filter((d) => d !== id) })}
                />{' '}
                {id}
              </label>
            ))}
          </div>
        </div>
      </fieldset>
      <p>
        <button type="submit" disabled={disabled || pending || nothingToSave} title={denied ?? undefined}>
          {submitLabel}
        </button>{' '}
        <Denied reason={denied} />
      </p>
    </form>
  );
}

function WorkspaceCard({ id }: { id: string }) {
  const health = useQuery({ queryKey: ['workspaces', 'health', id], queryFn: ({ signal }) => api<pb.WorkspaceHealth>(`${path(id)}/health`, { signal }) });
  const ports = useQuery({
    queryKey: ['workspaces', 'ports', id],
    queryFn: ({ signal }) => api<{ range: pb.PortRange | null; items: pb.PortLease[] }>(`${path(id)}/ports`, { signal }),
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
