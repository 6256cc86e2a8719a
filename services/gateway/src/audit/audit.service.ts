import type { ServerResponse } from 'node:http';
import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationShutdown, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { type AuditEntryView, Cursors, ZiggieError } from '@ziggie/contracts';
import { DatabaseService, json, Kysely, MetricsService, Principal, Problem, ProblemEvents } from '@ziggie/platform';
import { AuditLogRow, AuditOutcome, GatewayDb } from '../migrations';
import { AuditedRequest, AuditRecord, describeRequest, isDenial, outcomeOf } from './audit-record';
import { GroupCommitWriter } from './group-commit';

/** Rows per INSERT: well under Postgres' 65,535 bind parameters at 15 columns a row. */
const MAX_BATCH = 500;
/** Beyond this many waiting writes the database is not keeping up: accepted calls are refused, denials dropped. */
const MAX_QUEUED = 20_000;

export interface AuditFilter {
  actor?: string;
  workspace?: string;
  action?: string;
  outcome?: AuditOutcome;
  from?: string;
  to?: string;
  correlationId?: string;
  limit: number;
  cursor?: string;
}

export type AuditEntry = AuditEntryView;

function entryOf(row: AuditLogRow): AuditEntry {
  return {
    id: row.id,
    at: new Date(row.at).toISOString(),
    actor: row.actor,
    roles: row.roles,
    action: row.action,
    resource: row.resource,
    resourceId: row.resource_id,
    workspace: row.workspace,
    ip: row.ip,
    userAgent: row.user_agent,
    correlationId: row.correlation_id,
    status: row.status,
    outcome: row.outcome,
    errorCode: row.error_code,
    durationMs: row.duration_ms,
  };
}

/**
 * The gateway's audit log (DESIGN §8.7). Accepted mutating calls are written `pending` before
 * their handler runs and completed when it ends; denials (401, 403, 429) are written as they
 * are answered. Every write goes through one group-commit writer.
 */
