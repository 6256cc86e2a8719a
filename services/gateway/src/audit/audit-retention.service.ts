import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { CONFIG, DatabaseService, Kysely, MetricsService, sql } from '@ziggie/platform';
import { GatewayDb } from '../migrations';
import { AuditConfig } from './audit.config';

const RUN_EVERY_MS = 60 * 60 * 1000;
const DELETE_BATCH = 10_000;
/** A record still pending after this long lost its call to a crash (no call takes that long to answer). */
const PENDING_TIMEOUT_MS = 5 * 60 * 1000;
/** Only one gateway replica runs the job at a time (Postgres session advisory lock). */
export const RETENTION_LOCK_KEY = 0x5a1a0d17;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface RetentionRun {
  /** False when another replica held the lock and this run did nothing. */
  ran: boolean;
  deleted: number;
  markedUnknown: number;
}

/**
 * Enforces AUDIT_RETENTION_DAYS (DESIGN §8.7): once at start-up and then every hour, deletes
 * older records in batches and marks records a crash left `pending` as `unknown`.
 */
@Injectable()
export class AuditRetentionService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('audit-retention');
  private readonly deletedTotal: ReturnType<MetricsService['counter']>;
  private timer?: NodeJS.Timeout;
  private running?: Promise<RetentionRun>;
  private stopped = false;

  constructor(
    private readonly database: DatabaseService,
    @Inject(CONFIG) private readonly config: AuditConfig,
    metrics: MetricsService,
  ) {
    this.deletedTotal = metrics.counter('ziggie_audit_retention_deleted_total', 'Audit records deleted by the retention job', []);
  }

  onApplicationBootstrap(): void {
    // Not awaited: a large backlog must not hold up the start; the job is idempotent.
    this.trigger();
    this.timer = setInterval(() => this.trigger(), RUN_EVERY_MS);
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  private trigger(): void {
    if (this.running || this.stopped) return;
    this.run().catch((err: unknown) => this.logger.error({ err }, 'audit retention run failed'));
  }

  /** One run, now; a run already in progress is joined rather than doubled. */
  run(now: Date = new Date()): Promise<RetentionRun> {
    this.running ??= this.exclusively((db) => this.runWith(db, now)).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async runWith(db: Kysely<GatewayDb>, now: Date): Promise<RetentionRun> {
    const markedUnknown = await this.markLostPendingUnknown(db, now);
    const cutoff = new Date(now.getTime() - this.config.extra.AUDIT_RETENTION_DAYS * DAY_MS);
    let deleted = 0;
    for (;;) {
      // Small batches keep each statement short, so writers are never held up for long.
      const result = await db
        .deleteFrom('audit_log')
        .where('id', 'in', db.selectFrom('audit_log').select('id').where('at', '<', cutoff).limit(DELETE_BATCH))
        .executeTakeFirst();
      const n = Number(result.numDeletedRows);
      deleted += n;
      if (n < DELETE_BATCH || this.stopped) break;
    }
    if (deleted > 0) this.deletedTotal.inc(deleted);
    if (deleted > 0 || markedUnknown > 0) this.logger.log(`deleted ${deleted} audit records older than ${cutoff.toISOString()}, marked ${markedUnknown} lost pending records unknown`);
    return { ran: true, deleted, markedUnknown };
  }

  private async markLostPendingUnknown(db: Kysely<GatewayDb>, now: Date): Promise<number> {
    const result = await db
      .updateTable('audit_log')
      .set({ outcome: 'unknown' })
      .where('outcome', '=', 'pending')
      .where('at', '<', new Date(now.getTime() - PENDING_TIMEOUT_MS))
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  /**
   * Runs `work` on one connection holding the advisory lock, or not at all when another replica
   * holds it. Audit writes go through the pool's other connections meanwhile.
   */
  private async exclusively(work: (db: Kysely<GatewayDb>) => Promise<RetentionRun>): Promise<RetentionRun> {
    const db = this.database.db<GatewayDb>();
    return db.connection().execute(async (conn) => {
      const locked = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${RETENTION_LOCK_KEY}) as locked`.execute(conn);
      if (!locked.rows[0]?.locked) return { ran: false, deleted: 0, markedUnknown: 0 };
      try {
        return await work(conn);
      } finally {
        await sql`select pg_advisory_unlock(${RETENTION_LOCK_KEY})`.execute(conn);
      }
    });
  }
}
