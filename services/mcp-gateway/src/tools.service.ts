import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { CallToolResult, CompleteRequest, CompleteResult, GetPromptResult, LoggingLevel, ReadResourceResult, ResourceTemplate, Tool } from '@modelcontextprotocol/sdk/types.js';
import Ajv, { type ValidateFunction } from 'ajv';
import { AJV_RE2_ENGINE, canAccessWorkspace, hasPermission, Permission, ZiggieError } from '@ziggie/contracts';
import { CONFIG, HealthRegistry, MetricsService, SpanKind, SpanStatusCode, tracer } from '@ziggie/platform';
import type { Counter, Gauge, Histogram } from 'prom-client';
import { buildCatalog, CatalogSnapshot, CatalogTool, compareNames, pageOf, PinRecord } from './catalog';
import { McpConfig, parseUpstream, readUpstreams, UpstreamConfig } from './config';
import { CallLimiter } from './limits';
import { PolicySet } from './policy';
import { PoolsService } from './pools/pools.service';
import { createProvider } from './providers/factory';
import { assertResultSize } from './providers/http';
import type { ProgressUpdate, ProviderFeatures, ProviderNotification, ReplicaState, ToolProvider } from './providers/provider';
import { UrlGuard } from './ssrf';
import { TemplateMatcher } from './uri-template';
import { McpStore } from './store';
import type { MergedStats } from './tool-stats';
import { ToolStatsService } from './tool-stats.service';

/** Who calls, and for which workspace (already checked against the token). */
export interface Caller {
  subject: string;
  roles: string[];
  workspaces: string[];
}

export interface CallRequest {
  caller: Caller;
  workspace: string;
  name: string;
  arguments: Record<string, unknown>;
  timeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: (p: ProgressUpdate) => void;
}

/** One upstream as ListServers shows it. */
export interface ServerView {
  name: string;
  transport: string;
  status: string;
  tools: number;
  resources: number;
  prompts: number;
  error: string;
  quarantined: number;
  replicas: ReplicaState[];
}

const REBUILD_DEBOUNCE_MS = 20;
/** How long a server on a GPU pool may take to connect to the pool's new pods. */
const WAKE_TIMEOUT_MS = 30_000;
const BREAKER_STATE = { closed: 0, 'half-open': 1, open: 2 } as const;
const EMPTY: CatalogSnapshot = { tools: [], byName: new Map(), quarantined: new Map(), prompts: [], promptsByName: new Map(), resources: [], resourcesByUri: new Map() };

/** A resource template in the catalog: URI templates are global like resource URIs, the provider first in name order keeps one. */
export interface CatalogTemplate {
  uriTemplate: string;
  provider: ToolProvider;
  definition: ResourceTemplate;
  matcher: TemplateMatcher | null;
}

/** MCP logging levels, least severe first. */
const LOG_LEVELS: readonly LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];
export const logLevelRank = (level: LoggingLevel): number => LOG_LEVELS.indexOf(level);

/** What MCP clients are told about: which tools (and definitions), prompts, resources and templates are listed. */
function catalogShape(c: CatalogSnapshot, templates: readonly CatalogTemplate[]): string {
  return `${c.tools.map((t) => `${t.name}:${t.hash}`).join()}|${c.prompts.map((p) => p.name).join()}|${c.resources.map((r) => r.uri).join()}|${templates.map((t) => t.uriTemplate).join()}`;
}

function urlsOf(c: UpstreamConfig): string[] {
  return c.transport === 'stdio' ? [] : c.urls;
}

/**
 * The unified catalog over every upstream and adapter, and the one call path to them:
 * permission → workspace → tool ACL → governance policy → input schema → limits → replica
 * (least outstanding) → breaker → timeout → upstream → size limit.
 */
