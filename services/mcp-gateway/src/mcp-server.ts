import { randomUUID } from 'node:crypto';
import { All, Controller, Get, Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit, Optional, Req, Res } from '@nestjs/common';
import { getRequestListener } from '@hono/node-server';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  ErrorCode,
  GetPromptRequestSchema,
  isInitializeRequest,
  isJSONRPCErrorResponse,
  JSONRPCMessageSchema,
  LATEST_PROTOCOL_VERSION,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
  UnsubscribeRequestSchema,
  CallToolResultSchema,
  type CallToolRequest,
  type JSONRPCMessage,
  type LoggingLevel,
  type RequestId,
} from '@modelcontextprotocol/sdk/types.js';
import { canAccessWorkspace, DEFAULT_WORKSPACES, ErrorCodes, hasPermission, ZiggieError } from '@ziggie/contracts';
import { ANONYMOUS_ADMIN, bearerToken, CONFIG, ErrorFormats, JwtVerifier, Public } from '@ziggie/platform';
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { pageOf } from './catalog';
import { McpConfig } from './config';
import { SessionEventStore } from './event-store';
import { bodyRefusal, corsHeaders, isJsonContentType, McpHttpError, OriginPolicy, preflight, PROTECTED_RESOURCE_PATH, ResourceMetadata, RpcCode, rpcCodeOf } from './mcp-http';
import { plainMessage } from './providers/mcp-upstream';
import type { ProviderNotification, ToolProvider } from './providers/provider';
import { McpStore, StoredSession } from './store';
import { Caller, logLevelRank, ToolsService } from './tools.service';

/** Tools per tools/list page: a catalog of 10 servers × 100 tools in one page. */
const LIST_PAGE_SIZE = 1000;
const WORKSPACE_HEADER = 'x-ziggie-workspace';
const TOKEN_CACHE_SIZE = 10_000;
/** Query parameters some clients put tokens in; refused as the REST guard refuses them. */
const TOKEN_QUERY_PARAMETERS = ['access_token', 'token'];
/** The first protocol version without JSON-RPC batching (2025-06-18 removed it). */
const NO_BATCH_FROM = '2025-06-18';
/** The first protocol version whose SSE streams start with a priming event (id, empty data). */
const PRIMING_FROM = '2025-11-25';
const STANDALONE_STREAM = '_GET_stream';

/** The version a server answers an initialize with: the client's when supported, else the latest. */
export function negotiatedVersion(requested: unknown): string {
  return typeof requested === 'string' && SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION;
}

/** A JSON-RPC error leaves without the SDK's "MCP error <code>: " prefix (clients add their own). */
function withPlainMessage(message: JSONRPCMessage): JSONRPCMessage {
  if (!isJSONRPCErrorResponse(message)) return message;
  const plain = plainMessage(message.error.message);
  return plain === message.error.message ? message : { ...message, error: { ...message.error, message: plain } };
}

/** JSON-RPC error codes for refusals that are not about the request's shape. */
const FORBIDDEN = -32003;
const LIMITED = -32029;
const UNAVAILABLE = -32004;

/**
 * A ZiggieError as a JSON-RPC error: the stable code (and retry advice) travel in `data`, so an
 * MCP client gets the same code a REST caller does.
 */
export function toMcpError(err: unknown): McpError {
  if (err instanceof McpError) return err;
  const z = err instanceof ZiggieError ? err : new ZiggieError('TOOL_CALL_FAILED', err instanceof Error ? err.message : String(err));
  const http = ErrorCodes[z.code].http;
  const code =
    z.code === 'TOOL_NOT_FOUND' || z.code === 'TOOL_INVALID_ARGUMENTS' || z.code === 'TOOL_QUARANTINED' || z.code === 'VALIDATION_FAILED' || z.code === 'NOT_FOUND' || z.code === 'RESOURCE_NOT_FOUND' || z.code === 'PROMPT_NOT_FOUND' || z.code === 'PROMPT_INVALID_ARGUMENTS'
      ? ErrorCode.InvalidParams
      : http === 401 || http === 403
        ? FORBIDDEN
        : http === 429
          ? LIMITED
          : z.code === 'UPSTREAM_TIMEOUT' || z.code === 'POOL_SCALE_TIMEOUT'
            ? ErrorCode.RequestTimeout
            : http === 503
              ? UNAVAILABLE
              : ErrorCode.InternalError;
  return new McpError(code, plainMessage(z.message), { code: z.code, ...z.extras });
}

