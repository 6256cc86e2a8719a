import { type ReactNode, useEffect, useState } from 'react';
import { ApiError } from '../api';

/** Every failure the same way: the problem's stable code, its message, and the request id to quote. */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const p = error instanceof ApiError ? error.problem : { code: 'CONSOLE_ERROR', title: 'Unexpected error', detail: String(error), status: 0 };
  return (
    <div className="error" role="alert" data-code={p.code}>
      <strong className="error-code">{p.code}</strong> <span className="error-message">{p.detail ?? p.title}</span>
      {p.status ? <span className="muted"> · HTTP {p.status}</span> : null}
      {'correlationId' in p && p.correlationId ? <span className="muted"> · request {String(p.correlationId)}</span> : null}
      {where(p as Record<string, unknown>) ? <div className="error-where">{where(p as Record<string, unknown>)}</div> : null}
      {'errors' in p && Array.isArray(p.errors) && p.errors.length > 0 ? (
        <ul>
          {p.errors.map((e, i) => (
            <li key={i}>
              <code>{e.path || '(body)'}</code>: {e.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

export function Status({ value }: { value: string }) {
  return <span className={`status status-${value.replace(/[^a-z-_]/gi, '')}`}>{value.replace(/_/g, ' ')}</span>;
}

export function Card({ title, children, testId }: { title: string; children: ReactNode; testId?: string }) {
  return (
    <section className="card" data-testid={testId}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

export function Loading({ what }: { what: string }) {
  return <p className="muted">Loading {what}…</p>;
}

export function ago(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return '—';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

/** Why a control is disabled, shown beside it and as its tooltip. */
export function Denied({ reason }: { reason: string | null }) {
  return reason ? <span className="muted denied" title={reason}>({reason})</span> : null;
}

/** Where in the request a problem lies, from the extension members the API adds (plan errors). */
function where(p: Record<string, unknown>): string {
  const parts: string[] = [];
  if (typeof p.stepId === 'string') parts.push(`step ${p.stepId}`);
  if (typeof p.path === 'string') parts.push(`at ${p.path}`);
  if (Array.isArray(p.cycle)) parts.push(`cycle ${p.cycle.join(' → ')}`);
  if (Array.isArray(p.unknown)) parts.push(`unknown: ${p.unknown.join(', ')}`);
  return parts.join(' · ');
}

/**
 * A text filter applied on Enter or when the field loses focus, not on every key (each change is
 * a new address and a new request); it follows the address when that changes (back, a link).
 */
export function TextFilter({ label, name = label.toLowerCase(), value, onChange }: { label: string; name?: string; value: string; onChange(v: string): void }) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        onChange(draft.trim());
      }}
    >
      <label>
        {label} <input name={name} value={draft} onChange={(e) => setDraft(e.target.value)} onBlur={() => draft.trim() !== value && onChange(draft.trim())} />
      </label>
    </form>
  );
}

/** A cursor-paged list's pager: what the page holds (children), back to the first page, on to the next. */
export function Pager({ cursor, next, onPage, children }: { cursor: string; next?: string; onPage(c: string): void; children?: ReactNode }) {
  return (
    <div className="pager">
      <span>{children}</span>
      <button disabled={!cursor} onClick={() => onPage('')}>
        First page
      </button>
      <button disabled={!next} onClick={() => onPage(next ?? '')}>
        Next page
      </button>
    </div>
  );
}
