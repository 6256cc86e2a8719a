import { randomUUID } from 'node:crypto';
import { All, Controller, Inject, Injectable, Logger, OnApplicationShutdown, Req, Res } from '@nestjs/common';
import { getRequestListener } from '@hono/node-server';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  GetPromptRequestSchema,
  isInitializeRequest,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { DEFAULT_WORKSPACES, ErrorCodes, hasPermission, ZiggieError } from '@ziggie/contracts';
import { bearerToken, CONFIG, JwtVerifier, Public } from '@ziggie/platform';
import type { Request as ExpressRequest, Response as ExpressResponse } from 'express';
import { pageOf } from './catalog';
import { McpConfig } from './config';
import { McpStore, StoredSession } from './store';
import { Caller, ToolsService } from './tools.service';

/** Tools per tools/list page: a catalog of 10 servers × 100 tools in one page. */
const LIST_PAGE_SIZE = 1000;
const WORKSPACE_HEADER = 'x-ziggie-workspace';
const TOKEN_CACHE_SIZE = 10_000;

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
    z.code === 'TOOL_NOT_FOUND' || z.code === 'TOOL_INVALID_ARGUMENTS' || z.code === 'TOOL_QUARANTINED' || z.code === 'VALIDATION_FAILED' || z.code === 'NOT_FOUND'
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
  return new McpError(code, z.message, { code: z.code, ...z.extras });
}

interface LiveSession {
  id: string;
  transport: WebStandardStreamableHTTPServerTransport;
  server: Server;
  caller: Caller;
  workspace: string;
  lastSeen: number;
  lastTouched: number;
  unsubscribe: () => void;
}

/**
 * MCP streamable HTTP sessions over the whole catalog. A session is bound to the token's
 * subject and one workspace, recorded in the shared store, and can be picked up by any
 * replica: the client's initialize request is replayed into a fresh transport there.
 */
@Injectable()
export class McpSessions implements OnApplicationShutdown {
  private readonly logger = new Logger('mcp');
  private readonly live = new Map<string, LiveSession>();
  private readonly restoring = new Map<string, Promise<LiveSession | undefined>>();
  private readonly allowedOrigins: Set<string>;
  private readonly sweeper: NodeJS.Timeout;
  private readonly tokens = new Map<string, { principal: Caller; until: number }>();

  constructor(
    @Inject(CONFIG) private readonly config: McpConfig,
    private readonly tools: ToolsService,
    private readonly store: McpStore,
    private readonly verifier: JwtVerifier,
  ) {
    this.allowedOrigins = new Set(config.extra.MCP_ALLOWED_ORIGINS.split(',').map((s) => s.trim()).filter(Boolean));
    this.sweeper = setInterval(() => this.sweep(), Math.min(60_000, config.extra.MCP_SESSION_TTL_MS / 2));
    this.sweeper.unref();
  }

  get sessionCount(): number {
    return this.live.size;
  }

