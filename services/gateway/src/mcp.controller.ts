import { Controller, Delete, Get, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  Cursors,
  McpPromptList,
  McpPromptResult,
  McpResourceList,
  McpResourceRead,
  McpServerName,
  McpStatsResponse,
  normalizeUpstream,
  pb,
  UpstreamSchema,
  ZiggieError,
  type McpResourceListView,
  type McpStatsView,
  type McpWindowFigures,
} from '@ziggie/contracts';
import {
  ApiDoc,
  assertWorkspace,
  callStream,
  CurrentPrincipal,
  currentCorrelationId,
  PeerClients,
  Principal,
  problemOf,
  RequirePermission,
  toZiggieError,
  ValidBody,
  ValidQuery,
} from '@ziggie/platform';
import { z } from 'zod';
import { page, pageQuery } from './pagination';
import { openEventStream } from './sse';

const ToolName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}\.[A-Za-z0-9_.-]{1,64}$/, 'not a tool name (server.tool)');
const ToolsQuery = pageQuery(Cursors.mcpCatalog).extend({ server: McpServerName.optional() }).strict();
const PinsQuery = z.object({ quarantined: z.enum(['true', 'false']).optional() }).strict();
const CallBody = z
  .object({
    arguments: z.record(z.string(), z.unknown()).optional(),
    workspace: z.string().min(1).max(63).optional(),
    timeoutMs: z.number().int().min(100).max(600_000).optional(),
  })
  .strict();
const Workspace = z.string().min(1).max(63);
const CatalogQuery = pageQuery(Cursors.mcpCatalog)
  .extend({ server: McpServerName.optional(), workspace: Workspace.optional().describe('Lists what the servers\' ACLs allow in this workspace (one of the token\'s); absent: in any of them') })
  .strict();
const ReadQuery = z
  .object({
    uri: z.string().min(1).max(2048).regex(/^[A-Za-z][A-Za-z0-9+.-]*:/, 'a URI with a scheme').describe('A listed resource\'s URI, or one a listed template matches'),
    workspace: Workspace.optional(),
  })
  .strict();
const PromptName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}\.[A-Za-z0-9_.-]{1,64}$/, 'not a prompt name (server.prompt)');
const PromptBody = z
  .object({
    arguments: z.record(z.string().min(1).max(128), z.string().max(65_536)).optional().describe('The prompt\'s declared arguments, as strings'),
    workspace: Workspace.optional(),
  })
  .strict();
const StatsQuery = z.object({ workspace: Workspace.optional().describe('Only this workspace (one of the token\'s); absent: all of them') }).strict();
const ApproveBody = z.object({ hash: z.string().regex(/^[a-fA-F0-9]{64}$/, 'a sha256 in hex') }).strict();
/** `url` is accepted as a shorthand for a one-element `urls`. */
const ServerBody = z.preprocess(normalizeUpstream, UpstreamSchema);

/** Default tool time limit assumed when the caller sets none (mcp-gateway's own default). */
const DEFAULT_TOOL_TIMEOUT_MS = 60_000;

function pathParam<T>(schema: z.ZodType<T>, name: string, value: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new ZiggieError('VALIDATION_FAILED', `${name}: ${r.error.issues[0]?.message ?? 'invalid'}`, { errors: [{ path: name, message: r.error.issues[0]?.message }] });
  return r.data;
}

/** The workspace a call runs in: the one asked for (if the token holds it), else the token's first. */
function workspaceFor(principal: Principal, asked: string | undefined): string {
  if (asked !== undefined) {
    assertWorkspace(principal, asked);
    return asked;
  }
  const first = principal.workspaces.find((w) => w !== '*');
  if (first) return first;
  // A "*" token with no concrete workspace calls unscoped; a token without any workspace may not call.
  if (principal.workspaces.includes('*')) return '';
  throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', 'this token holds no workspace');
}

function wantsEventStream(req: FastifyRequest): boolean {
  const accept = req.headers.accept;
  return typeof accept === 'string' && accept.toLowerCase().includes('text/event-stream');
}

