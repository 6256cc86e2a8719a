import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { pb, Priority, ZiggieError } from '@ziggie/contracts';
import { callUnary, MetricsService, PeerClients } from '@ziggie/platform';
import { Counter } from 'prom-client';

/** A pool step about to be dispatched, asking workspace-coord for capacity. */
export interface LeaseClaim {
  /** The attempt id the step will be dispatched as. */
  holder: string;
  pool: string;
  workspace: string;
  priority: string;
  timeoutMs: number;
}

export type LeaseDecision = { granted: true; leaseId: string } | { granted: false; waitingReason: string };

/** An attempt's lease to give back, by holder. */
export interface HeldLease {
  holder: string;
  pool: string;
}

/** Which ready pool steps a scheduling round leaves out because asking again would be refused. */
export interface PoolSkips {
  /** workspace-coord could not be asked: every pool step waits. */
  allPools: boolean;
  /** Pools refused at a priority: their steps of that priority and lower wait. */
  pools: Array<{ pool: string; priorities: string[] }>;
}

export const UNREACHABLE_REASON = 'pool leases unavailable (workspace-coord unreachable)';
/** A lease outlives its step's timeout by this much; released when the attempt ends, the TTL only covers a lost release. */
export const LEASE_TTL_MARGIN_SECONDS = 60;
/** workspace-coord's limits: requests per AcquireLeases call, and a lease's TTL. */
export const MAX_LEASES_PER_CALL = 1_000;
const MAX_LEASE_TTL_SECONDS = 86_400;
/** A round waits this long at most for workspace-coord while its transaction is open. */
const ACQUIRE_TIMEOUT_MS = 3_000;
const RELEASE_TIMEOUT_MS = 10_000;
const RELEASE_CHUNK = 1_000;
const PRIORITIES = Priority.options;

export function leaseTtlSeconds(timeoutMs: number): number {
  return Math.min(Math.ceil(timeoutMs / 1000) + LEASE_TTL_MARGIN_SECONDS, MAX_LEASE_TTL_SECONDS);
}

/** The waiting reason a refused step shows. */
export function refusalReason(pool: string, code: string, reason: string): string {
  if (code === 'POOL_NOT_FOUND') return `pool ${pool} is not defined`;
  return `waiting for pool ${pool} (${code || 'POOL_EXHAUSTED'}: ${reason || 'no free capacity'})`;
}

/** The waiting reason of every pool step of a round whose AcquireLeases call failed. */
export function unavailableReason(err: unknown): string {
  if (err instanceof ZiggieError && !['SERVICE_UNAVAILABLE', 'UPSTREAM_TIMEOUT'].includes(err.code)) {
    return `pool leases unavailable (workspace-coord answered ${err.code}: ${err.message})`;
  }
  return UNREACHABLE_REASON;
}

function rankOf(priority: string): number {
  const rank = PRIORITIES.indexOf(priority as Priority);
  return rank < 0 ? PRIORITIES.length - 1 : rank;
}

/**
 * What this process knows it cannot get from workspace-coord right now. A refusal for a
 * priority implies one for every lower priority; a P0 may still fit a pool's P0 reserve.
 * Forgotten when a lease of the pool is released here, or when reconcile runs (leases also
 * free up elsewhere: other replicas, expiry), so the next round asks again.
 */
export class RefusalMemory {
  private unreachable = false;
  /** Pool → the highest priority (lowest rank) refused. */
  private readonly refused = new Map<string, number>();

  refusedAt(pool: string, priority: string): void {
    const rank = rankOf(priority);
    this.refused.set(pool, Math.min(rank, this.refused.get(pool) ?? rank));
  }

  undefinedPool(pool: string): void {
    this.refused.set(pool, 0);
  }

  markUnreachable(): void {
    this.unreachable = true;
  }

  markReachable(): void {
    this.unreachable = false;
  }

  forgetPools(pools: Iterable<string>): void {
    for (const p of pools) this.refused.delete(p);
  }

  forgetAll(): void {
    this.unreachable = false;
    this.refused.clear();
  }

  skips(): PoolSkips {
    return {
      allPools: this.unreachable,
      pools: [...this.refused].map(([pool, rank]) => ({ pool, priorities: PRIORITIES.slice(rank) })),
    };
  }
}

/**
 * Pool capacity as leases from workspace-coord: one AcquireLeases call per scheduling round
 * for the round's pool steps, and releases by holder (attempt id), batched and in the
 * background, when attempts end. Steps without a pool never come here.
 */
