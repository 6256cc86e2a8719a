import { request as httpRequest } from 'node:http';

/** One answer of the gateway, read in full (bodies are small; event streams here always end). */
export interface Reply {
  method: string;
  url: string;
  status: number;
  /** Lower-case names; a header sent several times is an array (node:http) or comma-joined (fetch). */
  headers: Record<string, string | string[]>;
  contentType: string;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  body: any;
}

export interface RequestOptions {
  method?: string;
  /** Serialised as JSON with `content-type: application/json`. */
  json?: unknown;
  /** Sent as it is (with `content-type: application/json` unless headers say otherwise). */
  rawBody?: string | Buffer;
  /** A bearer token; `null` sends no Authorization header. */
  token?: string | null;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Every request of a spec file goes through one recorder, so the file can check at the end that
 * no answer it ever got leaked a stack trace or a source path.
 */
export class HttpRecorder {
  readonly replies: Reply[] = [];

  constructor(
    private readonly baseUrl: () => string,
    private readonly defaultToken: () => string | undefined = () => undefined,
  ) {}

  async request(path: string, opts: RequestOptions = {}): Promise<Reply> {
    const method = opts.method ?? (opts.json !== undefined || opts.rawBody !== undefined ? 'POST' : 'GET');
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? this.defaultToken() : opts.token;
    if (token !== null && token !== undefined) headers.authorization = `Bearer ${token}`;
    let body: string | Buffer | undefined;
    if (opts.json !== undefined) body = JSON.stringify(opts.json);
    else if (opts.rawBody !== undefined) body = opts.rawBody;
    if (body !== undefined) headers['content-type'] = 'application/json';
    Object.assign(headers, opts.headers ?? {});
    const url = `${this.baseUrl()}${path}`;
    const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) });
    const text = await res.text();
    return this.record({
      method,
      url: path,
      status: res.status,
      headers: Object.fromEntries(res.headers),
      contentType: res.headers.get('content-type') ?? '',
      text,
      body: parseJson(text),
    });
  }

  /**
   * Through node:http, for what fetch cannot send: the same header twice on separate lines
   * (an array value becomes one header line per element).
   */
  rawRequest(path: string, opts: { method?: string; headers?: Record<string, string | string[]>; body?: string; timeoutMs?: number } = {}): Promise<Reply> {
    const url = new URL(`${this.baseUrl()}${path}`);
    const method = opts.method ?? 'GET';
    return new Promise<Reply>((resolve, reject) => {
      const req = httpRequest(
        { host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, method, headers: opts.headers, timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const headers: Record<string, string | string[]> = {};
            for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = v;
            resolve(
              this.record({
                method,
                url: path,
                status: res.statusCode ?? 0,
                headers,
                contentType: String(res.headers['content-type'] ?? ''),
                text,
                body: parseJson(text),
              }),
            );
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`)));
      req.on('error', reject);
      if (opts.body !== undefined) req.write(opts.body);
      req.end();
    });
  }

  private record(reply: Reply): Reply {
    this.replies.push(reply);
    return reply;
  }
}

/** What a response must never show a client: stack frames, dependency paths, source locations, raw error dumps. */
const INTERNALS: ReadonlyArray<{ name: string; pattern: RegExp }> = [
  // V8 frames, raw or JSON-escaped: "\n    at fn (file:1:2)", "    at file:1:2".
  { name: 'stack frame', pattern: /(?:^|\n|\\n)\s+at (?:async |new )?\S+ \(|\s+at \S+:\d+:\d+| {4}at \S/ },
  { name: 'node_modules path', pattern: /node_modules/ },
  { name: 'source line reference', pattern: /\.(?:ts|js|mjs|cjs):\d+/ },
  { name: 'error dump', pattern: /\b(?:[A-Z][A-Za-z]*)?Error: / },
];

/** The first internal detail the text gives away, with some context, or undefined. */
export function leakedInternals(text: string): string | undefined {
  for (const { name, pattern } of INTERNALS) {
    const m = pattern.exec(text);
    if (m) {
      const from = Math.max(0, m.index - 60);
      return `${name}: …${text.slice(from, m.index + m[0].length + 60).replace(/\s+/g, ' ')}…`;
    }
  }
  return undefined;
}

/** Leaks across a set of replies, one line each, for an `expect(...).toEqual([])`. */
export function leaksIn(replies: readonly Reply[]): string[] {
  const found: string[] = [];
  for (const r of replies) {
    const leak = leakedInternals(r.text);
    if (leak) found.push(`${r.method} ${r.url.slice(0, 120)} → ${r.status}: ${leak}`);
  }
  return found;
}

/** A response header as one string (several values comma-joined), or undefined. */
export function headerValue(reply: Reply, name: string): string | undefined {
  const v = reply.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Answers that allow any origin and credentials together, which browsers refuse and which would leak if they did not. */
export function wildcardWithCredentials(replies: readonly Reply[]): string[] {
  return replies
    .filter((r) => headerValue(r, 'access-control-allow-origin')?.trim() === '*' && headerValue(r, 'access-control-allow-credentials')?.trim().toLowerCase() === 'true')
    .map((r) => `${r.method} ${r.url.slice(0, 120)} → ${r.status}`);
}

/** A one-line description of an answer, for failure lists. */
export function describe(reply: Reply): string {
  const code = reply.body && typeof reply.body === 'object' && 'code' in reply.body ? ` ${String((reply.body as { code: unknown }).code)}` : '';
  const detail = reply.body && typeof reply.body === 'object' && 'detail' in reply.body ? ` "${String((reply.body as { detail: unknown }).detail).slice(0, 160)}"` : '';
  return `${reply.status}${code}${detail} [${reply.contentType || 'no content-type'}]${!code && reply.text ? ` ${reply.text.slice(0, 160).replace(/\s+/g, ' ')}` : ''}`;
}

export function isProblem(reply: Reply): boolean {
  return reply.contentType.startsWith('application/problem+json') && typeof reply.body?.code === 'string';
}

/** Null when the reply is the expected problem, else what was wrong with it. */
export function problemMismatch(reply: Reply, status: number, codes?: readonly string[]): string | null {
  const ok = reply.status === status && isProblem(reply) && reply.body.status === status && (codes === undefined || codes.includes(reply.body.code as string));
  return ok ? null : `expected ${status} problem+json${codes ? ` (${codes.join(' or ')})` : ''}, got ${describe(reply)}`;
}
