#!/usr/bin/env node
// MCP gateway benchmark (not a test: it prints figures side by side and asserts nothing).
//
// Table 1 — tools/call of server-everything's `echo` tool over MCP streamable HTTP on loopback
// (SDK Client + StreamableHTTPClientTransport; SSE for mcp-hub, which serves nothing else), at 1 and
// at 32 concurrent sessions (one client and one session each, calls back to back), each call with
// unique arguments {message: 'bench-<cell>-<i>'} and each answer checked to contain its message:
//   direct           server-everything `streamableHttp` (the floor)
//   gateway → http   services/mcp-gateway/dist/main.js in front of that same server-everything
//   gateway → stdio  the gateway with server-everything as a stdio upstream
//   mcp-proxy        npm mcp-proxy (stdio → streamable HTTP) in front of server-everything stdio
//   mcp-hub          npm mcp-hub (aggregator, SSE endpoint /mcp) in front of server-everything stdio
// Table 2 — a full tools/list (following every nextCursor) from the gateway's catalog with 10 stdio
// upstreams × 100 tools (hundred-tools-server.js), beside one hundred-tools server over stdio.
// Then the ratios against the targets, and the results as JSON under os.tmpdir() (path printed).
//
// Usage: npm run bench:mcp [-- --calls 2000] [--reps 200] [--only direct,gateway,gateway-stdio,mcp-proxy,mcp-hub,tools-list]
//   Needs `npm run build` (the gateway's dist) and nats-server (PATH or /usr/sbin) for the gateway rows.
//   A path that fails prints its error in its row and the others still run; a cell taking more than
//   5 minutes (BENCH_CELL_LIMIT_MS) aborts the run. Every child gets its own loopback port from a
//   free-port helper, runs in its own process group and is killed by pid (SIGTERM, SIGKILL after 3 s)
//   on exit, error or SIGINT; each gateway gets its own nats-server -js with a temp store.
//   mcp-proxy runs as `mcp-proxy --host 127.0.0.1 --port P --server stream -- node everything stdio`;
//   mcp-hub as `mcp-hub --port P --config <tmp>` with HOME/XDG_* in a temp dir holding a fresh
//   marketplace cache, so it does not fetch its catalog from the internet at start.
'use strict';
const { spawn } = require('node:child_process');
const { createRequire } = require('node:module');
const { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const { delimiter, dirname, join, resolve } = require('node:path');
const { performance } = require('node:perf_hooks');
const { randomBytes } = require('node:crypto');

const REPO = resolve(__dirname, '..', '..', '..');
const repoRequire = createRequire(join(REPO, 'package.json'));
const { Client } = repoRequire('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = repoRequire('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { SSEClientTransport } = repoRequire('@modelcontextprotocol/sdk/client/sse.js');
const { StdioClientTransport } = repoRequire('@modelcontextprotocol/sdk/client/stdio.js');

// ---------------------------------------------------------------------------------------------
// Options

function usage(msg) {
  if (msg) console.error(`run.js: ${msg}`);
  console.error('Usage: node test/bench/mcp-gateway/run.js [--calls N] [--reps N] [--only a,b,...]');
  console.error(`  --only picks among: ${ALL_PATHS.join(', ')}`);
  process.exit(2);
}
const ALL_PATHS = ['direct', 'gateway', 'gateway-stdio', 'mcp-proxy', 'mcp-hub', 'tools-list'];
const opts = { calls: 2000, reps: 200, only: new Set(ALL_PATHS) };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--calls') opts.calls = Number(value());
    else if (a === '--reps') opts.reps = Number(value());
    else if (a === '--only') opts.only = new Set(value().split(',').map((s) => s.trim()).filter(Boolean));
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  if (!Number.isInteger(opts.calls) || opts.calls < 1) usage('--calls must be a positive integer');
  if (!Number.isInteger(opts.reps) || opts.reps < 1) usage('--reps must be a positive integer');
  for (const p of opts.only) if (!ALL_PATHS.includes(p)) usage(`unknown path ${p} in --only`);
}

const WARMUP_CALLS = 100;
const WARMUP_LISTS = 10;
const SESSION_COUNTS = [1, 32];
const CELL_LIMIT_MS = Number(process.env.BENCH_CELL_LIMIT_MS) || 5 * 60_000; // env override for testing the abort
const START_LIMIT_MS = 60_000;
const KILL_GRACE_MS = 3_000;
const RSS_SAMPLE_MS = 200;

// ---------------------------------------------------------------------------------------------
// Paths of what we run

function packageDir(name) {
  try {
    return dirname(repoRequire.resolve(`${name}/package.json`));
  } catch {
    for (const base of repoRequire.resolve.paths(name) ?? []) {
      if (existsSync(join(base, name, 'package.json'))) return join(base, name);
    }
    throw new Error(`package ${name} is not installed under ${REPO}/node_modules`);
  }
}
const packageJson = (name) => JSON.parse(readFileSync(join(packageDir(name), 'package.json'), 'utf8'));
function packageBin(name) {
  const pkg = packageJson(name);
  const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin?.[name] ?? Object.values(pkg.bin ?? {})[0];
  if (!bin) throw new Error(`package ${name} declares no bin`);
  return join(packageDir(name), bin);
}

const EVERYTHING = join(packageDir('@modelcontextprotocol/server-everything'), 'dist', 'index.js');
const HUNDRED_TOOLS = join(__dirname, 'hundred-tools-server.js');
const GATEWAY_MAIN = join(REPO, 'services', 'mcp-gateway', 'dist', 'main.js');
const PLATFORM_DIST = join(REPO, 'libs', 'platform', 'dist');

function findNatsServer() {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const p = join(dir, 'nats-server');
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // Not here.
    }
  }
  if (existsSync('/usr/sbin/nats-server')) return '/usr/sbin/nats-server';
  throw new Error('nats-server not found on PATH nor at /usr/sbin/nats-server (sudo apt-get install -y nats-server)');
}

