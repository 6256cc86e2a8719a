import { Generated, Kysely, Migrations, sql } from '@ziggie/platform';

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
  '0002_coordination': {
    async up(db: Kysely<unknown>) {
      // Ranges are null until the service hands the workspace a block at start (the base and
      // block size are configuration, which migrations do not see).
      await db.schema
        .alterTable('workspaces')
        .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('port_start', 'integer')
        .addColumn('port_end', 'integer')
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema
        .alterTable('workspaces')
        .addCheckConstraint('workspaces_port_range', sql`(port_start is null and port_end is null) or (port_start between 1 and 65535 and port_end between port_start and 65535)`)
        .execute();

      // The last computed health, one row per workspace. Replicas compare and store it under a
      // row lock, so a change is seen (and published) once, also across restarts. event_seq
      // counts changes; published_seq trails it until the change's event is on NATS.
      await db.schema
        .createTable('workspace_health')
        .addColumn('workspace', 'text', (c) => c.primaryKey().references('workspaces.id').onDelete('cascade'))
        .addColumn('status', 'text', (c) => c.notNull().defaultTo('on-track'))
        .addColumn('reasons', 'jsonb', (c) => c.notNull().defaultTo(sql`'["all clear"]'::jsonb`))
        .addColumn('previous_status', 'text')
        .addColumn('task_status', 'text', (c) => c.notNull().defaultTo('on-track'))
        .addColumn('task_reasons', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
        .addColumn('computed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('changed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('event_seq', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('published_seq', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await sql`
        insert into workspace_health (workspace, status, reasons)
        select id, health, case when jsonb_array_length(health_reasons) = 0 then '["all clear"]'::jsonb else health_reasons end
        from workspaces
      `.execute(db);
      await db.schema.alterTable('workspaces').dropColumn('health').dropColumn('health_reasons').execute();

      // One row per leased port. The unique index on port is what finally guarantees that two
      // rows never hold one port; expired rows are deleted by whoever allocates in their range.
      await db.schema
        .createTable('port_leases')
        .addColumn('workspace', 'text', (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
        .addColumn('service', 'text', (c) => c.notNull())
        .addColumn('port', 'integer', (c) => c.notNull().check(sql`port between 1 and 65535`))
        .addColumn('holder', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema.createIndex('port_leases_port').on('port_leases').column('port').unique().execute();
      await db.schema.createIndex('port_leases_workspace').on('port_leases').columns(['workspace', 'port']).execute();
      await db.schema.createIndex('port_leases_expires').on('port_leases').column('expires_at').execute();

      await db.schema
        .createTable('pools')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('capacity', 'integer', (c) => c.notNull().check(sql`capacity >= 0`))
        .addColumn('reserved_p0', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addCheckConstraint('pools_reserve', sql`reserved_p0 between 0 and capacity`)
        .execute();

      await db.schema
        .createTable('resource_leases')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('pool', 'text', (c) => c.notNull().references('pools.name'))
        .addColumn('workspace', 'text', (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
        .addColumn('units', 'integer', (c) => c.notNull().check(sql`units > 0`))
        .addColumn('priority', 'text', (c) => c.notNull())
        .addColumn('holder', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addUniqueConstraint('resource_leases_pool_holder', ['pool', 'holder'])
        .execute();
      await db.schema.createIndex('resource_leases_pool_expires').on('resource_leases').columns(['pool', 'expires_at']).execute();
      await db.schema.createIndex('resource_leases_workspace').on('resource_leases').column('workspace').execute();
      await db.schema.createIndex('resource_leases_holder').on('resource_leases').column('holder').execute();

      await db.schema
        .createTable('health_reports')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('workspace', 'text', (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('reported_by', 'text', (c) => c.notNull())
        .addColumn('reported_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('health_reports_workspace').on('health_reports').columns(['workspace', 'expires_at']).execute();
    },
  },
};

export interface WorkspaceTable {
  id: string;
  name: string;
  priority: string;
  owner: string;
  depends_on: string[];
  description: Generated<string>;
  port_start: number | null;
  port_end: number | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface WorkspaceHealthTable {
  workspace: string;
  status: Generated<string>;
  reasons: Generated<string[]>;
  previous_status: string | null;
  task_status: Generated<string>;
  task_reasons: Generated<string[]>;
  computed_at: Generated<Date>;
  changed_at: Generated<Date>;
  event_seq: Generated<number>;
  published_seq: Generated<number>;
}

export interface PortLeaseTable {
  workspace: string;
  service: string;
  port: number;
  holder: string;
  expires_at: Date;
  created_at: Generated<Date>;
}

export interface PoolTable {
  name: string;
  kind: string;
  capacity: number;
  reserved_p0: Generated<number>;
  description: Generated<string>;
  updated_at: Generated<Date>;
}

export interface ResourceLeaseTable {
  id: string;
  pool: string;
  workspace: string;
  units: number;
  priority: string;
  holder: string;
  expires_at: Date;
  created_at: Generated<Date>;
}

export interface HealthReportTable {
  id: string;
  workspace: string;
  status: string;
  reason: string;
  reported_by: string;
  reported_at: Generated<Date>;
  expires_at: Date;
}

export interface WorkspaceDb {
  workspaces: WorkspaceTable;
  workspace_health: WorkspaceHealthTable;
  port_leases: PortLeaseTable;
  pools: PoolTable;
  resource_leases: ResourceLeaseTable;
  health_reports: HealthReportTable;
}
