import { Kysely, Migrations, sql } from '@ziggie/platform';

export const migrations: Migrations = {
  '0001_workspaces': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('workspaces')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('priority', 'text', (c) => c.notNull())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('health', 'text', (c) => c.notNull().defaultTo('on-track'))
        .addColumn('health_reasons', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
        .addColumn('depends_on', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
    },
  },
};

export interface WorkspaceTable {
  id: string;
  name: string;
  priority: string;
  owner: string;
  health: string;
  health_reasons: string[];
  depends_on: string[];
}

export interface WorkspaceDb {
  workspaces: WorkspaceTable;
}
