#!/usr/bin/env node
// The web console at scale (issue 16), measured in Debian's headless Chromium against real local
// stacks: one seeded with the default 1,625 agents and one with 100,000 (ZIGGIE_SEED_AGENTS), side
// by side, then 10,000 tasks submitted to the first. A benchmark, not a test: it prints figures and
// asserts nothing.
//   1. first load of /console/: JavaScript transferred (gzip, as the browser received it) and the
//      time until the overview shows live figures
//   2. the agent tree: time to its first rows; L0 expanded, then up to --expand branches opened
//      depth first; rows of the tree against rows in the DOM while scrolled to its middle; long
//      tasks (PerformanceObserver 'longtask') and frame times (requestAnimationFrame deltas) while
//      it scrolls from top to bottom, and the main thread's time in script, layout and tasks
//   3. the task list with --tasks tasks (submitted through POST /v1/tasks, delayed by a day so
//      they stay queued and cost the stack nothing while it is measured): time to page 1 and to
//      the next page, and the tasks each page transferred
//   4. the gateway's answer time for the API calls behind those screens (median and worst of
//      --repeat calls spread over a heartbeat period)
// Usage: npm run bench:console   (builds, runs the defaults, writes test/bench/console/last-run.md)
//   or: npm run build && node test/bench/console/run.js [--sizes 1625,100000] [--tasks 10000]
//       [--expand 400] [--repeat 11] [--deadline-min 25] [--out <file>]
// Loopback only; rate limits are raised for the benchmark's own clients. Every stack it starts is
// stopped by pid (StackHandle.stop) at the end, on error, on Ctrl-C and at the deadline.
'use strict';
const { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { cpus, loadavg, tmpdir } = require('node:os');
const { join, resolve } = require('node:path');
const { performance } = require('node:perf_hooks');

const REPO = resolve(__dirname, '..', '..', '..');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const SIZES = String(arg('sizes', '1625,100000')).split(',').map(Number);
const TASKS = Number(arg('tasks', 10_000));
const EXPAND = Number(arg('expand', 400));
const REPEAT = Number(arg('repeat', 11));
const SPREAD_MS = 500;
const DEADLINE_MS = Number(arg('deadline-min', 25)) * 60_000;
const OUT = arg('out', undefined);
const SUBMIT_CLIENTS = 32;
const TASK_PAGE_SIZE = 25; // the console's page size (console/src/screens/Tasks.tsx)
const SCROLL_FRAMES = 240;
const LONG_TASK_MS = 50;

for (const n of SIZES) if (!Number.isInteger(n) || n < 19) throw new Error(`--sizes: ${n} is not a fleet size (19 or more)`);
if (!existsSync(join(REPO, 'cli', 'dist', 'stack.js')) || !existsSync(join(REPO, 'console', 'dist', 'index.html'))) {
  console.error('cli/dist or console/dist is missing: run `npm run build` first');
  process.exit(1);
}
if (!existsSync(CHROMIUM)) {
  console.error(`Chromium not found at ${CHROMIUM}: run scripts/install-deps.sh chromium (or set CHROMIUM_BIN)`);
  process.exit(1);
}
const { allocateFreePorts, startStack } = require(join(REPO, 'cli', 'dist', 'stack.js'));
const { consoleUrl } = require(join(REPO, 'cli', 'dist', 'progress.js'));
const { chromium } = require('playwright-core');

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
};
const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en') : '–');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const kb = (bytes) => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KB` : '–');
function table(headers, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

const CPU_WINDOW_MS = 10_000;
const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** % of one core each named stack process used over CPU_WINDOW_MS while nothing else asks it anything. */
async function idleCpu(stack, names) {
  const before = Object.fromEntries(names.map((n) => [n, cpuSeconds(stack.pids[n])]));
  await new Promise((r) => setTimeout(r, CPU_WINDOW_MS));
  return Object.fromEntries(names.map((n) => [n, ((cpuSeconds(stack.pids[n]) - before[n]) / (CPU_WINDOW_MS / 1000)) * 100]));
}

/** Everything started, so the deadline and Ctrl-C can stop it. */
const running = { stacks: new Set(), browser: undefined, dirs: new Set() };
async function stopAll() {
  await running.browser?.close().catch(() => undefined);
  for (const s of running.stacks) await s.stop().catch(() => undefined);
  for (const d of running.dirs) rmSync(d, { recursive: true, force: true });
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    console.error(`${signal}: stopping what the benchmark started`);
    void stopAll().finally(() => process.exit(130));
  });
}

