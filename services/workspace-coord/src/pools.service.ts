import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { canAccessWorkspace, isErrorCode, pb, ZiggieError } from '@ziggie/contracts';
import { CONFIG, DatabaseService, Kysely, MetricsService, parseInput, Selectable, sql, zodToZiggie } from '@ziggie/platform';
import { randomUUID } from 'node:crypto';
import { Counter } from 'prom-client';
import { requirePermission } from './access';
import { defaultPoolKind, WorkspaceConfig } from './config';
import { dbNow, dbNowPlusSeconds, Trx } from './db';
import { ResourceLeaseTable, WorkspaceDb } from './migrations';
import { decideLease, PRIORITIES, Priority } from './pool-rules';
import { AcquireLeaseInput, ListLeasesInput, LookupId, MAX_LEASE_BATCH, PutPoolInput, ReleaseLeasesInput, RenewLeaseInput } from './validation';
import { toPbLease, toPbPool } from './views';

type LeaseRow = Selectable<ResourceLeaseTable>;

interface Pending {
  index: number;
  input: AcquireLeaseInput;
}

const refused = (code: string, reason: string): pb.LeaseOutcome => ({ lease: undefined, granted: false, code, reason });
const holderKey = (pool: string, holder: string) => `${pool}\u0000${holder}`;

function leaseInput(r: pb.AcquireLeaseRequest) {
  return { workspace: r.workspace, resource: r.resource, units: r.units, priority: r.priority, ttlSeconds: r.ttlSeconds, holder: r.holder };
}

/**
 * Shared resource pools (a GPU pool, a ComfyUI instance) and leases on their units. Every
 * acquisition locks its pool rows, so the sum of live leases never exceeds a pool's capacity,
 * whichever replica grants them.
 */
@Injectable()
export class PoolsService implements OnApplicationBootstrap {
  private readonly logger = new Logger('pools');
  private readonly outcomes: Counter<'result'>;

  constructor(
    private readonly database: DatabaseService,
    @Inject(CONFIG) private readonly config: WorkspaceConfig,
    metrics: MetricsService,
  ) {
    this.outcomes = metrics.counter('ziggie_resource_lease_requests_total', 'Resource lease requests by outcome', ['result']);
  }

  private get db(): Kysely<WorkspaceDb> {
    return this.database.db<WorkspaceDb>();
  }

  /** Pools named in POOLS are created when missing; existing ones keep what PutPool made of them. */
  async onApplicationBootstrap(): Promise<void> {
    const seeds = this.config.extra.POOLS;
    if (seeds.length === 0) return;
    const inserted = await this.db
      .insertInto('pools')
      .values(seeds.map((p) => ({ name: p.name, kind: p.kind, capacity: p.capacity })))
      .onConflict((oc) => oc.column('name').doNothing())
      .returning('name')
      .execute();
    if (inserted.length > 0) this.logger.log(`created pools ${inserted.map((p) => p.name).join(', ')}`);
  }

  private async usage(names?: string[]): Promise<Map<string, { inUse: number; leases: number }>> {
    let q = this.db
      .selectFrom('resource_leases')
      .select((eb) => ['pool', eb.fn.sum<string>('units').as('units'), eb.fn.countAll<string>().as('n')])
      .where('expires_at', '>', dbNow())
      .groupBy('pool');
    if (names) q = q.where('pool', 'in', names);
    const rows = await q.execute();
    return new Map(rows.map((r) => [r.pool, { inUse: Number(r.units), leases: Number(r.n) }]));
  }

  async list(): Promise<pb.ListPoolsResponse> {
    const [pools, usage] = await Promise.all([this.db.selectFrom('pools').selectAll().orderBy('name').execute(), this.usage()]);
    return { items: pools.map((p) => toPbPool(p, usage.get(p.name))) };
  }

  async get(name: string): Promise<pb.Pool> {
    parseInput(LookupId, name);
    const pool = await this.db.selectFrom('pools').selectAll().where('name', '=', name).executeTakeFirst();
    if (!pool) throw new ZiggieError('POOL_NOT_FOUND', `pool ${name} not found`);
    return toPbPool(pool, (await this.usage([name])).get(name));
  }

