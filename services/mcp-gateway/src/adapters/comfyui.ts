import { randomUUID } from 'node:crypto';
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import { ZiggieError } from '@ziggie/contracts';
import WebSocket from 'ws';
import { z } from 'zod';
import type { CatalogChanged, CallOptions, ProgressUpdate } from '../providers/provider';
import type { AdapterConfig, AdapterOptions, CallContext, Endpoint } from './base';
import { abortableSleep, defineTool, discard, errorMessage, errorResult, HttpAdapter, parseArgs, textResult } from './base';

export type ComfyUiConfig = Extract<AdapterConfig, { transport: 'comfyui' }>;

/** Preview images arrive as binary frames and are dropped; the bound only protects memory. */
const WS_MAX_PAYLOAD = 32 * 1024 * 1024;
/** Cancelling a run is best effort and must not hold up the caller for long. */
const CANCEL_TIMEOUT_MS = 5_000;
/**
 * ComfyUI sends execution_success before it writes the history entry (executing/null comes
 * after), so a run that ended on the former may need a few looks at /history.
 */
const HISTORY_POLL_MS = 100;
const HISTORY_ATTEMPTS = 20;
/** Output kinds ComfyUI's save nodes (and the common video/audio node packs) report per node. */
const OUTPUT_KINDS = ['images', 'gifs', 'audio', 'videos'] as const;
/** Messages that arrive before POST /prompt answers are kept until the prompt id is known. */
const MAX_EARLY_MESSAGES = 10_000;

const RunWorkflowArgs = z
  .object({
    workflow: z
      .record(
        z.string(),
        z.looseObject({
          class_type: z.string().min(1),
          inputs: z.record(z.string(), z.unknown()),
        }),
      )
      .describe('The workflow in ComfyUI API format ("Export (API)"): node id → {class_type, inputs}.'),
    timeoutSeconds: z
      .number()
      .positive()
      .max(86_400)
      .optional()
      .describe('Give up (interrupting the run) after this many seconds; the gateway time limit still applies.'),
  })
  .strict();

const QueueStatusArgs = z.object({}).strict();

