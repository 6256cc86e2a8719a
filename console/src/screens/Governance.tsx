import { useState, type ReactNode } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useLocation } from 'wouter';
import type { PageView, pb } from '@ziggie/contracts';
import { api, ApiError, authHeaders, problemOf, query } from '../api';
import { deniedReason } from '../auth';
import { ago, Card, Denied, ErrorBox, Loading, Pager, Status, TextFilter } from '../components/common';
import { bodyOf, draftOf, EFFECTS, emptyDraft, errorsByField, MATCH_FIELDS, type PolicyDraft, type PolicyView } from '../policy-form';
import { useSession } from '../session';
import { useUrlFilters } from '../use-url-filters';

const PAGE_SIZE = 25;
const DECISION_FILTERS = ['taskId', 'effect'] as const;

/** Governance policies (first match by priority decides: allow, deny or require approval) and the decisions they made. */
export function Policies({ focus }: { focus?: string }) {
  const { cursor, page } = useUrlFilters([], 'cursor');
  const q = useQuery({
    queryKey: ['policies', 'list', cursor],
    queryFn: ({ signal }) => api<PageView<PolicyView>>(`/v1/policies${query({ cursor, limit: PAGE_SIZE })}`, { signal }),
    placeholderData: (prev) => prev,
  });
  return (
    <div className="policies">
      <h1>Policies</h1>
      <div className="columns">
        <Card title={`Policies (${q.data?.total ?? '…'})`} testId="policy-list">
          <p className="muted">Tried by ascending priority; the first enabled policy that matches a step decides. No match: allowed.</p>
          <ErrorBox error={q.error} />
          {q.isPending ? <Loading what="policies" /> : null}
          {q.data ? (
            <>
              <table className="list">
                <thead>
                  <tr>
                    <th className="num">Priority</th>
                    <th>Policy</th>
                    <th>Effect</th>
                    <th>Matches</th>
                    <th>Budget</th>
                  </tr>
                </thead>
                <tbody>
                  {q.data.items.map((p) => (
                    <tr key={p.id} data-policy={p.id} className={p.id === focus ? 'selected' : ''}>
                      <td className="num">{p.priority}</td>
                      <td>
                        <Link href={`/policies/${p.id}`}>{p.name}</Link>
                        {p.enabled ? null : <span className="muted"> (disabled)</span>}
                      </td>
                      <td>
                        <Status value={p.effect} />
                      </td>
                      <td className="muted">{matchText(p.match)}</td>
                      <td className="muted">{budgetText(p.budget)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {q.data.items.length === 0 ? <p className="muted">No policies: every step is allowed.</p> : null}
              <Pager cursor={cursor} next={q.data.nextCursor} onPage={page} />
            </>
          ) : null}
        </Card>
        {focus ? <PolicyCard key={focus} id={focus} /> : <NewPolicy />}
      </div>
      <Decisions />
    </div>
  );
}

function matchText(m: pb.PolicyMatch | undefined): string {
  const parts = MATCH_FIELDS.filter((f) => (m?.[f] ?? []).length > 0).map((f) => `${f} ${m![f].join('|')}`);
  return parts.length ? parts.join(' · ') : 'every step';
}

function budgetText(b: PolicyView['budget']): string {
  if (!b) return '—';
  return [b.maxSteps !== undefined ? `after ${b.maxSteps} steps` : '', b.maxGpuSteps !== undefined ? `after ${b.maxGpuSteps} GPU steps` : ''].filter(Boolean).join(', ');
}

function NewPolicy() {
  const session = useSession();
  const denied = deniedReason(session, 'config:change');
  const client = useQueryClient();
  const [, navigate] = useLocation();
  const create = useMutation({
    mutationFn: (body: Record<string, unknown>) => api<PolicyView>('/v1/policies', { method: 'POST', body }),
    onSuccess: (p) => {
      void client.invalidateQueries({ queryKey: ['policies'] });
      navigate(`/policies/${p.id}`);
    },
  });
  return (
    <Card title="New policy (admin)" testId="new-policy">
      <PolicyForm initial={emptyDraft()} submitLabel="Create policy" denied={denied} busy={create.isPending} error={create.error} onSubmit={(b) => create.mutate(b)} />
    </Card>
  );
}

function PolicyCard({ id }: { id: string }) {
  const session = useSession();
  const denied = deniedReason(session, 'config:change');
  const client = useQueryClient();
  const [, navigate] = useLocation();
  const q = useQuery({ queryKey: ['policies', 'one', id], queryFn: ({ signal }) => api<PolicyView>(`/v1/policies/${encodeURIComponent(id)}`, { signal }) });
  const update = useMutation({
    mutationFn: (body: Record<string, unknown>) => api<PolicyView>(`/v1/policies/${encodeURIComponent(id)}`, { method: 'PUT', body }),
    onSuccess: (p) => {
      client.setQueryData(['policies', 'one', id], p);
      void client.invalidateQueries({ queryKey: ['policies', 'list'] });
    },
  });
  const remove = useMutation({
    mutationFn: () => deletePolicy(id),
    onSuccess: () => {
      client.removeQueries({ queryKey: ['policies', 'one', id] });
      void client.invalidateQueries({ queryKey: ['policies', 'list'] });
      navigate('/policies');
    },
  });
  const p = q.data;
  return (
    <Card title={p ? `Policy ${p.name}` : `Policy ${id}`} testId="policy-card">
      <p className="crumbs">
        <Link href="/policies">← new policy</Link>
      </p>
      <ErrorBox error={q.error} />
      {q.isPending ? <Loading what="the policy" /> : null}
      {p ? (
        <>
          <dl className="facts">
            <dt>Id</dt>
            <dd>
              <code>{p.id}</code>
            </dd>
            <dt>Effect</dt>
            <dd>
              <Status value={p.effect} /> {p.enabled ? '' : '(disabled)'}
            </dd>
            <dt>Matches</dt>
            <dd>{matchText(p.match)}</dd>
            <dt>Created</dt>
            <dd>
              {p.createdBy || '—'} · {ago(p.createdAt)} · updated {ago(p.updatedAt)}
            </dd>
          </dl>
          <h3>Edit</h3>
          <PolicyForm key={p.updatedAt} initial={draftOf(p)} submitLabel="Save policy" denied={denied} busy={update.isPending} error={update.error} onSubmit={(b) => update.mutate(b)} />
          {update.isSuccess && !update.isPending ? <p className="muted">Saved.</p> : null}
          <h3>Delete</h3>
          <button className="danger" disabled={Boolean(denied) || remove.isPending} title={denied ?? undefined} onClick={() => remove.mutate()}>
            Delete policy
          </button>
          <Denied reason={denied} />
          <ErrorBox error={remove.error} />
        </>
      ) : null}
    </Card>
  );
}

/** DELETE answers 204 with no body, which `api` (it reads JSON) does not take. */
async function deletePolicy(id: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`/v1/policies/${encodeURIComponent(id)}`, { method: 'DELETE', headers: { accept: 'application/json', ...authHeaders() } });
  } catch (err) {
    throw new ApiError({ title: 'The gateway could not be reached', status: 0, code: 'NETWORK_ERROR', detail: String(err) });
  }
  if (!res.ok) throw await problemOf(res);
}

/** The policy as a form; the API's field errors are shown beside the fields they are about. */
function PolicyForm({
  initial,
  submitLabel,
  denied,
  busy,
  error,
  onSubmit,
}: {
  initial: PolicyDraft;
  submitLabel: string;
  denied: string | null;
  busy: boolean;
  error: unknown;
  onSubmit(body: Record<string, unknown>): void;
}) {
  const [d, setD] = useState(initial);
  const errors = errorsByField(error instanceof ApiError ? error.problem : null);
  const off = Boolean(denied);
  const field = (key: string, label: string, input: ReactNode) => (
    <div className="field">
      <label>
        {label} {input}
      </label>
      {(errors[key] ?? []).map((m, i) => (
        <small key={i} className="field-error" data-field={key}>
          {m}
        </small>
      ))}
    </div>
  );
  return (
    <form
      className="schema-form"
      data-testid="policy-form"
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit(bodyOf(d));
      }}
    >
      {field('name', 'Name', <input name="name" value={d.name} onChange={(e) => setD({ ...d, name: e.target.value })} disabled={off} />)}
      <div className="row">
        {field(
          'effect',
          'Effect',
          <select name="effect" value={d.effect} onChange={(e) => setD({ ...d, effect: e.target.value })} disabled={off}>
            {EFFECTS.map((x) => (
              <option key={x}>{x}</option>
            ))}
          </select>,
        )}
        {field('priority', 'Priority (lower first)', <input name="priority" value={d.priority} onChange={(e) => setD({ ...d, priority: e.target.value })} disabled={off} size={8} />)}
        {field('enabled', 'Enabled', <input name="enabled" type="checkbox" checked={d.enabled} onChange={(e) => setD({ ...d, enabled: e.target.checked })} disabled={off} />)}
      </div>
      <p className="muted">Matches a step when every list given contains the step&apos;s value (comma-separated; tools may be globs such as comfyui.*). Empty lists match anything.</p>
      <div className="row">
        {MATCH_FIELDS.map((f) =>
          field(`match.${f}`, f[0]!.toUpperCase() + f.slice(1), <input name={`match-${f}`} value={d.match[f]} onChange={(e) => setD({ ...d, match: { ...d.match, [f]: e.target.value } })} disabled={off} />),
        )}
      </div>
      <div className="row">
        {field('budget.maxSteps', 'Only after steps', <input name="maxSteps" value={d.maxSteps} onChange={(e) => setD({ ...d, maxSteps: e.target.value })} disabled={off} size={8} />)}
        {field('budget.maxGpuSteps', 'Only after GPU steps', <input name="maxGpuSteps" value={d.maxGpuSteps} onChange={(e) => setD({ ...d, maxGpuSteps: e.target.value })} disabled={off} size={8} />)}
      </div>
      {field('description', 'Description', <input name="description" value={d.description} onChange={(e) => setD({ ...d, description: e.target.value })} disabled={off} />)}
      <ErrorBox error={error} />
      <div>
        <button type="submit" disabled={off || busy} title={denied ?? undefined}>
          {submitLabel}
        </button>
        <Denied reason={denied} />
      </div>
    </form>
  );
}

