import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Cursors, DEFAULT_WORKSPACES, pb, ZiggieError } from '@ziggie/contracts';
import { CONFIG, DatabaseService, json, Kysely, parseInput, sql } from '@ziggie/platform';
import { assertWorkspaceAllowed, requirePermission } from './access';
import { WorkspaceConfig } from './config';
import { dbNow, lockWorkspaceGraph, Trx } from './db';
import { affectedWorkspaces, cycleThrough, DependencyGraph, formatCycle } from './graph';
import { HealthService } from './health.service';
import { WorkspaceDb } from './migrations';
import { findOverlap, formatRange, nextFreeBlock, PortRange } from './port-ranges';
import { AffectedInput, CreateWorkspaceInput, givenRange, ListWorkspacesInput, LookupId, UpdateWorkspaceInput } from './validation';
import { toPbWorkspace } from './views';

interface GraphRow {
  id: string;
  depends_on: string[];
  port_start: number | null;
  port_end: number | null;
}

function rangesOf(rows: readonly GraphRow[], except?: string): Array<{ id: string; range: PortRange }> {
  return rows.flatMap((r) => (r.id !== except && r.port_start !== null && r.port_end !== null ? [{ id: r.id, range: { start: r.port_start, end: r.port_end } }] : []));
}

function graphOf(rows: readonly GraphRow[]): Map<string, readonly string[]> {
  return new Map(rows.map((r) => [r.id, r.depends_on]));
}

/** Refuses dependencies on unknown workspaces and dependencies that would close a cycle. */
function checkDependencies(graph: DependencyGraph, id: string, dependsOn: readonly string[]): void {
  const cycle = cycleThrough(graph, id);
  if (cycle) throw new ZiggieError('WORKSPACE_CYCLE', `dependencies would form a cycle: ${formatCycle(cycle)}`, { cycle });
  const missing = dependsOn.filter((d) => !graph.has(d));
  if (missing.length > 0) throw new ZiggieError('WORKSPACE_NOT_FOUND', `unknown dependencies: ${missing.join(', ')}`, { missing });
}

function checkOverlap(range: PortRange, others: Array<{ id: string; range: PortRange }>): void {
  const clash = findOverlap(range, others);
  if (clash) {
    throw new ZiggieError('PORT_RANGE_OVERLAP', `port range ${formatRange(range)} overlaps ${formatRange(clash.range)} of workspace ${clash.id}`, {
      workspace: clash.id,
      range: clash.range,
    });
  }
}

/** Workspaces: CRUD, the dependency graph, and the port range each one owns. */
@Injectable()
export class WorkspacesService implements OnApplicationBootstrap {
  private readonly logger = new Logger('workspaces');

  constructor(
    private readonly database: DatabaseService,
    private readonly health: HealthService,
    @Inject(CONFIG) private readonly config: WorkspaceConfig,
  ) {}

