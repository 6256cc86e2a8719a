import { Logger } from '@nestjs/common';
import type { CallToolResult, Prompt, Resource, Tool, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js';
import { ZiggieError } from '@ziggie/contracts';
import { withTraceHeaders } from '@ziggie/platform';
import { z } from 'zod';
import { resolveSecrets, type UpstreamConfig } from '../config';
import { limitedFetch } from '../providers/http';
import type { CallOptions, CatalogChanged, ProviderStatus, ReplicaState, ToolProvider } from '../providers/provider';
import { ReplicaSet, type BreakerOptions, type BreakerStateName } from '../providers/replicas';

/** The upstream entries served by a built-in adapter rather than an MCP client. */
export type AdapterConfig = Extract<UpstreamConfig, { transport: 'comfyui' | 'ollama' | 'openai' }>;

export interface AdapterOptions {
  breaker: BreakerOptions;
  onBreakerChange?: (replicaId: string, state: BreakerStateName) => void;
}

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 30_000;
/** A health probe is a cheap GET; a backend slower than this is not ready to take calls. */
const PROBE_TIMEOUT_MS = 5_000;
/** Probes only look at the status; the body is discarded, so any sane limit will do. */
const PROBE_MAX_BYTES = 4 * 1024 * 1024;
/** Error bodies are quoted into messages, so only their start matters. */
const ERROR_TEXT_CHARS = 500;
/** While waking, probes are this far apart. */
const WAKE_PROBE_MS = 250;

/** One backend endpoint (replica) of an adapter. */
export interface Endpoint {
  readonly id: string;
  /** Base URL ending in '/', so relative paths resolve under it (a backend may live under a path prefix). */
  readonly base: URL;
  /** The last probe or call reached the endpoint and got an HTTP answer. */
  up: boolean;
  lastError: string;
  probeAttempts: number;
  probing: boolean;
  retryTimer?: NodeJS.Timeout;
}

/** What one call's work function gets: the replica chosen for it and the call's limits. */
export interface CallContext {
  endpoint: Endpoint;
  /** Aborts on the caller's cancellation, the call's time limit, or stop(). */
  signal: AbortSignal;
  maxResponseBytes: number;
}

export interface RequestInitLite {
  method?: 'GET' | 'POST';
  /** Sent as JSON. */
  body?: unknown;
}

/** A static tool definition whose inputSchema is generated from the zod schema that parses the arguments. */
export function defineTool(name: string, title: string, description: string, args: z.ZodType, annotations: ToolAnnotations): Tool {
  // One schema both documents the arguments (JSON Schema for clients) and parses them, so the two cannot drift.
  const { $schema: _ignored, ...inputSchema } = z.toJSONSchema(args, { target: 'draft-7' }) as Record<string, unknown>;
  return { name, title, description, inputSchema: inputSchema as Tool['inputSchema'], annotations: { title, ...annotations } };
}

export function textResult(text: string, structuredContent?: Record<string, unknown>): CallToolResult {
  return structuredContent ? { content: [{ type: 'text', text }], structuredContent } : { content: [{ type: 'text', text }] };
}

export function errorResult(text: string, structuredContent?: Record<string, unknown>): CallToolResult {
  return { ...textResult(text, structuredContent), isError: true };
}

/** Parses tool arguments; bad arguments are the caller's mistake, answered as an error result the model can correct. */
export function parseArgs<S extends z.ZodType>(schema: S, args: Record<string, unknown>): { ok: true; value: z.infer<S> } | { ok: false; result: CallToolResult } {
  const parsed = schema.safeParse(args);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(arguments)'}: ${i.message}`).join('; ');
  return { ok: false, result: errorResult(`invalid arguments: ${issues}`) };
}

/** The message in a backend's error body: `{error: "..."}`, `{error: {message}}`, `{message}`, `{detail}` or plain text. */
export function errorMessage(body: string): string {
  let text = body.trim();
  try {
    const json = JSON.parse(body) as unknown;
    if (json && typeof json === 'object') {
      const o = json as Record<string, unknown>;
      const e = o.error;
      const candidate =
        typeof e === 'string' ? e : e && typeof e === 'object' && typeof (e as Record<string, unknown>).message === 'string' ? (e as Record<string, unknown>).message : o.message ?? o.detail;
      if (typeof candidate === 'string') text = candidate;
    }
  } catch {
    // Not JSON: quote the text itself.
  }
  return text.length > ERROR_TEXT_CHARS ? `${text.slice(0, ERROR_TEXT_CHARS)}…` : text;
}

/** Releases a body we do not read, so the connection goes back to the pool at once. */
export async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => undefined);
}

