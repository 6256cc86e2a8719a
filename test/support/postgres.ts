// A throwaway PostgreSQL cluster for integration tests: initdb into a temp dir, start postgres on
// a free loopback port, create database ziggie_test. Runs as the `postgres` OS user when root
// (PostgreSQL refuses to run as root). Set TEST_DATABASE_URL to use an existing server instead.
import { isExecutable } from './ports';
import { execFileSync, type SpawnOptions } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Client } from 'pg';
import { freePort } from './ports';
import { spawnTracked, stopProcess, waitFor, type TrackedProcess } from './processes';

export interface StartPostgresOptions {
  /** Name of the database to create (default ziggie_test). */
  database?: string;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
  /** How long to wait for the server to accept queries (default 30 s). */
  startTimeoutMs?: number;
}

export interface PostgresHandle {
  /** postgres://postgres@127.0.0.1:<port>/ziggie_test (or TEST_DATABASE_URL as is). */
  readonly url: string;
  readonly port: number;
  /** Pid of the postmaster; undefined when TEST_DATABASE_URL is used. */
  readonly pid: number | undefined;
  /** Data/socket directory of the throwaway cluster; undefined with TEST_DATABASE_URL. */
  readonly dir: string | undefined;
  /** Fast shutdown (SIGINT), wait, remove the temp dir. No-op with TEST_DATABASE_URL. Idempotent. */
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';

const hasServerBinaries = (dir: string): boolean =>
  isExecutable(join(dir, 'initdb')) && isExecutable(join(dir, 'postgres'));

/** Directory holding initdb and postgres ($POSTGRES_BIN_DIR, pg_config --bindir, /usr/lib/postgresql/<highest>/bin, PATH). */
export function findPostgresBinDir(): string {
  const override = process.env.POSTGRES_BIN_DIR;
  if (override) {
    if (hasServerBinaries(override)) return override;
    throw new Error(`POSTGRES_BIN_DIR=${override} does not contain initdb and postgres`);
  }
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (dir && hasServerBinaries(dir)) return dir;
  } catch {
    // no pg_config (libpq-dev) or it points at a client-only install
  }
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const dir = join('/usr/lib/postgresql', v, 'bin');
      if (hasServerBinaries(dir)) return dir;
    }
  } catch {
    // no /usr/lib/postgresql
  }
  const onPath = (process.env.PATH ?? '').split(delimiter).filter(Boolean).find(hasServerBinaries);
  if (onPath) return onPath;
  throw new Error(
    'PostgreSQL server binaries (initdb, postgres) not found via pg_config, /usr/lib/postgresql/*/bin or PATH: ' +
      'install them with `apt-get install postgresql` (or run scripts/install-deps.sh), ' +
      'set POSTGRES_BIN_DIR, or point TEST_DATABASE_URL at an existing server',
  );
}

interface RunAs {
  uid: number;
  gid: number;
}

/** When root, the uid/gid of the `postgres` OS user; otherwise undefined (run as ourselves). */
function postgresUser(): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  try {
    const id = (flag: string): number =>
      Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error(
      'running as root but there is no `postgres` OS user to run PostgreSQL as ' +
        '(install the postgresql package, create the user, or set TEST_DATABASE_URL)',
    );
  }
}

async function query(url: string, sql: string): Promise<void> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function launch(
  bin: string,
  dataDir: string,
  socketDir: string,
  port: number,
  settings: Record<string, string>,
  spawnOpts: SpawnOptions,
  timeoutMs: number,
): Promise<TrackedProcess> {
  const all: Record<string, string> = { listen_addresses: '127.0.0.1', fsync: 'off', ...settings };
  const args = ['-D', dataDir, '-p', String(port), '-k', socketDir];
  for (const [name, value] of Object.entries(all)) args.push('-c', `${name}=${value}`);
  const proc = await spawnTracked(join(bin, 'postgres'), args, spawnOpts);
  const adminUrl = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
  try {
    await waitFor(
      async () => {
        if (proc.exited) return true;
        // The log line guards against querying some other server that holds the port.
        if (!/database system is ready to accept connections/.test(proc.output())) return false;
        await query(adminUrl, 'select 1');
        return true;
      },
      { timeoutMs, intervalMs: 100, what: `postgres to accept queries on 127.0.0.1:${port}` },
    );
  } catch (err) {
    await stopProcess(proc, 'SIGQUIT', 2_000);
    throw new Error(`${(err as Error).message}\n$ ${proc.command}\n${proc.output()}`);
  }
  if (proc.exited) {
    const { code, signal } = await proc.exit;
    throw new Error(`postgres exited during startup (code ${code}, signal ${signal})\n$ ${proc.command}\n${proc.output()}`);
  }
  return proc;
}

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresHandle> {
  const external = process.env.TEST_DATABASE_URL;
  if (external) {
    const parsed = new URL(external);
    return {
      url: external,
      port: parsed.port ? Number(parsed.port) : 5432,
      pid: undefined,
      dir: undefined,
      stop: async () => undefined,
    };
  }

  const database = opts.database ?? 'ziggie_test';
  if (!/^[a-z_][a-z0-9_]*$/.test(database)) throw new Error(`invalid database name: ${database}`);
  const bin = findPostgresBinDir();
  const runAs = postgresUser();
  const timeoutMs = opts.startTimeoutMs ?? 30_000;

  const dir = await mkdtemp(join(tmpdir(), 'ziggie-pg-'));
  const dataDir = join(dir, 'data');
  const socketDir = join(dir, 'sock');
  let proc: TrackedProcess | undefined;
  try {
    await mkdir(socketDir);
    if (runAs) {
      await chown(dir, runAs.uid, runAs.gid);
      await chown(socketDir, runAs.uid, runAs.gid);
    }
    const spawnOpts: SpawnOptions = { cwd: dir, env: { ...process.env, LC_ALL: 'C' }, ...(runAs ?? {}) };

    const initdb = await spawnTracked(
      join(bin, 'initdb'),
      ['-D', dataDir, '-A', 'trust', '-U', SUPERUSER, '--no-sync', '--no-locale', '-E', 'UTF8'],
      spawnOpts,
    );
    const { code, signal } = await initdb.exit;
    if (code !== 0) {
      throw new Error(`initdb failed (code ${code}, signal ${signal})\n$ ${initdb.command}\n${initdb.output()}`);
    }

    let port = 0;
    // A port from freePort can be taken before postgres binds it: retry a few times.
    for (let attempt = 1; proc === undefined; attempt++) {
      port = await freePort();
      try {
        proc = await launch(bin, dataDir, socketDir, port, opts.settings ?? {}, spawnOpts, timeoutMs);
      } catch (err) {
        if (attempt >= 3 || !/address already in use|could not create any TCP\/IP sockets/i.test(String(err))) throw err;
      }
    }

    await query(`postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`, `create database ${database}`);

    const postmaster: TrackedProcess = proc;
    let stopped = false;
    return {
      url: `postgres://${SUPERUSER}@127.0.0.1:${port}/${database}`,
      port,
      pid: postmaster.pid,
      dir,
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopProcess(postmaster, 'SIGINT', 15_000);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (proc) await stopProcess(proc, 'SIGINT', 5_000);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
