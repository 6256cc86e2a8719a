import { createKysely, json, Kysely, migrate } from '@ziggie/platform';
import { startPostgres, type PostgresHandle } from '../../../test/support';
import { clearOutbox, EventBatch } from '../src/events';
import { migrations, OrchestratorDb } from '../src/migrations';

const principal = { subject: 'ops@test', roles: ['admin'], workspaces: ['*'] };

describe('EventBatch on a Postgres server', () => {
  let db: Kysely<OrchestratorDb>;
  let pg: PostgresHandle | undefined;

  beforeAll(async () => {
    pg = await startPostgres();
    db = createKysely<OrchestratorDb>(pg.url);
    await migrate(db as Kysely<unknown>, 'orchestrator', migrations);
    for (const id of ['t-b', 't-a', 't-c']) {
      await db
        .insertInto('tasks')
        .values({ id, title: id, workspace: 'alpha', priority: 'P1', status: 'running', wave_count: 1, principal: json(principal), correlation_id: id })
        .execute();
    }
  }, 60_000);

  afterAll(async () => {
    await db?.destroy();
    await pg?.stop();
  });

  const outbox = async () => (await db.selectFrom('event_outbox').select(['task_id', 'seq']).orderBy('task_id').orderBy('seq').execute()).map((r) => `${r.task_id}:${r.seq}`);

  it('numbers each task\'s events on from its last number, in the order they were added, and writes them to the outbox', async () => {
    const first = new EventBatch();
    first.add('t-b', 'task.running', { status: 'running' });
    first.add('t-a', 'task.running', { status: 'running' });
    first.add('t-b', 'step.dispatched', { status: 'dispatched', stepId: 's1' });
    first.add('t-b', 'step.dispatched', { status: 'dispatched', stepId: 's2' });
    const { events: written } = await db.transaction().execute((trx) => first.write(trx));
    expect(written.map((e) => `${e.taskId}:${e.seq}:${e.type}${e.stepId ? `:${e.stepId}` : ''}`)).toEqual([
      't-b:1:task.running',
      't-a:1:task.running',
      't-b:2:step.dispatched:s1',
      't-b:3:step.dispatched:s2',
    ]);
    expect(first.size).toBe(0);

    const second = new EventBatch();
    second.add('t-c', 'task.running', { status: 'running' });
    second.add('t-b', 'step.succeeded', { status: 'succeeded', stepId: 's1' });
    second.add('t-a', 'task.succeeded', { status: 'succeeded' });
    const { events: more, earlier } = await db.transaction().execute((trx) => second.write(trx));
    expect(more.map((e) => `${e.taskId}:${e.seq}`)).toEqual(['t-c:1', 't-b:4', 't-a:2']);
    // The first batch's events are still in the outbox (nothing confirmed them): they come back, in
    // order, to be published before the new ones of the same tasks.
    expect(earlier.map((e) => `${e.taskId}:${e.seq}:${e.type}`)).toEqual(['t-a:1:task.running', 't-b:1:task.running', 't-b:2:step.dispatched', 't-b:3:step.dispatched']);

    const seqs = await db.selectFrom('tasks').select(['id', 'event_seq']).orderBy('id').execute();
    expect(seqs).toEqual([
      { id: 't-a', event_seq: 2 },
      { id: 't-b', event_seq: 4 },
      { id: 't-c', event_seq: 1 },
    ]);
    expect(await outbox()).toEqual(['t-a:1', 't-a:2', 't-b:1', 't-b:2', 't-b:3', 't-b:4', 't-c:1']);
  });

  it('numbers nothing when the transaction rolls back', async () => {
    const batch = new EventBatch();
    batch.add('t-a', 'step.failed', { status: 'failed' });
    await expect(
      db.transaction().execute(async (trx) => {
        await batch.write(trx);
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect((await db.selectFrom('tasks').select('event_seq').where('id', '=', 't-a').executeTakeFirstOrThrow()).event_seq).toBe(2);
    expect(await outbox()).not.toContain('t-a:3');
  });

  it('clears published events from the outbox, skipping rows another transaction is removing', async () => {
    const before = await outbox();
    // Another transaction holds t-b:1 (as a concurrent cleanup would): it is skipped, not waited for.
    await db.transaction().execute(async (other) => {
      await other.selectFrom('event_outbox').select('seq').where('task_id', '=', 't-b').where('seq', '=', 1).forUpdate().execute();
      await clearOutbox(db, [
        { taskId: 't-a', seq: 1 },
        { taskId: 't-b', seq: 1 },
        { taskId: 't-b', seq: 2 },
      ]);
    });
    expect(await outbox()).toEqual(before.filter((k) => !['t-a:1', 't-b:2'].includes(k)));
  });

  it('skips events of a task that does not exist instead of failing the transaction', async () => {
    const batch = new EventBatch();
    batch.add('t-missing', 'task.running', { status: 'running' });
    batch.add('t-c', 'step.running', { status: 'running' });
    const { events: written } = await db.transaction().execute((trx) => batch.write(trx));
    expect(written.map((e) => `${e.taskId}:${e.seq}`)).toEqual(['t-c:2']);
  });
});