/** Duck-typed: errors from undici and ws may come from another realm (jest's vm), where instanceof Error fails. */
function messageOf(err: unknown): string | undefined {
  return err && typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string' ? (err as { message: string }).message : undefined;
}

function describe(err: unknown): string {
  const message = messageOf(err);
  if (message === undefined) return String(err);
  // undici reports every network failure as "fetch failed"; the reason is in the cause.
  const cause = messageOf((err as { cause?: unknown }).cause);
  return cause ? `${message}: ${cause}` : message;
}

/** Sleeps, waking early (rejecting) when the signal aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The part every HTTP backend adapter shares: one endpoint per configured URL behind a
 * ReplicaSet (least outstanding requests, a circuit breaker each), health probes with
 * backoff, and the mapping of HTTP outcomes onto the gateway's errors:
 * 2xx → the tool's result; 4xx → an error result (the request was bad, the backend is fine);
 * 5xx, network errors and timeouts → thrown ZiggieErrors that count against the breaker.
 */
export abstract class HttpAdapter<C extends AdapterConfig = AdapterConfig> implements ToolProvider {
  abstract readonly tools: readonly Tool[];
  readonly resources: readonly Resource[] = [];
  readonly prompts: readonly Prompt[] = [];
  readonly name: string;
  readonly transport: string;
  status: ProviderStatus = 'connecting';
  lastError = '';

  protected readonly logger: Logger;
  protected readonly endpoints: Endpoint[];
  protected readonly set: ReplicaSet<Endpoint>;
  protected headers: Record<string, string> = {};
  private headersResolved = false;
  private firstRoundDone = false;
  private stopped = false;
  private lifetime = new AbortController();
  private readonly inflight = new Set<AbortController>();

  /** GET this path (relative to an endpoint's base) to tell whether the backend answers. */
  protected abstract readonly probePath: string;
  /** Runs one tool; `run()` supplies the replica and the limits. */
  protected abstract invoke(tool: string, args: Record<string, unknown>, opts: CallOptions): Promise<CallToolResult>;

  constructor(
    readonly config: C,
    private readonly onChange: CatalogChanged,
    opts: AdapterOptions,
  ) {
    this.name = config.name;
    this.transport = config.transport;
    this.logger = new Logger(`adapter:${config.name}`);
    this.set = new ReplicaSet<Endpoint>(config.name, (err) => HttpAdapter.isUpstreamFailure(err), opts.breaker, opts.onBreakerChange);
    const seen = new Set<string>();
    this.endpoints = config.urls.map((raw, i) => {
      const base = this.baseUrl(new URL(raw));
      // The id is shown to operators and in results, so it never carries credentials or a query.
      let id = `${base.origin}${base.pathname.replace(/\/$/, '')}`;
      if (seen.has(id)) id = `${id}#${i}`;
      seen.add(id);
      const endpoint: Endpoint = { id, base, up: false, lastError: 'not probed yet', probeAttempts: 0, probing: false };
      this.set.add(id, endpoint, () => endpoint.up);
      return endpoint;
    });
  }

  /** Only failures of the backend itself open a breaker; error results and size refusals are healthy answers. */
  static isUpstreamFailure(err: unknown): boolean {
    return err instanceof ZiggieError && (err.code === 'UPSTREAM_TIMEOUT' || err.code === 'UPSTREAM_UNAVAILABLE' || err.code === 'TOOL_CALL_FAILED');
  }

  /** Normalises a configured URL into the base every API path is resolved against. */
  protected baseUrl(url: URL): URL {
    const base = new URL(url.href);
    base.search = '';
    base.hash = '';
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    return base;
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.lifetime = new AbortController();
    this.firstRoundDone = false;
    this.setStatus('connecting');
    await Promise.all(this.endpoints.map((e) => this.check(e)));
    this.firstRoundDone = true;
    this.refreshStatus();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.lifetime.abort(new ZiggieError('UPSTREAM_UNAVAILABLE', `adapter ${this.name} stopped`));
    for (const c of this.inflight) c.abort(new ZiggieError('UPSTREAM_UNAVAILABLE', `adapter ${this.name} stopped`));
    for (const e of this.endpoints) {
      clearTimeout(e.retryTimer);
      e.retryTimer = undefined;
    }
    await this.closeSockets();
  }