@Injectable()
export class PoolLeases implements OnApplicationShutdown {
  private readonly logger = new Logger('pool-leases');
  private readonly memory = new RefusalMemory();
  private readonly toRelease = new Map<string, string>();
  private releasing?: Promise<void>;
  private readonly listeners: Array<() => void> = [];
  private readonly requests: Counter<'outcome'>;

  constructor(
    private readonly peers: PeerClients,
    metrics: MetricsService,
  ) {
    this.requests = metrics.counter('ziggie_orchestrator_pool_lease_requests_total', 'Pool lease requests to workspace-coord by outcome', ['outcome']);
  }

  /** Called after leases were given back (capacity may be free): the engine runs a round. */
  onReleased(listener: () => void): void {
    this.listeners.push(listener);
  }

  skips(): PoolSkips {
    return this.memory.skips();
  }

  /** Reconcile: ask about every pool again. */
  forgetRefusals(): void {
    this.memory.forgetAll();
  }

  /** One AcquireLeases call, in the claims' order (the round's priority order); a decision per holder. */
  async acquire(claims: LeaseClaim[]): Promise<Map<string, LeaseDecision>> {
    const decisions = new Map<string, LeaseDecision>();
    if (claims.length === 0) return decisions;
    let res: pb.AcquireLeasesResponse;
    try {
      const coord = await this.peers.get('workspace-coord', pb.WorkspaceCoordClient);
      res = await callUnary(
        coord.acquireLeases.bind(coord),
        {
          requests: claims.map((c) => ({
            workspace: c.workspace,
            resource: c.pool,
            units: 1,
            priority: c.priority,
            ttlSeconds: leaseTtlSeconds(c.timeoutMs),
            holder: c.holder,
            principal: undefined,
          })),
        },
        { peer: 'workspace-coord', timeoutMs: ACQUIRE_TIMEOUT_MS },
      );
    } catch (err) {
      const reason = unavailableReason(err);
      this.logger.warn(`pool leases not acquired for ${claims.length} steps: ${String(err)}`);
      this.memory.markUnreachable();
      this.requests.inc({ outcome: 'unavailable' }, claims.length);
      for (const c of claims) decisions.set(c.holder, { granted: false, waitingReason: reason });
      return decisions;
    }
    this.memory.markReachable();
    for (const [i, c] of claims.entries()) {
      const outcome = res.outcomes[i];
      if (outcome?.granted && outcome.lease) {
        decisions.set(c.holder, { granted: true, leaseId: outcome.lease.id });
        this.requests.inc({ outcome: 'granted' });
        continue;
      }
      const code = outcome?.code ?? 'POOL_EXHAUSTED';
      if (code === 'POOL_NOT_FOUND') this.memory.undefinedPool(c.pool);
      else this.memory.refusedAt(c.pool, c.priority);
      decisions.set(c.holder, { granted: false, waitingReason: refusalReason(c.pool, code, outcome?.reason ?? 'no answer for this request') });
      this.requests.inc({ outcome: 'refused' });
    }
    return decisions;
  }

  /** Gives leases back in the background; a failure is only logged (the lease TTL frees it). */
  release(leases: Iterable<HeldLease>): void {
    for (const l of leases) this.toRelease.set(l.holder, l.pool);
    if (this.toRelease.size > 0) this.releasing ??= this.flush();
  }

  /** Gives leases back and waits for it (a round that rolled back, before its holders can be asked for again). */
  async releaseNow(leases: Iterable<HeldLease>): Promise<void> {
    this.release(leases);
    await this.settled();
  }

  /** Resolves once every release asked for so far was sent. */
  async settled(): Promise<void> {
    while (this.releasing) await this.releasing;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.settled();
  }

  private async flush(): Promise<void> {
    try {
      // Everything asked for until the next turn goes in one call.
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.toRelease.size > 0) {
        const batch = [...this.toRelease].slice(0, RELEASE_CHUNK);
        for (const [holder] of batch) this.toRelease.delete(holder);
        try {
          const coord = await this.peers.get('workspace-coord', pb.WorkspaceCoordClient);
          await callUnary(coord.releaseLeases.bind(coord), { ids: [], holders: batch.map(([holder]) => holder) }, { peer: 'workspace-coord', timeoutMs: RELEASE_TIMEOUT_MS });
          this.memory.markReachable();
        } catch (err) {
          this.logger.warn(`${batch.length} pool leases not released (they expire with their TTL): ${String(err)}`);
        }
        this.memory.forgetPools(new Set(batch.map(([, pool]) => pool)));
      }
    } finally {
      this.releasing = undefined;
    }
    for (const listener of this.listeners) listener();
  }
}