// ---------------------------------------------------------------------------------------------
// Processes, ports and temp dirs: everything started is tracked and torn down by pid.

const procs = new Map(); // pid -> tracked process
const tempDirs = new Set();

function tempDir(label) {
  const dir = mkdtempSync(join(os.tmpdir(), `ziggie-bench-mcp-${label}-`));
  tempDirs.add(dir);
  return dir;
}
function removeTempDir(dir) {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // Best effort.
  }
  tempDirs.delete(dir);
}

/** A port nobody listens on: bind 127.0.0.1:0, read it, release it. */
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

/** Starts a child in its own process group; its output is kept (last lines) for error messages. */
function startProcess(name, command, args, { env, cwd = REPO, quietStdout = false } = {}) {
  const child = spawn(command, args, {
    cwd,
    env,
    detached: true,
    stdio: ['ignore', quietStdout ? 'ignore' : 'pipe', 'pipe'],
  });
  const p = { name, child, pid: child.pid, lines: [], exit: null };
  if (p.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  const keep = (chunk) => {
    // eslint-disable-next-line no-control-regex
    for (const line of String(chunk).replace(/\x1b\[[0-9;]*m/g, '').split('\n')) {
      if (line.trim() === '') continue;
      p.lines.push(line.length > 400 ? `${line.slice(0, 400)}…` : line);
      if (p.lines.length > 200) p.lines.shift();
    }
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  p.exited = new Promise((done) =>
    child.on('exit', (code, signal) => {
      p.exit = signal ? `signal ${signal}` : `code ${code}`;
      done();
    }),
  );
  child.on('error', (err) => {
    keep(`spawn error: ${err.message}`);
    p.exit ??= `spawn error ${err.code ?? err.message}`;
  });
  procs.set(p.pid, p);
  return p;
}

/** The first line of the output that reads like an error, else the last lines. */
function tail(p, n = 12) {
  if (!p.lines.length) return '';
  const first = p.lines.find((l) => /\b(error|fatal|exception|cannot|can't|failed|EADDRINUSE)\b/i.test(l));
  const lines = first ? [first, '…', ...p.lines.slice(-n).filter((l) => l !== first)] : p.lines.slice(-n);
  return `\n    output of ${p.name}:\n      ${lines.join('\n      ')}`;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/** The pids under `pid` (children, grandchildren …) as the kernel lists them now. */
function descendants(pid) {
  const out = [];
  const walk = (id, depth) => {
    if (depth > 8) return;
    let kids = [];
    try {
      kids = readFileSync(`/proc/${id}/task/${id}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return;
    }
    for (const k of kids) {
      out.push(k);
      walk(k, depth + 1);
    }
  };
  walk(pid, 0);
  return out;
}

function signal(pid, sig) {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

/** SIGTERM to the child's group and descendants, SIGKILL after KILL_GRACE_MS to whatever is left. */
async function stopProcess(p) {
  if (!procs.has(p.pid)) return;
  const pids = [p.pid, ...descendants(p.pid)];
  signal(-p.pid, 'SIGTERM');
  for (const pid of pids) signal(pid, 'SIGTERM');
  const until = Date.now() + KILL_GRACE_MS;
  const groupAlive = () => alive(-p.pid) || pids.some((pid) => pid !== p.pid && alive(pid));
  // Children spawned here report their exit; others (a transport's child) are polled.
  const running = () => (p.child ? p.exit === null : alive(p.pid)) || groupAlive();
  while (running() && Date.now() < until) await sleep(50);
  if (running()) {
    signal(-p.pid, 'SIGKILL');
    for (const pid of pids) signal(pid, 'SIGKILL');
    await Promise.race([p.exited, sleep(1000)]);
  }
  procs.delete(p.pid);
}

async function stopAll() {
  await Promise.all([...procs.values()].map((p) => stopProcess(p)));
  for (const dir of [...tempDirs]) removeTempDir(dir);
}

let shuttingDown = false;
async function shutdown(code, message) {
  if (shuttingDown) return;
  shuttingDown = true;
  if (message) console.error(`\n${message}`);
  await stopAll();
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(130, 'interrupted: stopping every process the benchmark started'));
process.on('SIGTERM', () => void shutdown(143, 'terminated: stopping every process the benchmark started'));
process.on('uncaughtException', (err) => void shutdown(1, `benchmark failed: ${err?.stack ?? err}`));
process.on('unhandledRejection', (err) => {
  // A transport dying under a failed path can reject in the background; the path reports it itself.
  if (process.env.BENCH_DEBUG) console.error('unhandled rejection:', err);
});
// Last resort (process.exit from anywhere): nothing may outlive the benchmark.
process.on('exit', () => {
  for (const p of procs.values()) {
    for (const pid of [p.pid, ...descendants(p.pid)]) signal(pid, 'SIGKILL');
    signal(-p.pid, 'SIGKILL');
  }
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Best effort.
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

class CellTimeout extends Error {}

/** Rejects when `ms` pass first; `onTimeout` lets the work stop itself. */
function withLimit(promise, ms, what, onTimeout) {
  let timer;
  const limit = new Promise((_, fail) => {
    timer = setTimeout(() => {
      onTimeout?.();
      fail(new CellTimeout(`${what} took more than ${Math.round(ms / 1000)} s`));
    }, ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** Polls `probe` until it returns a truthy value; fails early if `p` exits. */
async function waitUntil(probe, what, p, ms = START_LIMIT_MS) {
  const until = Date.now() + ms;
  let last = 'no answer yet';
  while (Date.now() < until) {
    if (p?.exit) throw new Error(`${p.name} exited (${p.exit}) before ${what}${tail(p)}`);
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

function tcpOpen(port) {
  return new Promise((done) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      done(true);
    });
    s.once('error', () => done(false));
  });
}

async function httpStatus(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.status;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

function rssMb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

const oneLine = (s) => String(s).replace(/\s+/g, ' ').trim();
/** One line: the message and, for fetch failures, the cause underneath. */
function errText(err) {
  let text = String(err?.message ?? err);
  const cause = err?.cause;
  if (cause && !text.includes(String(cause.message ?? cause))) text += ` (cause: ${cause.code ? `${cause.code} ` : ''}${cause.message ?? cause})`;
  return oneLine(text);
}
/** The same with the message's own lines kept (process output), for the console. */
function errFull(err) {
  const cause = err?.cause;
  const text = String(err?.message ?? err);
  return cause && !text.includes(String(cause.message ?? cause)) ? `${text} (cause: ${cause.code ? `${cause.code} ` : ''}${cause.message ?? cause})` : text;
}

async function quietly(promise, ms = 2000) {
  try {
    await withLimit(Promise.resolve(promise), ms, 'close');
  } catch {
    // Closing is best effort.
  }
}

// ---------------------------------------------------------------------------------------------
// MCP clients

function newClient() {
  return new Client({ name: 'ziggie-bench', version: '1.0.0' }, { capabilities: {} });
}

function streamableConnector(url, headers = {}) {
  return async () => {
    const client = newClient();
    const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
    await client.connect(transport);
    return {
      client,
      close: async () => {
        await quietly(transport.terminateSession());
        await quietly(client.close());
      },
    };
  };
}

function sseConnector(url) {
  return async () => {
    const client = newClient();
    await client.connect(new SSEClientTransport(new URL(url)));
    return { client, close: () => quietly(client.close()) };
  };
}

function stdioConnector(command, args) {
  return async () => {
    const client = newClient();
    const transport = new StdioClientTransport({ command, args, stderr: 'ignore' });
    await client.connect(transport);
    // Tracked like every other child so it is killed by pid if closing does not end it.
    const pid = transport.pid;
    if (pid) procs.set(pid, { name: 'stdio client child', pid, child: null, lines: [], exit: null, exited: Promise.resolve() });
    return {
      client,
      close: async () => {
        await quietly(client.close());
        const p = procs.get(pid);
        if (p) {
          const until = Date.now() + KILL_GRACE_MS;
          while (alive(pid) && Date.now() < until) await sleep(50);
          if (alive(pid)) signal(pid, 'SIGKILL');
          procs.delete(pid);
        }
      },
    };
  };
}

async function listAllTools(client) {
  const tools = [];
  let cursor;
  let pages = 0;
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor });
    pages++;
    tools.push(...page.tools);
    cursor = page.nextCursor;
    if (pages > 10_000) throw new Error('tools/list never ends (more than 10 000 pages)');
  } while (cursor !== undefined && cursor !== null && cursor !== '');
  return { tools, pages };
}

/** Resolves the echo tool's name on this path (namespaced by gateways and aggregators). */
async function findEchoTool(connect, preferred) {
  const s = await connect();
  try {
    const { tools } = await listAllTools(s.client);
    const names = tools.map((t) => t.name);
    if (preferred && names.includes(preferred)) return preferred;
    const found = names.find((n) => n === 'echo' || /(^|[._-])echo$/.test(n));
    if (!found) throw new Error(`no echo tool in tools/list (${names.length} tools: ${names.slice(0, 8).join(', ')}…)`);
    return found;
  } finally {
    await s.close();
  }
}

function checkAnswer(result, message) {
  const texts = (result?.content ?? []).filter((c) => c?.type === 'text').map((c) => c.text);
  if (result?.isError) throw new Error(`tool answered an error: ${oneLine(texts.join(' ')).slice(0, 200)}`);
  const hay = texts.join('\n') + (result?.structuredContent ? JSON.stringify(result.structuredContent) : '');
  const escaped = message.replace(/[-]/g, '\\-');
  if (!new RegExp(`(^|[^\\w-])${escaped}($|[^\\w-])`).test(hay)) {
    throw new Error(`answer does not contain ${message}: ${oneLine(JSON.stringify(result)).slice(0, 200)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// One cell: `sessions` clients, each calling back to back until `calls` are done.

async function runCell({ cellId, sessions, calls, connect, tool, rssPid }) {
  const state = { stop: false };
  const work = async () => {
    const opened = [];
    const rss = { max: NaN, samples: 0 };
    let timer;
    if (rssPid) {
      const sample = () => {
        const v = rssMb(rssPid);
        if (Number.isFinite(v)) {
          rss.max = Number.isFinite(rss.max) ? Math.max(rss.max, v) : v;
          rss.samples++;
        }
      };
      sample();
      timer = setInterval(sample, RSS_SAMPLE_MS);
    }
    try {
      const results = await Promise.allSettled(Array.from({ length: sessions }, () => connect()));
      for (const r of results) if (r.status === 'fulfilled') opened.push(r.value);
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw new Error(`opening ${sessions} sessions: ${errText(failed.reason)}`);

      const drive = async (count, label, latencies) => {
        let next = 0;
        const worker = async ({ client }) => {
          while (!state.stop) {
            const i = next++;
            if (i >= count) return;
            const message = `bench-${cellId}-${label}${i}`;
            const t0 = performance.now();
            let result;
            try {
              result = await client.callTool({ name: tool, arguments: { message } });
            } catch (err) {
              state.stop = true;
              throw new Error(`call ${label}${i}: ${errText(err)}`);
            }
            if (latencies) latencies[i] = performance.now() - t0;
            try {
              checkAnswer(result, message);
            } catch (err) {
              state.stop = true;
              throw err;
            }
          }
        };
        const t0 = performance.now();
        const outcome = await Promise.allSettled(opened.map((s) => worker(s)));
        const bad = outcome.find((o) => o.status === 'rejected');
        if (bad) throw bad.reason;
        return performance.now() - t0;
      };

      await drive(WARMUP_CALLS, 'warm-');
      const latencies = new Float64Array(calls);
      const wallMs = await drive(calls, '', latencies);
      const sorted = Array.from(latencies).sort((a, b) => a - b);
      return {
        calls,
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        callsPerSec: calls / (wallMs / 1000),
        wallMs,
        rssMaxMb: rssPid ? rss.max : undefined,
        rssSamples: rssPid ? rss.samples : undefined,
      };
    } finally {
      if (timer) clearInterval(timer);
      await Promise.all(opened.map((s) => s.close()));
    }
  };
  return withLimit(work(), CELL_LIMIT_MS, `cell ${cellId} (${sessions} sessions, ${calls} calls)`, () => {
    state.stop = true;
  });
}

// ---------------------------------------------------------------------------------------------
// Results

const rows = []; // table 1
const listRows = []; // table 2
const notes = [];

function fmt(n, digits = 2) {
  return Number.isFinite(n) ? n.toFixed(digits) : '—';
}

/** Measures one path at every session count; a failure lands in the rows and the run goes on. */
async function measurePath({ key, label, setup }) {
  if (!opts.only.has(key)) return;
  console.error(`\n[${label}] starting`);
  let ctx;
  try {
    ctx = await setup();
  } catch (err) {
    if (err instanceof CellTimeout) throw err;
    console.error(`[${label}] failed: ${errFull(err)}`);
    for (const sessions of SESSION_COUNTS) rows.push({ key, path: label, sessions, error: errText(err) });
    return;
  }
  console.error(`[${label}] calling tool ${ctx.tool}`);
  try {
    for (const sessions of SESSION_COUNTS) {
      const cellId = `${key}-${sessions}`;
      try {
        const r = await runCell({
          cellId,
          sessions,
          calls: opts.calls,
          connect: ctx.connect,
          tool: ctx.tool,
          rssPid: sessions === 32 ? ctx.rssPid : undefined,
        });
        rows.push({ key, path: label, sessions, ...r });
        console.error(
          `[${label}] ${sessions} sessions: p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms, ${fmt(r.callsPerSec, 0)} calls/s` +
            (r.rssMaxMb !== undefined ? `, max RSS ${fmt(r.rssMaxMb, 1)} MB` : ''),
        );
      } catch (err) {
        if (err instanceof CellTimeout) throw err;
        console.error(`[${label}] ${sessions} sessions failed: ${errFull(err)}`);
        rows.push({ key, path: label, sessions, error: errText(err) });
      }
    }
  } finally {
    await ctx.teardown?.();
  }
}

// ---------------------------------------------------------------------------------------------
// The things measured

async function startEverythingHttp() {
  const port = await freePort();
  // It logs a line to stdout per request: dropped so the pipe costs nothing on either path.
  const p = startProcess('server-everything (streamableHttp)', process.execPath, [EVERYTHING, 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    quietStdout: true,
  });
  await waitUntil(() => tcpOpen(port), `server-everything listening on ${port}`, p);
  return { p, port, url: `http://127.0.0.1:${port}/mcp` };
}

/** A fresh nats-server -js with its own temp store for one gateway (no state shared between paths). */
async function startNats(label) {
  const bin = findNatsServer();
  const [port, monitor] = [await freePort(), await freePort()];
  const dir = tempDir(`${label}-nats`);
  const p = startProcess(`nats-server (${label})`, bin, ['-a', '127.0.0.1', '-p', String(port), '-m', String(monitor), '-js', '-sd', dir], {
    env: process.env,
  });
  const stop = async () => {
    await stopProcess(p);
    removeTempDir(dir);
  };
  try {
    await waitUntil(
      async () => (await httpStatus(`http://127.0.0.1:${monitor}/healthz?js-enabled-only=true`)) === 200,
      'nats-server healthy',
      p,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { p, port, stop };
}

let platform;
function loadPlatform() {
  platform ??= require(PLATFORM_DIST);
  if (typeof platform.signDevToken !== 'function') {
    throw new Error(`signDevToken is not exported by ${PLATFORM_DIST}/index.js (run npm run build)`);
  }
  return platform;
}

/** Starts the gateway with the given upstreams; resolves once /readyz answers 200. */
async function startGateway(label, servers) {
  if (!existsSync(GATEWAY_MAIN)) throw new Error(`${GATEWAY_MAIN} is missing: run npm run build`);
  const { signDevToken } = loadPlatform();
  const nats = await startNats(label);
  const natsPort = nats.port;
  const dir = tempDir(label);
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  const serversFile = join(dir, 'mcp-servers.json');
  writeFileSync(serversFile, JSON.stringify({ servers }, null, 2));
  const [httpPort, grpcPort] = [await freePort(), await freePort()];
  const secret = randomBytes(24).toString('base64url').slice(0, 32);
  const env = {
    ...process.env,
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: String(httpPort),
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: String(grpcPort),
    NATS_URL: `nats://127.0.0.1:${natsPort}`,
    ZIGGIE_JWT_SECRET: secret,
    JWT_ISSUER: 'ziggie-local',
    JWT_AUDIENCE: 'ziggie-api',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    MCP_TOOL_CONCURRENCY: '1000',
    MCP_TOOL_PER_MINUTE: '1000000',
    MCP_SERVERS_FILE: serversFile,
  };
  const p = startProcess(`mcp-gateway (${label})`, process.execPath, [GATEWAY_MAIN], { env });
  const stop = async () => {
    await stopProcess(p);
    await nats.stop();
    removeTempDir(dir);
  };
  try {
    await waitUntil(async () => (await httpStatus(`http://127.0.0.1:${httpPort}/readyz`)) === 200, 'gateway /readyz 200', p);
  } catch (err) {
    await stop();
    throw err;
  }
  const token = signDevToken(
    { subject: 'bench', roles: ['admin'], workspaces: ['*'], ttlSeconds: 3600 },
    { secret, issuer: 'ziggie-local', audience: 'ziggie-api' },
  );
  const connect = streamableConnector(`http://127.0.0.1:${httpPort}/mcp`, { Authorization: `Bearer ${token}` });
  return { p, connect, stop, url: `http://127.0.0.1:${httpPort}/mcp`, token };
}

async function gatewayPath(label, upstream) {
  const gw = await startGateway(label, [upstream]);
  try {
    // The catalog may fill in just after readiness: wait for the tool rather than race it.
    const tool = await waitUntil(() => findEchoTool(gw.connect, 'everything.echo'), 'everything.echo in the gateway tools/list', gw.p, 30_000);
    return { connect: gw.connect, tool, rssPid: gw.p.pid, teardown: gw.stop };
  } catch (err) {
    await gw.stop();
    throw err;
  }
}

async function mcpProxyPath() {
  const bin = packageBin('mcp-proxy');
  const port = await freePort();
  const p = startProcess(
    'mcp-proxy',
    process.execPath,
    [bin, '--host', '127.0.0.1', '--port', String(port), '--server', 'stream', '--', process.execPath, EVERYTHING, 'stdio'],
    { env: process.env },
  );
  try {
    await waitUntil(() => tcpOpen(port), `mcp-proxy listening on ${port}`, p);
    const connect = streamableConnector(`http://127.0.0.1:${port}/mcp`);
    const tool = await findEchoTool(connect, 'echo');
    return { connect, tool, teardown: () => stopProcess(p) };
  } catch (err) {
    await stopProcess(p);
    throw err;
  }
}

async function mcpHubPath() {
  const bin = packageBin('mcp-hub');
  const home = tempDir('mcp-hub');
  const xdg = { XDG_DATA_HOME: join(home, 'data'), XDG_STATE_HOME: join(home, 'state'), XDG_CONFIG_HOME: join(home, 'config') };
  // mcp-hub fetches its marketplace catalog from the internet at start unless a fresh cache exists:
  // a one-entry cache keeps it offline (the catalog plays no part in serving MCP).
  const cacheDir = join(xdg.XDG_DATA_HOME, 'mcp-hub', 'cache');
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(
    join(cacheDir, 'registry.json'),
    JSON.stringify({
      registry: { version: 'bench', generatedAt: Date.now(), totalServers: 1, servers: [{ id: 'bench-offline', name: 'bench-offline' }] },
      lastFetchedAt: Date.now(),
      serverDocumentation: {},
    }),
  );
  const config = join(home, 'mcp-hub.json');
  writeFileSync(config, JSON.stringify({ mcpServers: { everything: { command: process.execPath, args: [EVERYTHING, 'stdio'] } } }, null, 2));
  const port = await freePort();
  const p = startProcess('mcp-hub', process.execPath, [bin, '--port', String(port), '--config', config], {
    env: { ...process.env, HOME: home, ...xdg },
  });
  const teardown = async () => {
    await stopProcess(p);
    removeTempDir(home);
  };
  try {
    await waitUntil(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/api/health`, { signal: AbortSignal.timeout(2000) });
        const h = await res.json();
        return h.state === 'ready' && (h.servers ?? []).some((s) => s.name === 'everything' && s.status === 'connected');
      },
      'mcp-hub ready with everything connected',
      p,
    );
    const connect = sseConnector(`http://127.0.0.1:${port}/mcp`);
    const tool = await findEchoTool(connect, 'everything__echo');
    return { connect, tool, teardown };
  } catch (err) {
    await teardown();
    throw err;
  }
}

/** p50/p99 of a full tools/list (every page) over one session. */
/**
 * The same full listing with plain fetch + JSON.parse instead of the SDK client, whose per-tool
 * schema parsing costs more than the gateway's serving: this row isolates the gateway's side.
 */
async function measureRawToolsList({ label, url, token }) {
  const row = { path: label, upstreams: 10, reps: opts.reps };
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const rpc = async (body, sid) => {
    const res = await fetch(url, { method: 'POST', headers: { ...headers, ...(sid ? { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' } : {}) }, body: JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
    const data = text.startsWith('{') ? text : text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).pop();
    return { sid: res.headers.get('mcp-session-id'), message: data ? JSON.parse(data) : undefined };
  };
  try {
    const init = await rpc({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench-raw', version: '1' } } });
    const sid = init.sid;
    await rpc({ jsonrpc: '2.0', method: 'notifications/initialized' }, sid);
    let id = 1;
    const listing = async () => {
      let cursor;
      let tools = 0;
      let pages = 0;
      do {
        const { message } = await rpc({ jsonrpc: '2.0', id: id++, method: 'tools/list', params: cursor ? { cursor } : {} }, sid);
        tools += message.result.tools.length;
        pages++;
        cursor = message.result.nextCursor;
      } while (cursor);
      return { tools, pages };
    };
    for (let i = 0; i < WARMUP_LISTS; i++) await listing();
    const latencies = [];
    let last;
    for (let i = 0; i < opts.reps; i++) {
      const t0 = performance.now();
      last = await listing();
      latencies.push(performance.now() - t0);
    }
    latencies.sort((a, b) => a - b);
    Object.assign(row, { tools: last.tools, pages: last.pages, p50: percentile(latencies, 50), p99: percentile(latencies, 99), raw: true });
  } catch (err) {
    row.error = errText(err);
  }
  listRows.push(row);
}

async function measureToolsList({ label, upstreams, connect, expectTools, p }) {
  const row = { path: label, upstreams, reps: opts.reps };
  try {
    const work = async () => {
      const s = await waitUntil(() => connect(), 'an MCP session', p, 30_000);
      try {
        // Upstreams may still be joining the catalog: wait until every tool is there.
        let first;
        await waitUntil(
          async () => {
            first = await listAllTools(s.client);
            return first.tools.length >= expectTools;
          },
          `${expectTools} tools in tools/list`,
          p,
          60_000,
        ).catch((err) => {
          throw new Error(`${errText(err)}; last count ${first?.tools.length ?? 'none'}`);
        });
        const stage = async (what, fn) => {
          try {
            return await fn();
          } catch (err) {
            throw new Error(`${what}: ${errText(err)}${p?.exit ? ` (${p.name} exited, ${p.exit})` : ''}${p ? tail(p, 6) : ''}`);
          }
        };
        for (let i = 0; i < WARMUP_LISTS; i++) await stage(`warm-up listing ${i}`, () => listAllTools(s.client));
        const latencies = [];
        let pages = 0;
        let tools = 0;
        for (let i = 0; i < opts.reps; i++) {
          const t0 = performance.now();
          const r = await stage(`listing ${i}`, () => listAllTools(s.client));
          latencies.push(performance.now() - t0);
          pages = r.pages;
          tools = r.tools.length;
        }
        latencies.sort((a, b) => a - b);
        return { tools, pages, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
      } finally {
        await s.close();
      }
    };
    Object.assign(row, await withLimit(work(), CELL_LIMIT_MS, `tools/list cell ${label}`));
    console.error(`[tools/list ${label}] ${row.tools} tools in ${row.pages} pages: p50 ${fmt(row.p50)} ms, p99 ${fmt(row.p99)} ms`);
  } catch (err) {
    if (err instanceof CellTimeout) throw err;
    console.error(`[tools/list ${label}] failed: ${errFull(err)}`);
    row.error = errText(err);
  }
  listRows.push(row);
}

async function toolsListTable() {
  if (!opts.only.has('tools-list')) return;
  console.error('\n[tools/list] starting');
  const gwLabel = 'gateway catalog (10 stdio upstreams × 100 tools)';
  const servers = Array.from({ length: 10 }, (_, i) => ({
    name: `s${i}`,
    transport: 'stdio',
    command: process.execPath,
    args: [HUNDRED_TOOLS],
  }));
  let gw;
  try {
    gw = await startGateway('tools-list', servers);
  } catch (err) {
    if (err instanceof CellTimeout) throw err;
    console.error(`[tools/list ${gwLabel}] failed: ${errFull(err)}`);
    listRows.push({ path: gwLabel, upstreams: 10, reps: opts.reps, error: errText(err) });
  }
  if (gw) {
    try {
      await measureToolsList({ label: gwLabel, upstreams: 10, connect: gw.connect, expectTools: 1000, p: gw.p });
      await measureRawToolsList({ label: 'gateway catalog, raw JSON-RPC over HTTP (no SDK client schema parsing)', url: gw.url, token: gw.token });
    } finally {
      await gw.stop();
    }
  }
  await measureToolsList({
    label: 'direct: one hundred-tools server over stdio',
    upstreams: 1,
    connect: stdioConnector(process.execPath, [HUNDRED_TOOLS]),
    expectTools: 100,
  });
}

// ---------------------------------------------------------------------------------------------
// Report

function printReport() {
  const mdCell = (s) => String(s).replace(/\|/g, '\\|');
  const out = [];
  out.push('');
  const load = (l) => l.map((x) => x.toFixed(2)).join(' ');
  out.push(`## tools/call echo — ${opts.calls} calls per cell after ${WARMUP_CALLS} warm-up calls`);
  out.push('');
  out.push(`node ${process.version}, ${os.cpus().length} CPUs, load average ${load(startLoad)} at start, ${load(os.loadavg())} at end`);
  out.push('');
  out.push('| path | sessions | calls | p50 ms | p99 ms | calls/s |');
  out.push('|---|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    if (r.error) out.push(`| ${mdCell(r.path)} | ${r.sessions} | — | — | — | ERROR: ${mdCell(r.error.slice(0, 300))} |`);
    else out.push(`| ${mdCell(r.path)} | ${r.sessions} | ${r.calls} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.callsPerSec, 0)} |`);
  }
  out.push('');
  out.push(`## tools/list — a full listing (every page) through one session, ${opts.reps} repetitions after ${WARMUP_LISTS} warm-up`);
  out.push('');
  out.push('| path | upstreams | tools | pages | reps | p50 ms | p99 ms |');
  out.push('|---|---:|---:|---:|---:|---:|---:|');
  for (const r of listRows) {
    if (r.error) out.push(`| ${mdCell(r.path)} | ${r.upstreams} | — | — | — | — | ERROR: ${mdCell(r.error.slice(0, 300))} |`);
    else out.push(`| ${mdCell(r.path)} | ${r.upstreams} | ${r.tools} | ${r.pages} | ${r.reps} | ${fmt(r.p50)} | ${fmt(r.p99)} |`);
  }

  const cell = (key, sessions) => rows.find((r) => r.key === key && r.sessions === sessions && !r.error);
  const verdict = (ok) => (ok === undefined ? 'n/a' : ok ? 'met' : 'not met');
  const summary = {};
  const lines = [];
  const d32 = cell('direct', 32);
  const g32 = cell('gateway', 32);
  const d1 = cell('direct', 1);
  const g1 = cell('gateway', 1);

  const pct = d32 && g32 ? (100 * g32.callsPerSec) / d32.callsPerSec : undefined;
  summary.gatewayThroughputPctOfDirect32 = pct ?? null;
  lines.push(`gateway throughput at 32 sessions: ${pct === undefined ? 'n/a' : `${fmt(pct, 1)} % of direct`} (target ≥ 50 %: ${verdict(pct === undefined ? undefined : pct >= 50)})`);

  const peers = ['mcp-proxy', 'mcp-hub'].map((k) => cell(k, 32)).filter(Boolean).sort((a, b) => b.callsPerSec - a.callsPerSec);
  const best = peers[0];
  const ratio = g32 && best ? g32.callsPerSec / best.callsPerSec : undefined;
  summary.gatewayVsBestPeer32 = ratio ?? null;
  summary.bestPeer32 = best ? best.path : null;
  lines.push(
    `gateway vs best npm peer at 32 sessions: ${ratio === undefined ? 'n/a' : `${fmt(ratio, 2)}× (${best.path}: ${fmt(best.callsPerSec, 0)} calls/s)`} (target ≥ 2×: ${verdict(ratio === undefined ? undefined : ratio >= 2)})`,
  );
  // The peers front server-everything over stdio: the gateway with a stdio upstream is the like-for-like figure.
  const gs32 = cell('gateway-stdio', 32);
  const ratioStdio = gs32 && best ? gs32.callsPerSec / best.callsPerSec : undefined;
  summary.gatewayStdioVsBestPeer32 = ratioStdio ?? null;
  if (ratioStdio !== undefined) lines.push(`  (like for like, gateway with a stdio upstream vs the same peer: ${fmt(ratioStdio, 2)}×)`);

  const added = d1 && g1 ? g1.p50 - d1.p50 : undefined;
  summary.addedP50Ms1 = added ?? null;
  lines.push(`added p50 at 1 session (gateway p50 − direct p50): ${added === undefined ? 'n/a' : `${fmt(added)} ms`} (target ≤ 1 ms: ${verdict(added === undefined ? undefined : added <= 1)})`);

  const rss = g32?.rssMaxMb;
  summary.maxGatewayRssMb32 = Number.isFinite(rss) ? rss : null;
  lines.push(
    `max gateway RSS during the 32-session cell (http upstream, ${g32?.rssSamples ?? 0} samples every ${RSS_SAMPLE_MS} ms): ${Number.isFinite(rss) ? `${fmt(rss, 1)} MB` : 'n/a'} (target < 200 MB: ${verdict(Number.isFinite(rss) ? rss < 200 : undefined)})`,
  );
  if (Number.isFinite(gs32?.rssMaxMb)) lines.push(`  (gateway with stdio upstream: max RSS ${fmt(gs32.rssMaxMb, 1)} MB, gateway process only)`);

  const gl = listRows.find((r) => r.upstreams === 10 && !r.raw && !r.error);
  summary.toolsListP50Ms = gl ? gl.p50 : null;
  lines.push(`tools/list through the gateway catalog, SDK client (${gl ? `${gl.tools} tools, ${gl.pages} pages` : 'n/a'}): p50 ${gl ? `${fmt(gl.p50)} ms` : 'n/a'} (target < 5 ms: ${verdict(gl ? gl.p50 < 5 : undefined)})`);
  const raw = listRows.find((r) => r.raw && !r.error);
  summary.toolsListRawP50Ms = raw ? raw.p50 : null;
  lines.push(`tools/list through the gateway catalog, raw JSON-RPC: p50 ${raw ? `${fmt(raw.p50)} ms` : 'n/a'} (target < 5 ms: ${verdict(raw ? raw.p50 < 5 : undefined)})`);

  out.push('');
  out.push(...lines);
  for (const n of notes) out.push(`note: ${n}`);
  console.log(out.join('\n'));

  const file = join(os.tmpdir(), 'ziggie-mcp-gateway-bench-results.json');
  const json = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    loadAverage: { start: startLoad, end: os.loadavg() },
    callsPerCell: opts.calls,
    warmupCalls: WARMUP_CALLS,
    toolsListReps: opts.reps,
    calls: rows,
    toolsList: listRows,
    summary,
    notes,
  };
  try {
    writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
    console.log(`\nresults (JSON): ${file}`);
  } catch (err) {
    console.error(`could not write ${file}: ${err.message}`);
  }
}

// ---------------------------------------------------------------------------------------------

const startLoad = os.loadavg();

async function main() {
  const needsEverythingHttp = opts.only.has('direct') || opts.only.has('gateway');
  const everything = needsEverythingHttp ? await startEverythingHttp().catch((err) => ({ error: err })) : undefined;
  const everythingReady = () => {
    if (everything.error) throw everything.error;
    return everything;
  };

  await measurePath({
    key: 'direct',
    label: 'direct (server-everything HTTP)',
    setup: async () => {
      const { url } = everythingReady();
      const connect = streamableConnector(url);
      return { connect, tool: await findEchoTool(connect, 'echo') };
    },
  });
  await measurePath({
    key: 'gateway',
    label: 'gateway (http upstream)',
    setup: () => gatewayPath('gateway-http', { name: 'everything', transport: 'http', url: everythingReady().url }),
  });
  if (everything && !everything.error) await stopProcess(everything.p);
  await measurePath({
    key: 'gateway-stdio',
    label: 'gateway (stdio upstream)',
    setup: () =>
      gatewayPath('gateway-stdio', { name: 'everything', transport: 'stdio', command: process.execPath, args: [EVERYTHING, 'stdio'] }),
  });
  let proxyVersion = '?';
  let hubVersion = '?';
  try {
    proxyVersion = packageJson('mcp-proxy').version;
  } catch {
    // Reported by the path itself.
  }
  try {
    hubVersion = packageJson('mcp-hub').version;
  } catch {
    // Reported by the path itself.
  }
  await measurePath({ key: 'mcp-proxy', label: `mcp-proxy ${proxyVersion}`, setup: mcpProxyPath });
  await measurePath({ key: 'mcp-hub', label: `mcp-hub ${hubVersion} (SSE)`, setup: mcpHubPath });
  if (opts.only.has('mcp-hub')) notes.push('mcp-hub serves its unified endpoint over SSE only (GET /mcp + POST /messages) and binds every interface (it has no host option).');
  notes.push(`the SDK clients, the path under test and its upstream all share this machine's ${os.cpus().length} CPUs.`);
  await toolsListTable();
  printReport();
}

main()
  .then(() => shutdown(0))
  .catch((err) => {
    if (err instanceof CellTimeout) {
      printReport();
      return shutdown(1, `benchmark aborted: ${err.message}, the limit of one cell; the table above holds what was measured before.`);
    }
    return shutdown(1, `benchmark failed: ${err?.stack ?? err}`);
  });