  /** Closes connections a subclass keeps beyond a single request (WebSockets). */
  protected async closeSockets(): Promise<void> {}

  replicas(): ReplicaState[] {
    return this.set.states();
  }

  /** Probes every down endpoint now, and again every WAKE_PROBE_MS, until one answers or the time is up (HTTP needs no reconnect). */
  async wake(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const never = new AbortController().signal;
    while (!this.stopped && !this.endpoints.some((e) => e.up) && Date.now() < deadline) {
      await Promise.all(
        this.endpoints
          .filter((e) => !e.up)
          .map((e) => {
            clearTimeout(e.retryTimer);
            e.retryTimer = undefined;
            e.probeAttempts = 0;
            return this.check(e);
          }),
      );
      if (this.endpoints.some((e) => e.up)) return;
      await abortableSleep(Math.max(0, Math.min(WAKE_PROBE_MS, deadline - Date.now())), never);
    }
  }

  async callTool(tool: string, args: Record<string, unknown>, opts: CallOptions): Promise<CallToolResult> {
    if (!this.tools.some((t) => t.name === tool)) throw new ZiggieError('TOOL_NOT_FOUND', `${this.name} has no tool ${tool}`);
    return this.invoke(tool, args, opts);
  }

  // ---- calls ----

  /**
   * Runs fn on the least busy live replica, through its breaker, with the caller's signal,
   * the time limit and stop() combined; maps the ways it can end onto gateway errors.
   */
  protected async run<R>(opts: CallOptions, fn: (ctx: CallContext) => Promise<R>, timeoutMs = opts.timeoutMs): Promise<R> {
    const own = new AbortController();
    if (this.stopped) own.abort(new ZiggieError('UPSTREAM_UNAVAILABLE', `adapter ${this.name} stopped`));
    this.inflight.add(own);
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any(opts.signal ? [opts.signal, timeout, own.signal] : [timeout, own.signal]);
    try {
      return await this.set.run(async (endpoint) => {
        try {
          return await fn({ endpoint, signal, maxResponseBytes: opts.maxResponseBytes });
        } catch (err) {
          if (opts.signal?.aborted) throw opts.signal.reason ?? err;
          if (timeout.aborted) {
            throw new ZiggieError('UPSTREAM_TIMEOUT', `${this.name} (${endpoint.id}) did not finish within ${timeoutMs} ms`, { timeoutMs, endpoint: endpoint.id });
          }
          if (own.signal.aborted) throw own.signal.reason;
          throw err;
        }
      });
    } finally {
      this.inflight.delete(own);
    }
  }

  /**
   * One HTTP request to an endpoint: size-limited, with the configured headers and the call's
   * signal. Returns 2xx and 4xx answers; throws on 5xx and network errors.
   */
  protected async request(ctx: CallContext, path: string, init: RequestInitLite = {}): Promise<Response> {
    const { endpoint } = ctx;
    const method = init.method ?? (init.body === undefined ? 'GET' : 'POST');
    let res: Response;
    try {
      // traceparent goes along, so the backend's own spans (if any) join the tool call's trace.
      res = await withTraceHeaders(limitedFetch(ctx.maxResponseBytes))(new URL(path, endpoint.base), {
        method,
        headers: init.body === undefined ? this.headers : { 'content-type': 'application/json', ...this.headers },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: ctx.signal,
        // URLs are checked against the SSRF policy when configured; following a redirect would bypass that.
        redirect: 'error',
      });
    } catch (err) {
      if (err instanceof ZiggieError || ctx.signal.aborted) throw err;
      throw this.unreachable(endpoint, err, `${method} /${path}`);
    }
    this.markUp(endpoint);
    if (res.status >= 500) {
      const body = await this.readText(ctx, res).catch(() => '');
      throw new ZiggieError('TOOL_CALL_FAILED', `${this.name} (${endpoint.id}) answered ${method} /${path} with HTTP ${res.status}: ${errorMessage(body)}`, {
        status: res.status,
        endpoint: endpoint.id,
      });
    }
    return res;
  }