async function start(agents) {
  const dataDir = mkdtempSync(join(tmpdir(), 'ziggie-bench-console-'));
  running.dirs.add(dataDir);
  const env = {
    ZIGGIE_SEED_AGENTS: String(agents),
    // The console under the operator's limits is the e2e suite's business; here the benchmark's
    // own submissions and repeated calls must not be refused.
    RATE_LIMIT_USER_PER_MIN: '1000000',
    RATE_LIMIT_WORKSPACE_PER_MIN: '1000000',
    RATE_LIMIT_ADMIN_PER_MIN: '1000000',
  };
  const t0 = performance.now();
  const stack = await startStack({ dataDir, ports: await allocateFreePorts(), logLevel: 'warn', env, timeouts: { serviceReadyMs: 180_000 } });
  running.stacks.add(stack);
  return { stack, dataDir, startMs: performance.now() - t0 };
}

async function stop(s) {
  await s.stack.stop();
  running.stacks.delete(s.stack);
  rmSync(s.dataDir, { recursive: true, force: true });
  running.dirs.delete(s.dataDir);
}

function client(stack) {
  const headers = { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' };
  const call = async (path, init = {}) => {
    const res = await fetch(`${stack.gatewayUrl}${path}`, { ...init, headers });
    const text = await res.text();
    if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path} answered ${res.status}: ${text.slice(0, 300)}`);
    return JSON.parse(text);
  };
  /**
   * The answer time of a GET, median and worst of REPEAT calls after one to warm it, SPREAD_MS
   * apart: together they span a heartbeat period (5 s), so a call that meets the runtime's beats
   * is among them.
   */
  const timed = async (path) => {
    await call(path);
    const samples = [];
    for (let i = 0; i < REPEAT; i++) {
      const t0 = performance.now();
      await call(path);
      samples.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, SPREAD_MS));
    }
    return { median: median(samples), max: Math.max(...samples) };
  };
  return { call, timed };
}

/** A signed-in page at a screen of the console (as `ziggie up`'s URL signs in), in a fresh context (empty cache). */
async function openConsole(browser, stack, screen = '') {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const url = consoleUrl(stack.gatewayUrl, stack.adminToken).replace('/console/#', `/console/${screen}#`);
  return { context, page, errors, goto: () => page.goto(url) };
}

/** 1. First load of the overview: scripts transferred and the time until it is live. */
async function firstLoad(browser, stack) {
  const { context, page, goto } = await openConsole(browser, stack);
  const scripts = [];
  page.on('response', (r) => {
    if (r.request().resourceType() === 'script') {
      scripts.push(r.request().sizes().then((s) => ({ url: r.url(), bytes: s.responseBodySize, encoding: r.headers()['content-encoding'] ?? 'identity' })));
    }
  });
  const t0 = performance.now();
  await goto();
  await page.waitForSelector('[data-testid="live"][data-state="live"]', { timeout: 60_000 });
  await page.waitForSelector('[data-testid="tile-agents-value"]', { timeout: 60_000 });
  const liveMs = performance.now() - t0;
  const agentsShown = await page.textContent('[data-testid="tile-agents-value"]');
  const got = await Promise.all(scripts);
  await context.close();
  return { liveMs, agentsShown, scripts: got.length, bytes: got.reduce((a, s) => a + s.bytes, 0), encodings: [...new Set(got.map((s) => s.encoding))].join(', ') };
}

/** Rows of the agent tree (the virtualizer's count) and rows in the DOM. */
const treeRows = (page) =>
  page.$eval('.tree', (tree) => ({ rows: Number(tree.getAttribute('data-rows')), dom: tree.querySelectorAll('.tree-row').length }));

/** 2. The agent tree: first rows, L0 expanded, branches opened, then scrolled. */
async function agentTree(browser, stack, api) {
  const { context, page, errors, goto } = await openConsole(browser, stack, 'agents');
  const t0 = performance.now();
  await goto();
  await page.waitForSelector('.tree [data-agent]', { timeout: 60_000 });
  const firstRowsMs = performance.now() - t0;

  const l0 = (await api.call('/v1/agents?level=0&limit=1')).items[0].id;
  const l0Children = (await api.call(`/v1/agents/${encodeURIComponent(l0)}/children?limit=1`)).total;
  const t1 = performance.now();
  await page.click(`[data-toggle="${l0}"]`);
  await page.waitForFunction(() => Number(document.querySelector('.tree')?.getAttribute('data-rows')) > 1, undefined, { timeout: 60_000 });
  await page.waitForSelector(`[data-toggle="${l0}"][aria-expanded="true"]:not(:has-text("…"))`, { timeout: 60_000 });
  const expandL0Ms = performance.now() - t1;
  const afterL0 = await treeRows(page);

  // The main thread's own accounting (DevTools Performance metrics, seconds of thread time).
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));

  // Open branches depth first, as an operator clicking down the tree would, scrolling on when
  // every branch in view is open; each click waits for its children to arrive.
  const e0 = await metrics();
  await page.evaluate(() => {
    performance.setResourceTimingBufferSize(100_000);
    performance.clearResourceTimings();
  });
  const t2 = performance.now();
  const opened = await page.evaluate(async (max) => {
    const tree = document.querySelector('.tree');
    const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
    // A branch still fetching its children shows … on its toggle.
    const settled = async () => {
      for (let i = 0; i < 600 && [...tree.querySelectorAll('button[data-toggle]')].some((b) => b.textContent === '…'); i++) await frame();
    };
    let clicks = 0;
    while (clicks < max) {
      const closed = tree.querySelector('button[data-toggle][aria-expanded="false"]');
      if (closed) {
        closed.click();
        clicks++;
        await frame();
        await settled();
        continue;
      }
      if (tree.scrollTop + tree.clientHeight >= tree.scrollHeight - 1) break;
      tree.scrollTop += tree.clientHeight;
      await frame();
      await frame();
    }
    return clicks;
  }, EXPAND);
  const expandMs = performance.now() - t2;
  const e1 = await metrics();
  const expandScriptMs = (e1.ScriptDuration - e0.ScriptDuration) * 1000;
  // How long the page waited for each branch's children (Resource Timing, as the browser saw it).
  const childrenWaits = await page.evaluate(() =>
    performance
      .getEntriesByType('resource')
      .filter((e) => e.name.includes('/children'))
      .map((e) => e.responseEnd - e.startTime)
      .sort((a, b) => a - b),
  );
  const expanded = await treeRows(page);

  // The middle of the open tree.
  await page.$eval('.tree', (tree) => {
    tree.scrollTop = tree.scrollHeight / 2 - tree.clientHeight / 2;
  });
  await page.waitForTimeout(300);
  const middle = await treeRows(page);

  // Top to bottom in SCROLL_FRAMES frames, watching long tasks and frame deltas.
  await page.$eval('.tree', (tree) => {
    tree.scrollTop = 0;
  });
  await page.waitForTimeout(300);
  // How much of the scroll went to the page's script, to layout, and to all tasks.
  const m0 = await metrics();
  const scroll = await page.evaluate(
    async ({ frames, longTaskMs }) => {
      const tree = document.querySelector('.tree');
      const longTasks = [];
      const observer = new PerformanceObserver((list) => longTasks.push(...list.getEntries().map((e) => e.duration)));
      observer.observe({ type: 'longtask' });
      const step = (tree.scrollHeight - tree.clientHeight) / frames;
      const deltas = [];
      let last = performance.now();
      let maxDom = 0;
      await new Promise((done) => {
        let n = 0;
        const tick = (now) => {
          deltas.push(now - last);
          last = now;
          maxDom = Math.max(maxDom, tree.querySelectorAll('.tree-row').length);
          if (++n > frames) return done();
          tree.scrollTop = Math.min(tree.scrollHeight, n * step);
          requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
      });
      await new Promise((r) => setTimeout(r, 200));
      observer.disconnect();
      deltas.shift(); // the wait for the first frame
      const sorted = [...deltas].sort((a, b) => a - b);
      return {
        frames: deltas.length,
        worstFrameMs: sorted[sorted.length - 1],
        p95FrameMs: sorted[Math.floor(sorted.length * 0.95)],
        medianFrameMs: sorted[Math.floor(sorted.length / 2)],
        longTasks: longTasks.filter((d) => d >= longTaskMs).length,
        longTaskMs: longTasks.reduce((a, b) => a + b, 0),
        maxDom,
        scrolledPx: tree.scrollTop,
      };
    },
    { frames: SCROLL_FRAMES, longTaskMs: LONG_TASK_MS },
  );
  const m1 = await metrics();
  scroll.threadMs = Object.fromEntries(['ScriptDuration', 'LayoutDuration', 'RecalcStyleDuration', 'TaskDuration'].map((k) => [k, (m1[k] - m0[k]) * 1000]));
  await context.close();
  return { firstRowsMs, l0, l0Children, expandL0Ms, afterL0, opened, expandMs, expandScriptMs, childrenWaits, expanded, middle, scroll, errors };
}

