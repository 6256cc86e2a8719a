import { useEffect, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import type { AuditEntryView } from '@ziggie/contracts';
import { api, query } from '../api';
import { AUDIT_OUTCOMES, instantOfLocal, localOfInstant } from '../audit-filters';
import { deniedReason } from '../auth';
import { Card, ErrorBox, Loading, Pager, Status, TextFilter } from '../components/common';
import { useSession } from '../session';
import { useUrlFilters } from '../use-url-filters';

const PAGE_SIZE = 50;
const FILTERS = ['actor', 'action', 'workspace', 'outcome', 'from', 'to', 'correlationId'] as const;


/** The audit log: every mutating call and every denial, newest first, filtered in the address. */
export function Audit() {
  const session = useSession();
  const denied = deniedReason(session, 'config:change');
  const { filters, cursor, set, page } = useUrlFilters(FILTERS);
  const q = useQuery({
    queryKey: ['audit', filters, cursor],
    queryFn: ({ signal }) => api<{ items: AuditEntryView[]; nextCursor?: string }>(`/v1/audit${query({ ...filters, cursor, limit: PAGE_SIZE })}`, { signal }),
    placeholderData: (prev) => prev,
    enabled: !denied,
  });
  if (denied) return <p className="muted" data-testid="audit-denied">The audit log {denied}.</p>;
  const actions = [...new Set((q.data?.items ?? []).map((e) => e.action))].sort();
  return (
    <div className="audit">
      <h1>Audit log</h1>
      <Card title="Mutating calls and denials, newest first" testId="audit-list">
        <div className="filters">
          <TextFilter label="Actor" value={filters.actor} onChange={(v) => set({ actor: v })} />
          <TextFilter label="Action" value={filters.action} onChange={(v) => set({ action: v })} />
          <TextFilter label="Workspace" value={filters.workspace} onChange={(v) => set({ workspace: v })} />
          <label>
            Outcome{' '}
            <select name="outcome" value={filters.outcome} onChange={(e) => set({ outcome: e.target.value })}>
              <option value="">any</option>
              {AUDIT_OUTCOMES.map((o) => (
                <option key={o}>{o}</option>
              ))}
            </select>
          </label>
          <TimeFilter label="From" name="from" value={filters.from} onChange={(v) => set({ from: v })} />
          <TimeFilter label="To" name="to" value={filters.to} onChange={(v) => set({ to: v })} />
          <TextFilter label="Request id" name="correlationId" value={filters.correlationId} onChange={(v) => set({ correlationId: v })} />
          <button className="link" onClick={() => set({ from: new Date(Date.now() - 3_600_000).toISOString(), to: '' })}>
            last hour
          </button>
          {FILTERS.some((f) => filters[f]) ? (
            <button className="link" onClick={() => set(Object.fromEntries(FILTERS.map((f) => [f, ''])))}>
              clear filters
            </button>
          ) : null}
        </div>
        {actions.length > 0 && !filters.action ? (
          <p className="muted">
            Actions on this page (a click filters by it):{' '}
            {actions.map((a) => (
              <button key={a} className="link chip" data-action={a} onClick={() => set({ action: a })}>
                {a}
              </button>
            ))}
          </p>
        ) : null}
        <ErrorBox error={q.error} />
        {q.isPending ? <Loading what="the audit log" /> : null}
        {q.data ? (
          <>
            <table className="list">
              <thead>
                <tr>
                  <th>When</th>
                  <th>Actor</th>
                  <th>Action</th>
                  <th>Resource</th>
                  <th>Workspace</th>
                  <th>Outcome</th>
                  <th className="num">ms</th>
                  <th>Request id</th>
                </tr>
              </thead>
              <tbody>
                {q.data.items.map((e) => (
                  <tr key={e.id} data-audit={e.id} data-action={e.action} data-actor={e.actor}>
                    <td className="muted nowrap" title={e.at}>
                      {localOfInstant(e.at).replace('T', ' ')}
                    </td>
                    <td>
                      <button className="link" onClick={() => set({ actor: e.actor })} title="Filter by this actor">
                        {e.actor}
                      </button>
                      {e.roles.length > 0 ? <div className="muted">{e.roles.join(', ')}</div> : null}
                    </td>
                    <td>
                      <button className="link" onClick={() => set({ action: e.action })} title="Filter by this action">
                        {e.action}
                      </button>
                    </td>
                    <td className="resource">{e.resource}</td>
                    <td>{e.workspace ?? '—'}</td>
                    <td>
                      <Status value={e.outcome} /> {e.status ?? ''} {e.errorCode ? <code>{e.errorCode}</code> : null}
                    </td>
                    <td className="num">{e.durationMs ?? '—'}</td>
                    <td>
                      {e.correlationId ? (
                        <button className="link" onClick={() => set({ correlationId: e.correlationId ?? '' })} title="Filter by this request">
                          <code>{e.correlationId.slice(0, 12)}</code>
                        </button>
                      ) : (
                        '—'
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {q.data.items.length === 0 ? <p className="muted">No records match.</p> : null}
            <Pager cursor={cursor} next={q.data.nextCursor} onPage={page}>
              <span className="muted" data-testid="audit-count">
                {q.data.items.length} records on this page
              </span>
            </Pager>
          </>
        ) : null}
      </Card>
    </div>
  );
}

/** A time bound in local time, kept in the address as an instant; applied on Enter or when the field loses focus. */
function TimeFilter({ label, name, value, onChange }: { label: string; name: string; value: string; onChange(v: string): void }) {
  const [draft, setDraft] = useState(localOfInstant(value));
  useEffect(() => setDraft(localOfInstant(value)), [value]);
  // Compared as shown (to the second), so leaving the field untouched changes nothing.
  const apply = () => {
    if (draft !== localOfInstant(value)) onChange(instantOfLocal(draft));
  };
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        apply();
      }}
    >
      <label>
        {label} <input type="datetime-local" step={1} name={name} value={draft} onChange={(e) => setDraft(e.target.value)} onBlur={apply} />
      </label>
    </form>
  );
}
