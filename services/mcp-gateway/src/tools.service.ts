import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { hasPermission, pb, ZiggieError } from '@ziggie/contracts';
import { CONFIG, HealthRegistry, MetricsService } from '@ziggie/platform';
import { Counter, Histogram } from 'prom-client';
import { McpConfig, readUpstreams } from './config';
import { Upstream } from './upstream';

const MAX_TOOL_NAME = 64;

interface CatalogEntry {
  name: string;
  upstream: Upstream;
  tool: string;
  description: string;
  inputSchema: Record<string, unknown>;
}

/** The unified catalog over every upstream, and the call path to them. */
@Injectable()
export class ToolsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('tools');
  private readonly upstreams: Upstream[];
  private catalog = new Map<string, CatalogEntry>();
  private readonly calls: Counter<'tool' | 'outcome'>;
  private readonly duration: Histogram<'tool'>;

  constructor(
    @Inject(CONFIG) private readonly config: McpConfig,
    health: HealthRegistry,
    metrics: MetricsService,
  ) {
    this.upstreams = readUpstreams(config.extra.MCP_SERVERS_FILE).map((u) => new Upstream(u, () => this.rebuildCatalog()));
    this.calls = metrics.counter('ziggie_mcp_tool_calls_total', 'MCP tool calls by tool and outcome', ['tool', 'outcome']);
    this.duration = metrics.histogram('ziggie_mcp_tool_call_duration_seconds', 'MCP tool call duration', ['tool'], [0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30]);
    health.register({
      name: 'upstreams',
      check: () => {
        const notReady = this.upstreams.filter((u) => u.status !== 'ready').map((u) => `${u.config.name}: ${u.status}`);
        return Promise.resolve(notReady.length ? { ok: false, detail: notReady.join(', ') } : { ok: true });
      },
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    // Connect in the background: readiness reports upstreams until they are up.
    for (const u of this.upstreams) void u.connect();
    await Promise.resolve();
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled(this.upstreams.map((u) => u.stop()));
  }

  private rebuildCatalog(): void {
    const next = new Map<string, CatalogEntry>();
    for (const u of this.upstreams) {
      for (const t of u.tools) {
        const name = `${u.config.name}.${t.name}`;
        if (name.length > MAX_TOOL_NAME) {
          this.logger.warn(`skipped tool ${name}: longer than ${MAX_TOOL_NAME} characters`);
          continue;
        }
        next.set(name, {
          name,
          upstream: u,
          tool: t.name,
          description: t.description ?? '',
          inputSchema: t.inputSchema as Record<string, unknown>,
        });
      }
    }
    this.catalog = next;
  }

  private authorize(principal: pb.Principal | undefined): void {
    if (!principal || !hasPermission(principal.roles, 'mcp:call')) {
      throw new ZiggieError('AUTH_FORBIDDEN', 'permission mcp:call required');
    }
  }

  listTools(req: pb.ListToolsRequest): pb.ListToolsResponse {
    this.authorize(req.principal);
    const all = [...this.catalog.values()]
      .filter((e) => !req.server || e.upstream.config.name === req.server)
      .sort((a, b) => a.name.localeCompare(b.name));
    const offset = Number.parseInt(req.page?.cursor || '0', 10) || 0;
    const limit = Math.min(Math.max(req.page?.limit || 100, 1), 1000);
    const page = all.slice(offset, offset + limit);
    return {
      items: page.map((e) => ({ name: e.name, server: e.upstream.config.name, description: e.description, inputSchema: e.inputSchema })),
      total: all.length,
      nextCursor: offset + page.length < all.length ? String(offset + page.length) : '',
    };
  }

  listServers(req: pb.ListServersRequest): pb.ListServersResponse {
    this.authorize(req.principal);
    return {
      items: this.upstreams.map((u) => ({
        name: u.config.name,
        transport: u.config.transport,
        status: u.status,
        tools: u.tools.length,
        error: u.lastError,
      })),
    };
  }

  async callTool(
    req: pb.CallToolRequest,
    onProgress: (p: pb.Progress) => void,
    signal?: AbortSignal,
  ): Promise<{ result: CallToolResult }> {
    this.authorize(req.principal);
    const entry = this.catalog.get(req.name);
    if (!entry) throw new ZiggieError('TOOL_NOT_FOUND', `tool ${req.name} not found`);
    if (entry.upstream.status !== 'ready') throw new ZiggieError('UPSTREAM_UNAVAILABLE', `upstream ${entry.upstream.config.name} is ${entry.upstream.status}`);
    const end = this.duration.startTimer({ tool: entry.name });
    try {
      const result = await entry.upstream.callTool(entry.tool, req.arguments ?? {}, {
        timeoutMs: req.timeoutMs > 0 ? req.timeoutMs : this.config.extra.MCP_CALL_TIMEOUT_MS,
        signal,
        onProgress: (p) => onProgress({ progress: p.progress, total: p.total ?? 0, message: p.message ?? '' }),
      });
      this.calls.inc({ tool: entry.name, outcome: result.isError ? 'tool_error' : 'ok' });
      return { result };
    } catch (err) {
      this.calls.inc({ tool: entry.name, outcome: 'failed' });
      const message = err instanceof Error ? err.message : String(err);
      if (/timed out|timeout/i.test(message)) throw new ZiggieError('UPSTREAM_TIMEOUT', `${req.name}: ${message}`);
      throw new ZiggieError('TOOL_CALL_FAILED', `${req.name}: ${message}`);
    } finally {
      end();
    }
  }
}
