#!/usr/bin/env node
// Benchmarks of the local stack (not tests: they print figures, side by side, and assert nothing).
//   1. start to ready: a fresh data directory (cold) vs the same directory again (warm)
//   2. idle resident memory of every process of the stack
//   3. submit → completed latency of a 3-step task through the REST API (p50/p95 over N runs),
//      beside the same three MCP tool calls made directly to the MCP server (the floor)
// Usage: npm run bench [-- --runs 50]
'use strict';
const { mkdtempSync, rmSync, readFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join, dirname } = require('node:path');
const { performance } = require('node:perf_hooks');
const { allocateFreePorts, startStack } = require('../../cli/dist/stack.js');
const { childrenOf, submitAndWait } = require('./stack-support.js');

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 50;
const IDLE_SETTLE_MS = 10_000;

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

const pct = (xs, p) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const fmt = (ms) => `${ms.toFixed(1)} ms`;
const rssMb = (pid) => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
};

async function timedStart(dataDir, ports) {
  const t0 = performance.now();
  const stack = await startStack({ dataDir, ports, logLevel: 'warn' });
  return { stack, ms: performance.now() - t0 };
}


async function directBaseline() {
  const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
  const { StdioClientTransport } = require('@modelcontextprotocol/sdk/client/stdio.js');
  const entry = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist/index.js');
  const client = new Client({ name: 'bench', version: '0' }, { capabilities: {} });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [entry, 'stdio'], stderr: 'ignore' }));
  const samples = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      const [a, b] = await Promise.all([
        client.callTool({ name: 'echo', arguments: { message: 'bench' } }),
        client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } }),
      ]);
      await client.callTool({ name: 'echo', arguments: { message: `${a.content[0].text} ${b.content[0].text}` } });
      samples.push(performance.now() - t0);
    }
  } finally {
    await client.close();
  }
  return samples;
}

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), 'ziggie-bench-'));
  const ports = await allocateFreePorts();
  let stack;
  try {
    console.log(`Ziggie benchmarks (${RUNS} runs; node ${process.version}; data ${dataDir})\n`);
    const cold = await timedStart(dataDir, ports);
    await cold.stack.stop();
    const warm = await timedStart(dataDir, ports);
    stack = warm.stack;
    console.log('1. Start to ready (all six services answer /readyz)');
    console.table({ 'cold (empty data dir)': { ms: Math.round(cold.ms) }, 'warm (data reused)': { ms: Math.round(warm.ms) } });

    await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
    const memory = {};
    for (const [name, pid] of Object.entries(stack.pids)) {
      memory[name] = { pid, 'RSS MB': Math.round(rssMb(pid)), 'target MB': name in stack.ports.services ? 150 : '-' };
      for (const child of childrenOf(pid)) memory[`${name} › child ${child}`] = { pid: child, 'RSS MB': Math.round(rssMb(child)), 'target MB': '-' };
    }
    console.log(`\n2. Idle resident memory (${IDLE_SETTLE_MS / 1000} s after ready)`);
    console.table(memory);

    await submitAndWait(stack, TASK); // first run warms caches and connections
    const platform = [];
    for (let i = 0; i < RUNS; i++) platform.push(await submitAndWait(stack, TASK));
    const direct = await directBaseline();
    console.log(`\n3. Submit → completed, 3-step task in 2 waves (${RUNS} runs each)`);
    console.table({
      'through the command center (REST→gRPC→JetStream→runtime→MCP gateway→stdio)': { p50: fmt(pct(platform, 50)), p95: fmt(pct(platform, 95)), max: fmt(Math.max(...platform)) },
      'same 3 tool calls straight to the MCP server (floor)': { p50: fmt(pct(direct, 50)), p95: fmt(pct(direct, 95)), max: fmt(Math.max(...direct)) },
    });
  } finally {
    await stack?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
