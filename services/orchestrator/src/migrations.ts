import { Generated, Kysely, Migrations, Selectable, sql } from '@ziggie/platform';

export const migrations: Migrations = {
  '0001_tasks': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('tasks')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('title', 'text', (c) => c.notNull())
        .addColumn('workspace', 'text', (c) => c.notNull())
        .addColumn('priority', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('current_wave', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('wave_count', 'integer', (c) => c.notNull())
        .addColumn('event_seq', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('principal', 'jsonb', (c) => c.notNull())
        .addColumn('correlation_id', 'text', (c) => c.notNull())
        .addColumn('error_code', 'text')
        .addColumn('error_message', 'text')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('finished_at', 'timestamptz')
        .execute();
      await db.schema.createIndex('tasks_status').on('tasks').columns(['status']).execute();
      await db.schema.createIndex('tasks_workspace_created').on('tasks').columns(['workspace', 'created_at']).execute();
      await db.schema
        .createTable('steps')
        .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id').onDelete('cascade'))
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('ordinal', 'integer', (c) => c.notNull())
        .addColumn('wave', 'integer', (c) => c.notNull())
        .addColumn('capability', 'text')
        .addColumn('agent', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('workspace', 'text', (c) => c.notNull())
        .addColumn('input', 'jsonb', (c) => c.notNull())
        .addColumn('depends_on', 'jsonb', (c) => c.notNull())
        .addColumn('retries', 'integer', (c) => c.notNull())
        .addColumn('timeout_ms', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text')
        .addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('output', 'jsonb')
        .addColumn('error', 'text')
        .addColumn('dispatched_at', 'timestamptz')
        .addColumn('started_at', 'timestamptz')
        .addColumn('finished_at', 'timestamptz')
        .addPrimaryKeyConstraint('steps_pk', ['task_id', 'id'])
        .execute();
      // One row per recorded step attempt: a redelivered or duplicated result records its effect once.
      await db.schema
        .createTable('step_ledger')
        .addColumn('attempt_id', 'text', (c) => c.primaryKey())
        .addColumn('task_id', 'text', (c) => c.notNull())
        .addColumn('step_id', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('recorded_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
    },
  },
};

export interface TaskTable {
  id: string;
  title: string;
  workspace: string;
  priority: string;
  status: string;
  current_wave: Generated<number>;
  wave_count: number;
  event_seq: Generated<number>;
  principal: { subject: string; roles: string[]; workspaces: string[] };
  correlation_id: string;
  error_code: string | null;
  error_message: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
  finished_at: Date | null;
}

export interface StepTable {
  task_id: string;
  id: string;
  ordinal: number;
  wave: number;
  capability: string | null;
  agent: string | null;
  action: string;
  workspace: string;
  input: Record<string, unknown>;
  depends_on: string[];
  retries: number;
  timeout_ms: number;
  status: string;
  agent_id: string | null;
  attempt: Generated<number>;
  output: Record<string, unknown> | null;
  error: string | null;
  dispatched_at: Date | null;
  started_at: Date | null;
  finished_at: Date | null;
}

export interface LedgerTable {
  attempt_id: string;
  task_id: string;
  step_id: string;
  status: string;
}

export interface OrchestratorDb {
  tasks: TaskTable;
  steps: StepTable;
  step_ledger: LedgerTable;
}

export type TaskRow = Selectable<TaskTable>;
export type StepRow = Selectable<StepTable>;
