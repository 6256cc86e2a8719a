import { Logger } from '@nestjs/common';
import { pb, PayloadOf, Subject } from '@ziggie/contracts';
import { RegistryPort } from './peers';

export type Heartbeat = PayloadOf<Subject.AgentHeartbeat>;

export interface HostedAgentsOptions {
  runtimeId: string;
  heartbeatMs: number;
  refreshMs: number;
  /** Called with the number of hosted agents after each load. */
  onCount?: (count: number) => void;
}

const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;

/**
 * The agents this runtime hosts (every agent of the registry, fetched at start in the background
 * and refreshed), their load (steps running for each here), and their heartbeats: one core-NATS
 * beat per agent per period, plus one whenever an agent's load changes.
 */
export class HostedAgents {
  private readonly logger = new Logger('agents');
  private agents = new Map<string, pb.Agent>();
  /** The hosted agents by parent, so a delegation does not scan every agent (100,000 in a large fleet). */
  private byParent = new Map<string, pb.Agent[]>();
  private readonly load = new Map<string, number>();
  private loadTimer?: NodeJS.Timeout;
  private beatTimer?: NodeJS.Timeout;
  private stopped = false;
  private failures = 0;
  private firstLoad!: () => void;
  /** Resolves after the first successful fetch from the registry. */
  readonly loaded = new Promise<void>((resolve) => (this.firstLoad = resolve));

  constructor(
    private readonly registry: RegistryPort,
    private readonly publish: (beat: Heartbeat) => void,
    private readonly opts: HostedAgentsOptions,
  ) {}

  /** Starts loading and beating; never waits for the registry. */
  start(): void {
    this.stopped = false;
    void this.refresh();
    this.beatTimer = setInterval(() => this.beatAll(), this.opts.heartbeatMs);
    this.beatTimer.unref();
  }

  get count(): number {
    return this.agents.size;
  }

  has(agentId: string): boolean {
    return this.agents.has(agentId);
  }

  /** The hosted agents whose parent is the given agent. */
  children(agentId: string): pb.Agent[] {
    return [...(this.byParent.get(agentId) ?? [])];
  }

  loadOf(agentId: string): number {
    return this.load.get(agentId) ?? 0;
  }

  stepStarted(agentId: string): void {
    this.load.set(agentId, this.loadOf(agentId) + 1);
    this.beat(agentId, new Date().toISOString());
  }

  stepEnded(agentId: string): void {
    const left = this.loadOf(agentId) - 1;
    if (left > 0) this.load.set(agentId, left);
    else this.load.delete(agentId);
    this.beat(agentId, new Date().toISOString());
  }

  /** One beat for every hosted agent and every agent with a step running here. */
  beatAll(): void {
    const at = new Date().toISOString();
    for (const agentId of this.agents.keys()) this.beat(agentId, at);
    for (const agentId of this.load.keys()) if (!this.agents.has(agentId)) this.beat(agentId, at);
  }

  /** Stops the timers and tells the registry every hosted agent is offline. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.loadTimer);
    clearInterval(this.beatTimer);
    const at = new Date().toISOString();
    for (const agentId of new Set([...this.agents.keys(), ...this.load.keys()])) this.send({ agentId, status: 'offline', load: 0, runtimeId: this.opts.runtimeId, at });
  }

  private beat(agentId: string, at: string): void {
    if (this.stopped) return;
    const load = this.loadOf(agentId);
    this.send({ agentId, status: load > 0 ? 'busy' : 'idle', load, runtimeId: this.opts.runtimeId, at });
  }

  private send(beat: Heartbeat): void {
    try {
      this.publish(beat);
    } catch (err) {
      // NATS may be reconnecting; the next period beats again.
      this.logger.debug(`heartbeat for ${beat.agentId} not sent: ${String(err)}`);
    }
  }

  /** Fetches the agents; on failure retries with backoff, on success again after the refresh period. */
  async refresh(): Promise<void> {
    clearTimeout(this.loadTimer);
    let next: number;
    try {
      const agents = await this.registry.listAgents();
      if (this.stopped) return;
      const known = this.agents.size;
      this.agents = new Map(agents.map((a) => [a.id, a]));
      this.byParent = new Map();
      for (const a of agents) {
        const siblings = this.byParent.get(a.parentId);
        if (siblings) siblings.push(a);
        else this.byParent.set(a.parentId, [a]);
      }
      if (known !== this.agents.size) this.logger.log(`hosting ${this.agents.size} agents`);
      this.opts.onCount?.(this.agents.size);
      this.failures = 0;
      next = this.opts.refreshMs;
      this.firstLoad();
    } catch (err) {
      if (this.stopped) return;
      this.failures++;
      next = Math.min(FIRST_RETRY_MS * 2 ** (this.failures - 1), MAX_RETRY_MS, this.opts.refreshMs);
      this.logger.warn(`agents not loaded from agent-registry (retrying in ${next} ms): ${String(err)}`);
    }
    this.loadTimer = setTimeout(() => void this.refresh(), next);
    this.loadTimer.unref();
  }
}