@Injectable()
export class AuditService implements OnModuleInit, OnModuleDestroy, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger('audit');
  private readonly writer = new GroupCommitWriter<AuditRecord>((rows) => this.upsert(rows), { maxBatch: MAX_BATCH, maxQueued: MAX_QUEUED });
  /** Requests with a pending record, and the code of the problem they were answered with, if any. */
  private readonly tracked = new WeakMap<object, { errorCode: string | null }>();
  private readonly failures: ReturnType<MetricsService['counter']>;
  private unsubscribe?: () => void;

  constructor(
    private readonly database: DatabaseService,
    private readonly problems: ProblemEvents,
    metrics: MetricsService,
  ) {
    this.failures = metrics.counter('ziggie_audit_write_failures_total', 'Audit records that could not be written', ['kind']);
  }

  private get db(): Kysely<GatewayDb> {
    return this.database.db<GatewayDb>();
  }

  onModuleInit(): void {
    this.unsubscribe = this.problems.subscribe((req, problem, status) => this.onProblem(req, problem, status));
  }

  onModuleDestroy(): void {
    this.unsubscribe?.();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.writer.flush();
  }

  /** Calls completed while the HTTP server drained; the database closes after this. */
  async onApplicationShutdown(): Promise<void> {
    await this.writer.flush();
  }

  /**
   * Writes the pending record of an accepted call and waits until it is durable, then completes
   * it when the response is over, with the status the caller got (a stream keeps the status it
   * started with). Throws AUDIT_UNAVAILABLE when it cannot be written: the call must then not happen.
   */
  async begin(req: AuditedRequest, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const record = describeRequest(req);
    try {
      await this.writer.write(record);
    } catch (err) {
      this.failures.inc({ kind: 'pending' });
      this.logger.error({ err, audit: record }, 'audit record could not be written; call refused');
      throw new ZiggieError('AUDIT_UNAVAILABLE', 'the audit log cannot record this call right now; nothing was done');
    }
    const answered = { errorCode: null as string | null };
    this.tracked.set(req, answered);
    res.once('close', () => this.complete(record, res.statusCode, answered.errorCode, performance.now() - started));
  }

  /** Fills in how an accepted call ended. Not awaited by the call: a lost completion leaves `pending`, later `unknown`. */
  complete(record: AuditRecord, status: number, errorCode: string | null, durationMs: number): void {
    const done: AuditRecord = { ...record, status, outcome: outcomeOf(status), error_code: errorCode, duration_ms: Math.round(durationMs) };
    this.writer.write(done).catch((err: unknown) => {
      this.failures.inc({ kind: 'completion' });
      this.logger.warn({ err, audit: done }, 'audit completion could not be written; the record stays pending');
    });
  }

  private onProblem(req: AuditedRequest, problem: Problem, status: number): void {
    // A call with a pending record: its completion carries the code, denial or not.
    const tracked = this.tracked.get(req);
    if (tracked) {
      tracked.errorCode = problem.code;
      return;
    }
    if (!isDenial(status)) return;
    const described = describeRequest(req);
    const record: AuditRecord = { ...described, status, outcome: 'denied', error_code: problem.code, correlation_id: problem.correlationId ?? described.correlation_id };
    this.writer.write(record).catch((err: unknown) => {
      this.failures.inc({ kind: 'denial' });
      // The log line keeps the denial when the table cannot.
      this.logger.warn({ err, audit: record }, 'audit denial could not be written');
    });
  }

  /** Newest first, filtered, one keyset page; a token without "*" sees only its workspaces' records. */
  async list(filter: AuditFilter, principal: Principal): Promise<{ items: AuditEntry[]; nextCursor?: string }> {
    const everything = principal.workspaces.includes('*');
    if (!everything && filter.workspace !== undefined && !principal.workspaces.includes(filter.workspace)) return { items: [] };
    if (!everything && principal.workspaces.length === 0) return { items: [] };
    let query = this.db.selectFrom('audit_log').selectAll();
    if (!everything) query = query.where('workspace', 'in', principal.workspaces);
    if (filter.actor !== undefined) query = query.where('actor', '=', filter.actor);
    if (filter.workspace !== undefined) query = query.where('workspace', '=', filter.workspace);
    if (filter.action !== undefined) query = query.where('action', '=', filter.action);
    if (filter.outcome !== undefined) query = query.where('outcome', '=', filter.outcome);
    if (filter.correlationId !== undefined) query = query.where('correlation_id', '=', filter.correlationId);
    if (filter.from !== undefined) query = query.where('at', '>=', new Date(filter.from));
    if (filter.to !== undefined) query = query.where('at', '<', new Date(filter.to));
    if (filter.cursor !== undefined) {
      // The shared codec's `audit` kind: keyset position (at, id) of the last row of the previous page.
      const after = Cursors.audit.decode(filter.cursor);
      if (after) query = query.where((eb) => eb(eb.refTuple('at', 'id'), '<', eb.tuple(new Date(after.at), after.id)));
    }
    const rows = await query.orderBy('at', 'desc').orderBy('id', 'desc').limit(filter.limit + 1).execute();
    const items = rows.slice(0, filter.limit).map(entryOf);
    if (rows.length <= filter.limit) return { items };
    const last = rows[filter.limit - 1];
    return { items, nextCursor: Cursors.audit.encode({ at: new Date(last.at).toISOString(), id: last.id }) };
  }

  /** Resolves when every write queued so far has been committed or has failed. */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  /**
   * One statement per batch. A completion reuses its pending record's id, so it updates the
   * outcome columns only; the who/what/where written before the call stay as they were.
   */
  private async upsert(records: AuditRecord[]): Promise<void> {
    // One statement may touch a row once: the latest state of a record wins.
    const latest = new Map(records.map((r) => [r.id, r]));
    await this.db
      .insertInto('audit_log')
      .values([...latest.values()].map((r) => ({ ...r, roles: json<string[]>(r.roles) })))
      .onConflict((oc) =>
        oc.column('id').doUpdateSet((eb) => ({
          status: eb.ref('excluded.status'),
          outcome: eb.ref('excluded.outcome'),
          error_code: eb.ref('excluded.error_code'),
          duration_ms: eb.ref('excluded.duration_ms'),
        })),
      )
      .execute();
  }
}
