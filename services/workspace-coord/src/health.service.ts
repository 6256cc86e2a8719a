import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { pb, Subject, ZiggieError } from '@ziggie/contracts';
import { callUnary, CONFIG, DatabaseService, json, Kysely, MetricsService, NatsService, parseInput, PeerClients, Selectable, sql } from '@ziggie/platform';
import { randomUUID } from 'node:crypto';
import { Gauge } from 'prom-client';
import { assertWorkspaceAllowed, holderOf } from './access';
import { WorkspaceConfig } from './config';
import { dbNow, dbNowPlusSeconds, iso, Trx } from './db';
import { Assessment, assessAll, HEALTH_STATUSES, HealthStatus, isHealthStatus } from './health-rules';
import { HealthReportTable, WorkspaceDb, WorkspaceHealthTable } from './migrations';
import { LookupId, ReportHealthInput } from './validation';
import { toPbReport } from './views';

/** Replicas store their rounds one at a time, each comparing against what the previous one stored. */
const HEALTH_ROUND_LOCK = 0x7a5c0de;
const STATS_TIMEOUT_MS = 2_000;
/** A change whose event was not confirmed this long after it was stored is published again. */
const REPUBLISH_AFTER_SECONDS = 10;

type ReportRow = Selectable<HealthReportTable>;
type StoredHealth = Selectable<WorkspaceHealthTable>;

interface Evaluation {
  computedAt: Date;
  assessments: Map<string, Assessment>;
  /** Undefined when the orchestrator could not be asked. */
  stats: Map<string, pb.WorkspaceTaskStats> | undefined;
  reports: Map<string, ReportRow[]>;
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * Computes every workspace's health (rules in health-rules.ts) every HEALTH_INTERVAL_SECONDS
 * and after each report, stores it, and publishes a WorkspaceHealth event when a status
 * changes. Rounds take a transaction-level advisory lock and read reports and the stored
 * health under it, so each round builds on the previous one and a change is stored, and
 * published, by exactly one replica.
 */
@Injectable()
export class HealthService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('health');
  private timer?: NodeJS.Timeout;
  private running?: Promise<Evaluation>;
  private queued?: Promise<Evaluation>;
  private stopped = false;
  private statsUnavailable = false;
  private readonly gauge: Gauge<'workspace' | 'status'>;

  constructor(
    private readonly database: DatabaseService,
    private readonly nats: NatsService,
    private readonly peers: PeerClients,
    @Inject(CONFIG) private readonly config: WorkspaceConfig,
    metrics: MetricsService,
  ) {
    this.gauge = metrics.gauge('ziggie_workspace_health', 'Workspace health: 1 for the current status of each workspace', ['workspace', 'status']);
  }