/** A window's figures as REST gives them: no p50/p95 is null, not absent. */
export function windowFigures(w: pb.ToolStatsWindow | undefined, minutes: number): McpWindowFigures {
  return {
    minutes: w?.minutes ?? minutes,
    calls: w?.calls ?? 0,
    errors: w?.errors ?? 0,
    callsPerMinute: w?.callsPerMinute ?? 0,
    errorsPerMinute: w?.errorsPerMinute ?? 0,
    p50Ms: w?.p50Ms ?? null,
    p95Ms: w?.p95Ms ?? null,
  };
}

/** The MCP CallToolResult, with the peer's error flag carried in it. */
function callToolResult(r: pb.ToolResult): Record<string, unknown> {
  return { ...(r.result ?? {}), isError: r.isError };
}

/** The MCP tool catalog, tool calls (JSON or SSE) and its administration, relayed to mcp-gateway. */
@Controller('v1/mcp')
export class McpController {
  constructor(private readonly peers: PeerClients) {}

  private mcp(): Promise<pb.McpGatewayClient> {
    return this.peers.get('mcp-gateway', pb.McpGatewayClient);
  }

  private api() {
    return this.peers.api('mcp-gateway', pb.McpGatewayClient);
  }

  @Get('servers')
  @RequirePermission('mcp:call')
  @ApiDoc({ summary: 'Upstream MCP servers with their status, breaker state and tool counts' })
  async servers(@CurrentPrincipal() principal: Principal): Promise<object> {
    const res = await this.api().listServers({ principal });
    return { items: res.items, total: res.items.length };
  }

  @Post('servers')
  @HttpCode(201)
  @RequirePermission('config:change')
  @ApiDoc({ summary: 'Add an upstream MCP server (stdio, HTTP, SSE, WebSocket, ComfyUI, Ollama, OpenAI-compatible)', errors: ['SERVER_EXISTS', 'URL_NOT_ALLOWED', 'UPSTREAM_UNAVAILABLE'] })
  async addServer(@ValidBody(ServerBody, 'VALIDATION_FAILED', UpstreamSchema) config: z.infer<typeof UpstreamSchema>, @CurrentPrincipal() principal: Principal): Promise<pb.Server> {
    return this.api().addServer({ principal, config: config as unknown as Record<string, unknown> }, { timeoutMs: 30_000 });
  }

  @Delete('servers/:name')
  @HttpCode(200)
  @RequirePermission('config:change')
  @ApiDoc({ summary: 'Remove an upstream MCP server', errors: ['SERVER_NOT_FOUND'] })
  async removeServer(@Param('name') name: string, @CurrentPrincipal() principal: Principal): Promise<object> {
    const server = pathParam(McpServerName, 'name', name);
    const res = await this.api().removeServer({ principal, name: server }, { timeoutMs: 30_000 });
    return { name: res.name };
  }

  @Get('tools')
  @RequirePermission('mcp:call')
  @ApiDoc({ summary: 'The tool catalog the token may call (namespaced server.tool)' })
  async tools(@ValidQuery(ToolsQuery) q: z.infer<typeof ToolsQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    const res = await this.api().listTools({ principal, page: { limit: q.limit, cursor: q.cursor ?? '' }, server: q.server ?? '' });
    return page(res.items, res.total, res.nextCursor);
  }

