import { Kysely, Migrations, sql } from '@ziggie/platform';

export const migrations: Migrations = {
  '0001_agents': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('agents')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('level', 'integer', (c) => c.notNull())
        .addColumn('parent_id', 'text')
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('workspace', 'text', (c) => c.notNull())
        .addColumn('capabilities', 'jsonb', (c) => c.notNull())
        .addColumn('team', 'text')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema.createIndex('agents_workspace_level').on('agents').columns(['workspace', 'level']).execute();
    },
  },
};

export interface AgentTable {
  id: string;
  name: string;
  level: number;
  parent_id: string | null;
  role: string;
  workspace: string;
  capabilities: string[];
  team: string | null;
}

export interface RegistryDb {
  agents: AgentTable;
}
