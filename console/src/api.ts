import type { ProblemView } from '@ziggie/contracts';

/** An error as the API answered it (problem+json with its `code`), or as the browser met it. */
export class ApiError extends Error {
  constructor(readonly problem: ProblemView) {
    super(problem.detail ?? problem.title);
  }

  get code(): string {
    return this.problem.code;
  }
}

let bearer: string | null = null;

export function setBearer(token: string | null): void {
  bearer = token;
}

export function authHeaders(): Record<string, string> {
  return bearer ? { authorization: `Bearer ${bearer}` } : {};
}

/** Turns any answer that is not 2xx into an ApiError, keeping the server's problem as it came. */
export async function problemOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as Partial<ProblemView>;
    if (body && typeof body.code === 'string') return new ApiError({ title: res.statusText, status: res.status, ...body } as ProblemView);
  } catch {
    // not JSON: described below
  }
  return new ApiError({ title: res.statusText || 'Request failed', status: res.status, code: `HTTP_${res.status}`, detail: text.slice(0, 300) || undefined });
}

export async function api<T>(path: string, init: { method?: string; body?: unknown; signal?: AbortSignal } = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: init.method ?? 'GET',
      headers: { accept: 'application/json', ...(init.body === undefined ? {} : { 'content-type': 'application/json' }), ...authHeaders() },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: init.signal,
    });
  } catch (err) {
    if (init.signal?.aborted) throw err;
    throw new ApiError({ title: 'The gateway could not be reached', status: 0, code: 'NETWORK_ERROR', detail: String(err) });
  }
  if (!res.ok) throw await problemOf(res);
  return (await res.json()) as T;
}

/** `?a=1&b=2` of the defined values, in a stable order (query keys and URLs compare equal). */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params).sort(([a], [b]) => a.localeCompare(b))) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