  private get db(): Kysely<WorkspaceDb> {
    return this.database.db<WorkspaceDb>();
  }

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => this.evaluateSoon(), this.config.extra.HEALTH_INTERVAL_SECONDS * 1000);
    this.timer.unref();
    this.evaluateSoon();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await Promise.allSettled([this.running, this.queued]);
  }

  /** Starts a round in the background (after a change that may move health). */
  evaluateSoon(): void {
    if (this.stopped) return;
    this.evaluate().catch((err: unknown) => {
      if (!this.stopped) this.logger.warn(`health round failed: ${String(err)}`);
    });
  }

  /**
   * A round that starts after this call: joins the queued round when one is waiting, else
   * queues one behind the round in progress (whose inputs may predate the caller's change).
   */
  evaluate(): Promise<Evaluation> {
    if (!this.running) return this.start();
    this.queued ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.start();
      });
    return this.queued;
  }

  private start(): Promise<Evaluation> {
    if (this.stopped) return Promise.reject(new ZiggieError('SERVICE_UNAVAILABLE', 'workspace-coord is stopping'));
    const round = this.round().finally(() => {
      if (this.running === round) this.running = undefined;
    });
    this.running = round;
    return round;
  }

  private async fetchStats(ids: string[]): Promise<Map<string, pb.WorkspaceTaskStats> | undefined> {
    if (ids.length === 0) return new Map();
    try {
      const orchestrator = await this.peers.get('orchestrator', pb.OrchestratorClient);
      const res = await callUnary(
        orchestrator.getWorkspaceStats.bind(orchestrator),
        { workspaces: ids, windowSeconds: this.config.extra.HEALTH_WINDOW_SECONDS },
        { timeoutMs: STATS_TIMEOUT_MS, peer: 'orchestrator' },
      );
      if (this.statsUnavailable) this.logger.log('task stats from the orchestrator are available again');
      this.statsUnavailable = false;
      return new Map(res.items.map((s) => [s.workspace, s]));
    } catch (err) {
      if (!this.statsUnavailable) this.logger.warn(`task stats unavailable, keeping the last known task health: ${String(err)}`);
      this.statsUnavailable = true;
      return undefined;
    }
  }

  private async round(): Promise<Evaluation> {
    const ids = (await this.db.selectFrom('workspaces').select('id').execute()).map((r) => r.id);
    // Asked outside the transaction: no lock or connection is held while the orchestrator answers.
    const stats = await this.fetchStats(ids);
    const { evaluation, changed } = await this.db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(${HEALTH_ROUND_LOCK})`.execute(trx);
      return this.assessAndStore(trx, stats);
    });
    for (const row of changed) await this.publish(row);
    await this.republishPending();
    this.gauge.reset();
    for (const [id, a] of evaluation.assessments) for (const s of HEALTH_STATUSES) this.gauge.set({ workspace: id, status: s }, a.status === s ? 1 : 0);
    return evaluation;
  }

  private async assessAndStore(trx: Trx, stats: Evaluation['stats']): Promise<{ evaluation: Evaluation; changed: StoredHealth[] }> {
    const { at } = (await sql<{ at: Date }>`select clock_timestamp() as at`.execute(trx)).rows[0]!;
    // Creation stores a row already; this only covers rows that are missing for any reason.
    await sql`
      insert into workspace_health (workspace)
      select w.id from workspaces w where not exists (select 1 from workspace_health h where h.workspace = w.id)
      on conflict do nothing
    `.execute(trx);
    const workspaces = await trx.selectFrom('workspaces').select(['id', 'depends_on']).orderBy('id').execute();
    const liveReports = await trx.selectFrom('health_reports').selectAll().where('expires_at', '>', dbNow()).orderBy('reported_at').orderBy('id').execute();
    const stored = new Map((await trx.selectFrom('workspace_health').selectAll().execute()).map((r) => [r.workspace, r]));

    const reports = new Map<string, ReportRow[]>();
    for (const r of liveReports) reports.set(r.workspace, [...(reports.get(r.workspace) ?? []), r]);
    const rules = { windowSeconds: this.config.extra.HEALTH_WINDOW_SECONDS, failedBlocked: this.config.extra.HEALTH_FAILED_BLOCKED };
    const assessments = assessAll(
      workspaces.map((w) => {
        const previous = stored.get(w.id);
        return {
          id: w.id,
          dependsOn: w.depends_on,
          reports: (reports.get(w.id) ?? []).flatMap((r) => (isHealthStatus(r.status) ? [{ status: r.status, reason: r.reason, reportedBy: r.reported_by }] : [])),
          tasks: stats ? { failed: stats.get(w.id)?.failed ?? 0, lastFailure: stats.get(w.id)?.lastFailure ?? '' } : undefined,
          lastKnownTasks: previous && isHealthStatus(previous.task_status) ? { status: previous.task_status, reasons: previous.task_reasons } : undefined,
        };
      }),
      rules,
    );

    const changed: StoredHealth[] = [];
    for (const [id, a] of assessments) {
      const before = stored.get(id);
      if (
        before &&
        before.status === a.status &&
        sameList(before.reasons, a.reasons) &&
        before.task_status === a.tasks.status &&
        sameList(before.task_reasons, a.tasks.reasons)
      ) {
        continue;
      }
      const findings = { reasons: json<string[]>(a.reasons), task_status: a.tasks.status, task_reasons: json<string[]>(a.tasks.reasons), computed_at: at };
      // Compare and store in one statement: the row only changes status when it differs.
      const flipped = await trx
        .updateTable('workspace_health')
        .set((eb) => ({ ...findings, status: a.status, previous_status: eb.ref('status'), changed_at: at, event_seq: eb('event_seq', '+', 1) }))
        .where('workspace', '=', id)
        .where('status', '<>', a.status)
        .returningAll()
        .executeTakeFirst();
      if (flipped) changed.push(flipped);
      else await trx.updateTable('workspace_health').set(findings).where('workspace', '=', id).execute();
    }
    return { evaluation: { computedAt: at, assessments, stats, reports }, changed };
  }

  private async publish(row: StoredHealth): Promise<void> {
    const previous = row.previous_status && isHealthStatus(row.previous_status) ? row.previous_status : undefined;
    try {
      await this.nats.publish(
        Subject.WorkspaceHealth,
        row.workspace,
        { workspace: row.workspace, status: row.status as HealthStatus, previous, reasons: row.reasons, at: iso(row.changed_at) },
        // A republished change is dropped by JetStream's duplicate window.
        { msgId: `${row.workspace}.health.${row.event_seq}.${new Date(row.changed_at).getTime()}` },
      );
      await this.db.updateTable('workspace_health').set({ published_seq: row.event_seq }).where('workspace', '=', row.workspace).where('published_seq', '<', row.event_seq).execute();
      this.logger.log(`workspace ${row.workspace} is ${row.status}${previous ? ` (was ${previous})` : ''}: ${row.reasons.join('; ')}`);
    } catch (err) {
      this.logger.warn(`health event for ${row.workspace} not published yet: ${String(err)}`);
    }
  }

  /** Changes stored by a replica that stopped (or lost NATS) before their events went out. */
  private async republishPending(): Promise<void> {
    const pending = await this.db
      .selectFrom('workspace_health')
      .selectAll()
      .whereRef('published_seq', '<', 'event_seq')
      .where('changed_at', '<', sql<Date>`clock_timestamp() - (${REPUBLISH_AFTER_SECONDS}::integer * interval '1 second')`)
      .execute();
    for (const row of pending) await this.publish(row);
  }

  async get(id: string): Promise<pb.WorkspaceHealth> {
    parseInput(LookupId, id);
    return this.view(await this.evaluate(), id);
  }

  private view(evaluation: Evaluation, id: string): pb.WorkspaceHealth {
    const a = evaluation.assessments.get(id);
    if (!a) throw new ZiggieError('WORKSPACE_NOT_FOUND', `workspace ${id} not found`);
    const stats = evaluation.stats?.get(id);
    return {
      workspace: id,
      status: a.status,
      reasons: a.reasons,
      tasksRunning: stats?.running ?? 0,
      tasksFailed: stats?.failed ?? 0,
      tasksSucceeded: stats?.succeeded ?? 0,
      reports: (evaluation.reports.get(id) ?? []).map(toPbReport),
      computedAt: iso(evaluation.computedAt),
    };
  }

  /** Records a report (replacing the reporter's earlier ones for the workspace) and answers the health it leads to. */
  async report(req: pb.ReportHealthRequest): Promise<pb.WorkspaceHealth> {
    const input = parseInput(ReportHealthInput, { workspace: req.workspace, status: req.status, reason: req.reason, ttlSeconds: req.ttlSeconds });
    assertWorkspaceAllowed(req.principal, input.workspace);
    const reportedBy = holderOf(req.principal);
    await this.db.transaction().execute(async (trx) => {
      const workspace = await trx.selectFrom('workspaces').select('id').where('id', '=', input.workspace).forKeyShare().executeTakeFirst();
      if (!workspace) throw new ZiggieError('WORKSPACE_NOT_FOUND', `workspace ${input.workspace} not found`);
      await trx.deleteFrom('health_reports').where('workspace', '=', input.workspace).where('reported_by', '=', reportedBy).execute();
      await trx
        .insertInto('health_reports')
        .values({
          id: `hr_${randomUUID().replace(/-/g, '')}`,
          workspace: input.workspace,
          status: input.status,
          reason: input.reason,
          reported_by: reportedBy,
          reported_at: dbNow(),
          expires_at: dbNowPlusSeconds(input.ttlSeconds),
        })
        .execute();
    });
    return this.view(await this.evaluate(), input.workspace);
  }
}