  /**
   * Calls a tool. With `Accept: text/event-stream` the answer is SSE (`progress`… then `result`,
   * or `error` once streaming has begun); otherwise the JSON `{ result, isError }` when done.
   * Errors before any output are ordinary problem+json. A client that goes away cancels the call.
   */
  @Post('tools/:name/call')
  @HttpCode(200)
  @RequirePermission('mcp:call')
  @ApiDoc({
    summary: 'Call a tool; JSON when done, or SSE progress then result with Accept: text/event-stream',
    errors: ['TOOL_NOT_FOUND', 'TOOL_INVALID_ARGUMENTS', 'TOOL_FORBIDDEN', 'POLICY_DENIED', 'TOOL_QUARANTINED', 'TOOL_RATE_LIMITED', 'TOOL_CALL_FAILED', 'UPSTREAM_UNAVAILABLE', 'UPSTREAM_TIMEOUT', 'POOL_SCALE_TIMEOUT', 'POOL_BACKEND_UNAVAILABLE'],
  })
  async call(
    @Param('name') name: string,
    @ValidBody(CallBody) input: z.infer<typeof CallBody>,
    @CurrentPrincipal() principal: Principal,
    @Req() req: FastifyRequest,
    @Res() res: FastifyReply,
  ): Promise<void> {
    const tool = pathParam(ToolName, 'name', name);
    const workspace = workspaceFor(principal, input.workspace);
    const mcp = await this.mcp();

    const abort = new AbortController();
    const onClose = () => {
      if (!res.raw.writableFinished) abort.abort();
    };
    res.raw.on('close', onClose);
    // mcp-gateway enforces the tool's limit, restarting it on progress up to ten times over;
    // the gRPC deadline is only a backstop beyond that.
    const deadlineMs = 10 * (input.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS) + 5_000;
    const events = callStream(
      mcp.callTool.bind(mcp),
      { name: tool, arguments: input.arguments ?? {}, principal, workspace, correlationId: currentCorrelationId() ?? '', timeoutMs: input.timeoutMs ?? 0 },
      { peer: 'mcp-gateway', timeoutMs: deadlineMs, signal: abort.signal },
    );
    try {
      if (wantsEventStream(req)) await this.relayEvents(events, req, res, abort.signal);
      else await this.answerJson(events, res, abort.signal);
    } finally {
      res.raw.off('close', onClose);
      // Stops the stream (and with it the call) whichever way we got here.
      await events.return(undefined);
    }
  }

  private async answerJson(events: AsyncGenerator<pb.CallToolEvent>, res: FastifyReply, signal: AbortSignal): Promise<void> {
    try {
      for await (const e of events) {
        if (e.event?.$case !== 'result') continue;
        res.code(200).send({ result: e.event.value.result ?? {}, isError: e.event.value.isError });
        return;
      }
    } catch (err) {
      if (signal.aborted) return; // the client left; nobody to answer
      throw err;
    }
    throw new ZiggieError('TOOL_CALL_FAILED', 'the tool call ended without a result');
  }

  private async relayEvents(events: AsyncGenerator<pb.CallToolEvent>, req: FastifyRequest, res: FastifyReply, signal: AbortSignal): Promise<void> {
    // The first event decides: an error before it is still an ordinary problem response.
    let next: IteratorResult<pb.CallToolEvent>;
    try {
      next = await events.next();
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    }

    const stream = openEventStream(res);
    try {
      for (; !next.done; next = await events.next()) {
        const e = next.value.event;
        if (e?.$case === 'progress') stream.send('progress', { progress: e.value.progress, total: e.value.total, message: e.value.message });
        if (e?.$case === 'result') {
          stream.send('result', callToolResult(e.value));
          return;
        }
      }
      throw new ZiggieError('TOOL_CALL_FAILED', 'the tool call ended without a result');
    } catch (err) {
      if (signal.aborted) return;
      stream.send('error', problemOf(toZiggieError(err).error, req.originalUrl, req.id));
    } finally {
      stream.close();
    }
  }

  @Get('stats')
  @RequirePermission('mcp:call')
  @ApiDoc({
    summary: 'Tool calls per minute, failures and p50/p95 latency per tool over the last 5 and 60 minutes, over every mcp-gateway replica, in the token\'s workspaces',
    response: McpStatsResponse,
  })
  async stats(@ValidQuery(StatsQuery) q: z.infer<typeof StatsQuery>, @CurrentPrincipal() principal: Principal): Promise<McpStatsView> {
    if (q.workspace !== undefined) assertWorkspace(principal, q.workspace);
    const res = await this.api().getToolStats({ principal, workspace: q.workspace ?? '' });
    return {
      items: res.items.map((t) => ({ tool: t.tool, server: t.server, last5m: windowFigures(t.last5m, 5), last60m: windowFigures(t.last60m, 60) })),
      total5m: windowFigures(res.total5m, 5),
      total60m: windowFigures(res.total60m, 60),
      replicas: res.replicas,
      bucketBoundsMs: res.bucketBoundsMs,
      at: res.at,
    };
  }

