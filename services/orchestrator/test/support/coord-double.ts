// A workspace-coord double served over real gRPC with the generated WorkspaceCoordService
// definition: the workspaces the orchestrator checks on submission, and resource pools with
// leases as the coordinator grants them — capacity (with a P0 reserve), one lease per
// (pool, holder) however often it is asked for, POOL_EXHAUSTED and POOL_NOT_FOUND refusals,
// expiry after the TTL, release by ids or holders.
import type { ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { pb, ZiggieError } from '@ziggie/contracts';
import { startGrpcServer, stopGrpcServer, unary } from '@ziggie/platform';

interface HeldLease extends pb.ResourceLease {
  expiresAtMs: number;
}

interface PoolState {
  capacity: number;
  reservedP0: number;
}

export class WorkspaceCoordDouble {
  readonly workspaces = new Set<string>();
  readonly acquireCalls: pb.AcquireLeasesRequest[] = [];
  readonly releaseCalls: pb.ReleaseLeasesRequest[] = [];
  /** Every lease ever granted, by holder. */
  readonly grantedTo = new Map<string, string>();
  /** The most units of a pool leased at once. */
  readonly peakInUse = new Map<string, number>();
  private readonly pools = new Map<string, PoolState>();
  private readonly leases = new Map<string, HeldLease>();
  private nextId = 1;

  constructor(workspaces: string[], pools: Record<string, number>) {
    for (const w of workspaces) this.workspaces.add(w);
    for (const [name, capacity] of Object.entries(pools)) this.putPool(name, capacity);
  }

  putPool(name: string, capacity: number, reservedP0 = 0): void {
    this.pools.set(name, { capacity, reservedP0 });
  }

  /** Live leases, of one pool or all. */
  active(pool?: string): pb.ResourceLease[] {
    this.expire();
    return [...this.leases.values()].filter((l) => !pool || l.resource === pool);
  }

  inUse(pool: string): number {
    return this.active(pool).reduce((n, l) => n + l.units, 0);
  }

  acquire(req: pb.AcquireLeaseRequest): pb.LeaseOutcome {
    this.expire();
    const refuse = (code: string, reason: string): pb.LeaseOutcome => ({ granted: false, code, reason, lease: undefined });
    if (!req.holder || req.units < 1 || req.ttlSeconds < 1) return refuse('VALIDATION_FAILED', 'holder, units >= 1 and ttlSeconds >= 1 are required');
    const pool = this.pools.get(req.resource);
    if (!pool) return refuse('POOL_NOT_FOUND', `pool ${req.resource} not found`);
    const existing = [...this.leases.values()].find((l) => l.resource === req.resource && l.holder === req.holder);
    if (existing) return { granted: true, code: '', reason: '', lease: existing };
    const used = this.inUse(req.resource);
    // Worded as workspace-coord words it.
    if (used + req.units > pool.capacity) {
      return refuse('POOL_EXHAUSTED', `asks for ${req.units} units, pool ${req.resource} has ${Math.max(pool.capacity - used, 0)} of ${pool.capacity} free`);
    }
    if (req.priority !== 'P0' && used + req.units > pool.capacity - pool.reservedP0) {
      const usable = Math.max(pool.capacity - pool.reservedP0 - used, 0);
      return refuse('POOL_EXHAUSTED', `asks for ${req.units} units at ${req.priority}, pool ${req.resource} has ${usable} free outside the ${pool.reservedP0} reserved for P0`);
    }
    const now = Date.now();
    const lease: HeldLease = {
      id: `lease-${this.nextId++}`,
      workspace: req.workspace,
      resource: req.resource,
      units: req.units,
      holder: req.holder,
      priority: req.priority,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + req.ttlSeconds * 1000).toISOString(),
      expiresAtMs: now + req.ttlSeconds * 1000,
    };
    this.leases.set(lease.id, lease);
    this.grantedTo.set(lease.holder, lease.id);
    this.peakInUse.set(req.resource, Math.max(this.peakInUse.get(req.resource) ?? 0, used + req.units));
    return { granted: true, code: '', reason: '', lease };
  }

  release(req: pb.ReleaseLeasesRequest): number {
    const ids = new Set(req.ids);
    const holders = new Set(req.holders);
    let released = 0;
    for (const [id, lease] of this.leases) {
      if (ids.has(id) || holders.has(lease.holder)) {
        this.leases.delete(id);
        released++;
      }
    }
    return released;
  }

  private expire(): void {
    const now = Date.now();
    for (const [id, lease] of this.leases) if (lease.expiresAtMs <= now) this.leases.delete(id);
  }

  private workspace(id: string): pb.Workspace {
    if (!this.workspaces.has(id)) throw new ZiggieError('WORKSPACE_NOT_FOUND', `workspace ${id} does not exist`);
    return {
      id,
      name: id,
      priority: 'P1',
      owner: 'ops',
      health: 'on-track',
      healthReasons: [],
      dependsOn: [],
      portRange: undefined,
      description: '',
      createdAt: '',
      updatedAt: '',
    };
  }

  implementation(): UntypedServiceImplementation {
    return implement(pb.WorkspaceCoordService, {
      getWorkspace: unary((req: pb.GetWorkspaceRequest) => this.workspace(req.id)),
      acquireLease: unary((req: pb.AcquireLeaseRequest) => {
        const outcome = this.acquire(req);
        if (!outcome.granted) throw new ZiggieError(outcome.code as 'POOL_EXHAUSTED', outcome.reason);
        return outcome.lease!;
      }),
      acquireLeases: unary((req: pb.AcquireLeasesRequest) => {
        this.acquireCalls.push(req);
        return { outcomes: req.requests.map((r) => this.acquire(r)) };
      }),
      releaseLeases: unary((req: pb.ReleaseLeasesRequest) => {
        this.releaseCalls.push(req);
        return { released: this.release(req) };
      }),
      listLeases: unary((req: pb.ListLeasesRequest) => ({
        items: this.active(req.resource || undefined).filter((l) => !req.workspace || l.workspace === req.workspace),
      })),
    });
  }
}

/** Every method of the service; those not given answer UNIMPLEMENTED. */
export function implement(definition: ServiceDefinition, given: UntypedServiceImplementation): UntypedServiceImplementation {
  const notGiven = unary(() => Promise.reject(new ZiggieError('UNIMPLEMENTED', 'not served by this double')));
  return Object.fromEntries(Object.keys(definition).map((name) => [name, given[name] ?? notGiven]));
}

export interface ServedDouble {
  address: string;
  port: number;
  stop(): Promise<void>;
}

/** Serves the double; `port` brings it back where it was (a coordinator restart). */
export async function serveCoord(double: WorkspaceCoordDouble, port = 0): Promise<ServedDouble> {
  const started = await startGrpcServer({ host: '127.0.0.1', port }, [{ definition: pb.WorkspaceCoordService, implementation: double.implementation() }]);
  return { address: `127.0.0.1:${started.port}`, port: started.port, stop: () => stopGrpcServer(started.server, 500) };
}