  /**
   * Creates a pool or sets its capacity, P0 reserve and description (an empty kind keeps the
   * current one). Lowering the capacity below what is leased revokes nothing: new requests
   * wait until enough leases end.
   */
  async put(req: pb.PutPoolRequest): Promise<pb.Pool> {
    requirePermission(req.principal, 'config:change');
    const p = req.pool;
    const input = parseInput(PutPoolInput, { name: p?.name ?? '', kind: p?.kind ?? '', capacity: p?.capacity ?? 0, reservedP0: p?.reservedP0 ?? 0, description: p?.description ?? '' });
    await this.db
      .insertInto('pools')
      .values({ name: input.name, kind: input.kind || defaultPoolKind(input.name), capacity: input.capacity, reserved_p0: input.reservedP0, description: input.description })
      .onConflict((oc) =>
        oc.column('name').doUpdateSet({
          ...(input.kind && { kind: input.kind }),
          capacity: input.capacity,
          reserved_p0: input.reservedP0,
          description: input.description,
          updated_at: dbNow(),
        }),
      )
      .execute();
    return this.get(input.name);
  }

  /** One acquisition; a refusal is thrown with its code. */
  async acquire(req: pb.AcquireLeaseRequest): Promise<pb.ResourceLease> {
    parseInput(AcquireLeaseInput, leaseInput(req));
    const [outcome] = await this.acquireMany([req]);
    if (!outcome?.granted || !outcome.lease) {
      throw new ZiggieError(outcome && isErrorCode(outcome.code) ? outcome.code : 'INTERNAL', outcome?.reason || 'lease not granted');
    }
    return outcome.lease;
  }

  /**
   * Acquisitions in one transaction, decided one by one in request order: an earlier grant
   * counts against a later request of the same pool. Workspaces are locked (key share: they
   * cannot be deleted meanwhile) and then pools (for update), each set in name order, so
   * concurrent batches never deadlock.
   */
  async acquireMany(requests: readonly pb.AcquireLeaseRequest[]): Promise<pb.LeaseOutcome[]> {
    if (requests.length > MAX_LEASE_BATCH) throw new ZiggieError('VALIDATION_FAILED', `at most ${MAX_LEASE_BATCH} requests per call, got ${requests.length}`);
    const outcomes: pb.LeaseOutcome[] = [];
    const pending: Pending[] = [];
    requests.forEach((r, index) => {
      const parsed = AcquireLeaseInput.safeParse(leaseInput(r));
      if (!parsed.success) outcomes[index] = refused('VALIDATION_FAILED', zodToZiggie(parsed.error).message);
      else if (r.principal && !canAccessWorkspace(r.principal.workspaces, parsed.data.workspace)) {
        outcomes[index] = refused('AUTH_WORKSPACE_FORBIDDEN', `workspace ${parsed.data.workspace} not allowed for this token`);
      } else pending.push({ index, input: parsed.data });
    });
    if (pending.length > 0) {
      await this.db.transaction().execute(async (trx) => {
        for (const [index, outcome] of await this.decide(trx, pending)) outcomes[index] = outcome;
      });
    }
    for (const o of outcomes) this.outcomes.inc({ result: o.granted ? 'granted' : o.code.toLowerCase() });
    return outcomes;
  }

