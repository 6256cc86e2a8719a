import { Logger } from '@nestjs/common';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  CallToolResultSchema,
  CompleteResultSchema,
  ErrorCode,
  LoggingMessageNotificationSchema,
  McpError,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
  type CallToolResult,
  type CompleteRequest,
  type CompleteResult,
  type GetPromptResult,
  type LoggingLevel,
  type Prompt,
  type ReadResourceResult,
  type Resource,
  type ResourceTemplate,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { ZiggieError } from '@ziggie/contracts';
import { traceCarrier, withTraceHeaders } from '@ziggie/platform';
import { resolveSecrets, UpstreamConfig } from '../config';
import { limitedFetch } from './http';
import type { CallOptions, CatalogChanged, NotificationRelay, ProviderFeatures, ProviderNotification, ProviderStatus, ReplicaState, ToolProvider } from './provider';
import { BreakerOptions, BreakerStateName, ReplicaSet } from './replicas';
import { BatchingStdioClientTransport } from './stdio-transport';
import { KeepAliveStreamableHTTPClientTransport } from './streamable-http';
import { WsClientTransport } from './ws-transport';

export type McpUpstreamConfig = Extract<UpstreamConfig, { transport: 'stdio' | 'http' | 'sse' | 'ws' }>;

const MAX_BACKOFF_MS = 30_000;
const CALLER_ERRORS = new Set<number>([ErrorCode.InvalidParams, ErrorCode.InvalidRequest, ErrorCode.MethodNotFound, ErrorCode.ParseError]);

/** Errors that say the upstream (not the caller's request) is broken: these open breakers. */
export function isUpstreamFailure(err: unknown): boolean {
  if (err instanceof ZiggieError) return err.code === 'UPSTREAM_TIMEOUT' || err.code === 'UPSTREAM_UNAVAILABLE';
  if (err instanceof McpError) return !CALLER_ERRORS.has(err.code);
  if (err instanceof Error && err.name === 'AbortError') return false;
  return true;
}

/** An error's message without the SDK's "MCP error <code>: " prefix (McpError adds it to its message). */
export function plainMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^(MCP error -?\d+: )+/, '');
}

/** Maps what the SDK throws to the gateway's stable codes. */
export function toZiggieError(server: string, tool: string, err: unknown): ZiggieError {
  if (err instanceof ZiggieError) return err;
  const message = plainMessage(err);
  if (err instanceof McpError) {
    if (err.code === ErrorCode.RequestTimeout) return new ZiggieError('UPSTREAM_TIMEOUT', `${server}.${tool}: upstream did not answer in time`);
    if (err.code === ErrorCode.InvalidParams) return new ZiggieError('TOOL_INVALID_ARGUMENTS', `${server}.${tool}: ${message}`);
    if (err.code === ErrorCode.ConnectionClosed) return new ZiggieError('UPSTREAM_UNAVAILABLE', `${server}.${tool}: upstream connection closed during the call`);
  }
  return new ZiggieError('TOOL_CALL_FAILED', `${server}.${tool}: ${message}`);
}

/** One connection to one replica of an MCP server, reconnecting with backoff when it drops. */
class McpConnection {
  client?: Client;
  status: ProviderStatus = 'connecting';
  lastError = '';
  tools: Tool[] = [];
  resources: Resource[] = [];
  prompts: Prompt[] = [];
  resourceTemplates: ResourceTemplate[] = [];
  private attempts = 0;
  private stopped = false;
  private reconnectTimer?: NodeJS.Timeout;

  constructor(
    readonly id: string,
    private readonly makeTransport: () => Transport,
    private readonly logger: Logger,
    private readonly onChange: () => void,
    private readonly onNotification: (n: ProviderNotification) => void = () => undefined,
    /** Applies what the gateway asked of the server before (log level, subscriptions) to a new connection. */
    private readonly onConnected: (client: Client) => Promise<void> = () => Promise.resolve(),
  ) {}