/** Submits `count` tasks through the API, SUBMIT_CLIENTS at a time; delayed by a day, they stay queued. */
async function submitTasks(api, count) {
  const notBefore = new Date(Date.now() + 86_400_000).toISOString();
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: SUBMIT_CLIENTS }, async () => {
      while (next < count) {
        const i = next++;
        await api.call('/v1/tasks', {
          method: 'POST',
          body: JSON.stringify({
            title: `bench: task ${i}`,
            workspace: 'ziggie',
            priority: ['P0', 'P1', 'P2'][i % 3],
            notBefore,
            plan: { steps: [{ id: 'n', capability: 'research', input: { tool: 'ziggie.noop', arguments: { i } } }] },
          }),
        });
      }
    }),
  );
  return (performance.now() - t0) / 1000;
}

/** 3. The task list: page 1 and the next page, with the tasks each answer carried. */
async function taskList(browser, stack) {
  const { context, page, errors, goto } = await openConsole(browser, stack, 'tasks');
  const lists = [];
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/v1/tasks' && r.request().method() === 'GET') lists.push(r.json().then((b) => ({ items: b.items.length, total: b.total }), () => ({ items: NaN, total: NaN })));
  });
  const t0 = performance.now();
  await goto();
  await page.waitForSelector('[data-testid="task-list"] [data-task]', { timeout: 60_000 });
  const page1Ms = performance.now() - t0;
  const firstIds = await page.$$eval('[data-testid="task-list"] [data-task]', (rows) => rows.map((r) => r.getAttribute('data-task')));
  const totalShown = await page.textContent('[data-testid="task-total"]');
  const t1 = performance.now();
  await page.click('[data-testid="task-list"] >> text=Next page');
  await page.waitForFunction(
    (first) => {
      const rows = [...document.querySelectorAll('[data-testid="task-list"] [data-task]')];
      return rows.length > 0 && !rows.some((r) => first.includes(r.getAttribute('data-task')));
    },
    firstIds,
    { timeout: 60_000 },
  );
  const nextMs = performance.now() - t1;
  const secondRows = await page.$$eval('[data-testid="task-list"] [data-task]', (rows) => rows.length);
  const answers = await Promise.all(lists);
  await context.close();
  return { page1Ms, nextMs, firstRows: firstIds.length, secondRows, totalShown, answers, errors };
}