interface LiveSession {
  id: string;
  transport: WebStandardStreamableHTTPServerTransport;
  server: Server;
  caller: Caller;
  workspace: string;
  /** The protocol version the initialize negotiated: what MCP-Protocol-Version must say. */
  protocolVersion: string;
  events?: SessionEventStore;
  /** logging/setLevel of this session: log messages from upstreams at or above it are relayed. */
  logLevel?: LoggingLevel;
  lastSeen: number;
  lastTouched: number;
  unsubscribe: () => void;
  /** tools/call requests answered as JSON (see answerToolCall) still running, by request id: a cancellation aborts them. */
  inflight: Map<RequestId, AbortController>;
}

/** A tools/call that can be answered as one JSON response: no progress to stream, no task to create. */
interface DirectToolCall {
  id: RequestId;
  params: CallToolRequest['params'];
}

function directToolCall(message: unknown): DirectToolCall | undefined {
  const m = message as { method?: unknown; id?: unknown; params?: { _meta?: { progressToken?: unknown }; task?: unknown } } | undefined;
  if (m?.method !== 'tools/call' || (typeof m.id !== 'string' && typeof m.id !== 'number')) return undefined;
  if (m.params?._meta?.progressToken !== undefined || m.params?.task !== undefined) return undefined;
  return { id: m.id, params: m.params as CallToolRequest['params'] };
}

function cancelledRequestId(message: unknown): RequestId | undefined {
  const m = message as { method?: unknown; id?: unknown; params?: { requestId?: unknown } } | undefined;
  if (m?.method !== 'notifications/cancelled' || m.id !== undefined) return undefined;
  const id = m.params?.requestId;
  return typeof id === 'string' || typeof id === 'number' ? id : undefined;
}

/**
 * MCP streamable HTTP sessions over the whole catalog. A session is bound to the token's
 * subject and one workspace, recorded in the shared store, and can be picked up by any
 * replica: the client's initialize request is replayed into a fresh transport there.
 */