  private async decide(trx: Trx, pending: readonly Pending[]): Promise<Map<number, pb.LeaseOutcome>> {
    const workspaceIds = [...new Set(pending.map((p) => p.input.workspace))].sort();
    const poolNames = [...new Set(pending.map((p) => p.input.resource))].sort();
    const workspaces = new Map(
      (await trx.selectFrom('workspaces').select(['id', 'priority']).where('id', 'in', workspaceIds).orderBy('id').forKeyShare().execute()).map((w) => [w.id, w]),
    );
    const pools = new Map((await trx.selectFrom('pools').selectAll().where('name', 'in', poolNames).orderBy('name').forUpdate().execute()).map((p) => [p.name, p]));
    const locked = [...pools.keys()];
    const inUse = new Map<string, number>();
    const byHolder = new Map<string, LeaseRow>();
    if (locked.length > 0) {
      await trx.deleteFrom('resource_leases').where('pool', 'in', locked).where('expires_at', '<=', dbNow()).execute();
      for (const lease of await trx.selectFrom('resource_leases').selectAll().where('pool', 'in', locked).execute()) {
        inUse.set(lease.pool, (inUse.get(lease.pool) ?? 0) + lease.units);
        byHolder.set(holderKey(lease.pool, lease.holder), lease);
      }
    }

    const outcomes = new Map<number, pb.LeaseOutcome>();
    for (const { index, input } of pending) {
      const workspace = workspaces.get(input.workspace);
      const pool = pools.get(input.resource);
      if (!workspace) {
        outcomes.set(index, refused('WORKSPACE_NOT_FOUND', `workspace ${input.workspace} not found`));
        continue;
      }
      if (!pool) {
        outcomes.set(index, refused('POOL_NOT_FOUND', `pool ${input.resource} not found`));
        continue;
      }
      const key = holderKey(pool.name, input.holder);
      const existing = byHolder.get(key);
      if (existing) {
        // The same holder again (a retry): the same lease, held at least as long as now asked.
        const renewed = await trx
          .updateTable('resource_leases')
          .set({ expires_at: sql<Date>`greatest(expires_at, ${dbNowPlusSeconds(input.ttlSeconds)})` })
          .where('id', '=', existing.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        byHolder.set(key, renewed);
        outcomes.set(index, { lease: toPbLease(renewed), granted: true, code: '', reason: '' });
        continue;
      }
      const priority: Priority = input.priority || ((PRIORITIES as readonly string[]).includes(workspace.priority) ? (workspace.priority as Priority) : 'P1');
      const used = inUse.get(pool.name) ?? 0;
      const decision = decideLease({ name: pool.name, capacity: pool.capacity, reservedP0: pool.reserved_p0 }, used, input.units, priority);
      if (!decision.granted) {
        outcomes.set(index, refused('POOL_EXHAUSTED', decision.reason));
        continue;
      }
      const lease = await trx
        .insertInto('resource_leases')
        .values({
          id: `lease_${randomUUID().replace(/-/g, '')}`,
          pool: pool.name,
          workspace: workspace.id,
          units: input.units,
          priority,
          holder: input.holder,
          expires_at: dbNowPlusSeconds(input.ttlSeconds),
          created_at: dbNow(),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      inUse.set(pool.name, used + input.units);
      byHolder.set(key, lease);
      outcomes.set(index, { lease: toPbLease(lease), granted: true, code: '', reason: '' });
    }
    return outcomes;
  }

  async renew(req: pb.RenewLeaseRequest): Promise<pb.ResourceLease> {
    const input = parseInput(RenewLeaseInput, { id: req.id, ttlSeconds: req.ttlSeconds });
    const row = await this.db
      .updateTable('resource_leases')
      .set({ expires_at: dbNowPlusSeconds(input.ttlSeconds) })
      .where('id', '=', input.id)
      .where('expires_at', '>', dbNow())
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new ZiggieError('LEASE_NOT_FOUND', `lease ${input.id} not found or expired`);
    return toPbLease(row);
  }

  /** Releases by ids and/or holders; counts the live leases released. */
  async release(req: pb.ReleaseLeasesRequest): Promise<pb.ReleaseResponse> {
    const input = parseInput(ReleaseLeasesInput, { ids: req.ids, holders: req.holders });
    const rows = await this.db
      .deleteFrom('resource_leases')
      .where((eb) => eb.or([...(input.ids.length ? [eb('id', 'in', input.ids)] : []), ...(input.holders.length ? [eb('holder', 'in', input.holders)] : [])]))
      .returning(sql<boolean>`expires_at > clock_timestamp()`.as('live'))
      .execute();
    return { released: rows.filter((r) => r.live).length };
  }

  async listLeases(req: pb.ListLeasesRequest): Promise<pb.ListLeasesResponse> {
    const input = parseInput(ListLeasesInput, { resource: req.resource, workspace: req.workspace });
    let q = this.db.selectFrom('resource_leases').selectAll().where('expires_at', '>', dbNow());
    if (input.resource) q = q.where('pool', '=', input.resource);
    if (input.workspace) q = q.where('workspace', '=', input.workspace);
    return { items: (await q.orderBy('created_at').orderBy('id').execute()).map(toPbLease) };
  }
}
