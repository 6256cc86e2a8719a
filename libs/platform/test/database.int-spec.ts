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