@Injectable()
export class ToolsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('tools');
  private readonly providers = new Map<string, ToolProvider>();
  /** Each provider's first connection attempt, so the admin API can wait for it without starting it again. */
  private readonly firstAttempts = new Map<string, Promise<void>>();
  /** Upstreams from the file; the rest came through the API and live in the store. */
  private readonly fileServers = new Set<string>();
  private readonly configs = new Map<string, UpstreamConfig>();
  private readonly policies: PolicySet;
  private readonly urlGuard: UrlGuard;
  /** Upstream input schemas are lenient JSON Schema; their `pattern`s run on RE2 (the arguments are the caller's). */
  private readonly ajv = new Ajv({ strict: false, allErrors: false, validateSchema: false, code: { regExp: AJV_RE2_ENGINE } });
  private readonly validators = new Map<string, ValidateFunction | null>();
  private limiter!: CallLimiter;
  private catalog: CatalogSnapshot = EMPTY;
  private templates: CatalogTemplate[] = [];
  private readonly notificationListeners: ((provider: ToolProvider, n: ProviderNotification) => void)[] = [];
  /** Log level each MCP session asked for: upstreams get the most verbose of them, sessions filter. */
  private readonly logLevels = new Map<string, LoggingLevel>();
  private upstreamLogLevel?: LoggingLevel;
  /** Resource subscriptions: provider name → uri → the sessions subscribed. */
  private readonly subscriptions = new Map<string, Map<string, Set<string>>>();
  private readonly visibleMemo = new Map<string, (Tool & { name: string })[]>();
  private rebuildTimer?: NodeJS.Timeout;
  /** Pin writes in flight, by tool name: a burst of rebuilds must not write the same pin again. */
  private readonly pinWrites = new Set<string>();
  private readonly catalogListeners: (() => void)[] = [];
  /** Servers reconnecting to their pool's new pods, by name: calls wait for it. */
  private readonly waking = new Map<string, Promise<void>>();
  private readonly calls: Counter<'server' | 'tool' | 'outcome'>;
  private readonly duration: Histogram<'server' | 'tool'>;
  private readonly inFlight: Gauge<'server'>;
  private readonly breakerState: Gauge<'server' | 'replica'>;
  private readonly upstreamUp: Gauge<'server'>;
  private readonly quarantinedGauge: Gauge;

  constructor(
    @Inject(CONFIG) private readonly config: McpConfig,
    private readonly store: McpStore,
    health: HealthRegistry,
    metrics: MetricsService,
    private readonly pools: PoolsService,
    private readonly callStats: ToolStatsService,
  ) {
    const file = readUpstreams(config.extra.MCP_SERVERS_FILE);
    for (const c of file.servers) {
      if (c.pool !== undefined && !pools.has(c.pool)) throw new Error(`MCP_SERVERS_FILE ${config.extra.MCP_SERVERS_FILE}: server ${c.name} runs on pool ${c.pool}, which GPU_POOLS does not configure`);
      this.setConfig(c);
      this.fileServers.add(c.name);
    }
    this.policies = new PolicySet(file.policies);
    this.urlGuard = new UrlGuard(config.extra.MCP_SSRF_ALLOW);
    this.calls = metrics.counter('ziggie_mcp_calls_total', 'MCP tool calls by server, tool and outcome', ['server', 'tool', 'outcome']);
    this.duration = metrics.histogram('ziggie_mcp_call_duration_seconds', 'MCP tool call duration, upstream included', ['server', 'tool'], [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);
    this.inFlight = metrics.gauge('ziggie_mcp_calls_in_flight', 'MCP tool calls in flight by server', ['server']);
    this.breakerState = metrics.gauge('ziggie_mcp_breaker_state', 'Circuit breaker state per upstream replica (0 closed, 1 half-open, 2 open)', ['server', 'replica']);
    this.upstreamUp = metrics.gauge('ziggie_mcp_upstream_up', 'Whether the upstream has a ready replica (1) or not (0)', ['server']);
    this.quarantinedGauge = metrics.gauge('ziggie_mcp_tools_quarantined', 'Tools held back because their definition changed', []);
    health.register({
      name: 'upstreams',
      check: () => {
        const notReady = [...this.providers.values()].filter((p) => p.status !== 'ready').map((p) => `${p.name}: ${p.status}${p.lastError ? ` (${p.lastError})` : ''}`);
        return Promise.resolve(notReady.length ? { ok: false, detail: notReady.join(', ') } : { ok: true });
      },
    });
    health.register({ name: 'limits', check: () => this.limiter?.health() ?? Promise.resolve({ ok: true }) });
  }

  async onApplicationBootstrap(): Promise<void> {
    const x = this.config.extra;
    this.limiter = CallLimiter.create({
      redisUrl: x.REDIS_URL,
      defaults: { concurrency: x.MCP_TOOL_CONCURRENCY, perMinute: x.MCP_TOOL_PER_MINUTE },
      userPerMinute: x.MCP_USER_PER_MINUTE,
      workspacePerMinute: x.MCP_WORKSPACE_PER_MINUTE,
    });
    await this.store.start(x.MCP_SESSION_TTL_MS);
    for (const [name, raw] of this.store.servers.entries()) {
      const parsed = parseUpstream(raw);
      if (parsed.ok && !this.fileServers.has(name)) this.setConfig(parsed.value);
      else if (!parsed.ok) this.logger.warn(`stored server ${name} is invalid and was skipped: ${parsed.message}`);
    }
    this.store.servers.onChange((name, raw) => void this.onStoredServerChanged(name, raw));
    this.pools.onPoolReady((pool) => this.wakeServersOf(pool));
    this.store.pins.onChange((name) => {
      this.pinWrites.delete(name);
      this.scheduleRebuild();
    });
    // Connect in the background: readiness reports upstreams until they are up.
    for (const c of this.configs.values()) void this.startProvider(c);
  }

  async onApplicationShutdown(): Promise<void> {
    clearTimeout(this.rebuildTimer);
    await Promise.allSettled([...this.providers.values()].map((p) => p.stop()));
    await this.limiter?.close();
  }

  /** Keeps a server's configuration, and the pool its calls run on. */
  private setConfig(c: UpstreamConfig): void {
    this.configs.set(c.name, c);
    this.pools.assignServer(c.name, c.pool);
    if (c.pool !== undefined && !this.pools.has(c.pool)) this.logger.warn(`server ${c.name} runs on pool ${c.pool}, which GPU_POOLS does not configure: its calls fail with POOL_NOT_FOUND`);
  }

  private deleteConfig(name: string): void {
    this.configs.delete(name);
    this.pools.assignServer(name, undefined);
  }

  /** A pool's pods are new: its servers connect to them now, and calls on them wait for that. */
  private wakeServersOf(pool: string): void {
    for (const c of this.configs.values()) {
      const provider = this.providers.get(c.name);
      if (c.pool !== pool || !provider?.wake || this.waking.has(c.name)) continue;
      const done = provider
        .wake(WAKE_TIMEOUT_MS)
        .catch((err: unknown) => this.logger.warn(`reconnecting ${c.name} to pool ${pool} failed: ${err instanceof Error ? err.message : String(err)}`))
        .finally(() => this.waking.delete(c.name));
      this.waking.set(c.name, done);
    }
  }

  private async startProvider(c: UpstreamConfig): Promise<void> {
    try {
      for (const url of urlsOf(c)) await this.urlGuard.check(url);
    } catch (err) {
      this.logger.error(`upstream ${c.name} refused: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const x = this.config.extra;
    const provider = createProvider(c, () => this.onProviderChanged(provider), {
      breaker: { failures: x.MCP_BREAKER_FAILURES, halfOpenAfterMs: x.MCP_BREAKER_HALF_OPEN_MS },
      maxResponseBytes: c.maxResponseBytes ?? x.MCP_MAX_RESPONSE_BYTES,
      onBreakerChange: (replica, state) => this.breakerState.set({ server: c.name, replica }, BREAKER_STATE[state]),
      onNotification: (p, n) => {
        for (const l of this.notificationListeners) l(p, n);
      },
    });
    if (this.upstreamLogLevel && provider.setLoggingLevel) void provider.setLoggingLevel(this.upstreamLogLevel).catch(() => undefined);
    this.providers.set(c.name, provider);
    for (const r of provider.replicas()) this.breakerState.set({ server: c.name, replica: r.id }, 0);
    this.upstreamUp.set({ server: c.name }, 0);
    const attempt = provider.start();
    this.firstAttempts.set(c.name, attempt);
    await attempt;
  }

  private onProviderChanged(provider: ToolProvider): void {
    if (this.providers.get(provider.name) !== provider) return;
    this.upstreamUp.set({ server: provider.name }, provider.status === 'ready' ? 1 : 0);
    this.scheduleRebuild();
  }

  private async onStoredServerChanged(name: string, raw: unknown): Promise<void> {
    if (this.fileServers.has(name)) return;
    const existing = this.providers.get(name);
    if (existing) {
      this.providers.delete(name);
      this.firstAttempts.delete(name);
      this.deleteConfig(name);
      this.upstreamUp.remove({ server: name });
      await existing.stop();
      this.scheduleRebuild();
    }
    if (raw === undefined) return;
    const parsed = parseUpstream(raw);
    if (!parsed.ok) {
      this.logger.warn(`stored server ${name} is invalid and was skipped: ${parsed.message}`);
      return;
    }
    this.setConfig(parsed.value);
    await this.startProvider(parsed.value);
  }

  /**
   * Coalesces bursts into one rebuild: a reconnect changes tools, resources and prompts at
   * once, and pinning a large catalog brings one KV update per tool.
   */
  private scheduleRebuild(): void {
    if (this.rebuildTimer) return;
    this.rebuildTimer = setTimeout(() => {
      this.rebuildTimer = undefined;
      this.rebuild();
    }, REBUILD_DEBOUNCE_MS);
  }

  private pin(name: string): PinRecord | undefined {
    return this.store.pins.get(name) as PinRecord | undefined;
  }

  private rebuild(): void {
    const { snapshot, unpinned } = buildCatalog(
      [...this.providers.values()],
      (n) => this.pin(n),
      (p, tool) => this.configs.get(p.name)?.allowedTools?.includes(tool) ?? true,
      // A server on a pool scaled to zero is down by design: its tools stay listed, and calling one scales the pool up.
      (p) => this.configs.get(p.name)?.pool !== undefined,
    );
    const before = this.catalog;
    const beforeTemplates = this.templates;
    this.catalog = snapshot;
    this.templates = this.buildTemplates();
    this.visibleMemo.clear();
    this.quarantinedGauge.set(snapshot.quarantined.size);
    for (const t of unpinned) void this.pinFirstSight(t);
    for (const t of snapshot.quarantined.values()) void this.recordPending(t);
    if (catalogShape(before, beforeTemplates) !== catalogShape(snapshot, this.templates)) for (const l of this.catalogListeners) l();
  }

  /** Templates of the listed providers: by URI template, the provider first in name order keeps one (as resource URIs). */
  private buildTemplates(): CatalogTemplate[] {
    const listed = [...this.providers.values()]
      .filter((p) => p.status === 'ready' || this.configs.get(p.name)?.pool !== undefined)
      .sort((a, b) => a.name.localeCompare(b.name));
    const byTemplate = new Map<string, CatalogTemplate>();
    for (const p of listed) {
      for (const t of p.resourceTemplates ?? []) {
        if (byTemplate.has(t.uriTemplate)) continue;
        let matcher: TemplateMatcher | null = null;
        try {
          matcher = new TemplateMatcher(t.uriTemplate);
        } catch {
          // Listed as the upstream gives it; a URI cannot be resolved through it.
        }
        byTemplate.set(t.uriTemplate, { uriTemplate: t.uriTemplate, provider: p, definition: t, matcher });
      }
    }
    return [...byTemplate.values()].sort((a, b) => compareNames(a.uriTemplate, b.uriTemplate));
  }

  private async pinFirstSight(t: CatalogTool): Promise<void> {
    if (this.pinWrites.has(t.name)) return;
    this.pinWrites.add(t.name);
    const record: PinRecord = { name: t.name, server: t.provider.name, pinnedHash: t.hash, pinned: t.definition, updatedAt: new Date().toISOString() };
    try {
      // Another replica may pin the same tool at the same moment: the first write wins, and the
      // watch brings it here; if it pinned a different definition this one becomes quarantined.
      if (await this.store.pins.create(t.name, record)) this.logger.debug(`pinned ${t.name} ${t.hash.slice(0, 12)}`);
    } catch (err) {
      // Retried on the next rebuild; until then the tool stays listed as first seen.
      this.pinWrites.delete(t.name);
      this.logger.warn(`pinning ${t.name} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private async recordPending(t: CatalogTool): Promise<void> {
    const pin = this.pin(t.name);
    if (!pin || pin.pendingHash === t.hash || this.pinWrites.has(t.name)) return;
    this.pinWrites.add(t.name);
    this.logger.warn(`tool ${t.name} changed its definition (${pin.pinnedHash.slice(0, 12)} → ${t.hash.slice(0, 12)}): quarantined until approved`);
    await this.store.pins.put(t.name, { ...pin, pendingHash: t.hash, pending: t.definition, updatedAt: new Date().toISOString() }).catch((err: unknown) => {
      this.pinWrites.delete(t.name);
      this.logger.warn(`recording the pending definition of ${t.name} failed: ${err instanceof Error ? err.message : String(err)}`);
    });
  }

  /** Logging messages and resource updates from every upstream. */
  onUpstreamNotification(listener: (provider: ToolProvider, n: ProviderNotification) => void): () => void {
    this.notificationListeners.push(listener);
    return () => {
      const i = this.notificationListeners.indexOf(listener);
      if (i >= 0) this.notificationListeners.splice(i, 1);
    };
  }

  onCatalogChanged(listener: () => void): () => void {
    this.catalogListeners.push(listener);
    return () => {
      const i = this.catalogListeners.indexOf(listener);
      if (i >= 0) this.catalogListeners.splice(i, 1);
    };
  }

  // ---- authorisation ---------------------------------------------------------------------

  private require(caller: Caller | undefined, permission: Permission): Caller {
    if (!caller || !hasPermission(caller.roles, permission)) throw new ZiggieError('AUTH_FORBIDDEN', `permission ${permission} required`);
    return caller;
  }

  /** The server's ACL: roles and workspaces allowed to see and call its tools. */
  private visible(provider: ToolProvider, caller: Caller, workspace?: string): boolean {
    const acl = this.configs.get(provider.name)?.acl;
    if (!acl) return true;
    if (acl.roles && !acl.roles.some((r) => caller.roles.includes(r))) return false;
    if (acl.workspaces) {
      if (workspace !== undefined) return acl.workspaces.includes(workspace);
      return caller.workspaces.includes('*') || acl.workspaces.some((w) => caller.workspaces.includes(w));
    }
    return true;
  }

  // ---- catalog -----------------------------------------------------------------------------

  listTools(caller: Caller | undefined, opts: { server?: string; cursor?: string; limit: number; workspace?: string }): { items: CatalogTool[]; total: number; nextCursor?: string } {
    const c = this.require(caller, 'mcp:call');
    const all = this.catalog.tools.filter((t) => (!opts.server || t.provider.name === opts.server) && this.visible(t.provider, c, opts.workspace));
    const page = pageOf(all, opts.cursor, Math.min(Math.max(opts.limit, 1), 1000));
    return { ...page, total: all.length };
  }

  /**
   * Every tool visible to a role set in a workspace, as MCP tool definitions, memoised per
   * catalog snapshot: tools/list is served from memory without re-filtering a large catalog.
   */
  visibleToolDefinitions(caller: Caller, workspace: string): (Tool & { name: string })[] {
    const key = `${workspace}\u0000${[...caller.roles].sort().join(',')}`;
    let defs = this.visibleMemo.get(key);
    if (!defs) {
      defs = this.catalog.tools.filter((t) => this.visible(t.provider, caller, workspace)).map((t) => ({ ...t.definition, name: t.name }));
      if (this.visibleMemo.size > 1000) this.visibleMemo.clear();
      this.visibleMemo.set(key, defs);
    }
    return defs;
  }

  /** The workspace of a list or read: one of the caller's (empty: any of them). */
  private assertWorkspace(caller: Caller, workspace: string | undefined): void {
    if (workspace && !canAccessWorkspace(caller.workspaces, workspace)) throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', `workspace ${workspace} is not allowed for this token`);
  }

  /**
   * Listed resources the caller may read, by URI, and every resource template it may read through.
   * A `server` filter matching nothing (unknown, or hidden by its ACL) is an empty page, as for tools.
   */
  listResources(caller: Caller | undefined, opts: { server?: string; cursor?: string; limit: number; workspace?: string }): { items: CatalogSnapshot['resources']; total: number; nextCursor?: string; templates: CatalogTemplate[] } {
    const c = this.require(caller, 'mcp:call');
    this.assertWorkspace(c, opts.workspace);
    const keep = (p: ToolProvider) => (!opts.server || p.name === opts.server) && this.visible(p, c, opts.workspace || undefined);
    const all = this.catalog.resources.filter((r) => keep(r.provider)).map((r) => ({ ...r, name: r.uri }));
    const page = pageOf(all, opts.cursor, Math.min(Math.max(opts.limit, 1), 1000));
    return { ...page, total: all.length, templates: this.templates.filter((t) => keep(t.provider)) };
  }

  listPrompts(caller: Caller | undefined, opts: { server?: string; cursor?: string; limit: number; workspace?: string }): { items: CatalogSnapshot['prompts']; total: number; nextCursor?: string } {
    const c = this.require(caller, 'mcp:call');
    this.assertWorkspace(c, opts.workspace);
    const all = this.catalog.prompts.filter((p) => (!opts.server || p.provider.name === opts.server) && this.visible(p.provider, c, opts.workspace || undefined));
    const page = pageOf(all, opts.cursor, Math.min(Math.max(opts.limit, 1), 1000));
    return { ...page, total: all.length };
  }

  /**
   * Tool call figures of the last 5 and 60 minutes over every replica, for the caller's
   * workspaces (or the one asked for) and the servers it may see; a server no longer configured
   * stays in the figures for config:change only.
   */
  toolStats(caller: Caller | undefined, workspace: string): MergedStats {
    const c = this.require(caller, 'mcp:call');
    this.assertWorkspace(c, workspace);
    const everyWorkspace = c.workspaces.includes('*');
    const mayConfigure = hasPermission(c.roles, 'config:change');
    return this.callStats.merged((cell) => {
      if (workspace ? cell.workspace !== workspace : !everyWorkspace && !c.workspaces.includes(cell.workspace)) return false;
      const provider = this.providers.get(cell.server);
      return provider ? this.visible(provider, c, cell.workspace || undefined) : mayConfigure;
    });
  }

  visiblePrompts(caller: Caller, workspace: string): CatalogSnapshot['prompts'] {
    return this.catalog.prompts.filter((p) => this.visible(p.provider, caller, workspace));
  }

  visibleResources(caller: Caller, workspace: string): CatalogSnapshot['resources'] {
    return this.catalog.resources.filter((r) => this.visible(r.provider, caller, workspace));
  }

  visibleResourceTemplates(caller: Caller, workspace: string): CatalogTemplate[] {
    return this.templates.filter((t) => this.visible(t.provider, caller, workspace));
  }

  /** Whether a session of this caller in this workspace may see what the provider offers (and hear its notifications). */
  canSee(provider: ToolProvider, caller: Caller, workspace: string): boolean {
    return this.providers.get(provider.name) === provider && this.visible(provider, caller, workspace);
  }

  /** Features some listed upstream offers: what /mcp declares at initialize. */
  features(): ProviderFeatures {
    const f: ProviderFeatures = { completions: false, logging: false, subscribe: false };
    for (const p of this.providers.values()) {
      const pf = p.status === 'ready' ? p.features : undefined;
      if (!pf) continue;
      f.completions ||= pf.completions;
      f.logging ||= pf.logging;
      f.subscribe ||= pf.subscribe;
    }
    return f;
  }

  listServers(caller: Caller | undefined): ServerView[] {
    const c = this.require(caller, 'mcp:call');
    const quarantined = new Map<string, number>();
    for (const t of this.catalog.quarantined.values()) quarantined.set(t.provider.name, (quarantined.get(t.provider.name) ?? 0) + 1);
    return [...this.providers.values()]
      .filter((p) => this.visible(p, c))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => ({
        name: p.name,
        transport: p.transport,
        status: p.status,
        tools: p.tools.length,
        resources: p.resources.length,
        prompts: p.prompts.length,
        error: p.lastError,
        quarantined: quarantined.get(p.name) ?? 0,
        replicas: p.replicas(),
      }));
  }

  // ---- administration ----------------------------------------------------------------------

  async addServer(caller: Caller | undefined, raw: unknown): Promise<ServerView> {
    const c = this.require(caller, 'config:change');
    const parsed = parseUpstream(raw);
    if (!parsed.ok) throw new ZiggieError('VALIDATION_FAILED', `server configuration: ${parsed.message}`);
    const cfg = parsed.value;
    if (cfg.pool !== undefined && !this.pools.has(cfg.pool)) throw new ZiggieError('VALIDATION_FAILED', `server configuration: pool ${cfg.pool} is not a GPU pool of mcp-gateway (known: ${this.pools.names().join(', ') || 'none'})`);
    if (this.configs.has(cfg.name) || this.store.servers.get(cfg.name) !== undefined) throw new ZiggieError('SERVER_EXISTS', `server ${cfg.name} already exists`);
    for (const url of urlsOf(cfg)) await this.urlGuard.check(url);
    if (!(await this.store.servers.create(cfg.name, cfg))) throw new ZiggieError('SERVER_EXISTS', `server ${cfg.name} already exists`);
    this.logger.log(`server ${cfg.name} (${cfg.transport}) added by ${c.subject}`);
    // The store's watch starts it here and on every other replica; answer once it is registered.
    for (let i = 0; i < 100 && !this.firstAttempts.has(cfg.name); i++) await new Promise((r) => setTimeout(r, 20));
    const attempt = this.firstAttempts.get(cfg.name);
    if (attempt) await Promise.race([new Promise((r) => setTimeout(r, 5_000)), attempt.catch(() => undefined)]);
    const view = this.listServers(c).find((s) => s.name === cfg.name);
    return view ?? { name: cfg.name, transport: cfg.transport, status: 'connecting', tools: 0, resources: 0, prompts: 0, error: '', quarantined: 0, replicas: [] };
  }

  async removeServer(caller: Caller | undefined, name: string): Promise<void> {
    const c = this.require(caller, 'config:change');
    if (this.fileServers.has(name)) throw new ZiggieError('VALIDATION_FAILED', `server ${name} comes from MCP_SERVERS_FILE; remove it there`);
    if (this.store.servers.get(name) === undefined) throw new ZiggieError('SERVER_NOT_FOUND', `server ${name} not found`);
    await this.store.servers.delete(name);
    this.logger.log(`server ${name} removed by ${c.subject}`);
  }

  listPins(caller: Caller | undefined, quarantinedOnly: boolean): PinRecord[] {
    this.require(caller, 'config:change');
    return this.store.pins
      .entries()
      .map(([, v]) => v as PinRecord)
      .filter((p) => !quarantinedOnly || (p.pendingHash !== undefined && p.pendingHash !== p.pinnedHash))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async approvePin(caller: Caller | undefined, name: string, hash: string): Promise<PinRecord> {
    const c = this.require(caller, 'config:change');
    const pin = (await this.store.pins.fetch(name)) as PinRecord | undefined;
    if (!pin || !pin.pending || pin.pendingHash !== hash) throw new ZiggieError('PIN_NOT_FOUND', `no pending definition of ${name} with hash ${hash}`);
    const approved: PinRecord = { name, server: pin.server, pinnedHash: hash, pinned: pin.pending, approvedBy: c.subject, updatedAt: new Date().toISOString() };
    await this.store.pins.put(name, approved);
    this.logger.log(`definition ${hash.slice(0, 12)} of ${name} approved by ${c.subject}`);
    return approved;
  }

  // ---- calls -------------------------------------------------------------------------------

  private validator(t: CatalogTool): ValidateFunction | null {
    let v = this.validators.get(t.hash);
    if (v === undefined) {
      try {
        const { $schema: _ignored, ...schema } = t.definition.inputSchema as Record<string, unknown>;
        v = this.ajv.compile(schema);
      } catch (err) {
        this.logger.warn(`input schema of ${t.name} does not compile; arguments are passed unchecked: ${err instanceof Error ? err.message : String(err)}`);
        v = null;
      }
      this.validators.set(t.hash, v);
    }
    return v;
  }

  /** Resolves a callable tool for the caller, or throws the reason it is not. */
  private resolve(caller: Caller, workspace: string, name: string): CatalogTool {
    if (!canAccessWorkspace(caller.workspaces, workspace)) throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', `workspace ${workspace} is not allowed for this token`);
    const t = this.catalog.byName.get(name);
    if (!t) {
      if (this.catalog.quarantined.has(name)) throw new ZiggieError('TOOL_QUARANTINED', `tool ${name} changed its definition and awaits approval by an administrator`);
      throw new ZiggieError('TOOL_NOT_FOUND', `tool ${name} not found`);
    }
    if (!this.visible(t.provider, caller, workspace)) throw new ZiggieError('TOOL_FORBIDDEN', `tool ${name} is not available to this role or workspace`);
    const decision = this.policies.evaluate(name, caller.roles, workspace);
    if (decision.effect === 'deny') throw new ZiggieError('POLICY_DENIED', `tool ${name}: ${decision.reason}`, { rule: decision.rule });
    if (decision.effect === 'require_approval') throw new ZiggieError('POLICY_DENIED', `tool ${name} requires approval: run it as a task step with an approval gate (${decision.reason})`, { rule: decision.rule });
    return t;
  }

  async callTool(req: CallRequest): Promise<CallToolResult> {
    const caller = this.require(req.caller, 'mcp:call');
    const t = this.resolve(caller, req.workspace, req.name);
    const validate = this.validator(t);
    if (validate && !validate(req.arguments)) {
      const problems = (validate.errors ?? []).map((e) => `${e.instancePath || '(arguments)'} ${e.message ?? ''}`.trim()).join('; ');
      this.calls.inc({ server: t.provider.name, tool: t.name, outcome: 'invalid_arguments' });
      throw new ZiggieError('TOOL_INVALID_ARGUMENTS', `${req.name}: ${problems}`);
    }
    const cfg = this.configs.get(t.provider.name);
    let release: () => Promise<void>;
    try {
      release = await this.limiter.acquire({ tool: t.name, server: t.provider.name, user: caller.subject, workspace: req.workspace, limits: cfg?.limits, capacity: cfg?.capacity });
    } catch (err) {
      this.calls.inc({ server: t.provider.name, tool: t.name, outcome: 'limited' });
      throw err;
    }
    const labels = { server: t.provider.name, tool: t.name };
    const end = this.duration.startTimer(labels);
    this.inFlight.inc({ server: t.provider.name });
    const maxResponseBytes = cfg?.maxResponseBytes ?? this.config.extra.MCP_MAX_RESPONSE_BYTES;
    const timeoutMs = req.timeoutMs && req.timeoutMs > 0 ? req.timeoutMs : (cfg?.timeoutMs ?? this.config.extra.MCP_CALL_TIMEOUT_MS);
    return tracer().startActiveSpan(`mcp.call ${t.name}`, { kind: SpanKind.CLIENT }, async (span) => {
      span.setAttributes({ 'mcp.server': t.provider.name, 'mcp.transport': t.provider.transport, 'mcp.tool': t.upstreamName, 'mcp.tool.hash': t.hash, 'ziggie.workspace': req.workspace, 'enduser.id': caller.subject });
      let leavePool: (() => void) | undefined;
      let failed = true;
      try {
        if (cfg?.pool !== undefined) {
          span.setAttribute('mcp.pool', cfg.pool);
          // Waits for a ready replica (scaling the pool up from zero), bounded by the pool's scale-up time and the call's cancellation.
          leavePool = (await this.pools.admit(cfg.pool, req.signal)).release;
          // The pool's pods just started: the server is connecting to them.
          await this.waking.get(t.provider.name);
        }
        const result = await t.provider.callTool(t.upstreamName, req.arguments, {
          timeoutMs,
          signal: req.signal,
          onProgress: req.onProgress,
          maxResponseBytes,
        });
        assertResultSize(result, maxResponseBytes);
        const outcome = result.isError ? 'tool_error' : 'ok';
        failed = outcome !== 'ok';
        this.calls.inc({ ...labels, outcome });
        span.setAttribute('mcp.outcome', outcome);
        return result;
      } catch (err) {
        const code = err instanceof ZiggieError ? err.code : 'TOOL_CALL_FAILED';
        this.calls.inc({ ...labels, outcome: code.toLowerCase() });
        span.setStatus({ code: SpanStatusCode.ERROR, message: code });
        span.setAttribute('mcp.outcome', code);
        throw err instanceof ZiggieError ? err : new ZiggieError('TOOL_CALL_FAILED', `${req.name}: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        leavePool?.();
        this.callStats.record(req.workspace, t.name, t.provider.name, end() * 1000, failed);
        this.inFlight.dec({ server: t.provider.name });
        span.end();
        await release();
      }
    });
  }

  /** The provider that serves a URI: a listed resource, else the first visible template it matches. */
  private resourceOwner(caller: Caller, workspace: string, uri: string): ToolProvider {
    if (!canAccessWorkspace(caller.workspaces, workspace)) throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', `workspace ${workspace} is not allowed for this token`);
    const r = this.catalog.resourcesByUri.get(uri);
    if (r && this.visible(r.provider, caller, workspace)) return r.provider;
    const t = r ? undefined : this.templates.find((t) => this.visible(t.provider, caller, workspace) && t.matcher?.matches(uri));
    if (t) return t.provider;
    throw new ZiggieError('RESOURCE_NOT_FOUND', `resource ${uri} not found`);
  }

  async readResource(caller: Caller, workspace: string, uri: string, signal?: AbortSignal): Promise<ReadResourceResult> {
    this.require(caller, 'mcp:call');
    const provider = this.resourceOwner(caller, workspace, uri);
    if (!provider.readResource) throw new ZiggieError('RESOURCE_NOT_FOUND', `resource ${uri} not found`);
    const max = this.configs.get(provider.name)?.maxResponseBytes ?? this.config.extra.MCP_MAX_RESPONSE_BYTES;
    const result = await provider.readResource(uri, { timeoutMs: this.config.extra.MCP_CALL_TIMEOUT_MS, signal, maxResponseBytes: max });
    assertResultSize(result, max);
    return result;
  }

  /**
   * completion/complete, routed by prompt name (server.prompt, sent upstream as the server's own
   * name) or by resource template URI (or a listed resource URI). An owner without completions
   * has no suggestions.
   */
  async complete(caller: Caller, workspace: string, params: CompleteRequest['params'], signal?: AbortSignal): Promise<CompleteResult> {
    this.require(caller, 'mcp:call');
    if (!canAccessWorkspace(caller.workspaces, workspace)) throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', `workspace ${workspace} is not allowed for this token`);
    let provider: ToolProvider | undefined;
    let upstream = params;
    if (params.ref.type === 'ref/prompt') {
      const p = this.catalog.promptsByName.get(params.ref.name);
      if (!p || !this.visible(p.provider, caller, workspace)) throw new ZiggieError('NOT_FOUND', `prompt ${params.ref.name} not found`);
      provider = p.provider;
      upstream = { ...params, ref: { ...params.ref, name: p.upstreamName } };
    } else {
      const uri = params.ref.uri;
      const t = this.templates.find((t) => t.uriTemplate === uri && this.visible(t.provider, caller, workspace));
      const r = this.catalog.resourcesByUri.get(uri);
      provider = t?.provider ?? (r && this.visible(r.provider, caller, workspace) ? r.provider : undefined);
      if (!provider) throw new ZiggieError('NOT_FOUND', `resource template ${uri} not found`);
    }
    if (!provider.completeArgument || !provider.features?.completions) return { completion: { values: [], total: 0, hasMore: false } };
    const max = this.configs.get(provider.name)?.maxResponseBytes ?? this.config.extra.MCP_MAX_RESPONSE_BYTES;
    return provider.completeArgument(upstream, { timeoutMs: this.config.extra.MCP_CALL_TIMEOUT_MS, signal, maxResponseBytes: max });
  }

  /**
   * A session's logging/setLevel (undefined: the session ended). Upstreams are shared by every
   * session, so they get the most verbose level any session asked for; sessions filter.
   */
  async setLogLevel(session: string, level: LoggingLevel | undefined): Promise<void> {
    if (level) this.logLevels.set(session, level);
    else if (!this.logLevels.delete(session)) return;
    const levels = [...this.logLevels.values()];
    if (levels.length === 0) return;
    const wanted = levels.reduce((a, b) => (logLevelRank(a) <= logLevelRank(b) ? a : b));
    if (wanted === this.upstreamLogLevel) return;
    this.upstreamLogLevel = wanted;
    const results = await Promise.allSettled([...this.providers.values()].filter((p) => p.setLoggingLevel && p.features?.logging).map((p) => p.setLoggingLevel!(wanted)));
    for (const r of results) if (r.status === 'rejected') this.logger.warn(`logging/setLevel upstream failed: ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`);
  }

  /** resources/subscribe for a session: the owner is subscribed once, whatever the number of sessions. */
  async subscribe(session: string, caller: Caller, workspace: string, uri: string): Promise<void> {
    this.require(caller, 'mcp:call');
    const provider = this.resourceOwner(caller, workspace, uri);
    if (!provider.subscribeResource || !provider.features?.subscribe) throw new ZiggieError('VALIDATION_FAILED', `resource ${uri}: its server does not support subscriptions`);
    let byUri = this.subscriptions.get(provider.name);
    if (!byUri) this.subscriptions.set(provider.name, (byUri = new Map()));
    let sessions = byUri.get(uri);
    const first = !sessions;
    if (!sessions) byUri.set(uri, (sessions = new Set()));
    sessions.add(session);
    if (first) {
      try {
        await provider.subscribeResource(uri);
      } catch (err) {
        sessions.delete(session);
        if (sessions.size === 0) byUri.delete(uri);
        throw err;
      }
    }
  }

  async unsubscribe(session: string, uri: string): Promise<void> {
    for (const [name, byUri] of this.subscriptions) {
      const sessions = byUri.get(uri);
      if (!sessions?.delete(session) || sessions.size > 0) continue;
      byUri.delete(uri);
      await this.providers.get(name)?.unsubscribeResource?.(uri);
    }
  }

  /** Whether the session subscribed to this URI of this provider. */
  isSubscribed(session: string, provider: ToolProvider, uri: string): boolean {
    return this.subscriptions.get(provider.name)?.get(uri)?.has(session) === true;
  }

  /** A session ended: its subscriptions and log level go. */
  async releaseSession(session: string): Promise<void> {
    await this.setLogLevel(session, undefined).catch(() => undefined);
    for (const [name, byUri] of this.subscriptions) {
      for (const [uri, sessions] of byUri) {
        if (!sessions.delete(session) || sessions.size > 0) continue;
        byUri.delete(uri);
        await this.providers
          .get(name)
          ?.unsubscribeResource?.(uri)
          .catch(() => undefined);
      }
    }
  }

  async getPrompt(caller: Caller, workspace: string, name: string, args: Record<string, string>, signal?: AbortSignal): Promise<GetPromptResult> {
    this.require(caller, 'mcp:call');
    const p = this.catalog.promptsByName.get(name);
    if (!canAccessWorkspace(caller.workspaces, workspace)) throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', `workspace ${workspace} is not allowed for this token`);
    if (!p || !this.visible(p.provider, caller, workspace) || !p.provider.getPrompt) throw new ZiggieError('PROMPT_NOT_FOUND', `prompt ${name} not found`);
    // Checked here against the prompt's declared arguments, so every upstream refuses the same way.
    const declared = p.definition.arguments ?? [];
    const missing = declared.filter((a) => a.required && args[a.name] === undefined).map((a) => a.name);
    const unknown = Object.keys(args).filter((k) => !declared.some((a) => a.name === k));
    if (missing.length > 0 || unknown.length > 0) {
      const problems = [...missing.map((a) => `${a} is required`), ...unknown.map((a) => `${a} is not an argument of this prompt`)];
      throw new ZiggieError('PROMPT_INVALID_ARGUMENTS', `${name}: ${problems.join('; ')}`, { missing, unknown });
    }
    const max = this.configs.get(p.provider.name)?.maxResponseBytes ?? this.config.extra.MCP_MAX_RESPONSE_BYTES;
    try {
      const result = await p.provider.getPrompt(p.upstreamName, args, { timeoutMs: this.config.extra.MCP_CALL_TIMEOUT_MS, signal, maxResponseBytes: max });
      assertResultSize(result, max);
      return result;
    } catch (err) {
      // The upstream's own check of the values (invalid params) is about the prompt, not a tool.
      if (err instanceof ZiggieError && err.code === 'TOOL_INVALID_ARGUMENTS') throw new ZiggieError('PROMPT_INVALID_ARGUMENTS', err.message);
      throw err;
    }
  }
}
