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
  '0002_scheduling_governance_blueprints': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .alterTable('tasks')
        .addColumn('not_before', 'timestamptz')
        .addColumn('output', 'jsonb')
        .addColumn('parent_task_id', 'text')
        .addColumn('parent_step_id', 'text')
        .addColumn('depth', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('blueprint', 'text')
        .addColumn('output_template', 'jsonb')
        .addColumn('output_schema', 'jsonb')
        .addColumn('failed_step_id', 'text')
        .execute();
      // A delegate step creates its child task once, also when it is redelivered.
      await db.schema
        .createIndex('tasks_parent_step')
        .on('tasks')
        .columns(['parent_task_id', 'parent_step_id'])
        .unique()
        .where(sql.ref('parent_task_id'), 'is not', null)
        .execute();
      await db.schema
        .alterTable('steps')
        .addColumn('quality_gate', 'jsonb')
        .addColumn('pool', 'text')
        .addColumn('gpu', 'boolean', (c) => c.notNull().defaultTo(false))
        .addColumn('retry_backoff_ms', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', 'timestamptz')
        .addColumn('published_at', 'timestamptz')
        .addColumn('waiting_reason', 'text')
        .addColumn('approved_by', 'text')
        .addColumn('child_task_id', 'text')
        .execute();
      await db.schema.createIndex('steps_status').on('steps').columns(['status', 'task_id']).execute();
      await db.schema
        .createTable('step_attempts')
        .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id').onDelete('cascade'))
        .addColumn('step_id', 'text', (c) => c.notNull())
        .addColumn('attempt', 'integer', (c) => c.notNull())
        .addColumn('agent_id', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('dispatched_at', 'timestamptz', (c) => c.notNull())
        .addColumn('started_at', 'timestamptz')
        .addColumn('finished_at', 'timestamptz')
        .addPrimaryKeyConstraint('step_attempts_pk', ['task_id', 'step_id', 'attempt'])
        .execute();
      // Events are written in the transaction that makes the transition and published after it commits.
      await db.schema
        .createTable('event_outbox')
        .addColumn('task_id', 'text', (c) => c.notNull())
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('payload', 'jsonb', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addPrimaryKeyConstraint('event_outbox_pk', ['task_id', 'seq'])
        .execute();
      await db.schema
        .createTable('blueprints')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('input_schema', 'jsonb', (c) => c.notNull())
        .addColumn('output_schema', 'jsonb')
        .addColumn('template', 'jsonb', (c) => c.notNull())
        .addColumn('outputs', 'jsonb', (c) => c.notNull())
        .addColumn('builtin', 'boolean', (c) => c.notNull().defaultTo(false))
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addPrimaryKeyConstraint('blueprints_pk', ['name', 'version'])
        .execute();
      await db.schema
        .createTable('policies')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('effect', 'text', (c) => c.notNull())
        .addColumn('match', 'jsonb', (c) => c.notNull())
        .addColumn('budget', 'jsonb')
        .addColumn('priority', 'integer', (c) => c.notNull())
        .addColumn('enabled', 'boolean', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema
        .createTable('policy_decisions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('task_id', 'text', (c) => c.notNull())
        .addColumn('step_id', 'text', (c) => c.notNull())
        .addColumn('policy_id', 'text', (c) => c.notNull())
        .addColumn('policy_name', 'text', (c) => c.notNull())
        .addColumn('effect', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('workspace', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema.createIndex('policy_decisions_task').on('policy_decisions').columns(['task_id', 'at']).execute();
    },
  },
  '0003_pool_leases_workspace_stats': {
    async up(db: Kysely<unknown>) {
      // The workspace-coord lease an attempt of a pool step held, released when the attempt ends.
      await db.schema.alterTable('step_attempts').addColumn('lease_id', 'text').execute();
      // Workspace stats read live tasks by status and finished ones by status and time; the
      // status prefix still serves every lookup the single-column index did.
      await db.schema.createIndex('tasks_status_finished').on('tasks').columns(['status', 'finished_at']).execute();
      await db.schema.dropIndex('tasks_status').execute();
      // Only waiting steps (approval, pool, retry backoff) are in it, so it stays small.
      await db.schema
        .createIndex('steps_waiting')
        .on('steps')
        .columns(['workspace'])
        .where(sql.ref('waiting_reason'), 'is not', null)
        .execute();
    },
  },
  '0004_capacity_waits': {
    async up(db: Kysely<unknown>) {
      // Attempts refused for capacity (TOOL_RATE_LIMITED, ...): they do not count against retries.
      await db.schema.alterTable('steps').addColumn('capacity_waits', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    },
  },
  '0005-step-error-codes': {
    // A step's and an attempt's error as a code and a message, instead of "CODE: message" text
    // parsed back. Rows written before keep their text: the code is its leading upper-case word.
    async up(db: Kysely<unknown>) {
      for (const table of ['steps', 'step_attempts']) {
        await db.schema.alterTable(table).addColumn('error_code', 'text').addColumn('error_message', 'text').execute();
        await sql`
          update ${sql.table(table)}
          set error_code = coalesce(substring(error from '^([A-Z][A-Z0-9_]*): '), 'STEP_FAILED'),
              error_message = coalesce(substring(error from '^[A-Z][A-Z0-9_]*: (.*)$'), error)
          where error is not null`.execute(db);
        await db.schema.alterTable(table).dropColumn('error').execute();
      }
    },
  },
  '0006-dispatch-seq': {
    // Where JetStream stored a step's dispatch: reconcile checks a long-dispatched step's message is
    // still there (a nats-server killed with SIGKILL can lose messages it had acknowledged).
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('steps').addColumn('dispatch_seq', 'bigint').execute();
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
  not_before: Date | null;
  output: Record<string, unknown> | null;
  parent_task_id: string | null;
  parent_step_id: string | null;
  depth: Generated<number>;
  blueprint: string | null;
  output_template: Record<string, unknown> | null;
  output_schema: Record<string, unknown> | null;
  failed_step_id: string | null;
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
  error_code: string | null;
  error_message: string | null;
  dispatched_at: Date | null;
  started_at: Date | null;
  finished_at: Date | null;
  quality_gate: Record<string, unknown> | null;
  pool: string | null;
  gpu: Generated<boolean>;
  retry_backoff_ms: Generated<number>;
  capacity_waits: Generated<number>;
  next_attempt_at: Date | null;
  published_at: Date | null;
  /** Stream sequence of the dispatch JetStream confirmed (bigint: text from the driver). */
  dispatch_seq: string | null;
  waiting_reason: string | null;
  approved_by: string | null;
  child_task_id: string | null;
}

export interface AttemptTable {
  task_id: string;
  step_id: string;
  attempt: number;
  agent_id: string | null;
  status: string;
  error_code: string | null;
  error_message: string | null;
  dispatched_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  lease_id: string | null;
}

export interface OutboxTable {
  task_id: string;
  seq: number;
  payload: Record<string, unknown>;
  created_at: Generated<Date>;
}

export interface BlueprintTable {
  name: string;
  version: string;
  description: string;
  input_schema: Record<string, unknown>;
  output_schema: Record<string, unknown> | null;
  template: { steps: unknown[] };
  outputs: Record<string, unknown>;
  builtin: Generated<boolean>;
  created_by: string;
  created_at: Generated<Date>;
}

export interface PolicyTable {
  id: string;
  name: string;
  description: string;
  effect: string;
  match: { capabilities: string[]; tools: string[]; workspaces: string[]; roles: string[]; actions: string[]; pools: string[] };
  budget: { maxSteps?: number; maxGpuSteps?: number } | null;
  priority: number;
  enabled: boolean;
  created_by: string;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface DecisionTable {
  id: string;
  task_id: string;
  step_id: string;
  policy_id: string;
  policy_name: string;
  effect: string;
  reason: string;
  workspace: string;
  subject: string;
  at: Generated<Date>;
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
  step_attempts: AttemptTable;
  event_outbox: OutboxTable;
  blueprints: BlueprintTable;
  policies: PolicyTable;
  policy_decisions: DecisionTable;
}

export type TaskRow = Selectable<TaskTable>;
export type StepRow = Selectable<StepTable>;
export type PolicyRow = Selectable<PolicyTable>;
export type BlueprintRow = Selectable<BlueprintTable>;
