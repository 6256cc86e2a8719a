import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { DEFAULT_WORKSPACES, pb, ZiggieError } from '@ziggie/contracts';
import { CONFIG, DatabaseService, Kysely, json } from '@ziggie/platform';
import { WorkspaceConfig } from './config';
import { WorkspaceDb, WorkspaceTable } from './migrations';

function toPb(row: WorkspaceTable): pb.Workspace {
  return {
    id: row.id,
    name: row.name,
    priority: row.priority,
    owner: row.owner,
    health: row.health,
    healthReasons: row.health_reasons,
    dependsOn: row.depends_on,
  };
}

@Injectable()
export class WorkspacesService implements OnApplicationBootstrap {
  private readonly logger = new Logger('workspaces');

  constructor(
    private readonly database: DatabaseService,
    @Inject(CONFIG) private readonly config: WorkspaceConfig,
  ) {}

  private get db(): Kysely<WorkspaceDb> {
    return this.database.db<WorkspaceDb>();
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.extra.ZIGGIE_SEED === 'default') await this.seedDefaults();
  }

  /** Inserts the five default workspaces; existing rows (a second start) are left as they are. */
  async seedDefaults(): Promise<number> {
    const rows = DEFAULT_WORKSPACES.map((w) => ({
      id: w.id,
      name: w.name,
      priority: w.priority,
      owner: w.owner,
      health: 'on-track',
      health_reasons: json<string[]>([]),
      depends_on: json<string[]>(w.dependsOn),
    }));
    const inserted = await this.db.insertInto('workspaces').values(rows).onConflict((oc) => oc.column('id').doNothing()).returning('id').execute();
    if (inserted.length > 0) this.logger.log(`seeded ${inserted.length} workspaces`);
    return inserted.length;
  }

  async get(id: string): Promise<pb.Workspace> {
    const row = await this.db.selectFrom('workspaces').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new ZiggieError('NOT_FOUND', `workspace ${id} not found`);
    return toPb(row);
  }

  async list(limit: number, cursor: string): Promise<pb.ListWorkspacesResponse> {
    const offset = cursor ? Number.parseInt(cursor, 10) || 0 : 0;
    const size = Math.min(Math.max(limit || 50, 1), 500);
    const [rows, count] = await Promise.all([
      this.db.selectFrom('workspaces').selectAll().orderBy('id').limit(size).offset(offset).execute(),
      this.db.selectFrom('workspaces').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    const total = Number(count.n);
    return { items: rows.map(toPb), total, nextCursor: offset + rows.length < total ? String(offset + rows.length) : '' };
  }
}