  async connect(): Promise<void> {
    if (this.stopped) return;
    this.status = 'connecting';
    const client = new Client({ name: 'ziggie-mcp-gateway', version: '0.1.0' }, { capabilities: {} });
    client.onclose = () => this.onClosed(client);
    client.onerror = (err) => this.logger.warn(`${this.id}: transport error: ${err.message}`);
    try {
      await client.connect(this.makeTransport());
      this.client = client;
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => this.refresh('tools'));
      client.setNotificationHandler(ResourceListChangedNotificationSchema, () => this.refresh('resources'));
      client.setNotificationHandler(PromptListChangedNotificationSchema, () => this.refresh('prompts'));
      client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => this.onNotification({ method: 'notifications/message', params: n.params }));
      client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => this.onNotification({ method: 'notifications/resources/updated', params: { uri: n.params.uri } }));
      await this.refreshAll();
      await this.onConnected(client).catch((err: unknown) => this.logger.warn(`${this.id}: restoring log level and subscriptions failed: ${err instanceof Error ? err.message : String(err)}`));
      this.status = 'ready';
      this.attempts = 0;
      this.lastError = '';
      this.logger.log(`${this.id}: ready with ${this.tools.length} tools, ${this.resources.length} resources, ${this.prompts.length} prompts`);
      this.onChange();
    } catch (err) {
      this.client = undefined;
      this.status = 'failed';
      this.lastError = err instanceof Error ? err.message : String(err);
      this.logger.warn(`${this.id}: connect failed: ${this.lastError}`);
      await client.close().catch(() => undefined);
      this.onChange();
      this.scheduleReconnect();
    }
  }

  private onClosed(client: Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    if (this.stopped) return;
    this.status = 'failed';
    this.lastError = 'connection closed';
    this.logger.warn(`${this.id}: connection closed, reconnecting`);
    this.onChange();
    this.scheduleReconnect();
  }

  /** Connects now rather than at the next backoff step (after a failure; a connection in progress is left alone). */
  async reconnectNow(): Promise<void> {
    if (this.stopped || this.status !== 'failed') return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.attempts = 0;
    await this.connect();
  }

  /**
   * Drops the connection (and its session) and connects again now: the server behind it was
   * replaced, which streamable HTTP does not notice by itself until a request fails.
   */
  async restart(): Promise<void> {
    if (this.stopped || this.status === 'connecting') return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.attempts = 0;
    const old = this.client;
    this.client = undefined;
    await old?.close().catch(() => undefined);
    await this.connect();
  }

  get hasItems(): boolean {
    return this.tools.length + this.resources.length + this.prompts.length > 0;
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** this.attempts++);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connect();
    }, delay);
  }

  private async refreshAll(): Promise<void> {
    await this.load('tools');
    await this.load('resources');
    await this.loadTemplates();
    await this.load('prompts');
  }

  private async refresh(kind: 'tools' | 'resources' | 'prompts'): Promise<void> {
    try {
      await this.load(kind);
      if (kind === 'resources') await this.loadTemplates();
      this.onChange();
    } catch (err) {
      this.logger.warn(`${this.id}: refreshing ${kind} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Every page of one list; a server without the capability contributes nothing. */
  private async load(kind: 'tools' | 'resources' | 'prompts'): Promise<void> {
    const client = this.client;
    if (!client) return;
    const caps = client.getServerCapabilities() ?? {};
    if (!caps[kind]) {
      this[kind] = [];
      return;
    }
    const items: unknown[] = [];
    let cursor: string | undefined;
    do {
      const params = cursor ? { cursor } : {};
      const page =
        kind === 'tools'
          ? await client.listTools(params).then((p) => ({ items: p.tools, next: p.nextCursor }))
          : kind === 'resources'
            ? await client.listResources(params).then((p) => ({ items: p.resources, next: p.nextCursor }))
            : await client.listPrompts(params).then((p) => ({ items: p.prompts, next: p.nextCursor }));
      items.push(...page.items);
      cursor = page.next;
    } while (cursor);
    (this as Record<typeof kind, unknown[]>)[kind] = items;
  }

  /** Every page of resources/templates/list; a server that has resources but no templates answers -32601. */
  private async loadTemplates(): Promise<void> {
    const client = this.client;
    if (!client) return;
    if (!client.getServerCapabilities()?.resources) {
      this.resourceTemplates = [];
      return;
    }
    const items: ResourceTemplate[] = [];
    let cursor: string | undefined;
    try {
      do {
        const page = await client.listResourceTemplates(cursor ? { cursor } : {});
        items.push(...page.resourceTemplates);
        cursor = page.nextCursor;
      } while (cursor);
    } catch (err) {
      if (!(err instanceof McpError && err.code === ErrorCode.MethodNotFound)) throw err;
    }
    this.resourceTemplates = items;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    await client?.close().catch(() => undefined);
  }
}

/**
 * An MCP server reached over stdio (supervised child processes), streamable HTTP, SSE or
 * WebSocket, with one connection per replica. The catalog comes from the first ready replica;
 * calls go to the least busy live replica through its circuit breaker.
 */
export class McpUpstream implements ToolProvider {
  private readonly logger: Logger;
  private readonly connections: McpConnection[] = [];
  private readonly set: ReplicaSet<McpConnection>;
  /** The log level the gateway asked for, and the resources it subscribed to: applied to every (re)connection. */
  private logLevel?: LoggingLevel;
  private readonly subscriptions = new Set<string>();

  constructor(
    readonly config: McpUpstreamConfig,
    private readonly onChange: CatalogChanged,
    opts: { breaker: BreakerOptions; maxResponseBytes: number; onBreakerChange?: (replicaId: string, state: BreakerStateName) => void; onNotification?: NotificationRelay },
  ) {
    this.logger = new Logger(`upstream:${config.name}`);
    this.set = new ReplicaSet<McpConnection>(config.name, isUpstreamFailure, opts.breaker, opts.onBreakerChange);
    const endpoints = config.transport === 'stdio' ? Array.from({ length: config.replicas }, (_, i) => `${config.name}#${i}`) : config.urls;
    endpoints.forEach((endpoint, i) => {
      const conn = new McpConnection(
        config.transport === 'stdio' ? endpoint : `${config.name}@${endpoint}`,
        () => this.makeTransport(endpoint, opts.maxResponseBytes),
        this.logger,
        () => this.onChange(this),
        (n) => opts.onNotification?.(this, n),
        (client) => this.applyState(client),
      );
      this.connections.push(conn);
      this.set.add(config.transport === 'stdio' ? `${i}` : endpoint, conn, () => conn.status === 'ready');
    });
  }

  get name(): string {
    return this.config.name;
  }

  get transport(): string {
    return this.config.transport;
  }

  private makeTransport(endpoint: string, maxResponseBytes: number): Transport {
    const c = this.config;
    if (c.transport === 'stdio') {
      const t = new BatchingStdioClientTransport({
        command: c.command,
        args: c.args,
        env: { ...getDefaultEnvironment(), ...resolveSecrets(c.env) },
        cwd: c.cwd,
        stderr: 'pipe',
      });
      t.stderr?.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) this.logger.log(`${endpoint} stderr: ${line}`);
      });
      return t;
    }
    // The caller's token is never forwarded: only the upstream's own configured headers go out.
    const headers = resolveSecrets(c.headers);
    const url = new URL(endpoint);
    if (c.transport === 'ws') return new WsClientTransport(url, headers, maxResponseBytes);
    // Each request carries the trace context of the call it belongs to (fetch is not instrumented).
    const fetchFn = withTraceHeaders(limitedFetch(maxResponseBytes));
    if (c.transport === 'sse') return new SSEClientTransport(url, { requestInit: { headers }, eventSourceInit: { fetch: (u, init) => fetchFn(u, { ...init, headers: { ...Object.fromEntries(new Headers(init?.headers).entries()), ...headers } }) }, fetch: fetchFn });
    // The handshake and the standalone stream go through fetchFn; calls over a keep-alive agent.
    return new KeepAliveStreamableHTTPClientTransport(url, headers, maxResponseBytes, { requestInit: { headers }, fetch: fetchFn });
  }

  private get primary(): McpConnection | undefined {
    return this.connections.find((c) => c.status === 'ready');
  }

  /**
   * Where the catalog comes from: the first ready replica; for a server on a GPU pool (scaled to
   * zero by design) also the last lists a replica had while none is ready.
   */
  private get listed(): McpConnection | undefined {
    return this.primary ?? (this.config.pool !== undefined ? this.connections.find((c) => c.hasItems) : undefined);
  }

  get status(): ProviderStatus {
    if (this.primary) return 'ready';
    return this.connections.some((c) => c.status === 'connecting') ? 'connecting' : 'failed';
  }

  get lastError(): string {
    return this.connections.map((c) => c.lastError).find(Boolean) ?? '';
  }

  get tools(): Tool[] {
    return this.listed?.tools ?? [];
  }

  get resources(): Resource[] {
    return this.listed?.resources ?? [];
  }

  get prompts(): Prompt[] {
    return this.listed?.prompts ?? [];
  }

  get resourceTemplates(): ResourceTemplate[] {
    return this.listed?.resourceTemplates ?? [];
  }

  get features(): ProviderFeatures {
    const caps = this.primary?.client?.getServerCapabilities() ?? {};
    return { completions: caps.completions !== undefined, logging: caps.logging !== undefined, subscribe: caps.resources?.subscribe === true };
  }

  private async applyState(client: Client): Promise<void> {
    const caps = client.getServerCapabilities() ?? {};
    if (this.logLevel && caps.logging) await client.setLoggingLevel(this.logLevel);
    if (caps.resources?.subscribe) for (const uri of this.subscriptions) await client.subscribeResource({ uri });
  }

  /** Runs `fn` on every connected replica that declared the capability; the first failure is thrown after all ran. */
  private async onEveryReplica(has: (client: Client) => boolean, fn: (client: Client) => Promise<unknown>): Promise<void> {
    const clients = this.connections.map((c) => c.client).filter((c): c is Client => c !== undefined && has(c));
    const results = await Promise.allSettled(clients.map(fn));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw toZiggieError(this.name, 'notifications', failed.reason);
  }

  async setLoggingLevel(level: LoggingLevel): Promise<void> {
    this.logLevel = level;
    await this.onEveryReplica((c) => c.getServerCapabilities()?.logging !== undefined, (c) => c.setLoggingLevel(level));
  }

  async subscribeResource(uri: string): Promise<void> {
    this.subscriptions.add(uri);
    await this.onEveryReplica((c) => c.getServerCapabilities()?.resources?.subscribe === true, (c) => c.subscribeResource({ uri }));
  }

  async unsubscribeResource(uri: string): Promise<void> {
    if (!this.subscriptions.delete(uri)) return;
    await this.onEveryReplica((c) => c.getServerCapabilities()?.resources?.subscribe === true, (c) => c.unsubscribeResource({ uri }));
  }

  async completeArgument(params: CompleteRequest['params'], opts: CallOptions): Promise<CompleteResult> {
    const what = params.ref.type === 'ref/prompt' ? params.ref.name : params.ref.uri;
    try {
      return await this.set.run((conn) => this.connected(conn).request({ method: 'completion/complete', params }, CompleteResultSchema, { timeout: opts.timeoutMs, signal: opts.signal }));
    } catch (err) {
      throw toZiggieError(this.name, what, err);
    }
  }

  /**
   * New pods behind the server: every network connection starts over now (a stdio child is
   * not a pod and is only reconnected if it failed), then failed ones are retried every 250 ms
   * until one is ready or the time is up.
   */
  async wake(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await Promise.all(this.connections.map((c) => (this.config.transport === 'stdio' ? c.reconnectNow() : c.restart())));
    while (!this.primary && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(250, deadline - Date.now()))));
      await Promise.all(this.connections.map((c) => c.reconnectNow()));
    }
  }

  replicas(): ReplicaState[] {
    return this.set.states();
  }

  async start(): Promise<void> {
    await Promise.all(this.connections.map((c) => c.connect()));
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.connections.map((c) => c.stop()));
  }

  private connected(conn: McpConnection): Client {
    if (!conn.client) throw new ZiggieError('UPSTREAM_UNAVAILABLE', `upstream ${this.name} replica ${conn.id} is not connected`);
    return conn.client;
  }

  async callTool(tool: string, args: Record<string, unknown>, opts: CallOptions): Promise<CallToolResult> {
    try {
      return await this.set.run(async (conn) => {
        // Trace context for the server in `_meta` too: the only carrier over stdio and WebSocket.
        const meta = traceCarrier();
        const params = Object.keys(meta).length > 0 ? { name: tool, arguments: args, _meta: meta } : { name: tool, arguments: args };
        const result = await this.connected(conn).callTool(params, CallToolResultSchema, {
          timeout: opts.timeoutMs,
          signal: opts.signal,
          onprogress: opts.onProgress,
          resetTimeoutOnProgress: true,
          maxTotalTimeout: opts.timeoutMs * 10,
        });
        return result as CallToolResult;
      });
    } catch (err) {
      throw toZiggieError(this.name, tool, err);
    }
  }

  async readResource(uri: string, opts: CallOptions): Promise<ReadResourceResult> {
    try {
      return await this.set.run((conn) => this.connected(conn).readResource({ uri }, { timeout: opts.timeoutMs, signal: opts.signal }));
    } catch (err) {
      throw toZiggieError(this.name, uri, err);
    }
  }

  async getPrompt(name: string, args: Record<string, string>, opts: CallOptions): Promise<GetPromptResult> {
    try {
      return await this.set.run((conn) => this.connected(conn).getPrompt({ name, arguments: args }, { timeout: opts.timeoutMs, signal: opts.signal }));
    } catch (err) {
      throw toZiggieError(this.name, name, err);
    }
  }
}
