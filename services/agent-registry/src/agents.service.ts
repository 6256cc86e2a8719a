import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { pb, PayloadOf, Subject, ZiggieError } from '@ziggie/contracts';
import { CONFIG, DatabaseService, Kysely, MetricsService, NatsService, json } from '@ziggie/platform';
import type { Subscription } from 'nats';
import { Gauge } from 'prom-client';
import { RegistryConfig } from './config';
import { generateDefaultHierarchy } from './hierarchy';
import { AgentTable, RegistryDb } from './migrations';

interface LiveState {
  status: 'idle' | 'busy' | 'offline';
  load: number;
  lastSeen: number;
  /** Selections made since the last heartbeat: spreads consecutive picks before load is reported. */
  reserved: number;
}

const SEED_CHUNK = 400;

/**
 * Agents live in Postgres; their status and load live in memory, fed by core-NATS
 * heartbeats (never a row update per beat). Selection reads only memory.
 */
@Injectable()
export class AgentsService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('agents');
  private agents = new Map<string, AgentTable>();
  /** capability → workspace → agent ids */
  private byCapability = new Map<string, Map<string, string[]>>();
  private readonly live = new Map<string, LiveState>();
  private subscription?: Subscription;

  constructor(
    private readonly database: DatabaseService,
    private readonly nats: NatsService,
    @Inject(CONFIG) private readonly config: RegistryConfig,
    metrics: MetricsService,
  ) {
    const agentsByStatus = new Gauge({
      name: 'ziggie_agents',
      help: 'Agents by level and live status',
      labelNames: ['level', 'status'],
      registers: [metrics.registry],
      collect: () => {
        agentsByStatus.reset();
        for (const a of this.agents.values()) agentsByStatus.inc({ level: String(a.level), status: this.liveOf(a.id).status });
      },
    });
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

  /** Inserts the default hierarchy when the registry is empty; a second start keeps what is there. */
  async seedDefaults(): Promise<number> {
    const existing = await this.db.selectFrom('agents').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    if (Number(existing.n) > 0) return 0;
    const seed = generateDefaultHierarchy();
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

  async reload(): Promise<void> {
    const rows = await this.db.selectFrom('agents').selectAll().orderBy('level').orderBy('id').execute();
    const agents = new Map<string, AgentTable>();
    const byCapability = new Map<string, Map<string, string[]>>();
    for (const row of rows) {
      agents.set(row.id, row);
      for (const cap of row.capabilities) {
        const perWs = byCapability.get(cap) ?? new Map<string, string[]>();
        byCapability.set(cap, perWs);
        perWs.set(row.workspace, [...(perWs.get(row.workspace) ?? []), row.id]);
      }
    }
    this.agents = agents;
    this.byCapability = byCapability;
    this.logger.log(`loaded ${agents.size} agents, ${byCapability.size} capabilities`);
  }

  private onHeartbeat(beat: PayloadOf<Subject.AgentHeartbeat>): void {
    if (!this.agents.has(beat.agentId)) return;
    this.live.set(beat.agentId, { status: beat.status, load: beat.load, lastSeen: Date.now(), reserved: 0 });
  }

  private liveOf(id: string): LiveState {
    const state = this.live.get(id);
    if (!state) return { status: 'idle', load: 0, lastSeen: 0, reserved: 0 };
    const stale = state.lastSeen > 0 && Date.now() - state.lastSeen > this.config.extra.AGENT_OFFLINE_AFTER_SECONDS * 1000;
    return stale ? { ...state, status: 'offline' } : state;
  }

  private toPb(a: AgentTable): pb.Agent {
    const live = this.liveOf(a.id);
    return {
      id: a.id,
      name: a.name,
      level: a.level,
      parentId: a.parent_id ?? '',
      role: a.role,
      workspace: a.workspace,
      capabilities: a.capabilities,
      status: live.status,
      load: live.load,
      lastSeenAt: live.lastSeen ? new Date(live.lastSeen).toISOString() : '',
    };
  }

  /**
   * Picks the agent for a step: the named one, or among live agents with the capability in
   * the workspace the least loaded, preferring the deepest level (L3 does the work), then id.
   */
  select(req: pb.SelectAgentRequest): pb.Agent {
    if (req.agentId) {
      const agent = this.agents.get(req.agentId);
      if (!agent) throw new ZiggieError('NOT_FOUND', `agent ${req.agentId} not found`);
      if (this.liveOf(agent.id).status === 'offline') throw new ZiggieError('AGENT_UNAVAILABLE', `agent ${agent.id} is offline`);
      this.reserve(agent.id);
      return this.toPb(agent);
    }
    const ids = this.byCapability.get(req.capability)?.get(req.workspace) ?? [];
    let best: { id: string; score: number; level: number } | undefined;
    for (const id of ids) {
      const live = this.liveOf(id);
      if (live.status === 'offline') continue;
      const level = this.agents.get(id)!.level;
      const score = live.load + live.reserved;
      if (!best || score < best.score || (score === best.score && level > best.level)) best = { id, score, level };
    }
    if (!best) {
      throw new ZiggieError('AGENT_UNAVAILABLE', `no live agent with capability ${req.capability} in workspace ${req.workspace}`);
    }
    this.reserve(best.id);
    return this.toPb(this.agents.get(best.id)!);
  }

  private reserve(id: string): void {
    const state = this.live.get(id) ?? { status: 'idle' as const, load: 0, lastSeen: 0, reserved: 0 };
    this.live.set(id, { ...state, reserved: state.reserved + 1 });
  }

  get(id: string): pb.Agent {
    const agent = this.agents.get(id);
    if (!agent) throw new ZiggieError('NOT_FOUND', `agent ${id} not found`);
    return this.toPb(agent);
  }

  list(req: pb.ListAgentsRequest): pb.ListAgentsResponse {
    const all = [...this.agents.values()].filter(
      (a) =>
        (!req.workspace || a.workspace === req.workspace) &&
        (!req.filterLevel || a.level === req.level) &&
        (!req.capability || a.capabilities.includes(req.capability)),
    );
    const offset = Number.parseInt(req.page?.cursor || '0', 10) || 0;
    const limit = Math.min(Math.max(req.page?.limit || 100, 1), 1000);
    const page = all.slice(offset, offset + limit);
    return {
      items: page.map((a) => this.toPb(a)),
      total: all.length,
      nextCursor: offset + page.length < all.length ? String(offset + page.length) : '',
    };
  }

  capabilities(): string[] {
    return [...this.byCapability.keys()].sort();
  }

  summary(): pb.HierarchySummary {
    const counts = new Map<number, number>();
    let elite = 0;
    let bmad = 0;
    for (const a of this.agents.values()) {
      if (a.team === 'bmad') bmad++;
      else if (a.team) elite++;
      else counts.set(a.level, (counts.get(a.level) ?? 0) + 1);
    }
    return {
      total: this.agents.size,
      levels: [...counts.entries()].sort(([a], [b]) => a - b).map(([level, count]) => ({ level, count })),
      elite,
      bmad,
    };
  }
}
