import type { PageView, PayloadOf, pb, ProblemView, StepStatus, Subject, TaskStatus, TaskView } from '@ziggie/contracts';

/** One event of `GET /v1/tasks/{id}/events`; the shape is owned by libs/contracts. */
export type TaskEvent = PayloadOf<Subject.TaskEvent>;
export type TaskEventType = TaskEvent['type'];
export type { StepStatus, TaskStatus };

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly correlationId?: string,
  ) {
    super(`${code}: ${detail}${correlationId ? ` (correlation id ${correlationId})` : ''}`);
    this.name = 'ApiError';
  }
}

/** The gateway could not be reached at all (refused, reset, DNS). */
export class UnreachableError extends Error {
  constructor(
    readonly url: string,
    cause: unknown,
  ) {
    super(`cannot reach ${url}: ${describeCause(cause)}. Is the stack running? Start it with \`npm start\`.`);
    this.name = 'UnreachableError';
  }
}

function describeCause(err: unknown): string {
  // undici hides the socket error (ECONNREFUSED, ...) in `cause`.
  if (err instanceof Error && err.cause instanceof Error) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

export interface ApiClientOptions {
  baseUrl: string;
  token: string;
}

/** A minimal client for the few REST calls the CLI makes. */
export class ApiClient {
  private readonly baseUrl: string;

  constructor(private readonly opts: ApiClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
  }

  url(path: string): string {
    return `${this.baseUrl}${path}`;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.opts.token}`, accept: 'application/json', ...extra };
  }

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const url = this.url(path);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new UnreachableError(url, err);
    }
    const text = await res.text();
    if (!res.ok) throw problemToError(res.status, text);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  submitTask(body: unknown, signal?: AbortSignal): Promise<TaskView> {
    return this.request<TaskView>('POST', '/v1/tasks', body, signal);
  }

  getTask(id: string, signal?: AbortSignal): Promise<TaskView> {
    return this.request<TaskView>('GET', `/v1/tasks/${encodeURIComponent(id)}`, undefined, signal);
  }

  /** One version of a blueprint, or its latest when no version is given. */
  getBlueprint(name: string, version?: string, signal?: AbortSignal): Promise<pb.Blueprint> {
    const path = `/v1/blueprints/${encodeURIComponent(name)}` + (version ? `/versions/${encodeURIComponent(version)}` : '');
    return this.request<pb.Blueprint>('GET', path, undefined, signal);
  }

  listBlueprints(signal?: AbortSignal): Promise<PageView<pb.Blueprint>> {
    return this.request<PageView<pb.Blueprint>>('GET', '/v1/blueprints?limit=500', undefined, signal);
  }
}

export function problemToError(status: number, body: string): ApiError {
  // Any JSON at all may come back (a proxy's error, say), so every field may be missing.
  let problem: Partial<ProblemView> = {};
  try {
    const parsed: unknown = JSON.parse(body);
    if (parsed && typeof parsed === 'object') problem = parsed as Partial<ProblemView>;
  } catch {
    // Not problem+json (a proxy error page, say): fall back to the raw text below.
  }
  const code = problem.code ?? `HTTP_${status}`;
  const detail = problem.detail ?? problem.title ?? (body.trim().slice(0, 300) || `HTTP ${status}`);
  return new ApiError(status, code, detail, problem.correlationId);
}
