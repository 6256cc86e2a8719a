import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { pb, ZiggieError } from '@ziggie/contracts';
import {
  assertWorkspace,
  callStream,
  callUnary,
  CurrentPrincipal,
  currentCorrelationId,
  PeerClients,
  Principal,
  problemOf,
  RequirePermission,
  parseInput,
  toZiggieError,
} from '@ziggie/platform';
import { z } from 'zod';
import { page, PageQuery } from './pagination';
import { openEventStream } from './sse';

const ToolName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}\.[A-Za-z0-9_.-]{1,64}$/, 'not a tool name (server.tool)');
const ServerName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'not a server name');
const ToolsQuery = PageQuery.extend({ server: z.string().max(32).optional() });
const PinsQuery = z.object({ quarantined: z.enum(['true', 'false']).optional() }).loose();
const CallBody = z
  .object({
    arguments: z.record(z.string(), z.unknown()).optional(),
    workspace: z.string().min(1).max(63).optional(),
    timeoutMs: z.number().int().min(100).max(600_000).optional(),
  })
  .strict();
const ApproveBody = z.object({ hash: z.string().regex(/^[a-fA-F0-9]{64}$/, 'a sha256 in hex') }).strict();
const ServerConfig = z.record(z.string(), z.unknown());

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

function wantsEventStream(req: Request): boolean {
  const accept = req.headers.accept;
  return typeof accept === 'string' && accept.toLowerCase().includes('text/event-stream');
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

  @Get('servers')
  @RequirePermission('mcp:call')
  async servers(@CurrentPrincipal() principal: Principal): Promise<object> {
    const mcp = await this.mcp();
    const res = await callUnary(mcp.listServers.bind(mcp), { principal }, { peer: 'mcp-gateway' });
    return { items: res.items, total: res.items.length };
  }

  @Post('servers')
  @HttpCode(201)
  @RequirePermission('config:change')
  async addServer(@Body() body: unknown, @CurrentPrincipal() principal: Principal): Promise<pb.Server> {
    // mcp-gateway owns the configuration format; here it only has to be a JSON object.
    const config = parseInput(ServerConfig, body);
    const mcp = await this.mcp();
    return callUnary(mcp.addServer.bind(mcp), { principal, config }, { peer: 'mcp-gateway', timeoutMs: 30_000 });
  }

  @Delete('servers/:name')
  @HttpCode(200)
  @RequirePermission('config:change')
  async removeServer(@Param('name') name: string, @CurrentPrincipal() principal: Principal): Promise<object> {
    const server = pathParam(ServerName, 'name', name);
    const mcp = await this.mcp();
    const res = await callUnary(mcp.removeServer.bind(mcp), { principal, name: server }, { peer: 'mcp-gateway', timeoutMs: 30_000 });
    return { name: res.name };
  }

  @Get('tools')
  @RequirePermission('mcp:call')
  async tools(@Query() query: unknown, @CurrentPrincipal() principal: Principal): Promise<object> {
    const q = parseInput(ToolsQuery, query);
    const mcp = await this.mcp();
    const res = await callUnary(mcp.listTools.bind(mcp), { principal, page: { limit: q.limit, cursor: q.cursor ?? '' }, server: q.server ?? '' }, { peer: 'mcp-gateway' });
    return page(res.items, res.total, res.nextCursor);
  }

  /**
   * Calls a tool. With `Accept: text/event-stream` the answer is SSE (`progress`… then `result`,
   * or `error` once streaming has begun); otherwise the JSON `{ result, isError }` when done.
   * Errors before any output are ordinary problem+json. A client that goes away cancels the call.
   */
  @Post('tools/:name/call')
  @RequirePermission('mcp:call')
  async call(
    @Param('name') name: string,
    @Body() body: unknown,
    @CurrentPrincipal() principal: Principal,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const tool = pathParam(ToolName, 'name', name);
    const input = parseInput(CallBody, body ?? {});
    const workspace = workspaceFor(principal, input.workspace);
    const mcp = await this.mcp();

    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.on('close', onClose);
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
      res.off('close', onClose);
      // Stops the stream (and with it the call) whichever way we got here.
      await events.return(undefined);
    }
  }

  private async answerJson(events: AsyncGenerator<pb.CallToolEvent>, res: Response, signal: AbortSignal): Promise<void> {
    try {
      for await (const e of events) {
        if (e.event?.$case !== 'result') continue;
        res.status(200).json({ result: e.event.value.result ?? {}, isError: e.event.value.isError });
        return;
      }
    } catch (err) {
      if (signal.aborted) return; // the client left; nobody to answer
      throw err;
    }
    throw new ZiggieError('TOOL_CALL_FAILED', 'the tool call ended without a result');
  }

  private async relayEvents(events: AsyncGenerator<pb.CallToolEvent>, req: Request, res: Response, signal: AbortSignal): Promise<void> {
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
      const echoed = res.getHeader('X-Request-ID');
      stream.send('error', problemOf(toZiggieError(err).error, req.originalUrl, typeof echoed === 'string' ? echoed : currentCorrelationId()));
    } finally {
      stream.close();
    }
  }

  @Get('pins')
  @RequirePermission('config:change')
  async pins(@Query() query: unknown, @CurrentPrincipal() principal: Principal): Promise<object> {
    const q = parseInput(PinsQuery, query);
    const mcp = await this.mcp();
    const res = await callUnary(mcp.listPins.bind(mcp), { principal, quarantinedOnly: q.quarantined === 'true' }, { peer: 'mcp-gateway' });
    return { items: res.items, total: res.items.length };
  }

  @Post('pins/:name/approve')
  @HttpCode(200)
  @RequirePermission('config:change')
  async approve(@Param('name') name: string, @Body() body: unknown, @CurrentPrincipal() principal: Principal): Promise<pb.Pin> {
    const tool = pathParam(ToolName, 'name', name);
    const input = parseInput(ApproveBody, body ?? {});
    const mcp = await this.mcp();
    return callUnary(mcp.approvePin.bind(mcp), { principal, name: tool, hash: input.hash.toLowerCase() }, { peer: 'mcp-gateway' });
  }
}
