import { createKysely, Kysely, migrate, Migrations, sql } from '../src';
import { startPostgres, PostgresHandle } from '../../../test/support';

interface NoteDb {
  notes: { id: number; body: string };
}

const migrations: Migrations = {
  '0001_notes': {
    async up(db: Kysely<unknown>) {
      await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('body', 'text', (c) => c.notNull()).execute();
    },
  },
};

async function exercise(kysely: Kysely<NoteDb>, service: string): Promise<void> {
  expect(await migrate(kysely as Kysely<unknown>, service, migrations)).toEqual(['0001_notes']);
  // A second start applies nothing.
  expect(await migrate(kysely as Kysely<unknown>, service, migrations)).toEqual([]);
  await kysely.insertInto('notes').values({ id: 1, body: 'kept' }).execute();
  await expect(
    kysely.transaction().execute(async (trx) => {
      await trx.insertInto('notes').values({ id: 2, body: 'rolled back' }).execute();
      throw new Error('abort');
    }),
  ).rejects.toThrow('abort');
  const rows = await kysely.selectFrom('notes').selectAll().orderBy('id').execute();
  expect(rows).toEqual([{ id: 1, body: 'kept' }]);
  const tables = await sql<{ table_name: string }>`select table_name from information_schema.tables where table_name like ${`${service.replace(/-/g, '_')}_migration%`}`.execute(kysely);
  expect(tables.rows.map((r) => r.table_name).sort()).toEqual([`${service.replace(/-/g, '_')}_migration`, `${service.replace(/-/g, '_')}_migration_lock`]);
}

describe('database layer on a Postgres server (DATABASE_URL)', () => {
  let pg: PostgresHandle;
  beforeAll(async () => {
    pg = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await pg?.stop();
  });

  it('migrates, commits and rolls back, with per-service migration tables', async () => {
    const kysely = createKysely<NoteDb>(pg.url);
    try {
      await exercise(kysely, 'test-svc');
    } finally {
      await kysely.destroy();
    }
  }, 30_000);

  it('finds the data and applies nothing after a restart on the same database', async () => {
    const second = createKysely<NoteDb>(pg.url);
    try {
      expect(await migrate(second as Kysely<unknown>, 'test-svc', migrations)).toEqual([]);
      expect(await second.selectFrom('notes').select('body').execute()).toEqual([{ body: 'kept' }]);
    } finally {
      await second.destroy();
    }
  }, 30_000);

  it('a connection the server ends between two statements of a transaction fails that transaction, not the process; the pool carries on', async () => {
    const kysely = createKysely<NoteDb>(pg.url);
    const admin = createKysely<NoteDb>(pg.url);
    try {
      // What a frozen process's transactions get: PostgreSQL ends them after 20 s idle.
      expect((await sql<{ t: string }>`select current_setting('idle_in_transaction_session_timeout') as t`.execute(kysely)).rows[0]?.t).toBe('20s');
      const ended = kysely.transaction().execute(async (trx) => {
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
        // As a crash, a restart or the idle timeout would: the server ends the session while the
        // transaction waits for something else (a peer's answer), with no statement under way.
        await sql`select pg_terminate_backend(${rows[0]!.pid})`.execute(admin);
        await new Promise((resolve) => setTimeout(resolve, 200));
        await trx.selectFrom('notes').selectAll().execute();
      });
      await expect(ended).rejects.toThrow();
      expect(await kysely.selectFrom('notes').select('body').execute()).toEqual([{ body: 'kept' }]);
    } finally {
      await admin.destroy();
      await kysely.destroy();
    }
  }, 30_000);

  it('keeps the migration tables of services sharing a database apart', async () => {
    const kysely = createKysely<NoteDb>(pg.url);
    try {
      const other: Migrations = {
        '0001_other': {
          async up(db: Kysely<unknown>) {
            await db.schema.createTable('other_notes').addColumn('id', 'integer', (c) => c.primaryKey()).execute();
          },
        },
      };
      expect(await migrate(kysely as Kysely<unknown>, 'other-svc', other)).toEqual(['0001_other']);
      expect(await migrate(kysely as Kysely<unknown>, 'test-svc', migrations)).toEqual([]);
      expect(await migrate(kysely as Kysely<unknown>, 'other-svc', other)).toEqual([]);
    } finally {
      await kysely.destroy();
    }
  }, 30_000);
});
