import { Module } from '@nestjs/common';
import { pb } from '@ziggie/contracts';
import { AuthModule, GrpcBinding, serverStream, ServiceDefinition, unary } from '@ziggie/platform';
import { CatalogPrompt, CatalogResource, CatalogTool, PinRecord } from './catalog';
import { mcpEnv } from './config';
import { McpHttpController, McpSessions } from './mcp-server';
import { PoolsService } from './pools/pools.service';
import { McpStore } from './store';
import { BUCKET_BOUNDS_MS, type WindowFigures } from './tool-stats';
import { ToolStatsService } from './tool-stats.service';
import { CatalogTemplate, ToolsService } from './tools.service';

@Module({ imports: [AuthModule], controllers: [McpHttpController], providers: [McpStore, PoolsService, ToolStatsService, ToolsService, McpSessions] })
export class McpGatewayModule {}

type Json = Record<string, unknown>;

function toolView(t: CatalogTool): pb.Tool {
  const d = t.definition;
  return {
    name: t.name,
    server: t.provider.name,
    description: d.description ?? '',
    inputSchema: d.inputSchema as Json,
    title: d.title ?? d.annotations?.title ?? '',
    outputSchema: d.outputSchema as Json | undefined,
    annotations: d.annotations as Json | undefined,
    hash: t.hash,
  };
}

function pinView(p: PinRecord): pb.Pin {
  const quarantined = p.pendingHash !== undefined && p.pendingHash !== p.pinnedHash;
  return {
    name: p.name,
    pinnedHash: p.pinnedHash,
    pendingHash: quarantined ? p.pendingHash! : '',
    pinned: p.pinned as unknown as Json,
    pending: quarantined ? (p.pending as unknown as Json) : undefined,
    status: quarantined ? 'quarantined' : 'active',
    approvedBy: p.approvedBy ?? '',
    updatedAt: p.updatedAt,
  };
}

function resourceView(r: CatalogResource): pb.Resource {
  const d = r.definition;
  return { uri: r.uri, server: r.provider.name, name: d.name, title: d.title ?? '', description: d.description ?? '', mimeType: d.mimeType ?? '' };
}

function templateView(t: CatalogTemplate): pb.ResourceTemplate {
  const d = t.definition;
  return { uriTemplate: t.uriTemplate, server: t.provider.name, name: d.name, title: d.title ?? '', description: d.description ?? '', mimeType: d.mimeType ?? '' };
}

function promptView(p: CatalogPrompt): pb.Prompt {
  const d = p.definition;
  return {
    name: p.name,
    server: p.provider.name,
    title: d.title ?? '',
    description: d.description ?? '',
    arguments: (d.arguments ?? []).map((a) => ({ name: a.name, title: 'title' in a && typeof a.title === 'string' ? a.title : '', description: a.description ?? '', required: a.required === true })),
  };
}

const windowView = (w: WindowFigures): pb.ToolStatsWindow => ({ ...w });

/** The MCP result as a Struct: JSON without undefined members. */
const asStruct = (result: unknown): Json => JSON.parse(JSON.stringify(result)) as Json;

function grpcBindings(tools: ToolsService, pools: PoolsService): GrpcBinding[] {
  const caller = (p: pb.Principal | undefined): pb.Principal => p ?? { subject: '', roles: [], workspaces: [] };
  const implementation: pb.McpGatewayServer = {
    listResources: unary((req) => {
      const page = tools.listResources(req.principal, { server: req.server || undefined, cursor: req.page?.cursor || undefined, limit: req.page?.limit || 100, workspace: req.workspace || undefined });
      return { items: page.items.map(resourceView), total: page.total, nextCursor: page.nextCursor ?? '', templates: page.templates.map(templateView) };
    }),
    readResource: unary(async (req, call) => {
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      const result = await tools.readResource(caller(req.principal), req.workspace, req.uri, abort.signal);
      return { result: asStruct(result) };
    }),
    listPrompts: unary((req) => {
      const page = tools.listPrompts(req.principal, { server: req.server || undefined, cursor: req.page?.cursor || undefined, limit: req.page?.limit || 100, workspace: req.workspace || undefined });
      return { items: page.items.map(promptView), total: page.total, nextCursor: page.nextCursor ?? '' };
    }),
    getPrompt: unary(async (req, call) => {
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      return { result: asStruct(await tools.getPrompt(caller(req.principal), req.workspace, req.name, req.arguments, abort.signal)) };
    }),
    getToolStats: unary((req) => {
      const s = tools.toolStats(req.principal, req.workspace);
      return {
        items: s.items.map((t) => ({ tool: t.tool, server: t.server, last5m: windowView(t.last5m), last60m: windowView(t.last60m) })),
        total5m: windowView(s.total5m),
        total60m: windowView(s.total60m),
        replicas: s.replicas,
        // +Inf does not survive JSON; the last bound is the histogram's largest finite one, then +Inf.
        bucketBoundsMs: BUCKET_BOUNDS_MS.filter((b) => Number.isFinite(b)),
        at: new Date().toISOString(),
      };
    }),
    listTools: unary((req) => {
      const page = tools.listTools(req.principal, { server: req.server || undefined, cursor: req.page?.cursor || undefined, limit: req.page?.limit || 100 });
      return { items: page.items.map(toolView), total: page.total, nextCursor: page.nextCursor ?? '' };
    }),
    listServers: unary((req) => ({ items: tools.listServers(req.principal) })),
    addServer: unary((req) => tools.addServer(req.principal, req.config ?? {})),
    removeServer: unary(async (req) => {
      await tools.removeServer(req.principal, req.name);
      return { name: req.name };
    }),
    listPins: unary((req) => ({ items: tools.listPins(req.principal, req.quarantinedOnly).map(pinView) })),
    approvePin: unary(async (req) => pinView(await tools.approvePin(req.principal, req.name, req.hash))),
    listGpuPools: unary((req) => ({ items: pools.list(req.principal) })),
    getGpuPool: unary((req) => pools.get(req.principal, req.name)),
    scaleGpuPool: unary((req) => pools.scale(req.principal, req.name, { replicas: req.replicas, minReplicas: req.minReplicas, maxReplicas: req.maxReplicas })),
    callTool: serverStream<pb.CallToolRequest, pb.CallToolEvent>(async (req, call) => {
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      const result = await tools.callTool({
        caller: req.principal ?? { subject: '', roles: [], workspaces: [] },
        workspace: req.workspace,
        name: req.name,
        arguments: req.arguments ?? {},
        timeoutMs: req.timeoutMs,
        signal: abort.signal,
        onProgress: (p) => call.write({ event: { $case: 'progress', value: { progress: p.progress, total: p.total ?? 0, message: p.message ?? '' } } }),
      });
      call.write({ event: { $case: 'result', value: { result: result as Json, isError: result.isError === true } } });
    }),
  };
  return [{ definition: pb.McpGatewayService, implementation }];
}

export const definition: ServiceDefinition<typeof mcpEnv> = {
  service: 'mcp-gateway',
  extraConfig: mcpEnv,
  // JetStream KV holds pins, API-added upstreams, MCP sessions and GPU pool records, shared by every replica.
  nats: { streams: [], consumers: [] },
  module: () => McpGatewayModule,
  grpc: (app) => grpcBindings(app.get(ToolsService), app.get(PoolsService)),
};