@Injectable()
export class McpSessions implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('mcp');
  private readonly live = new Map<string, LiveSession>();
  private readonly restoring = new Map<string, Promise<LiveSession | undefined>>();
  readonly origins: OriginPolicy;
  readonly metadata: ResourceMetadata;
  private readonly sweeper: NodeJS.Timeout;
  private readonly tokens = new Map<string, { principal: Caller; until: number }>();
  private readonly stopRelay: () => void;

  constructor(
    @Inject(CONFIG) private readonly config: McpConfig,
    private readonly tools: ToolsService,
    private readonly store: McpStore,
    private readonly verifier: JwtVerifier,
    @Optional() private readonly errorFormats?: ErrorFormats,
  ) {
    this.origins = new OriginPolicy(config.extra, config.http.host);
    this.metadata = new ResourceMetadata(config.extra, config.auth.issuer);
    this.sweeper = setInterval(() => this.sweep(), Math.min(60_000, config.extra.MCP_SESSION_TTL_MS / 2));
    this.sweeper.unref();
    this.stopRelay = tools.onUpstreamNotification((provider, n) => this.relay(provider, n));
  }

  onModuleInit(): void {
    if (this.metadata.authorizationServers.length === 0 && this.config.auth.enabled) {
      this.logger.warn('no authorization server for /mcp discovery: set MCP_AUTHORIZATION_SERVERS (or an http(s) JWT_ISSUER) so MCP clients can find where to get a token');
    }
    // A body that is not JSON is refused while it is read, before any route runs; on /mcp the
    // answer is a JSON-RPC error, not the REST problem document.
    this.errorFormats?.register('/mcp', (err, req, reply) => {
      reply.hijack();
      // A body refused unread (far too large) is not read on: the connection ends with the answer.
      if (!req.raw.complete) reply.raw.setHeader('Connection', 'close');
      this.allowOrigin(req, reply.raw);
      this.reply(req, reply.raw, bodyRefusal(err) ?? err);
    });
  }

  get sessionCount(): number {
    return this.live.size;
  }

  /** Every /mcp request: refusals are answered with a JSON-RPC error body and the status the transport spec gives. */
  async handle(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    // Answered on the socket directly: the SDK's transport writes its own responses and streams.
    reply.hijack();
    const res = reply.raw;
    try {
      await this.serve(req, res);
    } catch (err) {
      this.reply(req, res, err);
    }
  }

  /** Sets CORS headers for an allowed browser origin; false when the origin is not allowed. */
  private allowOrigin(req: FastifyRequest, res: ServerResponse): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    if (!this.origins.allows(origin)) return false;
    corsHeaders(res, origin);
    return true;
  }

  private async serve(req: FastifyRequest, res: ServerResponse): Promise<void> {
    // Browsers send Origin: refuse every page not allowed (DNS rebinding defence), before anything else.
    if (!this.allowOrigin(req, res)) throw new McpHttpError(403, RpcCode.Forbidden, `Forbidden: origin ${req.headers.origin} is not allowed`, { code: 'AUTH_FORBIDDEN' });
    if (req.method === 'OPTIONS' && req.headers.origin !== undefined) return preflight(res);
    if (req.method !== 'GET' && req.method !== 'POST' && req.method !== 'DELETE') {
      throw new McpHttpError(405, RpcCode.Server, 'Method not allowed: /mcp takes POST, GET and DELETE', undefined, { Allow: 'GET, POST, DELETE' });
    }
    const principal = await this.authenticate(req);
    if (!hasPermission(principal.roles, 'mcp:call')) throw new ZiggieError('AUTH_FORBIDDEN', 'permission mcp:call required');
    const caller: Caller = { subject: principal.subject, roles: principal.roles, workspaces: principal.workspaces };

    const accept = req.headers.accept ?? '';
    if (req.method === 'POST') {
      if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
        throw new McpHttpError(406, RpcCode.Server, 'Not Acceptable: the client must accept both application/json and text/event-stream');
      }
      if (!isJsonContentType(req.headers['content-type'])) throw new McpHttpError(415, RpcCode.Server, 'Unsupported Media Type: Content-Type must be application/json');
    } else if (req.method === 'GET' && !accept.includes('text/event-stream')) {
      throw new McpHttpError(406, RpcCode.Server, 'Not Acceptable: the client must accept text/event-stream');
    }
    const body: unknown = req.method === 'POST' ? req.body : undefined;
    const batch = Array.isArray(body);
    if (req.method === 'POST') this.assertMessages(body);

    const sessionId = req.headers['mcp-session-id'];
    let session: LiveSession | undefined;
    if (typeof sessionId === 'string' && sessionId) {
      session = this.live.get(sessionId) ?? (await this.restore(sessionId));
      // A session belongs to the subject that opened it; anyone else is told it does not exist.
      if (!session || session.caller.subject !== caller.subject) throw new ZiggieError('MCP_SESSION_NOT_FOUND', 'Session not found: initialize a new one');
      if (!canAccessWorkspace(caller.workspaces, session.workspace)) throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', `workspace ${session.workspace} is not allowed for this token`);
      const version = req.headers['mcp-protocol-version'];
      if (version !== undefined) {
        const v = Array.isArray(version) ? version.join(',') : version;
        if (!SUPPORTED_PROTOCOL_VERSIONS.includes(v)) {
          throw new McpHttpError(400, RpcCode.Server, `Bad Request: unsupported protocol version ${v} (supported: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`);
        }
        if (v !== session.protocolVersion) throw new McpHttpError(400, RpcCode.Server, `Bad Request: MCP-Protocol-Version ${v} differs from the session's negotiated version ${session.protocolVersion}`);
      }
      if (batch && session.protocolVersion >= NO_BATCH_FROM) {
        throw new McpHttpError(400, RpcCode.InvalidRequest, `Invalid Request: JSON-RPC batches are not supported in protocol version ${session.protocolVersion}; send one message per request`);
      }
      session.caller = caller;
    } else if (req.method === 'POST' && !batch && isInitializeRequest(body)) {
      session = this.open(caller, this.workspaceFor(caller, req.headers[WORKSPACE_HEADER]), body as unknown as Record<string, unknown>);
    } else if (req.method === 'POST' && batch) {
      throw new McpHttpError(400, RpcCode.InvalidRequest, 'Invalid Request: a session starts with one initialize request, never in a batch');
    } else {
      throw new McpHttpError(400, RpcCode.Server, 'Bad Request: Mcp-Session-Id header is required (only an initialize request may come without it)', { code: 'VALIDATION_FAILED' });
    }
    session.lastSeen = Date.now();
    this.touch(session);
    const s = session;
    if (req.method === 'POST' && !batch) {
      const cancelled = cancelledRequestId(body);
      if (cancelled !== undefined) s.inflight.get(cancelled)?.abort(new Error('cancelled by the client'));
      const call = directToolCall(body);
      if (call && s.id) return this.answerToolCall(s, call, res);
    }
    // Last-Event-ID this session does not hold (evicted, or issued by another replica): a fresh stream instead.
    const lastEventId = req.headers['last-event-id'];
    const resuming = req.method === 'GET' && typeof lastEventId === 'string' && s.events !== undefined && (await s.events.getStreamIdForEventId(lastEventId)) !== undefined;
    await getRequestListener(
      async (webRequest) => {
        if (req.method === 'GET' && lastEventId !== undefined && !resuming) {
          const headers = new Headers(webRequest.headers);
          headers.delete('last-event-id');
          webRequest = new Request(webRequest.url, { method: 'GET', headers, signal: webRequest.signal });
        }
        const response = await s.transport.handleRequest(webRequest, { parsedBody: body });
        return req.method === 'GET' && !resuming ? this.primed(s, response) : response;
      },
      { overrideGlobalObjects: false },
    )(req.raw, res);
  }

  /**
   * A tools/call of a live session, answered as one JSON response (which streamable HTTP allows
   * for any request) without the SDK's server transport, its web-standard adapter and the SSE
   * stream it opens per request: the call path under load. What the SDK would do is kept: the
   * request and the result are checked against the protocol's schemas, errors are the same
   * JSON-RPC errors, a `notifications/cancelled` for the request or the client going away aborts
   * it (and a cancelled request gets no JSON-RPC answer). A call with a progress token, or one
   * creating a task, takes the SDK's path: progress needs a stream.
   */
  private async answerToolCall(session: LiveSession, call: DirectToolCall, res: ServerResponse): Promise<void> {
    const abort = new AbortController();
    session.inflight.set(call.id, abort);
    const onClose = () => {
      if (!res.writableFinished) abort.abort(new Error('the client went away'));
    };
    res.once('close', onClose);
    let message: JSONRPCMessage;
    try {
      const request = CallToolRequestSchema.safeParse({ method: 'tools/call', params: call.params });
      if (!request.success) throw new McpError(ErrorCode.InvalidParams, `Invalid tools/call request: ${request.error.message}`);
      const result = CallToolResultSchema.safeParse(
        await this.tools.callTool({ caller: session.caller, workspace: session.workspace, name: request.data.params.name, arguments: request.data.params.arguments ?? {}, signal: abort.signal }),
      );
      if (!result.success) throw new McpError(ErrorCode.InvalidParams, `Invalid tools/call result: ${result.error.message}`);
      message = { jsonrpc: '2.0', id: call.id, result: result.data };
    } catch (err) {
      const e = toMcpError(err);
      message = withPlainMessage({ jsonrpc: '2.0', id: call.id, error: { code: e.code, message: e.message, ...(e.data !== undefined ? { data: e.data } : {}) } });
    } finally {
      session.inflight.delete(call.id);
      res.off('close', onClose);
    }
    if (res.destroyed) return;
    if (abort.signal.aborted) {
      res.writeHead(202).end();
      return;
    }
    const text = JSON.stringify(message);
    res.writeHead(200, { 'Content-Type': 'application/json', 'mcp-session-id': session.id, 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  /**
   * A POST body is one JSON-RPC message (or, before 2025-06-18, a batch of them): anything else
   * is an Invalid Request (-32600), answered before a session or transport sees it.
   */
  private assertMessages(body: unknown): void {
    const messages = Array.isArray(body) ? body : [body];
    if (messages.length === 0) throw new McpHttpError(400, RpcCode.InvalidRequest, 'Invalid Request: an empty batch');
    for (const m of messages) {
      if (!JSONRPCMessageSchema.safeParse(m).success) throw new McpHttpError(400, RpcCode.InvalidRequest, 'Invalid Request: the body is not a JSON-RPC 2.0 request, notification or response');
    }
  }

  /**
   * The standalone GET stream on 2025-11-25 and later starts, like every POST stream, with a
   * priming event (an id, the retry advice, empty data), so a client can resume it from there.
   */
  private async primed(session: LiveSession, response: Response): Promise<Response> {
    const events = session.events;
    if (!events || session.protocolVersion < PRIMING_FROM || response.status !== 200 || !response.body || !response.headers.get('content-type')?.includes('text/event-stream')) return response;
    const id = await events.storeEvent(STANDALONE_STREAM, {} as JSONRPCMessage);
    const retry = this.config.extra.MCP_SSE_RETRY_MS;
    const priming = new TextEncoder().encode(`id: ${id}\n${retry > 0 ? `retry: ${retry}\n` : ''}data: \n\n`);
    const source = response.body.getReader();
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => controller.enqueue(priming),
      pull: async (controller) => {
        const { done, value } = await source.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: (reason) => source.cancel(reason),
    });
    return new Response(stream, { status: response.status, headers: response.headers });
  }

  /** The token, checked as the REST guard checks it: one Authorization header, never in the query. */
  private async authenticate(req: FastifyRequest): Promise<Caller> {
    if (!this.config.auth.enabled) return { ...ANONYMOUS_ADMIN, roles: [...ANONYMOUS_ADMIN.roles], workspaces: [...ANONYMOUS_ADMIN.workspaces] };
    const query = req.query as Record<string, unknown> | undefined;
    if (query && TOKEN_QUERY_PARAMETERS.some((name) => Object.hasOwn(query, name))) throw new ZiggieError('AUTH_INVALID_TOKEN', 'tokens are accepted only in the Authorization header');
    const header = req.headers.authorization;
    let lines = 0;
    const raw = req.raw.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) if (raw[i]?.toLowerCase() === 'authorization') lines++;
    if (Array.isArray(header) || lines > 1) throw new ZiggieError('AUTH_INVALID_TOKEN', 'more than one Authorization header');
    return this.verified(bearerToken(header));
  }

  /** Answers a refusal: JSON-RPC error body (id null: it is about the HTTP request), status, challenge. */
  private reply(req: FastifyRequest, res: ServerResponse, err: unknown): void {
    let refusal: McpHttpError;
    if (err instanceof McpHttpError) refusal = err;
    else if (err instanceof ZiggieError) {
      const status = ErrorCodes[err.code].http;
      const headers: Record<string, string> = {};
      const challenge = this.metadata.challenge(req, status, err);
      if (challenge) headers['WWW-Authenticate'] = challenge;
      const retryAfter = err.extras.retryAfterSeconds;
      if (typeof retryAfter === 'number') headers['Retry-After'] = String(Math.ceil(retryAfter));
      refusal = new McpHttpError(status, rpcCodeOf(err), err.message, { code: err.code, ...err.extras }, headers);
    } else {
      this.logger.error(`unexpected error on /mcp: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      refusal = new McpHttpError(500, RpcCode.InternalError, 'Internal error', { code: 'INTERNAL' });
    }
    if (res.headersSent) {
      if (!res.writableEnded) res.end();
      return;
    }
    const error = { code: refusal.rpcCode, message: refusal.message, ...(refusal.data ? { data: refusal.data } : {}) };
    const body = JSON.stringify({ jsonrpc: '2.0', id: null, error });
    res.writeHead(refusal.status, { ...refusal.headers, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  /**
   * Verifies a bearer token, remembering a good one until it expires (at most a minute): an MCP
   * client sends the same token with every request of its session.
   */
  private async verified(token: string): Promise<Caller> {
    const now = Date.now();
    const hit = this.tokens.get(token);
    if (hit && hit.until > now) return hit.principal;
    const principal = await this.verifier.verify(token);
    let exp = now;
    try {
      exp = (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp: number }).exp * 1000;
    } catch {
      // verify() accepted it, so this cannot fail; without exp nothing is cached.
    }
    if (this.tokens.size >= TOKEN_CACHE_SIZE) this.tokens.clear();
    this.tokens.set(token, { principal, until: Math.min(exp, now + 60_000) });
    return principal;
  }

  /** The session's workspace: the one asked for (if the token holds it), else the token's first; none is refused as on REST. */
  private workspaceFor(caller: Caller, header: string | string[] | undefined): string {
    if (Array.isArray(header)) throw new ZiggieError('VALIDATION_FAILED', `one ${WORKSPACE_HEADER} header at most`);
    if (caller.workspaces.length === 0) throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', 'this token holds no workspace');
    if (header) {
      if (!caller.workspaces.includes('*') && !caller.workspaces.includes(header)) throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', `workspace ${header} is not allowed for this token`);
      return header;
    }
    const first = caller.workspaces.find((w) => w !== '*');
    return first ?? DEFAULT_WORKSPACES[0]!.id;
  }

  /** A new session; the store record is written when the transport assigns the id. */
  private open(caller: Caller, workspace: string, initialize: Record<string, unknown>, id?: string, negotiated?: string): LiveSession {
    const session = {} as LiveSession;
    const protocolVersion = negotiated ?? negotiatedVersion((initialize.params as { protocolVersion?: unknown } | undefined)?.protocolVersion);
    const capacity = this.config.extra.MCP_RESUME_EVENTS;
    const events = capacity > 0 ? new SessionEventStore(capacity, this.config.extra.MCP_RESUME_BYTES) : undefined;
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => id ?? randomUUID(),
      eventStore: events,
      retryInterval: this.config.extra.MCP_SSE_RETRY_MS > 0 ? this.config.extra.MCP_SSE_RETRY_MS : undefined,
      onsessioninitialized: async (sid) => {
        session.id = sid;
        this.live.set(sid, session);
        if (id) return;
        const record: StoredSession = { subject: caller.subject, workspace, protocolVersion, initialize, createdAt: new Date().toISOString() };
        await this.store.putSession(sid, record).catch((err: unknown) => this.logger.warn(`session ${sid} not shared: ${err instanceof Error ? err.message : String(err)}`));
      },
      onsessionclosed: async (sid) => {
        this.drop(sid);
        await this.store.deleteSession(sid).catch(() => undefined);
      },
    });
    const send = transport.send.bind(transport);
    transport.send = (message, options) => send(withPlainMessage(message), options);
    Object.assign(session, { transport, caller, workspace, protocolVersion, events, lastSeen: Date.now(), lastTouched: Date.now(), inflight: new Map() });
    const server = this.server(session);
    Object.assign(session, { server, unsubscribe: this.tools.onCatalogChanged(() => this.notifyChanged(session)) });
    transport.onclose = () => {
      if (session.id) this.drop(session.id);
    };
    void server.connect(transport);
    return session;
  }

  /** Picks up a session another replica opened: replays its initialize into a new transport. */
  private restore(id: string): Promise<LiveSession | undefined> {
    let pending = this.restoring.get(id);
    if (!pending) {
      pending = (async () => {
        const stored = await this.store.getSession(id).catch(() => undefined);
        if (!stored) return undefined;
        const negotiated = negotiatedVersion(stored.protocolVersion || (stored.initialize.params as { protocolVersion?: unknown } | undefined)?.protocolVersion);
        const session = this.open({ subject: stored.subject, roles: [], workspaces: [] }, stored.workspace, stored.initialize, id, negotiated);
        // The initialize goes in without a session id (it creates one); what follows carries it.
        const replay = async (message: Record<string, unknown>, headers: Record<string, string>): Promise<void> => {
          const request = new Request('http://replay.local/mcp', {
            method: 'POST',
            headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
            body: JSON.stringify(message),
          });
          await (await session.transport.handleRequest(request, { parsedBody: message })).text();
        };
        await replay(stored.initialize, {});
        await replay({ jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': id, 'mcp-protocol-version': negotiated });
        this.logger.log(`session ${id} picked up from the shared store`);
        return session;
      })().finally(() => this.restoring.delete(id));
      this.restoring.set(id, pending);
    }
    return pending;
  }

  /** Keeps the shared record from expiring while the session is in use, without a write per request. */
  private touch(session: LiveSession): void {
    const now = Date.now();
    if (now - session.lastTouched < this.config.extra.MCP_SESSION_TTL_MS / 4) return;
    session.lastTouched = now;
    void this.store
      .getSession(session.id)
      .then((s) => (s ? this.store.putSession(session.id, s) : undefined))
      .catch(() => undefined);
  }

  private notifyChanged(session: LiveSession): void {
    if (!session.id) return;
    void session.server.sendToolListChanged().catch(() => undefined);
    void session.server.sendPromptListChanged().catch(() => undefined);
    void session.server.sendResourceListChanged().catch(() => undefined);
  }

  private drop(id: string): void {
    const s = this.live.get(id);
    if (!s) return;
    this.live.delete(id);
    s.unsubscribe();
    void this.tools.releaseSession(id);
  }

  /**
   * An upstream's log message goes to each session that may see the upstream and asked for that
   * level (logger prefixed with the server name); a resource update to each session subscribed
   * to that resource.
   */
  private relay(provider: ToolProvider, n: ProviderNotification): void {
    for (const s of this.live.values()) {
      if (!s.id || !this.tools.canSee(provider, s.caller, s.workspace)) continue;
      if (n.method === 'notifications/message') {
        if (!s.logLevel || logLevelRank(n.params.level) < logLevelRank(s.logLevel)) continue;
        const logger = n.params.logger ? `${provider.name}.${n.params.logger}` : provider.name;
        void s.server.notification({ method: 'notifications/message', params: { ...n.params, logger } }).catch(() => undefined);
      } else if (this.tools.isSubscribed(s.id, provider, n.params.uri)) {
        void s.server.sendResourceUpdated({ uri: n.params.uri }).catch(() => undefined);
      }
    }
  }

  private sweep(): void {
    const idle = Date.now() - this.config.extra.MCP_SESSION_TTL_MS;
    for (const s of [...this.live.values()]) {
      if (s.lastSeen < idle) {
        this.drop(s.id);
        void s.transport.close().catch(() => undefined);
      }
    }
  }

  private server(session: LiveSession): Server {
    // What the upstreams offer beyond tools, resources and prompts, when the session starts.
    const f = this.tools.features();
    const server = new Server(
      { name: 'ziggie-mcp-gateway', title: 'Ziggie Command Center tools', version: '0.1.0' },
      {
        capabilities: {
          tools: { listChanged: true },
          resources: { listChanged: true, ...(f.subscribe ? { subscribe: true } : {}) },
          prompts: { listChanged: true },
          ...(f.logging ? { logging: {} } : {}),
          ...(f.completions ? { completions: {} } : {}),
        },
      },
    );
    const wrap =
      <A extends unknown[], R>(fn: (...args: A) => R | Promise<R>) =>
      async (...args: A): Promise<R> => {
        try {
          return await fn(...args);
        } catch (err) {
          throw toMcpError(err);
        }
      };
    server.setRequestHandler(
      ListToolsRequestSchema,
      wrap((req) => {
        const page = pageOf(this.tools.visibleToolDefinitions(session.caller, session.workspace), req.params?.cursor, LIST_PAGE_SIZE);
        return { tools: page.items, ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
      }),
    );
    server.setRequestHandler(
      CallToolRequestSchema,
      wrap(async (req, extra) => {
        const token = req.params._meta?.progressToken;
        return this.tools.callTool({
          caller: session.caller,
          workspace: session.workspace,
          name: req.params.name,
          arguments: req.params.arguments ?? {},
          signal: extra.signal,
          onProgress:
            token === undefined
              ? undefined
              : (p) => void extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: p.progress, total: p.total, message: p.message } }).catch(() => undefined),
        });
      }),
    );
    server.setRequestHandler(
      ListPromptsRequestSchema,
      wrap((req) => {
        const page = pageOf(this.tools.visiblePrompts(session.caller, session.workspace), req.params?.cursor, LIST_PAGE_SIZE);
        return { prompts: page.items.map((p) => ({ ...p.definition, name: p.name })), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
      }),
    );
    server.setRequestHandler(
      GetPromptRequestSchema,
      wrap((req, extra) => this.tools.getPrompt(session.caller, session.workspace, req.params.name, req.params.arguments ?? {}, extra.signal)),
    );
    server.setRequestHandler(
      ListResourcesRequestSchema,
      wrap((req) => {
        const all = this.tools.visibleResources(session.caller, session.workspace).map((r) => ({ ...r, name: r.uri }));
        const page = pageOf(all, req.params?.cursor, LIST_PAGE_SIZE);
        return { resources: page.items.map((r) => r.definition), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
      }),
    );
    server.setRequestHandler(
      ListResourceTemplatesRequestSchema,
      wrap((req) => {
        const all = this.tools.visibleResourceTemplates(session.caller, session.workspace).map((t) => ({ name: t.uriTemplate, t }));
        const page = pageOf(all, req.params?.cursor, LIST_PAGE_SIZE);
        return { resourceTemplates: page.items.map((i) => i.t.definition), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
      }),
    );
    if (f.completions) {
      server.setRequestHandler(
        CompleteRequestSchema,
        wrap((req, extra) => this.tools.complete(session.caller, session.workspace, req.params, extra.signal)),
      );
    }
    if (f.logging) {
      server.setRequestHandler(
        SetLevelRequestSchema,
        wrap(async (req) => {
          session.logLevel = req.params.level;
          await this.tools.setLogLevel(session.id, req.params.level);
          return {};
        }),
      );
    }
    if (f.subscribe) {
      server.setRequestHandler(
        SubscribeRequestSchema,
        wrap(async (req) => {
          await this.tools.subscribe(session.id, session.caller, session.workspace, req.params.uri);
          return {};
        }),
      );
      server.setRequestHandler(
        UnsubscribeRequestSchema,
        wrap(async (req) => {
          await this.tools.unsubscribe(session.id, req.params.uri);
          return {};
        }),
      );
    }
    server.setRequestHandler(
      ReadResourceRequestSchema,
      wrap((req, extra) => this.tools.readResource(session.caller, session.workspace, req.params.uri, extra.signal)),
    );
    return server;
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.sweeper);
    this.stopRelay();
    // Local transports close; the shared records stay so another replica can continue the sessions.
    await Promise.allSettled([...this.live.values()].map((s) => s.transport.close()));
    this.live.clear();
  }
}

/**
 * MCP streamable HTTP (protocol 2025-11-25, 2025-06-18 and older) at /mcp, and its OAuth 2.0
 * protected resource metadata (RFC 9728) for MCP clients to discover where tokens come from.
 */
@Public()
@Controller()
export class McpHttpController {
  constructor(private readonly sessions: McpSessions) {}

  @Get(PROTECTED_RESOURCE_PATH.slice(1))
  rootMetadata(@Req() req: FastifyRequest, @Res() res: FastifyReply): void {
    this.sendMetadata(req, res, true);
  }

  @Get(`${PROTECTED_RESOURCE_PATH.slice(1)}/mcp`)
  mcpMetadata(@Req() req: FastifyRequest, @Res() res: FastifyReply): void {
    this.sendMetadata(req, res, false);
  }

  private sendMetadata(req: FastifyRequest, res: FastifyReply, atRoot: boolean): void {
    // Public metadata: any page may read it (browser-based MCP clients discover from it).
    res.header('Access-Control-Allow-Origin', '*');
    res.header('Cache-Control', 'public, max-age=300');
    // Without MCP_PUBLIC_URL the document names the Host it was asked at.
    res.header('Vary', 'Host');
    res.code(200).type('application/json; charset=utf-8').send(JSON.stringify(this.sessions.metadata.document(req, atRoot)));
  }

  // The token is verified by McpSessions (per request, and bound to the session's subject).
  @All('mcp')
  async mcp(@Req() req: FastifyRequest, @Res() res: FastifyReply): Promise<void> {
    await this.sessions.handle(req, res);
  }
}
