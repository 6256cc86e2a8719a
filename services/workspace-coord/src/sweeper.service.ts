import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { CONFIG, DatabaseService, Kysely, MetricsService } from '@ziggie/platform';
import { Gauge } from 'prom-client';
import { WorkspaceConfig } from './config';
import { dbNow } from './db';
import { WorkspaceDb } from './migrations';

/**
 * Deletes expired port leases, resource leases and health reports. Correctness never waits
 * for it (allocations drop expired rows themselves and every read filters on expiry); it keeps
 * the tables small and the pool gauges current.
 */
@Injectable()
export class SweeperService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('sweeper');
  private timer?: NodeJS.Timeout;
  private sweeping?: Promise<void>;
  private stopped = false;
  private readonly capacity: Gauge<'pool'>;
  private readonly inUse: Gauge<'pool'>;

  constructor(
    private readonly database: DatabaseService,
    @Inject(CONFIG) private readonly config: WorkspaceConfig,
    metrics: MetricsService,
  ) {
    // Read at scrape time too: between sweeps (30 s by default) a new pool or lease shows at once.
    let refreshing: Promise<void> | undefined;
    const collect = (): Promise<void> => (refreshing ??= this.updateGauges().catch(() => undefined).finally(() => (refreshing = undefined)));
    this.capacity = new Gauge({ name: 'ziggie_pool_capacity_units', help: 'Units of each resource pool', labelNames: ['pool'], registers: [metrics.registry], collect });
    this.inUse = new Gauge({ name: 'ziggie_pool_units_in_use', help: 'Units of each resource pool held by live leases', labelNames: ['pool'], registers: [metrics.registry], collect });
  }

  private get db(): Kysely<WorkspaceDb> {
    return this.database.db<WorkspaceDb>();
  }

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => this.sweepSoon(), this.config.extra.LEASE_SWEEP_INTERVAL_SECONDS * 1000);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.sweeping;
  }

  private sweepSoon(): void {
    if (this.stopped || this.sweeping) return;
    this.sweeping = this.sweep()
      .then((n) => {
        if (n.ports + n.leases + n.reports > 0) this.logger.debug(`swept ${n.ports} port leases, ${n.leases} resource leases, ${n.reports} health reports`);
      })
      .catch((err: unknown) => {
        if (!this.stopped) this.logger.warn(`sweep failed: ${String(err)}`);
      })
      .finally(() => (this.sweeping = undefined));
  }

  async sweep(): Promise<{ ports: number; leases: number; reports: number }> {
    const ports = await this.db.deleteFrom('port_leases').where('expires_at', '<=', dbNow()).executeTakeFirst();
    const leases = await this.db.deleteFrom('resource_leases').where('expires_at', '<=', dbNow()).executeTakeFirst();
    const reports = await this.db.deleteFrom('health_reports').where('expires_at', '<=', dbNow()).executeTakeFirst();
    await this.updateGauges();
    return { ports: Number(ports.numDeletedRows), leases: Number(leases.numDeletedRows), reports: Number(reports.numDeletedRows) };
  }

  private async updateGauges(): Promise<void> {
    const pools = await this.db.selectFrom('pools').select(['name', 'capacity']).execute();
    const used = await this.db
      .selectFrom('resource_leases')
      .select((eb) => ['pool', eb.fn.sum<string>('units').as('units')])
      .where('expires_at', '>', dbNow())
      .groupBy('pool')
      .execute();
    const usage = new Map(used.map((u) => [u.pool, Number(u.units)]));
    this.capacity.reset();
    this.inUse.reset();
    for (const p of pools) {
      this.capacity.set({ pool: p.name }, p.capacity);
      this.inUse.set({ pool: p.name }, usage.get(p.name) ?? 0);
    }
  }
}
