/**
 * The audit log's time range: the address keeps instants (ISO 8601 with an offset, as
 * GET /v1/audit takes them); the form shows them in the browser's time zone
 * (`<input type="datetime-local">`, which has no zone).
 */
export function instantOfLocal(local: string): string {
  if (!local) return '';
  const ms = Date.parse(local);
  return Number.isNaN(ms) ? '' : new Date(ms).toISOString();
}

const pad = (n: number) => String(n).padStart(2, '0');

/** An instant as the value of a datetime-local input, to the second, in local time. */
export function localOfInstant(iso: string): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The outcomes GET /v1/audit filters by. */
export const AUDIT_OUTCOMES = ['success', 'failure', 'denied', 'pending', 'unknown'] as const;