  async handle(req: ExpressRequest, res: ExpressResponse): Promise<void> {
    // Browsers send Origin: refuse every page not explicitly allowed (DNS rebinding defence).
    const origin = req.headers.origin;
    if (origin !== undefined && !this.allowedOrigins.has(origin)) throw new ZiggieError('AUTH_FORBIDDEN', `origin ${origin} is not allowed`);
    const header = req.headers.authorization;
    if (Array.isArray(header)) throw new ZiggieError('AUTH_INVALID_TOKEN', 'more than one Authorization header');
    const principal = await this.verified(bearerToken(header));
    if (!hasPermission(principal.roles, 'mcp:call')) throw new ZiggieError('AUTH_FORBIDDEN', 'permission mcp:call required');
    const caller: Caller = { subject: principal.subject, roles: principal.roles, workspaces: principal.workspaces };

    const sessionId = req.headers['mcp-session-id'];
    let session: LiveSession | undefined;
    if (typeof sessionId === 'string' && sessionId) {
      session = this.live.get(sessionId) ?? (await this.restore(sessionId));
      // A session belongs to the subject that opened it; anyone else is told it does not exist.
      if (!session || session.caller.subject !== caller.subject) throw new ZiggieError('MCP_SESSION_NOT_FOUND', 'MCP session not found; initialize a new one');
      session.caller = caller;
    } else if (req.method === 'POST' && isInitializeRequest(req.body)) {
      session = this.open(caller, this.workspaceFor(caller, req.headers[WORKSPACE_HEADER]), req.body as unknown as Record<string, unknown>);
    } else {
      throw new ZiggieError('VALIDATION_FAILED', 'an MCP request without Mcp-Session-Id must be an initialize request');
    }
    session.lastSeen = Date.now();
    this.touch(session);
    const s = session;
    const body: unknown = req.method === 'POST' ? req.body : undefined;
    await getRequestListener((webRequest) => s.transport.handleRequest(webRequest, { parsedBody: body }), { overrideGlobalObjects: false })(req, res);
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

  private workspaceFor(caller: Caller, header: string | string[] | undefined): string {
    if (Array.isArray(header)) throw new ZiggieError('VALIDATION_FAILED', `one ${WORKSPACE_HEADER} header at most`);
    if (header) {
      if (!caller.workspaces.includes('*') && !caller.workspaces.includes(header)) throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', `workspace ${header} is not allowed for this token`);
      return header;
    }
    const first = caller.workspaces.find((w) => w !== '*');
    return first ?? DEFAULT_WORKSPACES[0]!.id;
  }

  /** A new session; the store record is written when the transport assigns the id. */
  private open(caller: Caller, workspace: string, initialize: Record<string, unknown>, id?: string): LiveSession {
    const session = {} as LiveSession;
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => id ?? randomUUID(),
      onsessioninitialized: async (sid) => {
        session.id = sid;
        this.live.set(sid, session);
        if (id) return;
        const params = (initialize.params ?? {}) as { protocolVersion?: string };
        const record: StoredSession = { subject: caller.subject, workspace, protocolVersion: params.protocolVersion ?? '', initialize, createdAt: new Date().toISOString() };
        await this.store.putSession(sid, record).catch((err: unknown) => this.logger.warn(`session ${sid} not shared: ${err instanceof Error ? err.message : String(err)}`));
      },
      onsessionclosed: async (sid) => {
        this.drop(sid);
        await this.store.deleteSession(sid).catch(() => undefined);
      },
    });
    const server = this.server(session);
    Object.assign(session, { transport, server, caller, workspace, lastSeen: Date.now(), lastTouched: Date.now(), unsubscribe: this.tools.onCatalogChanged(() => this.notifyChanged(session)) });
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
        const session = this.open({ subject: stored.subject, roles: [], workspaces: [] }, stored.workspace, stored.initialize, id);
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
        await replay({ jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': id, 'mcp-protocol-version': stored.protocolVersion });
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
    const server = new Server(
      { name: 'ziggie-mcp-gateway', title: 'Ziggie Command Center tools', version: '0.1.0' },
      { capabilities: { tools: { listChanged: true }, resources: { listChanged: true }, prompts: { listChanged: true } } },
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
    server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({ resourceTemplates: [] }));
    server.setRequestHandler(
      ReadResourceRequestSchema,
      wrap((req, extra) => this.tools.readResource(session.caller, session.workspace, req.params.uri, extra.signal)),
    );
    return server;
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.sweeper);
    // Local transports close; the shared records stay so another replica can continue the sessions.
    await Promise.allSettled([...this.live.values()].map((s) => s.transport.close()));
    this.live.clear();
  }
}

/** MCP streamable HTTP (protocol 2025-06-18, 2025-11-25 and older) at /mcp. */
@Public()
@Controller()
export class McpHttpController {
  constructor(private readonly sessions: McpSessions) {}

  // The token is verified by McpSessions (per request, and bound to the session's subject).
  @All('mcp')
  async mcp(@Req() req: ExpressRequest, @Res() res: ExpressResponse): Promise<void> {
    await this.sessions.handle(req, res);
  }
}
