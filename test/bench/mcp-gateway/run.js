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
// Every cell runs with two load generators: the SDK client, and a raw client (JSON-RPC written by
// hand over node:http keep-alive; legacy SSE by hand for mcp-hub) whose own CPU is a fraction of
// the SDK client's, so the path under test is not starved by the generator on a small machine.
// Beside calls/s each cell gives the CPU milliseconds per call of every process of the path
// (utime + stime from /proc/<pid>/stat over the measured calls: the gateway, mcp-proxy or mcp-hub
// and, separately, the server-everything behind it; the gateway's nats-server), of the generator,
// and the max RSS of the process under test. --soak-s S then drives each gateway path with 32 raw
// sessions for S seconds and samples its RSS every 5 s, to show whether memory stays flat.
// Then the ratios against the targets, and the results as JSON under os.tmpdir() (path printed).
//
// Usage: npm run bench:mcp [-- --calls 2000] [--reps 200] [--only direct,gateway,gateway-stdio,mcp-proxy,mcp-hub,tools-list]
//          [--clients sdk,raw] [--sessions 1,32] [--soak-s 120] [--cpu-prof DIR]
//   --cpu-prof starts each gateway under node --cpu-prof (one directory per path under DIR) and
//   prints self time by package and function (profile-summary.js) once they have stopped.
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
  console.error('Usage: node test/bench/mcp-gateway/run.js [--calls N] [--reps N] [--only a,b,...] [--clients sdk,raw] [--sessions 1,32] [--soak-s S] [--cpu-prof DIR]');
  console.error(`  --only picks among: ${ALL_PATHS.join(', ')}`);
  console.error('  --clients: sdk (the MCP SDK client) and/or raw (JSON-RPC over node:http keep-alive)');
  console.error('  --soak-s: after the cells, drive each gateway path with 32 raw sessions for S seconds (at most 600), sampling its RSS');
  console.error('  --cpu-prof: start the gateways under node --cpu-prof, write the profiles to DIR and print their summary');
  process.exit(2);
}
const ALL_PATHS = ['direct', 'gateway', 'gateway-stdio', 'mcp-proxy', 'mcp-hub', 'tools-list'];
const ALL_CLIENTS = ['sdk', 'raw'];
const opts = { calls: 2000, reps: 200, only: new Set(ALL_PATHS), clients: ALL_CLIENTS, sessions: [1, 32], soakS: 0, cpuProf: undefined };
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
    else if (a === '--clients') opts.clients = value().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--sessions') opts.sessions = value().split(',').map((s) => Number(s.trim()));
    else if (a === '--soak-s') opts.soakS = Number(value());
    else if (a === '--cpu-prof') opts.cpuProf = resolve(value());
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  if (!Number.isInteger(opts.calls) || opts.calls < 1) usage('--calls must be a positive integer');
  if (!Number.isInteger(opts.reps) || opts.reps < 1) usage('--reps must be a positive integer');
  for (const p of opts.only) if (!ALL_PATHS.includes(p)) usage(`unknown path ${p} in --only`);
  for (const c of opts.clients) if (!ALL_CLIENTS.includes(c)) usage(`unknown client ${c} in --clients`);
  if (opts.clients.length === 0) usage('--clients needs at least one of sdk, raw');
  if (opts.sessions.length === 0 || !opts.sessions.every((n) => Number.isInteger(n) && n >= 1 && n <= 256)) usage('--sessions takes integers from 1 to 256');
  if (!Number.isFinite(opts.soakS) || opts.soakS < 0 || opts.soakS > 600) usage('--soak-s takes 0 to 600 seconds');
}