async function apiTimes(api, l0, withTasks) {
  const rows = [
    ['GET /v1/overview', await api.timed('/v1/overview')],
    ['GET /v1/agents?level=0&limit=50 (tree roots)', await api.timed('/v1/agents?level=0&limit=50')],
    [`GET /v1/agents/${l0}/children?limit=500`, await api.timed(`/v1/agents/${encodeURIComponent(l0)}/children?limit=500`)],
  ];
  const l1 = (await api.call(`/v1/agents/${encodeURIComponent(l0)}/children?limit=1`)).items[0].id;
  rows.push([`GET /v1/agents/<an L1>/children?limit=500`, await api.timed(`/v1/agents/${encodeURIComponent(l1)}/children?limit=500`)]);
  rows.push(['GET /v1/agents?capability=code&limit=500 (a search)', await api.timed('/v1/agents?capability=code&limit=500')]);
  if (withTasks) {
    const first = await api.call(`/v1/tasks?limit=${TASK_PAGE_SIZE}`);
    rows.push([`GET /v1/tasks?limit=${TASK_PAGE_SIZE} (page 1)`, await api.timed(`/v1/tasks?limit=${TASK_PAGE_SIZE}`)]);
    rows.push([`GET /v1/tasks?limit=${TASK_PAGE_SIZE}&cursor=… (page 2)`, await api.timed(`/v1/tasks?limit=${TASK_PAGE_SIZE}&cursor=${first.nextCursor}`)]);
    rows.push([`GET /v1/tasks?status=queued&priority=P0&limit=${TASK_PAGE_SIZE} (filtered)`, await api.timed(`/v1/tasks?status=queued&priority=P0&limit=${TASK_PAGE_SIZE}`)]);
  }
  return rows;
}

