import { ZiggieError } from '@ziggie/contracts';
import { createKysely, json, Kysely, migrate, sql } from '@ziggie/platform';
import { startPostgres, type PostgresHandle } from '../../../test/support';
import { migrations, OrchestratorDb } from '../src/migrations';
import { statsQueries, workspaceStats } from '../src/workspace-stats';

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);
const principal = { subject: 'ops@test', roles: ['admin'], workspaces: ['*'] };

async function task(db: Kysely<OrchestratorDb>, id: string, workspace: string, status: string, extra: { finishedMinutesAgo?: number; error?: string; notBefore?: Date } = {}) {
  await db
    .insertInto('tasks')
    .values({
      id,
      title: id,
      workspace,
      priority: 'P1',
      status,
      wave_count: 1,
      current_wave: status === 'running' ? 1 : 0,
      principal: json(principal),
      correlation_id: id,
      error_code: extra.error ? 'TASK_STEP_FAILED' : null,
      error_message: extra.error ?? null,
      finished_at: extra.finishedMinutesAgo === undefined ? null : minutesAgo(extra.finishedMinutesAgo),
      not_before: extra.notBefore ?? null,
    })
    .execute();
}

async function step(
  db: Kysely<OrchestratorDb>,
  taskId: string,
  id: string,
  status: string,
  extra: { workspace?: string; pool?: string; waitingReason?: string; nextAttemptAt?: Date } = {},
) {
  await db
    .insertInto('steps')
    .values({
      task_id: taskId,
      id,
      ordinal: 0,
      wave: 1,
      capability: 'qa',
      action: 'tool',
      workspace: extra.workspace ?? 'alpha',
      input: json({}),
      depends_on: json([]),
      retries: 0,
      timeout_ms: 1000,
      status,
      pool: extra.pool ?? null,
      waiting_reason: extra.waitingReason ?? null,
      next_attempt_at: extra.nextAttemptAt ?? null,
    })
    .execute();
}

