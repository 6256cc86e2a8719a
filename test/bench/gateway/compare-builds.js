#!/usr/bin/env node
// Before/after in one run: several builds of the gateway (each a services/gateway/dist/main.js,
// e.g. one from a `git worktree` of the base commit) against one local stack, alternating, each
// driven like bench:gateway's full path. Prints req/s, latency, CPU ms per request and RSS.
// Usage: MAINS='{"base":"/tmp/base/services/gateway/dist/main.js","now":"services/gateway/dist/main.js"}' \
//          [ROUNDS=3] [SECONDS_=10] node test/bench/gateway/compare-builds.js
'use strict';
const { mkdtempSync, readFileSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { spawn } = require('node:child_process');
const autocannon = require('autocannon');
const { allocateFreePorts, startStack } = require('../../../cli/dist/stack.js');
const ROUTE = process.env.ROUTE || '/v1/agents/summary';
const SECONDS = Number(process.env.SECONDS_ || 10);
const ROUNDS = Number(process.env.ROUNDS || 2);
const MAINS = JSON.parse(process.env.MAINS ?? '{"now":"services/gateway/dist/main.js"}');
const environOf = (pid) => Object.fromEntries(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
const cpu = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = require('node:net').createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
const load = (url, headers, s) => new Promise((res, rej) => autocannon({ url: url + ROUTE, connections: 16, duration: s, headers }, (e, r) => (e ? rej(e) : res(r))));
(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'gwab-'));
  const R = '1000000000';
  const stack = await startStack({ dataDir, ports: await allocateFreePorts(), logLevel: 'warn', env: { RATE_LIMIT_USER_PER_MIN: R, RATE_LIMIT_WORKSPACE_PER_MIN: R, RATE_LIMIT_ADMIN_PER_MIN: R, LOG_LEVEL: 'warn' } });
  const gws = {};
  for (const [name, main] of Object.entries(MAINS)) {
    const p = await freePort();
    const env = { ...environOf(stack.pids.gateway), HTTP_PORT: String(p), DATA_DIR: join(dataDir, name), ...(process.env.EXTRA ? JSON.parse(process.env.EXTRA) : {}) };
    const child = spawn(process.execPath, [main], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    gws[name] = { child, url: `http://127.0.0.1:${p}` };
  }
  for (const g of Object.values(gws)) for (let i = 0; i < 300; i++) { try { if ((await fetch(g.url + '/readyz')).ok) break; } catch {} await new Promise((r) => setTimeout(r, 200)); }
  const auth = { authorization: `Bearer ${stack.adminToken}` };
  for (const g of Object.values(gws)) await load(g.url, auth, 3);
  const rows = {};
  for (let round = 1; round <= ROUNDS; round++) for (const [name, g] of Object.entries(gws)) {
    const c0 = cpu(g.child.pid);
    const r = await load(g.url, auth, SECONDS);
    const c1 = cpu(g.child.pid);
    rows[`${name} #${round}`] = { 'req/s': Math.round(r.requests.average), 'p50 ms': r.latency.p50, 'p99 ms': r.latency.p99, 'CPU ms/req': +(((c1 - c0) * 1000) / r.requests.total).toFixed(3), 'RSS MB': Math.round(rss(g.child.pid)), 'non-2xx': r.non2xx };
  }
  console.table(rows);
  for (const g of Object.values(gws)) g.child.kill('SIGTERM');
  await stack.stop();
  rmSync(dataDir, { recursive: true, force: true });
})().catch((e) => { console.error(e); process.exit(1); });