  private get db(): Kysely<WorkspaceDb> {
    return this.database.db<WorkspaceDb>();
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await lockWorkspaceGraph(trx);
      if (this.config.extra.ZIGGIE_SEED === 'default') await this.seedDefaults(trx);
      await this.assignMissingRanges(trx);
    });
  }

  private nextBlock(taken: readonly PortRange[]): PortRange {
    const { PORT_RANGE_BASE: base, PORT_RANGE_SIZE: size } = this.config.extra;
    const block = nextFreeBlock(taken, base, size);
    if (!block) throw new ZiggieError('PORT_EXHAUSTED', `no free block of ${size} ports left from port ${base} up`);
    return block;
  }

  /** Inserts the default workspaces that are missing, each with the next free port block, in their listed order. */
  private async seedDefaults(trx: Trx): Promise<number> {
    const rows = await trx.selectFrom('workspaces').select(['id', 'depends_on', 'port_start', 'port_end']).execute();
    const existing = new Set(rows.map((r) => r.id));
    const taken = rangesOf(rows).map((r) => r.range);
    let inserted = 0;
    for (const w of DEFAULT_WORKSPACES) {
      if (existing.has(w.id)) continue;
      const range = this.nextBlock(taken);
      taken.push(range);
      await trx
        .insertInto('workspaces')
        .values({ id: w.id, name: w.name, priority: w.priority, owner: w.owner, depends_on: json<string[]>(w.dependsOn), port_start: range.start, port_end: range.end })
        .execute();
      await trx.insertInto('workspace_health').values({ workspace: w.id }).execute();
      inserted++;
    }
    if (inserted > 0) this.logger.log(`seeded ${inserted} workspaces`);
    return inserted;
  }

  /** Workspaces from before port ranges existed get the next free blocks, oldest first. */
  private async assignMissingRanges(trx: Trx): Promise<void> {
    const rows = await trx.selectFrom('workspaces').select(['id', 'depends_on', 'port_start', 'port_end']).orderBy('created_at').orderBy('id').execute();
    const taken = rangesOf(rows).map((r) => r.range);
    for (const row of rows.filter((r) => r.port_start === null)) {
      const range = this.nextBlock(taken);
      taken.push(range);
      await trx.updateTable('workspaces').set({ port_start: range.start, port_end: range.end }).where('id', '=', row.id).execute();
      this.logger.log(`workspace ${row.id} gets ports ${formatRange(range)}`);
    }
  }

  private selectWorkspaces() {
    return this.db
      .selectFrom('workspaces as w')
      .leftJoin('workspace_health as h', 'h.workspace', 'w.id')
      .selectAll('w')
      .select(['h.status as health', 'h.reasons as health_reasons']);
  }

  async get(id: string): Promise<pb.Workspace> {
    parseInput(LookupId, id);
    const row = await this.selectWorkspaces().where('w.id', '=', id).executeTakeFirst();
    if (!row) throw new ZiggieError('WORKSPACE_NOT_FOUND', `workspace ${id} not found`);
    return toPbWorkspace(row);
  }

  /** Keyset pages in id order: the cursor (the shared codec's `workspaces` kind) holds the last id of the previous page. */
  async list(req: pb.ListWorkspacesRequest): Promise<pb.ListWorkspacesResponse> {
    const input = parseInput(ListWorkspacesInput, { limit: req.page?.limit ?? 0, cursor: req.page?.cursor ?? '', ids: req.ids, health: req.health });
    const after = Cursors.workspaces.decode(input.cursor)?.id;
    const size = Math.min(Math.max(input.limit || 50, 1), 500);
    // "*" is how a token says "every workspace"; the gateway passes the token's list as is.
    const ids = input.ids.includes('*') ? [] : [...new Set(input.ids)];
    let q = this.selectWorkspaces();
    if (ids.length > 0) q = q.where('w.id', 'in', ids);
    if (input.health) q = q.where(sql<string>`coalesce(h.status, 'on-track')`, '=', input.health);
    const [rows, count] = await Promise.all([
      (after !== undefined ? q.where('w.id', '>', after) : q).orderBy('w.id').limit(size + 1).execute(),
      q.clearSelect().select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    const page = rows.slice(0, size);
    return { items: page.map(toPbWorkspace), total: Number(count.n), nextCursor: rows.length > size ? Cursors.workspaces.encode({ id: page[page.length - 1]!.id }) : '' };
  }

  async create(req: pb.CreateWorkspaceRequest): Promise<pb.Workspace> {
    const principal = requirePermission(req.principal, 'workspace:manage');
    const w = req.workspace;
    const input = parseInput(CreateWorkspaceInput, {
      id: w?.id ?? '',
      name: w?.name ?? '',
      priority: w?.priority || 'P1',
      owner: w?.owner || principal.subject,
      description: w?.description ?? '',
      dependsOn: w?.dependsOn ?? [],
      portRange: givenRange(w?.portRange),
    });
    assertWorkspaceAllowed(principal, input.id);
    await this.db.transaction().execute(async (trx) => {
      await lockWorkspaceGraph(trx);
      const rows = await trx.selectFrom('workspaces').select(['id', 'depends_on', 'port_start', 'port_end']).execute();
      if (rows.some((r) => r.id === input.id)) throw new ZiggieError('WORKSPACE_EXISTS', `workspace ${input.id} already exists`);
      const graph = graphOf(rows);
      graph.set(input.id, input.dependsOn);
      checkDependencies(graph, input.id, input.dependsOn);
      const others = rangesOf(rows);
      if (input.portRange) checkOverlap(input.portRange, others);
      const range = input.portRange ?? this.nextBlock(others.map((o) => o.range));
      await trx
        .insertInto('workspaces')
        .values({
          id: input.id,
          name: input.name,
          priority: input.priority,
          owner: input.owner,
          description: input.description,
          depends_on: json<string[]>(input.dependsOn),
          port_start: range.start,
          port_end: range.end,
        })
        .execute();
      await trx.insertInto('workspace_health').values({ workspace: input.id }).execute();
    });
    this.health.evaluateSoon();
    return this.get(input.id);
  }

  async update(req: pb.UpdateWorkspaceRequest): Promise<pb.Workspace> {
    const principal = requirePermission(req.principal, 'workspace:manage');
    const input = parseInput(UpdateWorkspaceInput, {
      id: req.id,
      name: req.name,
      priority: req.priority,
      owner: req.owner,
      description: req.description,
      dependsOn: req.setDependsOn ? req.dependsOn : undefined,
      portRange: givenRange(req.portRange),
    });
    assertWorkspaceAllowed(principal, input.id);
    await this.db.transaction().execute(async (trx) => {
      await lockWorkspaceGraph(trx);
      // Port allocations lock the row too, so a range never changes under one.
      const current = await trx.selectFrom('workspaces').select('id').where('id', '=', input.id).forNoKeyUpdate().executeTakeFirst();
      if (!current) throw new ZiggieError('WORKSPACE_NOT_FOUND', `workspace ${input.id} not found`);
      if (input.dependsOn || input.portRange) {
        const rows = await trx.selectFrom('workspaces').select(['id', 'depends_on', 'port_start', 'port_end']).execute();
        if (input.dependsOn) {
          const graph = graphOf(rows);
          graph.set(input.id, input.dependsOn);
          checkDependencies(graph, input.id, input.dependsOn);
        }
        if (input.portRange) {
          checkOverlap(input.portRange, rangesOf(rows, input.id));
          await this.assertLeasesFit(trx, input.id, input.portRange);
        }
      }
      await trx
        .updateTable('workspaces')
        .set({
          ...(input.name !== undefined && { name: input.name }),
          ...(input.priority !== undefined && { priority: input.priority }),
          ...(input.owner !== undefined && { owner: input.owner }),
          ...(input.description !== undefined && { description: input.description }),
          ...(input.dependsOn !== undefined && { depends_on: json<string[]>(input.dependsOn) }),
          ...(input.portRange !== undefined && { port_start: input.portRange.start, port_end: input.portRange.end }),
          updated_at: dbNow(),
        })
        .where('id', '=', input.id)
        .execute();
    });
    if (input.dependsOn) this.health.evaluateSoon();
    return this.get(input.id);
  }

  /** A range may shrink or move only when no live lease would end up outside it. */
  private async assertLeasesFit(trx: Trx, workspace: string, range: PortRange): Promise<void> {
    const outside = await trx
      .selectFrom('port_leases')
      .select('port')
      .where('workspace', '=', workspace)
      .where('expires_at', '>', dbNow())
      .where((eb) => eb.or([eb('port', '<', range.start), eb('port', '>', range.end)]))
      .orderBy('port')
      .execute();
    if (outside.length > 0) {
      const ports = outside.map((r) => r.port);
      throw new ZiggieError('WORKSPACE_IN_USE', `ports ${ports.join(', ')} are leased outside the new range ${formatRange(range)}`, { ports });
    }
  }

  async remove(req: pb.DeleteWorkspaceRequest): Promise<pb.DeleteWorkspaceResponse> {
    const principal = requirePermission(req.principal, 'workspace:manage');
    const id = parseInput(LookupId, req.id);
    assertWorkspaceAllowed(principal, id);
    await this.db.transaction().execute(async (trx) => {
      await lockWorkspaceGraph(trx);
      // FOR UPDATE waits for lease acquisitions holding the row (FOR KEY SHARE) and blocks new ones.
      const row = await trx.selectFrom('workspaces').select('id').where('id', '=', id).forUpdate().executeTakeFirst();
      if (!row) throw new ZiggieError('WORKSPACE_NOT_FOUND', `workspace ${id} not found`);
      const dependents = await trx
        .selectFrom('workspaces')
        .select('id')
        .where(sql<boolean>`depends_on @> ${json([id])}::jsonb`)
        .orderBy('id')
        .execute();
      if (dependents.length > 0) {
        const names = dependents.map((d) => d.id);
        throw new ZiggieError('WORKSPACE_IN_USE', `${names.join(', ')} ${names.length === 1 ? 'depends' : 'depend'} on workspace ${id}`, { dependents: names });
      }
      const [ports, leases] = await Promise.all([
        trx.selectFrom('port_leases').select((eb) => eb.fn.countAll<string>().as('n')).where('workspace', '=', id).where('expires_at', '>', dbNow()).executeTakeFirstOrThrow(),
        trx.selectFrom('resource_leases').select((eb) => eb.fn.countAll<string>().as('n')).where('workspace', '=', id).where('expires_at', '>', dbNow()).executeTakeFirstOrThrow(),
      ]);
      if (Number(ports.n) + Number(leases.n) > 0) {
        throw new ZiggieError('WORKSPACE_IN_USE', `workspace ${id} holds ${Number(ports.n)} port leases and ${Number(leases.n)} resource leases`, {
          portLeases: Number(ports.n),
          resourceLeases: Number(leases.n),
        });
      }
      // Expired leases, reports and the stored health go with it (on delete cascade).
      await trx.deleteFrom('workspaces').where('id', '=', id).execute();
    });
    this.health.evaluateSoon();
    return { deleted: true };
  }

  async affected(req: pb.AffectedWorkspacesRequest): Promise<pb.AffectedWorkspacesResponse> {
    const input = parseInput(AffectedInput, { workspaces: req.workspaces });
    const rows = await this.db.selectFrom('workspaces').select(['id', 'depends_on']).execute();
    const graph = new Map(rows.map((r) => [r.id, r.depends_on]));
    const unknown = [...new Set(input.workspaces.filter((w) => !graph.has(w)))];
    if (unknown.length > 0) throw new ZiggieError('WORKSPACE_NOT_FOUND', `unknown workspaces: ${unknown.join(', ')}`, { missing: unknown });
    return affectedWorkspaces(graph, input.workspaces);
  }
}