  @Get('resources')
  @RequirePermission('mcp:call')
  @ApiDoc({ summary: 'Resources of the upstream MCP servers the token may read (by URI), and their URI templates', response: McpResourceList })
  async resources(@ValidQuery(CatalogQuery) q: z.infer<typeof CatalogQuery>, @CurrentPrincipal() principal: Principal): Promise<McpResourceListView> {
    if (q.workspace !== undefined) assertWorkspace(principal, q.workspace);
    const res = await this.api().listResources({ principal, page: { limit: q.limit, cursor: q.cursor ?? '' }, server: q.server ?? '', workspace: q.workspace ?? '' });
    return { ...page(res.items, res.total, res.nextCursor), templates: res.templates };
  }

  @Get('resources/read')
  @RequirePermission('mcp:call')
  @ApiDoc({ summary: 'Read a resource (resources/read): its contents, text or base64 blob each', response: McpResourceRead, errors: ['RESOURCE_NOT_FOUND', 'UPSTREAM_UNAVAILABLE', 'UPSTREAM_TIMEOUT', 'UPSTREAM_RESPONSE_TOO_LARGE'] })
  async readResource(@ValidQuery(ReadQuery) q: z.infer<typeof ReadQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    const workspace = workspaceFor(principal, q.workspace);
    const res = await this.api().readResource({ principal, workspace, uri: q.uri }, { timeoutMs: DEFAULT_TOOL_TIMEOUT_MS + 5_000 });
    return res.result ?? { contents: [] };
  }

  @Get('prompts')
  @RequirePermission('mcp:call')
  @ApiDoc({ summary: 'Prompts of the upstream MCP servers the token may get (namespaced server.prompt), with their arguments', response: McpPromptList })
  async prompts(@ValidQuery(CatalogQuery) q: z.infer<typeof CatalogQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    if (q.workspace !== undefined) assertWorkspace(principal, q.workspace);
    const res = await this.api().listPrompts({ principal, page: { limit: q.limit, cursor: q.cursor ?? '' }, server: q.server ?? '', workspace: q.workspace ?? '' });
    return page(res.items, res.total, res.nextCursor);
  }

  @Post('prompts/:name/get')
  @HttpCode(200)
  @RequirePermission('mcp:call')
  @ApiDoc({ summary: 'Get a prompt (prompts/get) with its arguments: its messages', response: McpPromptResult, errors: ['PROMPT_NOT_FOUND', 'PROMPT_INVALID_ARGUMENTS', 'UPSTREAM_UNAVAILABLE', 'UPSTREAM_TIMEOUT'] })
  async getPrompt(@Param('name') name: string, @ValidBody(PromptBody) input: z.infer<typeof PromptBody>, @CurrentPrincipal() principal: Principal): Promise<object> {
    const prompt = pathParam(PromptName, 'name', name);
    const workspace = workspaceFor(principal, input.workspace);
    const res = await this.api().getPrompt({ principal, workspace, name: prompt, arguments: input.arguments ?? {} }, { timeoutMs: DEFAULT_TOOL_TIMEOUT_MS + 5_000 });
    return res.result ?? { messages: [] };
  }

  @Get('pins')
  @RequirePermission('config:change')
  @ApiDoc({ summary: 'Pinned tool definitions; `quarantined=true` lists the changed ones awaiting approval' })
  async pins(@ValidQuery(PinsQuery) q: z.infer<typeof PinsQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    const res = await this.api().listPins({ principal, quarantinedOnly: q.quarantined === 'true' });
    return { items: res.items, total: res.items.length };
  }

  @Post('pins/:name/approve')
  @HttpCode(200)
  @RequirePermission('config:change')
  @ApiDoc({ summary: 'Approve a changed tool definition by its hash', errors: ['PIN_NOT_FOUND'] })
  async approve(@Param('name') name: string, @ValidBody(ApproveBody) input: z.infer<typeof ApproveBody>, @CurrentPrincipal() principal: Principal): Promise<pb.Pin> {
    const tool = pathParam(ToolName, 'name', name);
    return this.api().approvePin({ principal, name: tool, hash: input.hash.toLowerCase() });
  }
}