const TOOLS: readonly Tool[] = [
  defineTool(
    'run_workflow',
    'Run a ComfyUI workflow',
    'Queues an API-format ComfyUI workflow, reports sampler progress while it runs, and returns references (with /view URLs) to the files its output nodes wrote.',
    RunWorkflowArgs,
    { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  ),
  defineTool('queue_status', 'ComfyUI queue status', 'Counts the prompts running and waiting in the ComfyUI queue of one endpoint.', QueueStatusArgs, {
    readOnlyHint: true,
    openWorldHint: false,
  }),
];

export interface ComfyUiFile {
  filename: string;
  subfolder: string;
  type: string;
  node: string;
  url: string;
}

interface WsMessage {
  type: string;
  data?: Record<string, unknown>;
}

type Outcome = { ok: true } | { ok: false; text: string; details: Record<string, unknown> };

interface HistoryEntry {
  outputs?: Record<string, Record<string, unknown>>;
  status?: { status_str?: string; messages?: unknown };
}

/** A queue entry is [number, prompt_id, prompt, extra_data, outputs_to_execute, ...]. */
type QueueEntry = [number, string, unknown, { client_id?: string } | undefined, ...unknown[]];

interface QueueBody {
  queue_running?: unknown[];
  queue_pending?: unknown[];
}

function isQueueEntry(e: unknown): e is QueueEntry {
  return Array.isArray(e) && typeof e[1] === 'string';
}

/**
 * Follows one prompt on the client's WebSocket: relays progress, resolves when the prompt is
 * done or failed, rejects when the socket is lost or the call is aborted.
 */
class PromptWatch {
  private promptId?: string;
  private readonly early: WsMessage[] = [];
  private resolve!: (o: Outcome) => void;
  private reject!: (err: unknown) => void;
  private readonly done: Promise<Outcome>;
  private readonly onAbort = (): void => this.reject(this.signal.reason);
  private steps = 0;
  private readonly onClose: (code: number) => void;
  private readonly onError: (err: Error) => void;

  constructor(
    private readonly ws: WebSocket,
    private readonly signal: AbortSignal,
    private readonly onProgress: ((p: ProgressUpdate) => void) | undefined,
    lost: (why: string) => Error,
  ) {
    this.done = new Promise<Outcome>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // The socket may fail while POST /prompt is still in flight, before anyone awaits the outcome.
    this.done.catch(() => undefined);
    this.onClose = (code: number) => this.reject(lost(`WebSocket closed (code ${code}) before the workflow finished`));
    this.onError = (err: Error) => this.reject(lost(`WebSocket error: ${err.message}`));
    ws.on('message', this.onMessage);
    ws.on('close', this.onClose);
    ws.on('error', this.onError);
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  private readonly onMessage = (raw: WebSocket.RawData, isBinary: boolean): void => {
    if (isBinary) return;
    let msg: WsMessage;
    try {
      msg = JSON.parse(raw.toString()) as WsMessage;
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return;
    if (this.promptId === undefined) {
      if (this.early.length < MAX_EARLY_MESSAGES) this.early.push(msg);
    } else this.handle(msg);
  };

  /** Starts following promptId (replaying what arrived before it was known) and resolves with its outcome. */
  track(promptId: string): Promise<Outcome> {
    this.promptId = promptId;
    for (const msg of this.early.splice(0)) this.handle(msg);
    return this.done;
  }

  close(): void {
    this.signal.removeEventListener('abort', this.onAbort);
    this.ws.off('message', this.onMessage);
    this.ws.off('close', this.onClose);
    this.ws.off('error', this.onError);
    // terminate, not close: a closing handshake would keep the socket (and its timer) alive for up to 30 s.
    this.ws.terminate();
  }

  private handle(msg: WsMessage): void {
    const data = msg.data && typeof msg.data === 'object' ? msg.data : {};
    // Older ComfyUI versions omit prompt_id on some messages; this client id only ever runs this prompt.
    if (data.prompt_id !== undefined && data.prompt_id !== this.promptId) return;
    switch (msg.type) {
      case 'progress':
        if (typeof data.value === 'number') {
          try {
            // ComfyUI restarts value at 1 for every sampler node while MCP progress must only grow:
            // relay the count of steps seen, and the node's own value/max in the message.
            this.steps++;
            const max = typeof data.max === 'number' ? data.max : undefined;
            this.onProgress?.({ progress: this.steps, message: `node ${String(data.node)} ${data.value}${max === undefined ? '' : `/${max}`}` });
          } catch {
            // A failing progress sink must not break the run.
          }
        }
        break;
      case 'executing':
        if (data.node === null) this.resolve({ ok: true });
        break;
      case 'execution_success':
        this.resolve({ ok: true });
        break;
      case 'execution_error':
        this.resolve({
          ok: false,
          text: `node ${String(data.node_id)} (${String(data.node_type)}) failed: ${String(data.exception_type)}: ${String(data.exception_message)}`,
          details: {
            node_id: data.node_id,
            node_type: data.node_type,
            exception_type: data.exception_type,
            exception_message: data.exception_message,
            traceback: data.traceback,
          },
        });
        break;
      case 'execution_interrupted':
        this.resolve({ ok: false, text: `interrupted at node ${String(data.node_id)} (${String(data.node_type)})`, details: { node_id: data.node_id, node_type: data.node_type } });
        break;
      default:
        // status, execution_start, execution_cached, executed and newer types carry nothing we report.
        break;
    }
  }
}

/**
 * ComfyUI as MCP tools, over its HTTP and WebSocket API: POST /prompt with a client id,
 * progress on /ws?clientId=, outputs from /history/<prompt_id>, files served by /view.
 */
export class ComfyUiAdapter extends HttpAdapter<ComfyUiConfig> {
  readonly tools = TOOLS;
  protected readonly probePath = 'system_stats';
  private readonly sockets = new Set<WebSocket>();

  constructor(config: ComfyUiConfig, onChange: CatalogChanged, opts: AdapterOptions) {
    super(config, onChange, opts);
  }

  protected async invoke(tool: string, args: Record<string, unknown>, opts: CallOptions): Promise<CallToolResult> {
    if (tool === 'queue_status') {
      const parsed = parseArgs(QueueStatusArgs, args);
      if (!parsed.ok) return parsed.result;
      return this.run(opts, (ctx) => this.queueStatus(ctx));
    }
    const parsed = parseArgs(RunWorkflowArgs, args);
    if (!parsed.ok) return parsed.result;
    const { workflow, timeoutSeconds } = parsed.value;
    const timeoutMs = timeoutSeconds === undefined ? opts.timeoutMs : Math.min(timeoutSeconds * 1000, opts.timeoutMs);
    return this.run(opts, (ctx) => this.runWorkflow(ctx, workflow, opts.onProgress), timeoutMs);
  }

  protected override closeSockets(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.sockets.clear();
    return Promise.resolve();
  }

  private async queueStatus(ctx: CallContext): Promise<CallToolResult> {
    const res = await this.request(ctx, 'queue');
    if (!res.ok) return this.clientError(ctx, res, 'GET /queue');
    const q = await this.readJson<QueueBody>(ctx, res);
    const running = Array.isArray(q.queue_running) ? q.queue_running.length : 0;
    const pending = Array.isArray(q.queue_pending) ? q.queue_pending.length : 0;
    return textResult(`${running} running, ${pending} pending on ${ctx.endpoint.id}`, { running, pending, endpoint: ctx.endpoint.id });
  }

  private async runWorkflow(ctx: CallContext, workflow: Record<string, unknown>, onProgress?: (p: ProgressUpdate) => void): Promise<CallToolResult> {
    const clientId = randomUUID();
    // The socket is open before the prompt is queued, so no progress message can be missed.
    const ws = await this.openSocket(ctx, clientId);
    const watch = new PromptWatch(ws, ctx.signal, onProgress, (why) => new ZiggieError('UPSTREAM_UNAVAILABLE', `${this.name} (${ctx.endpoint.id}): ${why}`, { endpoint: ctx.endpoint.id }));
    let promptId: string | undefined;
    try {
      const res = await this.request(ctx, 'prompt', { body: { prompt: workflow, client_id: clientId } });
      if (!res.ok) return await this.promptRefused(ctx, res);
      const queued = await this.readJson<{ prompt_id?: unknown; node_errors?: unknown }>(ctx, res);
      if (typeof queued.prompt_id !== 'string') {
        throw new ZiggieError('TOOL_CALL_FAILED', `${this.name} (${ctx.endpoint.id}) queued the prompt without a prompt_id`, { endpoint: ctx.endpoint.id });
      }
      promptId = queued.prompt_id;
      const outcome = await watch.track(promptId);
      if (!outcome.ok) return errorResult(`ComfyUI workflow ${promptId} failed: ${outcome.text}`, { promptId, error: outcome.details });
      const entry = await this.history(ctx, promptId);
      if (entry.status?.status_str === 'error') {
        return errorResult(`ComfyUI workflow ${promptId} failed`, { promptId, error: { messages: entry.status.messages } });
      }
      const files = this.files(ctx.endpoint, entry);
      const lines = files.map((f) => `- ${f.filename} (node ${f.node}, ${f.type}): ${f.url}`);
      const text = `ComfyUI workflow ${promptId} finished with ${files.length} file(s)${lines.length ? `:\n${lines.join('\n')}` : '.'}`;
      const nodeErrors = queued.node_errors && typeof queued.node_errors === 'object' && Object.keys(queued.node_errors).length ? { nodeErrors: queued.node_errors } : {};
      return textResult(text, { promptId, files, ...nodeErrors });
    } catch (err) {
      // Abandoned (cancelled, timed out, stopped): stop spending the GPU on it.
      if (ctx.signal.aborted) await this.cancel(ctx, clientId, promptId);
      throw err;
    } finally {
      watch.close();
    }
  }

  private openSocket(ctx: CallContext, clientId: string): Promise<WebSocket> {
    const url = new URL('ws', ctx.endpoint.base);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('clientId', clientId);
    return new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url, { headers: this.headers, maxPayload: WS_MAX_PAYLOAD, followRedirects: false });
      this.sockets.add(ws);
      ws.once('close', () => this.sockets.delete(ws));
      const onAbort = (): void => {
        ws.terminate();
        reject(ctx.signal.reason);
      };
      if (ctx.signal.aborted) return onAbort();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      let opened = false;
      ws.once('open', () => {
        opened = true;
        ctx.signal.removeEventListener('abort', onAbort);
        resolve(ws);
      });
      ws.once('unexpected-response', (req, res) => {
        // Handling this event means ws leaves the refused upgrade to us to tear down.
        res.resume();
        req.destroy();
        ctx.signal.removeEventListener('abort', onAbort);
        reject(new ZiggieError('UPSTREAM_UNAVAILABLE', `${this.name} (${ctx.endpoint.id}) refused the WebSocket with HTTP ${res.statusCode}`, { endpoint: ctx.endpoint.id }));
      });
      // Kept for the socket's whole life: an 'error' without a listener would crash the process.
      ws.on('error', (err) => {
        if (opened) return; // from here on the PromptWatch reports errors
        ctx.signal.removeEventListener('abort', onAbort);
        if (ctx.signal.aborted) reject(ctx.signal.reason);
        else reject(this.unreachable(ctx.endpoint, err, 'opening the WebSocket'));
      });
    });
  }

  /** 400 from POST /prompt carries `error` and per-node `node_errors` from ComfyUI's validation. */
  private async promptRefused(ctx: CallContext, res: Response): Promise<CallToolResult> {
    const text = await this.readText(ctx, res);
    let body: { error?: unknown; node_errors?: unknown } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      return errorResult(`ComfyUI refused the workflow (HTTP ${res.status}): ${errorMessage(text)}`);
    }
    const error = body.error && typeof body.error === 'object' ? (body.error as Record<string, unknown>) : {};
    const headline = [error.message, error.details].filter((s) => typeof s === 'string' && s).join(': ') || errorMessage(text);
    const lines: string[] = [];
    const nodeErrors = body.node_errors && typeof body.node_errors === 'object' ? (body.node_errors as Record<string, { class_type?: unknown; errors?: unknown }>) : {};
    for (const [node, info] of Object.entries(nodeErrors)) {
      const errors = Array.isArray(info?.errors) ? (info.errors as { message?: unknown; details?: unknown }[]) : [];
      for (const e of errors) {
        lines.push(`- node ${node} (${String(info.class_type)}): ${[e.message, e.details].filter((s) => typeof s === 'string' && s).join(': ')}`);
      }
    }
    return errorResult(`ComfyUI refused the workflow (HTTP ${res.status}): ${headline}${lines.length ? `\n${lines.join('\n')}` : ''}`, {
      error: body.error ?? null,
      node_errors: nodeErrors,
    });
  }

  private async history(ctx: CallContext, promptId: string): Promise<HistoryEntry> {
    for (let attempt = 1; ; attempt++) {
      const res = await this.request(ctx, `history/${encodeURIComponent(promptId)}`);
      if (!res.ok) {
        throw new ZiggieError('TOOL_CALL_FAILED', `${this.name} (${ctx.endpoint.id}) answered GET /history with HTTP ${res.status}`, { endpoint: ctx.endpoint.id });
      }
      const history = await this.readJson<Record<string, HistoryEntry>>(ctx, res);
      const entry = history[promptId];
      if (entry) return entry;
      if (attempt >= HISTORY_ATTEMPTS) {
        throw new ZiggieError('TOOL_CALL_FAILED', `${this.name} (${ctx.endpoint.id}) has no history for finished prompt ${promptId}`, { endpoint: ctx.endpoint.id });
      }
      await abortableSleep(HISTORY_POLL_MS, ctx.signal);
    }
  }

  private files(endpoint: Endpoint, entry: HistoryEntry): ComfyUiFile[] {
    const files: ComfyUiFile[] = [];
    for (const [node, output] of Object.entries(entry.outputs ?? {})) {
      for (const kind of OUTPUT_KINDS) {
        const items = output?.[kind];
        if (!Array.isArray(items)) continue;
        for (const item of items as Record<string, unknown>[]) {
          if (!item || typeof item.filename !== 'string') continue;
          const subfolder = typeof item.subfolder === 'string' ? item.subfolder : '';
          const type = typeof item.type === 'string' ? item.type : 'output';
          const url = new URL('view', endpoint.base);
          url.search = new URLSearchParams({ filename: item.filename, subfolder, type }).toString();
          files.push({ filename: item.filename, subfolder, type, node, url: url.href });
        }
      }
    }
    return files;
  }

  /**
   * Best-effort cancel of this client's prompt on the endpoint that runs it. /interrupt stops
   * whatever is executing (older ComfyUI ignores the prompt_id), so it is only sent when the
   * queue shows our prompt running; a prompt still waiting is deleted from the queue instead.
   */
  private async cancel(ctx: CallContext, clientId: string, promptId: string | undefined): Promise<void> {
    const cleanup: CallContext = { endpoint: ctx.endpoint, signal: AbortSignal.timeout(CANCEL_TIMEOUT_MS), maxResponseBytes: ctx.maxResponseBytes };
    try {
      const res = await this.request(cleanup, 'queue');
      if (!res.ok) return;
      const q = await this.readJson<QueueBody>(cleanup, res);
      const mine = (e: unknown): e is QueueEntry => isQueueEntry(e) && (e[1] === promptId || e[3]?.client_id === clientId);
      const running = (q.queue_running ?? []).filter(mine).map((e) => e[1]);
      const pending = (q.queue_pending ?? []).filter(mine).map((e) => e[1]);
      if (pending.length) await discard(await this.request(cleanup, 'queue', { body: { delete: pending } }));
      for (const id of running) await discard(await this.request(cleanup, 'interrupt', { body: { prompt_id: id } }));
    } catch (err) {
      this.logger.warn(`could not cancel prompt ${promptId ?? `of client ${clientId}`} on ${ctx.endpoint.id}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