describe('GetWorkspaceStats on a Postgres server', () => {
  let db: Kysely<OrchestratorDb>;
  let pg: PostgresHandle | undefined;

  beforeAll(async () => {
    pg = await startPostgres();
    db = createKysely<OrchestratorDb>(pg.url);
    await migrate(db as Kysely<unknown>, 'orchestrator', migrations);

    await task(db, 'later', 'alpha', 'queued', { notBefore: new Date(Date.now() + 3_600_000) });
    await step(db, 'later', 'a', 'pending');
    await step(db, 'later', 'b', 'pending');
    await task(db, 'live', 'alpha', 'running');
    await step(db, 'live', 'gate', 'waiting_approval', { waitingReason: 'waiting for approval' });
    await step(db, 'live', 'render', 'pending', { pool: 'gpu', waitingReason: 'waiting for pool gpu (POOL_EXHAUSTED: 2 of 2 in use)' });
    await step(db, 'live', 'backoff', 'pending', { pool: 'gpu', waitingReason: 'retry 2 of 3 after …', nextAttemptAt: new Date(Date.now() + 60_000) });
    await step(db, 'live', 'ready', 'pending');
    await step(db, 'live', 'running', 'running', { pool: 'gpu' });
    await step(db, 'live', 'elsewhere', 'waiting_approval', { workspace: 'gamma', waitingReason: 'waiting for approval: budget' });
    await task(db, 'ok', 'alpha', 'succeeded', { finishedMinutesAgo: 10 });
    await task(db, 'old-failure', 'alpha', 'failed', { finishedMinutesAgo: 20, error: 'step x failed: older' });
    await task(db, 'new-failure', 'alpha', 'failed', { finishedMinutesAgo: 5, error: 'step y failed: STEP_TIMEOUT: no result' });
    await task(db, 'ancient-failure', 'alpha', 'failed', { finishedMinutesAgo: 120, error: 'step z failed: long ago' });
    await task(db, 'stopped', 'alpha', 'cancelled', { finishedMinutesAgo: 30 });
    await task(db, 'two-days', 'beta', 'succeeded', { finishedMinutesAgo: 2 * 24 * 60 });
  }, 60_000);

  afterAll(async () => {
    await db?.destroy();
    await pg?.stop();
  });

  it('counts live tasks, tasks finished in the default hour, waiting steps and the latest failure, per workspace', async () => {
    const { items } = await workspaceStats(db, { workspaces: [], windowSeconds: 0 });
    expect(items.map((i) => i.workspace)).toEqual(['alpha', 'gamma']);
    const alpha = items[0]!;
    expect(alpha).toMatchObject({ queued: 1, running: 1, succeeded: 1, failed: 2, cancelled: 1, lastFailure: 'step y failed: STEP_TIMEOUT: no result' });
    // Approval, pool and notBefore waits; neither the retry in backoff nor a plain ready step.
    expect(alpha.stepsWaiting).toBe(4);
    expect(Math.abs(new Date(alpha.lastFailureAt).getTime() - minutesAgo(5).getTime())).toBeLessThan(60_000);
    // A step waits in its own workspace, even when its task belongs to another.
    expect(items[1]).toEqual({ workspace: 'gamma', queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0, stepsWaiting: 1, lastFailure: '', lastFailureAt: '' });
  });

  it('widens the window on request, and answers zeros for asked-for workspaces without tasks', async () => {
    const wide = await workspaceStats(db, { workspaces: ['beta', 'alpha', 'delta', 'beta'], windowSeconds: 3 * 24 * 3600 });
    expect(wide.items.map((i) => i.workspace)).toEqual(['alpha', 'beta', 'delta']);
    expect(wide.items[0]).toMatchObject({ failed: 3, lastFailure: 'step y failed: STEP_TIMEOUT: no result' });
    expect(wide.items[1]).toMatchObject({ succeeded: 1, failed: 0, stepsWaiting: 0 });
    expect(wide.items[2]).toMatchObject({ queued: 0, running: 0, succeeded: 0, stepsWaiting: 0, lastFailure: '' });
    const narrow = await workspaceStats(db, { workspaces: ['alpha'], windowSeconds: 60 });
    expect(narrow.items).toEqual([expect.objectContaining({ workspace: 'alpha', queued: 1, running: 1, succeeded: 0, failed: 0, cancelled: 0, lastFailure: '' })]);
  });

  it('refuses a negative window and cuts a longer one than 7 days', async () => {
    const err = await workspaceStats(db, { workspaces: [], windowSeconds: -1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ZiggieError);
    expect(err).toMatchObject({ code: 'VALIDATION_FAILED' });
    // Two days back is inside the 7 days; twenty days back only inside the 30 asked for.
    await task(db, 'twenty-days', 'beta', 'succeeded', { finishedMinutesAgo: 20 * 24 * 60 });
    try {
      const month = await workspaceStats(db, { workspaces: ['beta'], windowSeconds: 30 * 24 * 3600 });
      expect(month.items[0]).toMatchObject({ workspace: 'beta', succeeded: 1 });
    } finally {
      await db.deleteFrom('tasks').where('id', '=', 'twenty-days').execute();
    }
  });

  it('reads through the indexes rather than whole tables', async () => {
    const plans: Record<'tasks' | 'waiting', string> = { tasks: '', waiting: '' };
    const rolledBack = new Error('roll back the extra rows');
    await db
      .transaction()
      .execute(async (trx) => {
        // A realistic shape: a long history of finished tasks, and a big plan whose steps are
        // mostly ready, not waiting. Then the planner's statistics.
        await sql`insert into tasks (id, title, workspace, priority, status, wave_count, principal, correlation_id, finished_at)
          select 'history-' || n, 'old', 'ws-' || (n % 20), 'P1', 'succeeded', 1, '{}'::jsonb, 'c', now() - interval '30 days' + n * interval '1 minute'
          from generate_series(1, 20000) n`.execute(trx);
        await sql`insert into steps (task_id, id, ordinal, wave, action, workspace, input, depends_on, retries, timeout_ms, status)
          select 'history-' || n, 'only', 0, 1, 'tool', 'ws-' || (n % 20), '{}'::jsonb, '[]'::jsonb, 0, 1000, 'succeeded' from generate_series(1, 20000) n`.execute(trx);
        await sql`insert into steps (task_id, id, ordinal, wave, action, workspace, input, depends_on, retries, timeout_ms, status)
          select 'live', 'bulk-' || n, n, 2, 'tool', 'alpha', '{}'::jsonb, '[]'::jsonb, 0, 1000, 'pending' from generate_series(1, 2000) n`.execute(trx);
        await sql`analyze tasks`.execute(trx);
        await sql`analyze steps`.execute(trx);
        // Every workspace: what workspace-coord asks for its health view.
        const queries = statsQueries(3600, []);
        for (const name of ['tasks', 'waiting'] as const) {
          plans[name] = (await sql<{ 'QUERY PLAN': string }>`explain ${queries[name]}`.execute(trx)).rows.map((r) => r['QUERY PLAN']).join('\n');
        }
        throw rolledBack;
      })
      .catch((err: unknown) => {
        if (err !== rolledBack) throw err;
      });
    expect(plans.tasks).toContain('tasks_status_finished');
    expect(plans.waiting).toContain('steps_waiting');
    expect(`${plans.tasks}\n${plans.waiting}`).not.toMatch(/Seq Scan/);
  });
});
