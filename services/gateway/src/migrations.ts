import type { AuditOutcome } from '@ziggie/contracts';
import { Generated, Kysely, Migrations, Selectable, sql } from '@ziggie/platform';

export const migrations: Migrations = {
  '0001_audit_log': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('audit_log')
        // Time-ordered (UUIDv7) text, made by the gateway so a record can be completed by id later.
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('roles', 'jsonb', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('resource', 'text', (c) => c.notNull())
        .addColumn('resource_id', 'text')
        .addColumn('workspace', 'text')
        .addColumn('ip', 'text')
        .addColumn('user_agent', 'text')
        .addColumn('correlation_id', 'text')
        // Null while the call is pending.
        .addColumn('status', 'integer')
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('error_code', 'text')
        .addColumn('duration_ms', 'integer')
        .execute();
      // Every listing reads newest first on (at, id); retention deletes from the old end of the same index.
      await db.schema.createIndex('audit_log_at').on('audit_log').columns(['at', 'id']).execute();
      await db.schema.createIndex('audit_log_actor_at').on('audit_log').columns(['actor', 'at', 'id']).execute();
      await db.schema.createIndex('audit_log_workspace_at').on('audit_log').columns(['workspace', 'at', 'id']).execute();
      await db.schema.createIndex('audit_log_action_at').on('audit_log').columns(['action', 'at', 'id']).execute();
      // Also finds the pending records a crash left behind.
      await db.schema.createIndex('audit_log_outcome_at').on('audit_log').columns(['outcome', 'at', 'id']).execute();
      await db.schema.createIndex('audit_log_correlation').on('audit_log').columns(['correlation_id']).execute();
    },
  },
};

export type { AuditOutcome };

export interface AuditLogTable {
  id: string;
  at: Generated<Date>;
  actor: string;
  roles: string[];
  action: string;
  resource: string;
  resource_id: string | null;
  workspace: string | null;
  ip: string | null;
  user_agent: string | null;
  correlation_id: string | null;
  status: number | null;
  outcome: AuditOutcome;
  error_code: string | null;
  duration_ms: number | null;
}

export type AuditLogRow = Selectable<AuditLogTable>;

export interface GatewayDb {
  audit_log: AuditLogTable;
}