  /** Reads a body, telling a connection lost mid-body (upstream failure) from a size refusal. */
  protected async readText(ctx: CallContext, res: Response): Promise<string> {
    try {
      return await res.text();
    } catch (err) {
      if (err instanceof ZiggieError || ctx.signal.aborted) throw err;
      throw this.unreachable(ctx.endpoint, err, 'reading the response');
    }
  }

  /** Reads a 2xx JSON body; anything else from a healthy status is a broken backend. */
  protected async readJson<T = Record<string, unknown>>(ctx: CallContext, res: Response): Promise<T> {
    const text = await this.readText(ctx, res);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ZiggieError('TOOL_CALL_FAILED', `${this.name} (${ctx.endpoint.id}) answered with invalid JSON`, { endpoint: ctx.endpoint.id });
    }
  }

  /** The error result for a 4xx answer. */
  protected async clientError(ctx: CallContext, res: Response, what: string): Promise<CallToolResult> {
    const body = await this.readText(ctx, res);
    return errorResult(`${what} refused by ${this.name} (HTTP ${res.status}): ${errorMessage(body)}`);
  }

  /** Marks the endpoint down (probing resumes in the background) and builds the error to throw. */
  protected unreachable(endpoint: Endpoint, err: unknown, what: string): ZiggieError {
    const message = `${this.name} (${endpoint.id}) unreachable during ${what}: ${describe(err)}`;
    this.markDown(endpoint, message);
    return new ZiggieError('UPSTREAM_UNAVAILABLE', message, { endpoint: endpoint.id });
  }

  // ---- health ----

  private markUp(endpoint: Endpoint): void {
    if (endpoint.up) return;
    endpoint.up = true;
    endpoint.lastError = '';
    endpoint.probeAttempts = 0;
    this.refreshStatus();
  }

  protected markDown(endpoint: Endpoint, message: string): void {
    endpoint.lastError = message;
    if (!endpoint.up) return;
    endpoint.up = false;
    this.logger.warn(message);
    this.refreshStatus();
    this.scheduleProbe(endpoint);
  }

  /** Probes an endpoint once; a failed probe schedules the next one with backoff. */
  private async check(endpoint: Endpoint): Promise<void> {
    if (this.stopped || endpoint.probing) return;
    endpoint.probing = true;
    try {
      if (!this.headersResolved) {
        // Re-read on every attempt until it works: a secret file may be mounted after we start.
        this.headers = resolveSecrets(this.config.headers);
        this.headersResolved = true;
      }
      const signal = AbortSignal.any([AbortSignal.timeout(PROBE_TIMEOUT_MS), this.lifetime.signal]);
      const res = await limitedFetch(PROBE_MAX_BYTES)(new URL(this.probePath, endpoint.base), { headers: this.headers, signal, redirect: 'error' });
      await discard(res);
      if (!res.ok) throw new Error(`GET /${this.probePath} answered HTTP ${res.status}`);
      this.markUp(endpoint);
    } catch (err) {
      if (this.stopped) return;
      endpoint.up = false;
      endpoint.lastError = describe(err);
      this.refreshStatus();
      this.scheduleProbe(endpoint);
    } finally {
      endpoint.probing = false;
    }
  }

  private scheduleProbe(endpoint: Endpoint): void {
    if (this.stopped || endpoint.retryTimer || endpoint.up) return;
    const delay = Math.min(FIRST_RETRY_MS * 2 ** endpoint.probeAttempts, MAX_RETRY_MS);
    endpoint.probeAttempts++;
    endpoint.retryTimer = setTimeout(() => {
      endpoint.retryTimer = undefined;
      void this.check(endpoint);
    }, delay);
    // stop() clears it; unref keeps a forgotten adapter from holding the process open.
    endpoint.retryTimer.unref();
  }

  /** Ready while any endpoint answers; failed once the first round of probes found none. */
  private refreshStatus(): void {
    const up = this.endpoints.some((e) => e.up);
    this.lastError = up ? '' : this.endpoints.map((e) => `${e.id}: ${e.lastError}`).join('; ');
    if (up) this.setStatus('ready');
    else if (this.firstRoundDone) this.setStatus('failed');
  }

  private setStatus(status: ProviderStatus): void {
    if (this.status === status) return;
    this.status = status;
    if (status === 'failed') this.logger.warn(`failed: ${this.lastError}`);
    this.onChange(this);
  }
}
