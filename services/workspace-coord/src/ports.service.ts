import { Injectable } from '@nestjs/common';
import { pb, ZiggieError } from '@ziggie/contracts';
import { DatabaseService, Kysely, MetricsService, parseInput, sql } from '@ziggie/platform';
import { Counter } from 'prom-client';
import { assertWorkspaceAllowed, holderOf } from './access';
import { dbNow, dbNowPlusSeconds, isUniqueViolation, Trx } from './db';
import { WorkspaceDb } from './migrations';
import { formatRange, lowestFreePort, PortRange } from './port-ranges';
import { AllocatePortInput, LookupId, ReleasePortInput, RenewPortInput } from './validation';
import { toPbPortLease } from './views';

/**
 * Port leases. An allocation is one transaction: lock the workspace row (allocations of one
 * workspace queue behind each other on every replica), delete expired leases in its range,
 * pick, insert. The unique index on port is the last line of defence; a violation (only
 * possible if the locking were bypassed) is retried once.
 */
@Injectable()
export class PortsService {
  private readonly allocations: Counter<'result'>;

  constructor(
    private readonly database: DatabaseService,
    metrics: MetricsService,
  ) {
    this.allocations = metrics.counter('ziggie_port_allocations_total', 'Port allocation requests by outcome', ['result']);
  }

  private get db(): Kysely<WorkspaceDb> {
    return this.database.db<WorkspaceDb>();
  }

  async allocate(req: pb.AllocatePortRequest): Promise<pb.PortLease> {
    const input = parseInput(AllocatePortInput, { workspace: req.workspace, service: req.service, ttlSeconds: req.ttlSeconds, port: req.port });
    assertWorkspaceAllowed(req.principal, input.workspace);
    const holder = holderOf(req.principal);
    for (let attempt = 1; ; attempt++) {
      try {
        const lease = await this.db.transaction().execute((trx) => this.allocateIn(trx, { ...input, holder }));
        this.allocations.inc({ result: 'granted' });
        return lease;
      } catch (err) {
        if (isUniqueViolation(err) && attempt < 2) continue;
        this.allocations.inc({ result: err instanceof ZiggieError ? err.code.toLowerCase() : 'error' });
        if (isUniqueViolation(err)) throw new ZiggieError('PORT_UNAVAILABLE', 'the port was taken concurrently, try again');
        throw err;
      }
    }
  }

  private async allocateIn(trx: Trx, input: { workspace: string; service: string; ttlSeconds: number; port: number; holder: string }): Promise<pb.PortLease> {
    const range = await this.lockRange(trx, input.workspace);
    // Any expired lease in the range goes, whichever workspace held it (ranges may have moved).
    await trx.deleteFrom('port_leases').where('port', '>=', range.start).where('port', '<=', range.end).where('expires_at', '<=', dbNow()).execute();
    let port = input.port;
    if (port !== 0) {
      if (port < range.start || port > range.end) {
        throw new ZiggieError('PORT_UNAVAILABLE', `port ${port} is outside the range ${formatRange(range)} of workspace ${input.workspace}`, { range });
      }
      const held = await trx.selectFrom('port_leases').select(['workspace', 'service']).where('port', '=', port).executeTakeFirst();
      if (held) throw new ZiggieError('PORT_UNAVAILABLE', `port ${port} is leased to ${held.workspace}/${held.service}`, { port });
    } else {
      const taken = await trx.selectFrom('port_leases').select('port').where('port', '>=', range.start).where('port', '<=', range.end).orderBy('port').execute();
      const free = lowestFreePort(
        range,
        taken.map((t) => t.port),
      );
      if (free === undefined) {
        throw new ZiggieError('PORT_EXHAUSTED', `all ${taken.length} ports of workspace ${input.workspace} (${formatRange(range)}) are leased`, { range });
      }
      port = free;
    }
    const row = await trx
      .insertInto('port_leases')
      .values({ workspace: input.workspace, service: input.service, port, holder: input.holder, expires_at: dbNowPlusSeconds(input.ttlSeconds), created_at: dbNow() })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toPbPortLease(row);
  }

  /** Locks the workspace row for this transaction and returns its range. */
  private async lockRange(trx: Trx, workspace: string): Promise<PortRange> {
    const row = await trx.selectFrom('workspaces').select(['port_start', 'port_end']).where('id', '=', workspace).forNoKeyUpdate().executeTakeFirst();
    if (!row) throw new ZiggieError('WORKSPACE_NOT_FOUND', `workspace ${workspace} not found`);
    if (row.port_start === null || row.port_end === null) throw new ZiggieError('PORT_EXHAUSTED', `workspace ${workspace} has no port range`);
    return { start: row.port_start, end: row.port_end };
  }

  async renew(req: pb.RenewPortRequest): Promise<pb.PortLease> {
    const input = parseInput(RenewPortInput, { workspace: req.workspace, port: req.port, ttlSeconds: req.ttlSeconds });
    const row = await this.db
      .updateTable('port_leases')
      .set({ expires_at: dbNowPlusSeconds(input.ttlSeconds) })
      .where('workspace', '=', input.workspace)
      .where('port', '=', input.port)
      .where('expires_at', '>', dbNow())
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new ZiggieError('PORT_LEASE_NOT_FOUND', `no live lease of port ${input.port} in workspace ${input.workspace}`);
    return toPbPortLease(row);
  }

  /** Releasing a port that is not leased releases nothing; it is not an error. */
  async release(req: pb.ReleasePortRequest): Promise<pb.ReleaseResponse> {
    const input = parseInput(ReleasePortInput, { workspace: req.workspace, port: req.port });
    const rows = await this.db
      .deleteFrom('port_leases')
      .where('workspace', '=', input.workspace)
      .where('port', '=', input.port)
      .returning(sql<boolean>`expires_at > clock_timestamp()`.as('live'))
      .execute();
    return { released: rows.filter((r) => r.live).length };
  }

  async list(req: pb.ListPortsRequest): Promise<pb.ListPortsResponse> {
    const workspace = parseInput(LookupId, req.workspace);
    const ws = await this.db.selectFrom('workspaces').select(['port_start', 'port_end']).where('id', '=', workspace).executeTakeFirst();
    if (!ws) throw new ZiggieError('WORKSPACE_NOT_FOUND', `workspace ${workspace} not found`);
    const rows = await this.db.selectFrom('port_leases').selectAll().where('workspace', '=', workspace).where('expires_at', '>', dbNow()).orderBy('port').execute();
    return {
      items: rows.map(toPbPortLease),
      range: ws.port_start !== null && ws.port_end !== null ? { start: ws.port_start, end: ws.port_end } : undefined,
    };
  }
}