async function main() {
  const out = [];
  const say = (s = '') => {
    out.push(s);
    console.log(s);
  };
  const deadline = setTimeout(() => {
    console.error(`deadline of ${DEADLINE_MS / 60_000} min reached: stopping what the benchmark started`);
    void stopAll().finally(() => process.exit(1));
  }, DEADLINE_MS);
  const load0 = loadavg().map((x) => x.toFixed(2)).join(' ');
  running.browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const browser = running.browser;
  const results = [];
  let tasks;
  for (const [i, size] of SIZES.entries()) {
    console.error(`stack with ${size} agents: starting`);
    const s = await start(size);
    try {
      const api = client(s.stack);
      const seeded = (await api.call('/v1/agents?limit=1')).total;
      console.error(`  ready in ${f0(s.startMs)} ms with ${seeded} agents; CPU while idle`);
      const cpu = await idleCpu(s.stack, ['agent-registry', 'agent-runtime', 'gateway']);
      console.error('  first load');
      const load = await firstLoad(browser, s.stack);
      console.error('  agent tree');
      const tree = await agentTree(browser, s.stack, api);
      const withTasks = i === 0 && TASKS > 0;
      if (withTasks) {
        console.error(`  submitting ${TASKS} tasks`);
        const secs = await submitTasks(api, TASKS);
        console.error(`  submitted in ${f1(secs)} s; task list`);
        tasks = { secs, ...(await taskList(browser, s.stack)), size };
      }
      const times = await apiTimes(api, tree.l0, withTasks);
      results.push({ size, seeded, startMs: s.startMs, cpu, load, tree, times });
    } finally {
      await stop(s);
    }
  }
  clearTimeout(deadline);
  const chromiumVersion = browser.version();
  await browser.close();
  running.browser = undefined;

  const cols = ['', ...results.map((r) => `${r.seeded.toLocaleString('en')} agents`)];
  const row = (label, pick) => [label, ...results.map(pick)];
  say(`${new Date().toISOString()}; node ${process.version}; ${cpus().length} CPUs (${cpus()[0].model.trim()}); load average ${load0} at start, ${loadavg().map((x) => x.toFixed(2)).join(' ')} at end; Chromium ${chromiumVersion} headless; loopback; viewport 1400×900.`);
  say();
  say('### Console');
  say();
  say(
    table(cols, [
      row('stack start to ready (ms; seeding included)', (r) => f0(r.startMs)),
      row(`CPU while idle, ${CPU_WINDOW_MS / 1000} s after ready: agent-registry / agent-runtime / gateway (% of one core)`, (r) =>
        [r.cpu['agent-registry'], r.cpu['agent-runtime'], r.cpu.gateway].map(f0).join(' / '),
      ),
      row('first load: scripts, JavaScript transferred (content-encoding)', (r) => `${r.load.scripts}, ${kb(r.load.bytes)} (${r.load.encodings})`),
      row('first load: overview live, agents tile shows (ms; agents shown)', (r) => `${f0(r.load.liveMs)} (${r.load.agentsShown})`),
      row('agent tree: first rows (ms after navigation)', (r) => f0(r.tree.firstRowsMs)),
      row('agent tree: L0 expanded (ms; rows / L0 children in the API)', (r) => `${f0(r.tree.expandL0Ms)} (${f0(r.tree.afterL0.rows)} / ${f0(r.tree.l0Children)})`),
      row(`agent tree: branches opened depth first (clicks, ms for all)`, (r) => `${r.tree.opened}, ${f0(r.tree.expandMs)}`),
      row('branches opened: page script per click (ms of main-thread script time)', (r) => f1(r.tree.expandScriptMs / r.tree.opened)),
      row('branches opened: the page\'s wait for a branch\'s children, median / worst (ms)', (r) =>
        `${f0(r.tree.childrenWaits[Math.floor(r.tree.childrenWaits.length / 2)])} / ${f0(r.tree.childrenWaits[r.tree.childrenWaits.length - 1])}`,
      ),
      row('agent tree: rows in the tree / rows in the DOM, scrolled to its middle', (r) => `${f0(r.tree.middle.rows)} / ${r.tree.middle.dom}`),
      row(`scroll top → bottom in ${SCROLL_FRAMES} frames: most rows in the DOM`, (r) => String(r.tree.scroll.maxDom)),
      row(`scroll: long tasks ≥ ${LONG_TASK_MS} ms (count, total ms)`, (r) => `${r.tree.scroll.longTasks}, ${f0(r.tree.scroll.longTaskMs)}`),
      row('scroll: main-thread time in script / layout + style / all tasks (ms)', (r) =>
        `${f0(r.tree.scroll.threadMs.ScriptDuration)} / ${f0(r.tree.scroll.threadMs.LayoutDuration + r.tree.scroll.threadMs.RecalcStyleDuration)} / ${f0(r.tree.scroll.threadMs.TaskDuration)}`,
      ),
      row('scroll: frame time median / p95 / worst (ms)', (r) => `${f1(r.tree.scroll.medianFrameMs)} / ${f1(r.tree.scroll.p95FrameMs)} / ${f1(r.tree.scroll.worstFrameMs)}`),
      row('page errors', (r) => String(r.tree.errors.length)),
    ]),
  );
  say();
  say(`### Gateway answer time (ms, median / worst of ${REPEAT} calls ${SPREAD_MS} ms apart, from this process over loopback)`);
  say();
  const labels = results[0].times.map(([label]) => label);
  say(
    table(
      cols,
      labels.map((label) =>
        row(label, (r) => {
          const t = r.times.find(([l]) => l === label)?.[1];
          return t ? `${f1(t.median)} / ${f1(t.max)}` : '–';
        }),
      ),
    ),
  );
  if (tasks) {
    say();
    say(`### Task list with ${TASKS.toLocaleString('en')} tasks (stack with ${tasks.size.toLocaleString('en')} agents)`);
    say();
    say(`${TASKS.toLocaleString('en')} one-step tasks submitted through POST /v1/tasks by ${SUBMIT_CLIENTS} clients in ${f1(tasks.secs)} s (${f0(TASKS / tasks.secs)} tasks/s), \`notBefore\` a day ahead, so they stay queued.`);
    say();
    say(
      table(
        ['', 'ms', 'tasks transferred', 'rows shown'],
        [
          ['page 1 (navigation → first rows)', f0(tasks.page1Ms), tasks.answers[0] ? `${tasks.answers[0].items} of ${tasks.answers[0].total.toLocaleString('en')}` : '–', String(tasks.firstRows)],
          ['next page (click → rows of page 2)', f0(tasks.nextMs), tasks.answers[1] ? `${tasks.answers[1].items} of ${tasks.answers[1].total.toLocaleString('en')}` : '–', String(tasks.secondRows)],
        ],
      ),
    );
    say();
    say(`GET /v1/tasks calls the page made: ${tasks.answers.length} (${tasks.answers.map((a) => `${a.items} items`).join(', ')}); the pager says "${tasks.totalShown}"; page errors ${tasks.errors.length}.`);
  }
  if (OUT) {
    const cmd = `node test/bench/console/run.js ${process.argv.slice(2).join(' ')}`.trim();
    writeFileSync(OUT, `# The console at scale (issue 16): last run\n\nCommand: \`npm run build && ${cmd}\`\n\n${out.join('\n')}\n`);
  }
}

main().catch(async (err) => {
  console.error(err);
  await stopAll();
  process.exit(1);
});