const WARMUP_CALLS = 100;
const WARMUP_LISTS = 10;
const SESSION_COUNTS = opts.sessions;
const SOAK_SESSIONS = 32;
const SOAK_SAMPLE_MS = 5_000;
const CELL_LIMIT_MS = Number(process.env.BENCH_CELL_LIMIT_MS) || 5 * 60_000; // env override for testing the abort
const START_LIMIT_MS = 60_000;
// A profiled gateway writes its .cpuprofile on exit: give it the time to.
const KILL_GRACE_MS = opts.cpuProf ? 60_000 : 3_000;
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
// BENCH_GATEWAY_MAIN runs another build of the gateway (a before/after comparison in one session).
const GATEWAY_MAIN = process.env.BENCH_GATEWAY_MAIN ? resolve(process.env.BENCH_GATEWAY_MAIN) : join(REPO, 'services', 'mcp-gateway', 'dist', 'main.js');
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

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on every Linux the bench runs on). */
const CLK_TCK = (() => {
  try {
    return Number(require('node:child_process').execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU milliseconds (user + system) a process has used so far, from /proc/<pid>/stat: fields 14
 * and 15 after the command name, which may itself hold spaces and parentheses.
 */
function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/**
 * The processes a path is made of, by role: `{ role: pid | () => pids }`. A function is resolved
 * when a cell starts (a stdio upstream is a child the path under test spawned itself).
 */
function resolvePids(procsByRole) {
  return Object.entries(procsByRole ?? {}).map(([role, v]) => ({ role, pids: (typeof v === 'function' ? v() : [v]).filter(Boolean) }));
}

/** CPU used by each role and by this process (the load generator) between start() and stop(). */
function cpuMeter(procsByRole) {
  const roles = resolvePids(procsByRole);
  const read = () => roles.map((r) => r.pids.reduce((sum, pid) => sum + cpuMs(pid), 0));
  const before = read();
  const self = process.cpuUsage();
  return () => {
    const after = read();
    const gen = process.cpuUsage(self);
    return {
      roles: roles.map((r, i) => ({ role: r.role, pids: r.pids, ms: after[i] - before[i] })),
      generatorMs: (gen.user + gen.system) / 1000,
    };
  };
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
      call: (name, args) => client.callTool({ name, arguments: args }),
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
    return { client, call: (name, args) => client.callTool({ name, arguments: args }), close: () => quietly(client.close()) };
  };
}

// The raw client: JSON-RPC written and read by hand over node:http with a keep-alive agent. It
// is hand-written (not an npm load generator) because MCP needs a session handshake and, for the
// legacy SSE transport, answers on a separate stream, which generic HTTP load tools cannot follow.
const http = require('node:http');
const rawAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 });
const RAW_PROTOCOL = '2025-11-25';

/**
 * One request on the keep-alive agent. A kept-alive socket the server closed just as it was
 * reused fails with ECONNRESET before any answer: that request is sent once more on a fresh
 * socket, as Node's documentation advises (request.reusedSocket).
 */
function httpRequest(url, { method = 'POST', headers = {}, body } = {}, retried = false) {
  return new Promise((done, fail) => {
    let answered = false;
    const req = http.request(url, { method, headers, agent: rawAgent }, (res) => {
      answered = true;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => done({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', fail);
    });
    req.on('error', (err) => {
      if (!answered && !retried && req.reusedSocket && err.code === 'ECONNRESET') httpRequest(url, { method, headers, body }, true).then(done, fail);
      else fail(err);
    });
    req.end(body);
  });
}

/** The JSON-RPC messages of a response: one JSON body, or the `data:` lines of an event stream. */
function rpcMessages(res) {
  if (!res.text) return [];
  if (String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
    return res.text
      .split('\n')
      .filter((l) => l.startsWith('data:') && l.length > 6)
      .map((l) => JSON.parse(l.slice(5).trim()));
  }
  const m = JSON.parse(res.text);
  return Array.isArray(m) ? m : [m];
}

function rpcResult(message, what) {
  if (!message) throw new Error(`${what}: no answer`);
  if (message.error) throw new Error(`${what}: JSON-RPC error ${message.error.code} ${message.error.message}`);
  return message.result;
}

/** Streamable HTTP by hand: initialize, initialized, then one POST per call; DELETE ends the session. */
function rawStreamableConnector(url, headers = {}) {
  return async () => {
    const base = { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    let id = 0;
    const init = await httpRequest(url, {
      headers: base,
      body: JSON.stringify({ jsonrpc: '2.0', id: id++, method: 'initialize', params: { protocolVersion: RAW_PROTOCOL, capabilities: {}, clientInfo: { name: 'ziggie-bench-raw', version: '1' } } }),
    });
    if (init.status !== 200) throw new Error(`initialize: HTTP ${init.status} ${init.text.slice(0, 200)}`);
    const version = rpcResult(rpcMessages(init)[0], 'initialize').protocolVersion;
    const sid = init.headers['mcp-session-id'];
    const withSession = { ...base, ...(sid ? { 'mcp-session-id': sid } : {}), 'mcp-protocol-version': version };
    const ack = await httpRequest(url, { headers: withSession, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
    if (ack.status >= 300) throw new Error(`notifications/initialized: HTTP ${ack.status} ${ack.text.slice(0, 200)}`);
    return {
      call: async (name, args) => {
        const callId = id++;
        const res = await httpRequest(url, { headers: withSession, body: JSON.stringify({ jsonrpc: '2.0', id: callId, method: 'tools/call', params: { name, arguments: args } }) });
        if (res.status !== 200) throw new Error(`tools/call: HTTP ${res.status} ${res.text.slice(0, 200)}`);
        return rpcResult(rpcMessages(res).find((m) => m.id === callId), 'tools/call');
      },
      close: async () => {
        if (sid) await quietly(httpRequest(url, { method: 'DELETE', headers: withSession }));
      },
    };
  };
}

/** The legacy SSE transport by hand: GET opens the stream that names the POST endpoint and carries every answer. */
function rawSseConnector(url) {
  return async () => {
    const pending = new Map();
    let endpoint;
    let buffer = '';
    let stream;
    const opened = new Promise((ready, fail) => {
      stream = http.get(url, { headers: { accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) return fail(new Error(`GET ${url}: HTTP ${res.statusCode}`));
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          buffer += chunk;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const event = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const type = /^event: ?(.*)$/m.exec(event)?.[1] ?? 'message';
            const data = event
              .split('\n')
              .filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(5).replace(/^ /, ''))
              .join('\n');
            if (type === 'endpoint') {
              endpoint = new URL(data, url).href;
              ready();
            } else if (type === 'message' && data) {
              const m = JSON.parse(data);
              pending.get(m.id)?.(m);
              pending.delete(m.id);
            }
          }
        });
        res.on('error', fail);
      });
      stream.on('error', fail);
    });
    await withLimit(opened, 10_000, 'SSE endpoint event');
    let id = 0;
    const send = async (message) => {
      const answer = message.id === undefined ? undefined : new Promise((done) => pending.set(message.id, done));
      const res = await httpRequest(endpoint, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(message) });
      if (res.status >= 300) throw new Error(`${message.method}: HTTP ${res.status} ${res.text.slice(0, 200)}`);
      return answer;
    };
    rpcResult(await send({ jsonrpc: '2.0', id: id++, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'ziggie-bench-raw', version: '1' } } }), 'initialize');
    await send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    return {
      call: async (name, args) => rpcResult(await send({ jsonrpc: '2.0', id: id++, method: 'tools/call', params: { name, arguments: args } }), 'tools/call'),
      close: async () => stream.destroy(),
    };
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

/** Samples a process's RSS every `everyMs` until stopped: max, and every sample with its time when `keep`. */
function rssSampler(pid, everyMs, keep = false) {
  const rss = { max: NaN, samples: 0, series: [] };
  const t0 = performance.now();
  const sample = () => {
    const v = rssMb(pid);
    if (!Number.isFinite(v)) return;
    rss.max = Number.isFinite(rss.max) ? Math.max(rss.max, v) : v;
    rss.samples++;
    if (keep) rss.series.push({ s: (performance.now() - t0) / 1000, mb: v });
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    rss,
    stop: () => {
      clearInterval(timer);
      sample();
      return rss;
    },
  };
}

/**
 * Calls back to back over every opened session until `count` calls are done (or `untilMs` passes,
 * for the soak); each answer must hold its own message.
 */
async function drive({ opened, tool, cellId, label, count = Infinity, untilMs, latencies, state }) {
  let next = 0;
  const worker = async ({ call }) => {
    while (!state.stop) {
      if (untilMs !== undefined && performance.now() >= untilMs) return;
      const i = next++;
      if (i >= count) return;
      const message = `bench-${cellId}-${label}${i}`;
      const t0 = performance.now();
      let result;
      try {
        result = await call(tool, { message });
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
  return { wallMs: performance.now() - t0, calls: Math.min(next, count) };
}

async function openSessions(connect, sessions, opened) {
  const results = await Promise.allSettled(Array.from({ length: sessions }, () => connect()));
  for (const r of results) if (r.status === 'fulfilled') opened.push(r.value);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw new Error(`opening ${sessions} sessions: ${errText(failed.reason)}`);
}

/**
 * One cell. CPU is counted over the measured calls only (after the warm-up), per process of the
 * path (`procsByRole`) and for this process, the load generator; the RSS of the process under
 * test (the first role) is sampled through the whole cell.
 */
async function runCell({ cellId, sessions, calls, connect, tool, procsByRole }) {
  const state = { stop: false };
  const work = async () => {
    const opened = [];
    const underTest = resolvePids(procsByRole)[0]?.pids[0];
    const sampler = underTest ? rssSampler(underTest, RSS_SAMPLE_MS) : undefined;
    try {
      await openSessions(connect, sessions, opened);
      await drive({ opened, tool, cellId, label: 'warm-', count: WARMUP_CALLS, state });
      const latencies = new Float64Array(calls);
      const meter = cpuMeter(procsByRole);
      const { wallMs } = await drive({ opened, tool, cellId, label: '', count: calls, latencies, state });
      const cpu = meter();
      const sorted = Array.from(latencies).sort((a, b) => a - b);
      const rss = sampler?.stop();
      return {
        calls,
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        callsPerSec: calls / (wallMs / 1000),
        wallMs,
        cpu: cpu.roles.map((r) => ({ role: r.role, msPerCall: r.ms / calls })),
        generatorMsPerCall: cpu.generatorMs / calls,
        rssMaxMb: rss?.max,
        rssSamples: rss?.samples,
      };
    } finally {
      sampler?.stop();
      await Promise.all(opened.map((s) => s.close()));
    }
  };
  return withLimit(work(), CELL_LIMIT_MS, `cell ${cellId} (${sessions} sessions, ${calls} calls)`, () => {
    state.stop = true;
  });
}

/** `opts.soakS` seconds of 32 raw sessions calling back to back; the RSS of the process under test every SOAK_SAMPLE_MS. */
async function runSoak({ key, label, ctx }) {
  const state = { stop: false };
  const opened = [];
  const underTest = resolvePids(ctx.procs)[0]?.pids[0];
  const work = async () => {
    await openSessions(ctx.raw, SOAK_SESSIONS, opened);
    const sampler = rssSampler(underTest, SOAK_SAMPLE_MS, true);
    const meter = cpuMeter(ctx.procs);
    try {
      const { wallMs, calls } = await drive({ opened, tool: ctx.tool, cellId: `${key}-soak`, label: '', untilMs: performance.now() + opts.soakS * 1000, state });
      const cpu = meter();
      const rss = sampler.stop();
      return { key, path: label, seconds: wallMs / 1000, calls, callsPerSec: calls / (wallMs / 1000), cpu: cpu.roles.map((r) => ({ role: r.role, msPerCall: r.ms / calls })), series: rss.series };
    } finally {
      sampler.stop();
    }
  };
  try {
    return await withLimit(work(), opts.soakS * 1000 + CELL_LIMIT_MS, `soak ${label}`, () => {
      state.stop = true;
    });
  } finally {
    await Promise.all(opened.map((s) => s.close()));
  }
}

// ---------------------------------------------------------------------------------------------
// Results

const rows = []; // table 1
const listRows = []; // table 2
const soakRows = []; // table 3
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
    for (const client of opts.clients) for (const sessions of SESSION_COUNTS) rows.push({ key, path: label, client, sessions, error: errText(err) });
    return;
  }
  console.error(`[${label}] calling tool ${ctx.tool}`);
  try {
    for (const client of opts.clients) {
      for (const sessions of SESSION_COUNTS) {
        const cellId = `${key}-${client}-${sessions}`;
        try {
          const r = await runCell({ cellId, sessions, calls: opts.calls, connect: client === 'raw' ? ctx.raw : ctx.connect, tool: ctx.tool, procsByRole: ctx.procs });
          rows.push({ key, path: label, client, sessions, ...r });
          console.error(
            `[${label}] ${client} client, ${sessions} sessions: p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms, ${fmt(r.callsPerSec, 0)} calls/s, CPU ms/call ${r.cpu.map((c) => `${c.role} ${fmt(c.msPerCall, 3)}`).join(', ')}, generator ${fmt(r.generatorMsPerCall, 3)}` +
              (Number.isFinite(r.rssMaxMb) ? `, max RSS ${fmt(r.rssMaxMb, 1)} MB` : ''),
          );
        } catch (err) {
          if (err instanceof CellTimeout) throw err;
          console.error(`[${label}] ${client} client, ${sessions} sessions failed: ${errFull(err)}`);
          rows.push({ key, path: label, client, sessions, error: errText(err) });
        }
      }
    }
    if (opts.soakS > 0 && ctx.soak) {
      console.error(`[${label}] soak: ${SOAK_SESSIONS} raw sessions for ${opts.soakS} s`);
      try {
        const r = await runSoak({ key, label, ctx });
        soakRows.push(r);
        console.error(`[${label}] soak: ${r.calls} calls, ${fmt(r.callsPerSec, 0)} calls/s, RSS ${r.series.map((x) => fmt(x.mb, 0)).join(' ')} MB`);
      } catch (err) {
        if (err instanceof CellTimeout) throw err;
        console.error(`[${label}] soak failed: ${errFull(err)}`);
        soakRows.push({ key, path: label, error: errText(err) });
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
  // One directory per gateway, so the summary knows which path a profile belongs to.
  const profile = opts.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', join(opts.cpuProf, label)] : [];
  const p = startProcess(`mcp-gateway (${label})`, process.execPath, [...profile, GATEWAY_MAIN], { env });
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
  const raw = rawStreamableConnector(`http://127.0.0.1:${httpPort}/mcp`, { authorization: `Bearer ${token}` });
  return { p, nats: nats.p, connect, raw, stop, url: `http://127.0.0.1:${httpPort}/mcp`, token };
}

/** `upstreamPid`: the HTTP upstream's pid; a stdio upstream is the gateway's own child. */
async function gatewayPath(label, upstream, upstreamPid) {
  const gw = await startGateway(label, [upstream]);
  try {
    // The catalog may fill in just after readiness: wait for the tool rather than race it.
    const tool = await waitUntil(() => findEchoTool(gw.connect, 'everything.echo'), 'everything.echo in the gateway tools/list', gw.p, 30_000);
    const procs = {
      'mcp-gateway': gw.p.pid,
      [upstreamPid ? 'server-everything (http)' : 'server-everything (stdio child)']: upstreamPid ?? (() => descendants(gw.p.pid)),
      'nats-server': gw.nats.pid,
    };
    return { connect: gw.connect, raw: gw.raw, tool, procs, soak: true, teardown: gw.stop };
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
    const procs = { 'mcp-proxy': p.pid, 'server-everything (stdio child)': () => descendants(p.pid) };
    return { connect, raw: rawStreamableConnector(`http://127.0.0.1:${port}/mcp`), tool, procs, teardown: () => stopProcess(p) };
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
    const procs = { 'mcp-hub': p.pid, 'server-everything (stdio child)': () => descendants(p.pid) };
    return { connect, raw: rawSseConnector(`http://127.0.0.1:${port}/mcp`), tool, procs, teardown };
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
  out.push('CPU: milliseconds of user + system time per call of each process of the path, over the measured calls; generator: this process (the clients).');
  out.push('');
  out.push('| path | client | sessions | calls | p50 ms | p99 ms | calls/s | CPU ms/call by process | generator CPU ms/call | max RSS MB (first process) |');
  out.push('|---|---|---:|---:|---:|---:|---:|---|---:|---:|');
  for (const r of rows) {
    if (r.error) out.push(`| ${mdCell(r.path)} | ${r.client} | ${r.sessions} | — | — | — | ERROR: ${mdCell(r.error.slice(0, 300))} | | | |`);
    else {
      const cpu = r.cpu.map((c) => `${c.role} ${fmt(c.msPerCall, 3)}`).join('; ');
      out.push(`| ${mdCell(r.path)} | ${r.client} | ${r.sessions} | ${r.calls} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.callsPerSec, 0)} | ${mdCell(cpu)} | ${fmt(r.generatorMsPerCall, 3)} | ${fmt(r.rssMaxMb, 1)} |`);
    }
  }
  if (soakRows.length > 0) {
    out.push('');
    out.push(`## soak — ${SOAK_SESSIONS} raw sessions calling back to back for ${opts.soakS} s, RSS of the process under test every ${SOAK_SAMPLE_MS / 1000} s`);
    out.push('');
    out.push('| path | calls | calls/s | CPU ms/call by process | RSS MB: min / max / last | RSS MB over time |');
    out.push('|---|---:|---:|---|---|---|');
    for (const r of soakRows) {
      if (r.error) out.push(`| ${mdCell(r.path)} | — | — | ERROR: ${mdCell(r.error.slice(0, 300))} | | |`);
      else {
        const mbs = r.series.map((x) => x.mb);
        const cpu = r.cpu.map((c) => `${c.role} ${fmt(c.msPerCall, 3)}`).join('; ');
        out.push(`| ${mdCell(r.path)} | ${r.calls} | ${fmt(r.callsPerSec, 0)} | ${mdCell(cpu)} | ${fmt(Math.min(...mbs), 0)} / ${fmt(Math.max(...mbs), 0)} / ${fmt(mbs.at(-1), 0)} | ${r.series.map((x) => `${fmt(x.s, 0)}s ${fmt(x.mb, 0)}`).join(', ')} |`);
      }
    }
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

  // The figures the targets are about come from the raw client when it ran (the SDK client's own
  // CPU competes with the path under test for the same cores), else from the SDK client.
  const client = opts.clients.includes('raw') ? 'raw' : 'sdk';
  const cell = (key, sessions, c = client) => rows.find((r) => r.key === key && r.client === c && r.sessions === sessions && !r.error);
  const cpuOf = (r, role) => r?.cpu.find((c) => c.role === role)?.msPerCall;
  const verdict = (ok) => (ok === undefined ? 'n/a' : ok ? 'met' : 'not met');
  const summary = { client };
  const lines = [`targets (${client} client, 32 sessions):`];
  const d32 = cell('direct', 32);
  const g32 = cell('gateway', 32);
  const gs32 = cell('gateway-stdio', 32);
  const px32 = cell('mcp-proxy', 32);
  const d1 = cell('direct', 1);
  const g1 = cell('gateway', 1);

  const pct = d32 && g32 ? (100 * g32.callsPerSec) / d32.callsPerSec : undefined;
  summary.gatewayThroughputPctOfDirect32 = pct ?? null;
  lines.push(`- gateway with an HTTP upstream: ${pct === undefined ? 'n/a' : `${fmt(pct, 1)} % of direct calls/s`} (target ≥ 60 %: ${verdict(pct === undefined ? undefined : pct >= 60)})`);

  const gwCpu = cpuOf(gs32, 'mcp-gateway');
  const pxCpu = cpuOf(px32, 'mcp-proxy');
  const cpuRatio = gwCpu !== undefined && pxCpu !== undefined ? gwCpu / pxCpu : undefined;
  summary.gatewayStdioCpuPerCallMs = gwCpu ?? null;
  summary.mcpProxyCpuPerCallMs = pxCpu ?? null;
  summary.gatewayCpuVsMcpProxy = cpuRatio ?? null;
  lines.push(
    `- mcp-gateway CPU per call with a stdio upstream vs mcp-proxy's process: ${cpuRatio === undefined ? 'n/a' : `${fmt(gwCpu, 3)} / ${fmt(pxCpu, 3)} ms = ${fmt(cpuRatio, 2)}×`} (target ≤ 0.5×: ${verdict(cpuRatio === undefined ? undefined : cpuRatio <= 0.5)})`,
  );

  const peers = ['mcp-proxy', 'mcp-hub'].map((k) => cell(k, 32)).filter(Boolean).sort((a, b) => b.callsPerSec - a.callsPerSec);
  const best = peers[0];
  const ratioStdio = gs32 && best ? gs32.callsPerSec / best.callsPerSec : undefined;
  summary.gatewayStdioVsBestPeer32 = ratioStdio ?? null;
  summary.bestPeer32 = best ? best.path : null;
  lines.push(`- gateway (stdio upstream) calls/s vs the best npm peer: ${ratioStdio === undefined ? 'n/a' : `${fmt(ratioStdio, 2)}× (${best.path}: ${fmt(best.callsPerSec, 0)} calls/s)`}`);

  const added = d1 && g1 ? g1.p50 - d1.p50 : undefined;
  summary.addedP50Ms1 = added ?? null;
  lines.push(`- added p50 at 1 session (gateway p50 − direct p50): ${added === undefined ? 'n/a' : `${fmt(added)} ms`} (target ≤ 1 ms: ${verdict(added === undefined ? undefined : added <= 1)})`);

  const rssCells = rows.filter((r) => (r.key === 'gateway' || r.key === 'gateway-stdio') && r.sessions === 32 && !r.error && Number.isFinite(r.rssMaxMb));
  const rss = rssCells.length > 0 ? Math.max(...rssCells.map((r) => r.rssMaxMb)) : undefined;
  summary.maxGatewayRssMb32 = rss ?? null;
  lines.push(`- max gateway RSS in the 32-session cells (every client and upstream, sampled every ${RSS_SAMPLE_MS} ms): ${rss === undefined ? 'n/a' : `${fmt(rss, 1)} MB`} (target < 200 MB: ${verdict(rss === undefined ? undefined : rss < 200)})`);
  for (const r of soakRows.filter((x) => !x.error && x.series.length >= 4)) {
    // Flat: the last quarter's highest sample is within 10 % (and 10 MB) of the second quarter's.
    const q = Math.floor(r.series.length / 4);
    const early = Math.max(...r.series.slice(q, 2 * q).map((x) => x.mb));
    const late = Math.max(...r.series.slice(3 * q).map((x) => x.mb));
    const flat = late <= early * 1.1 || late - early <= 10;
    summary[`soak:${r.key}`] = { earlyMaxMb: early, lateMaxMb: late, flat };
    lines.push(`- soak ${r.path}: RSS ${fmt(early, 0)} MB in the second quarter, ${fmt(late, 0)} MB in the last (target: flat and < 200 MB: ${verdict(flat && late < 200)})`);
  }

  const gl = listRows.find((r) => r.upstreams === 10 && !r.raw && !r.error);
  summary.toolsListP50Ms = gl ? gl.p50 : null;
  lines.push(`- tools/list through the gateway catalog, SDK client (${gl ? `${gl.tools} tools, ${gl.pages} pages` : 'n/a'}): p50 ${gl ? `${fmt(gl.p50)} ms` : 'n/a'} (target < 5 ms: ${verdict(gl ? gl.p50 < 5 : undefined)})`);
  const raw = listRows.find((r) => r.raw && !r.error);
  summary.toolsListRawP50Ms = raw ? raw.p50 : null;
  lines.push(`- tools/list through the gateway catalog, raw JSON-RPC: p50 ${raw ? `${fmt(raw.p50)} ms` : 'n/a'} (target < 5 ms: ${verdict(raw ? raw.p50 < 5 : undefined)})`);

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
    soak: soakRows,
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
      return { connect, raw: rawStreamableConnector(url), tool: await findEchoTool(connect, 'echo'), procs: { 'server-everything (http)': everythingReady().p.pid } };
    },
  });
  await measurePath({
    key: 'gateway',
    label: 'gateway (http upstream)',
    setup: () => gatewayPath('gateway-http', { name: 'everything', transport: 'http', url: everythingReady().url }, everythingReady().p.pid),
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
  notes.push(`the load generator (this process), the path under test and its upstream all share this machine's ${os.cpus().length} CPUs; CPU ms per call is counted from /proc/<pid>/stat (user + system, ${CLK_TCK} ticks/s) over the measured calls, per process.`);
  await toolsListTable();
  printReport();
  if (opts.cpuProf) {
    // Every gateway has stopped by now, so its profile is written.
    const { profilesIn, report, summarise } = require('./profile-summary');
    const files = existsSync(opts.cpuProf) ? profilesIn(opts.cpuProf) : [];
    console.log(`\n## CPU profiles of the gateways (${files.length} under ${opts.cpuProf})\n`);
    for (const f of files) console.log(`${report(summarise(f), 20)}\n`);
  }
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
