import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

describe('database layer', () => {
  it('migrates, commits and rolls back on embedded PGlite, and keeps data across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ziggie-pglite-'));
    try {
      const first = createKysely<NoteDb>({ dataDir: dir });
      expect(first.kind).toBe('pglite');
      await exercise(first.kysely, 'test-svc');
      await first.kysely.destroy();
      const second = createKysely<NoteDb>({ dataDir: dir });
      expect(await migrate(second.kysely as Kysely<unknown>, 'test-svc', migrations)).toEqual([]);
      expect(await second.kysely.selectFrom('notes').select('body').execute()).toEqual([{ body: 'kept' }]);
      await second.kysely.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  describe('on a Postgres server (DATABASE_URL)', () => {
    let pg: PostgresHandle;
    beforeAll(async () => {
      pg = await startPostgres();
    }, 60_000);
    afterAll(async () => {
      await pg?.stop();
    });

    it('migrates, commits and rolls back, with per-service migration tables', async () => {
      const { kysely, kind } = createKysely<NoteDb>({ url: pg.url, dataDir: '/nonexistent' });
      expect(kind).toBe('postgres');
      try {
        await exercise(kysely, `svc-${Date.now()}`);
      } finally {
        await kysely.destroy();
      }
    }, 30_000);
  });
});
