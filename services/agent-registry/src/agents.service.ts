import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { pb, Subject, ZiggieError } from '@ziggie/contracts';
import { CONFIG, DatabaseService, Kysely, MetricsService, NatsService, json } from '@ziggie/platform';
import type { Subscription } from 'nats';
import { Gauge } from 'prom-client';
import { buildAgentCard } from './agent-card';
import { AgentIndex, AgentStatus, Heartbeat } from './agent-index';
import { RegistryConfig } from './config';
import { generateDefaultHierarchy, generateHierarchyOfSize } from './hierarchy';
import { RegistryDb } from './migrations';

const SEED_CHUNK = 400;
/** The default hierarchy's size (DESIGN.md §5). */
const DEFAULT_SEED_SIZE = 1625;
const AGENT_STATUSES: readonly AgentStatus[] = ['idle', 'busy', 'offline'];

/** The registry's package version (beside src/ and dist/ alike), stamped on the agent cards. */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/**
 * Agents live in Postgres; the registry answers every query from an in-memory AgentIndex,
 * loaded at start and fed by core-NATS heartbeats (never a row update per beat).
 */
@Injectable()
export class AgentsService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('agents');
  private index: AgentIndex;
  private subscription?: Subscription;
  private readonly beats: { accepted: { inc(): void }; unknown: { inc(): void } };
  private readonly version = packageVersion();

  constructor(
    private readonly database: DatabaseService,
    private readonly nats: NatsService,
    @Inject(CONFIG) private readonly config: RegistryConfig,
    metrics: MetricsService,
  ) {
    this.index = new AgentIndex([], { offlineAfterMs: this.offlineAfterMs });
    const agentsByStatus = new Gauge({
      name: 'ziggie_agents',
      help: 'Agents by level and live status',
      labelNames: ['level', 'status'],
      registers: [metrics.registry],
      collect: () => {
        agentsByStatus.reset();
        const counts = this.index.statusCounts();
        // Every status of every level, zeros included: utilization (busy / live) needs both sides.
        for (const level of new Set(counts.map((c) => c.level))) for (const status of AGENT_STATUSES) agentsByStatus.set({ level: String(level), status }, 0);
        for (const c of counts) agentsByStatus.set({ level: String(c.level), status: c.status }, c.count);
      },
    });
    const heartbeats = metrics.counter('ziggie_agent_heartbeats_total', 'Agent heartbeats received, by whether the agent is known', ['result']);
    this.beats = { accepted: heartbeats.labels({ result: 'accepted' }), unknown: heartbeats.labels({ result: 'unknown_agent' }) };
  }

  private get offlineAfterMs(): number {
    return this.config.extra.AGENT_OFFLINE_AFTER_SECONDS * 1000;
  }

  private get db(): Kysely<RegistryDb> {
    return this.database.db<RegistryDb>();
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.extra.ZIGGIE_SEED === 'default') await this.seedDefaults();
    await this.reload();
    this.subscription = this.nats.subscribeCore(Subject.AgentHeartbeat, (beat) => this.onHeartbeat(beat));
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
  }

  /** Inserts the default hierarchy (ZIGGIE_SEED_AGENTS agents) when the registry is empty; a second start keeps what is there. */
  async seedDefaults(): Promise<number> {
    const existing = await this.db.selectFrom('agents').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    if (Number(existing.n) > 0) return 0;
    const size = this.config.extra.ZIGGIE_SEED_AGENTS;
    const seed = size === DEFAULT_SEED_SIZE ? generateDefaultHierarchy() : generateHierarchyOfSize(size);
    await this.db.transaction().execute(async (trx) => {
      for (let i = 0; i < seed.length; i += SEED_CHUNK) {
        const rows = seed.slice(i, i + SEED_CHUNK).map((a) => ({
          id: a.id,
          name: a.name,
          level: a.level,
          parent_id: a.parentId,
          role: a.role,
          workspace: a.workspace,
          capabilities: json<string[]>(a.capabilities),
          team: a.team,
        }));
        await trx.insertInto('agents').values(rows).onConflict((oc) => oc.column('id').doNothing()).execute();
      }
    });
    this.logger.log(`seeded ${seed.length} agents`);
    return seed.length;
  }

  /** Rebuilds the index from the table (live state starts afresh). */
  async reload(): Promise<void> {
    const rows = await this.db.selectFrom('agents').select(['id', 'name', 'level', 'parent_id', 'role', 'workspace', 'capabilities', 'team']).execute();
    this.index = new AgentIndex(
      rows.map((r) => ({ id: r.id, name: r.name, level: r.level, parentId: r.parent_id, role: r.role, workspace: r.workspace, capabilities: r.capabilities, team: r.team })),
      { offlineAfterMs: this.offlineAfterMs },
    );
    this.logger.log(`loaded ${this.index.size} agents, ${this.index.capabilities().length} capabilities`);
  }

  private onHeartbeat(beat: Heartbeat): void {
    if (this.index.heartbeat(beat)) this.beats.accepted.inc();
    else this.beats.unknown.inc();
  }

  select(req: pb.SelectAgentRequest): pb.Agent {
    return this.index.select(req);
  }

  selectMany(req: pb.SelectAgentsRequest): pb.SelectAgentsResponse {
    return { results: this.index.selectMany(req.requests) };
  }

  get(id: string): pb.Agent {
    return this.index.get(id);
  }

  list(req: pb.ListAgentsRequest): pb.ListAgentsResponse {
    return this.index.list(req);
  }

  listChildren(req: pb.ListChildrenRequest): pb.ListAgentsResponse {
    return this.index.listChildren(req);
  }

  subtree(req: pb.GetSubtreeRequest): pb.ListAgentsResponse {
    return this.index.subtree(req);
  }

  path(id: string): pb.AgentPath {
    return { agents: this.index.path(id) };
  }

  capabilities(): string[] {
    return this.index.capabilities();
  }

  summary(workspaces: readonly string[]): pb.HierarchySummary {
    return this.index.summary(workspaces);
  }

  card(req: pb.GetAgentCardRequest): pb.AgentCard {
    const agent = this.index.record(req.id);
    if (!agent) throw new ZiggieError('NOT_FOUND', `agent ${req.id} not found`);
    return { card: buildAgentCard(agent, req.baseUrl, this.version) };
  }
}