function Decisions() {
  const { filters, cursor, set, page } = useUrlFilters(DECISION_FILTERS, 'decisionCursor');
  const q = useQuery({
    // Under 'tasks': the live stream refreshes the task queries when a task starts or ends, which is when decisions are recorded.
    queryKey: ['tasks', 'decisions', filters, cursor],
    queryFn: ({ signal }) => api<PageView<pb.Decision>>(`/v1/policies/decisions${query({ ...filters, cursor, limit: PAGE_SIZE })}`, { signal }),
    placeholderData: (prev) => prev,
  });
  return (
    <Card title="Decisions" testId="decision-list">
      <div className="filters">
        <label>
          Effect{' '}
          <select name="effect" value={filters.effect} onChange={(e) => set({ effect: e.target.value })}>
            <option value="">any</option>
            {EFFECTS.map((x) => (
              <option key={x}>{x}</option>
            ))}
          </select>
        </label>
        <TextFilter label="Task" name="taskId" value={filters.taskId} onChange={(v) => set({ taskId: v })} />
      </div>
      <ErrorBox error={q.error} />
      {q.isPending ? <Loading what="decisions" /> : null}
      {q.data ? (
        <>
          <table className="list">
            <thead>
              <tr>
                <th>When</th>
                <th>Task · step</th>
                <th>Policy</th>
                <th>Effect</th>
                <th>Why</th>
                <th>Workspace</th>
                <th>Submitted by</th>
              </tr>
            </thead>
            <tbody>
              {q.data.items.map((x) => (
                <tr key={`${x.taskId}.${x.stepId}.${x.at}.${x.effect}`} data-decision-task={x.taskId}>
                  <td className="muted" title={x.at}>
                    {ago(x.at)}
                  </td>
                  <td>
                    <Link href={`/tasks/${x.taskId}`}>{x.taskId}</Link> · {x.stepId}
                  </td>
                  <td>{x.policyId.startsWith('pol_') ? <Link href={`/policies/${x.policyId}`}>{x.policyName}</Link> : x.policyName}</td>
                  <td>
                    <Status value={x.effect} />
                  </td>
                  <td>{x.reason}</td>
                  <td>{x.workspace}</td>
                  <td>{x.subject}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {q.data.items.length === 0 ? <p className="muted">No decisions match.</p> : null}
          <Pager cursor={cursor} next={q.data.nextCursor} onPage={page}>
            <span className="muted" data-testid="decision-total">
              {q.data.total.toLocaleString('en')} {q.data.total === 1 ? 'decision' : 'decisions'}
            </span>
          </Pager>
        </>
      ) : null}
    </Card>
  );
}
