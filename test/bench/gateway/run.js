#!/usr/bin/env node
// Gateway overhead, side by side in one run (prints figures, asserts nothing):
//   full path  - a small authenticated GET (JWT verify + RBAC + rate limit with limits raised
//                + gRPC to agent-registry) on the local stack's gateway;
//   auth off   - the same route on a second gateway process started with ZIGGIE_AUTH=off
//                (same build, same peers, same machine), so the difference is the auth edge.
//   floor      - floor.js: a bare node:http server making the same gRPC call with the same
//                generated client (no framework, auth, limits, logs, metrics, tracing), so the
//                table shows what of the gateway's CPU per request is its own.
// Then the full path alone for a longer run, sampling the gateway's RSS every second.
// Load comes from autocannon on loopback.
// Usage: npm run bench:gateway [-- --seconds 20 --connections 16 --soak 120]
'use strict';
const { mkdtempSync, rmSync, readFileSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { spawn } = require('node:child_process');
const autocannon = require('autocannon');
const { allocateFreePorts, startStack } = require('../../../cli/dist/stack.js');
const { createServer } = require('node:net');

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const SECONDS = arg('seconds', 20);
const CONNECTIONS = arg('connections', 16);
const SOAK_SECONDS = arg('soak', 120);
const ROUNDS = arg('rounds', 2);
const ROUTE = '/v1/agents/summary';
const RAISED = '1000000000';

const rssMb = (pid) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};
const cpuSeconds = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 1/100 s
};
/** The environment the stack gave a child, so the second gateway is configured identically. */
const environOf = (pid) =>
  Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor(check, what, ms = 60_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function waitReady(url, ms = 60_000) {
  return waitFor(async () => (await fetch(`${url}/readyz`)).ok, url, ms);
}

function load(url, headers, seconds) {
  return new Promise((resolve, reject) => {
    autocannon({ url: `${url}${ROUTE}`, connections: CONNECTIONS, duration: seconds, headers }, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

function row(result, pid, cpuBefore) {
  const cpuS = cpuSeconds(pid) - cpuBefore;
  return {
    'req/s': Math.round(result.requests.average),
    'p50 ms': result.latency.p50,
    'p90 ms': result.latency.p90,
    'p99 ms': result.latency.p99,
    'max ms': result.latency.max,
    errors: result.errors + result.timeouts,
    'non-2xx': result.non2xx,
    'gateway CPU-s': +cpuS.toFixed(1),
    // The gateway's CPU per answered request: load-independent where req/s is not (the target is ≤ 0.3 ms).
    'gateway CPU ms/req': +((cpuS * 1000) / Math.max(1, result.requests.total)).toFixed(3),
    'gateway RSS MB': Math.round(rssMb(pid)),
  };
}

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), 'ziggie-bench-gateway-'));
  const env = { RATE_LIMIT_USER_PER_MIN: RAISED, RATE_LIMIT_WORKSPACE_PER_MIN: RAISED, RATE_LIMIT_ADMIN_PER_MIN: RAISED, LOG_LEVEL: 'warn' };
  const stack = await startStack({ dataDir, ports: await allocateFreePorts(), logLevel: 'warn', env });
  let open;
  let floor;
  try {
    const gatewayPid = stack.pids.gateway;
    const openPort = await freePort();
    // Its own data directory: an embedded database belongs to one process.
    const openEnv = { ...environOf(gatewayPid), HTTP_PORT: String(openPort), DATA_DIR: join(dataDir, 'gateway-auth-off'), ZIGGIE_AUTH: 'off' };
    open = spawn(process.execPath, [join(__dirname, '../../../services/gateway/dist/main.js')], { env: openEnv, stdio: ['ignore', 'ignore', 'inherit'] });
    const openUrl = `http://127.0.0.1:${openPort}`;
    const floorPort = await freePort();
    floor = spawn(process.execPath, [join(__dirname, 'floor.js')], {
      env: { PATH: process.env.PATH, PORT: String(floorPort), AGENT_REGISTRY_GRPC_ADDR: openEnv.AGENT_REGISTRY_GRPC_ADDR },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const floorUrl = `http://127.0.0.1:${floorPort}`;
    await waitReady(openUrl);
    await waitFor(async () => (await fetch(`${floorUrl}${ROUTE}`)).ok, 'the floor server');

    const auth = { authorization: `Bearer ${stack.adminToken}` };
    const check = await fetch(`${stack.gatewayUrl}${ROUTE}`, { headers: auth });
    if (!check.ok) throw new Error(`full path answered ${check.status}: ${await check.text()}`);
    const unauth = await fetch(`${stack.gatewayUrl}${ROUTE}`);
    if (unauth.status !== 401) throw new Error(`full path without a token answered ${unauth.status}, expected 401`);
    if (!(await fetch(`${openUrl}${ROUTE}`)).ok) throw new Error('auth-off gateway does not answer');

    console.log(`Gateway benchmark: GET ${ROUTE}, ${CONNECTIONS} connections, ${SECONDS} s per cell, ${ROUNDS} rounds alternating; node ${process.version}\n`);
    // Warm both (JIT, gRPC channels) before measuring.
    await load(stack.gatewayUrl, auth, 3);
    await load(openUrl, {}, 3);
    await load(floorUrl, {}, 3);

    const table = {};
    for (let round = 1; round <= ROUNDS; round++) {
      let cpu = cpuSeconds(open.pid);
      table[`auth off #${round}`] = row(await load(openUrl, {}, SECONDS), open.pid, cpu);
      cpu = cpuSeconds(gatewayPid);
      table[`full path #${round}`] = row(await load(stack.gatewayUrl, auth, SECONDS), gatewayPid, cpu);
      cpu = cpuSeconds(floor.pid);
      table[`floor #${round}`] = row(await load(floorUrl, {}, SECONDS), floor.pid, cpu);
    }
    console.table(table);
    const mean = (prefix, key) => {
      const rows = Object.entries(table).filter(([k]) => k.startsWith(prefix)).map(([, v]) => v[key]);
      return rows.reduce((a, b) => a + b, 0) / rows.length;
    };
    const added = { p50: mean('full', 'p50 ms') - mean('auth off', 'p50 ms'), p99: mean('full', 'p99 ms') - mean('auth off', 'p99 ms') };
    console.log(`added by the auth edge: p50 ${added.p50.toFixed(2)} ms, p99 ${added.p99.toFixed(2)} ms (target p99 ≤ 2 ms)`);
    console.log(`full path throughput: ${Math.round(mean('full', 'req/s'))} req/s (target ≥ 3,000)`);
    console.log(`gateway CPU per request: full path ${mean('full', 'gateway CPU ms/req').toFixed(3)} ms, auth off ${mean('auth off', 'gateway CPU ms/req').toFixed(3)} ms (target ≤ 0.3 ms)`);
    console.log(`floor (node:http + the same gRPC call): ${mean('floor', 'gateway CPU ms/req').toFixed(3)} ms CPU per request, ${Math.round(mean('floor', 'req/s'))} req/s`);

    open.kill('SIGTERM');
    open = undefined;
    floor.kill('SIGTERM');
    floor = undefined;

    console.log(`\nSoak: full path for ${SOAK_SECONDS} s, gateway RSS sampled every second`);
    const samples = [];
    const timer = setInterval(() => samples.push(rssMb(gatewayPid)), 1000);
    const cpu = cpuSeconds(gatewayPid);
    const soak = await load(stack.gatewayUrl, auth, SOAK_SECONDS);
    clearInterval(timer);
    const third = Math.max(1, Math.floor(samples.length / 3));
    const avg = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = avg(samples.slice(0, third));
    const last = avg(samples.slice(-third));
    console.table({ soak: row(soak, gatewayPid, cpu) });
    console.log(
      `RSS: first third ${first.toFixed(0)} MB, last third ${last.toFixed(0)} MB, change ${(((last - first) / first) * 100).toFixed(1)} %, ` +
        `min ${Math.min(...samples).toFixed(0)} / max ${Math.max(...samples).toFixed(0)} MB over ${samples.length} samples`,
    );
    writeFileSync(join(__dirname, 'last-run.json'), `${JSON.stringify({ at: new Date().toISOString(), connections: CONNECTIONS, seconds: SECONDS, table, added, soak: { rssFirstThirdMb: first, rssLastThirdMb: last, samples, requests: soak.requests.total, errors: soak.errors + soak.timeouts, non2xx: soak.non2xx } }, null, 1)}\n`);
  } finally {
    open?.kill('SIGTERM');
    floor?.kill('SIGTERM');
    await stack.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
