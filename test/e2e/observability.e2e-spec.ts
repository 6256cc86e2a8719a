import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { signDevToken } from '@ziggie/platform';
import { DEMO_TASK } from '../../cli/src/demo';
import { startObservability, type ObservabilityHandle } from '../../cli/src/observability';
import { allocateFreePorts, startStack, type StackHandle } from '../../cli/src/stack';
import { DASHBOARDS } from '../../observability/dashboards';
import { findMetric } from '../../observability/metrics';
import { panelQueries, substitute } from '../../observability/queries';
import { GROUPS } from '../../observability/rules';
import { SERVICES } from '../../observability/services';
import { freePort, isPidAlive, sleep, waitFor } from '../support';

/**
 * The dashboards and rules against a real Prometheus (the Debian package) scraping a real local
 * stack every second, started the way `ziggie up --with-observability` starts it: after a demo
 * task and some MCP calls, every query of every panel parses and returns data, and every rule
 * group is loaded and evaluates cleanly.
 */
describe('observability against a real Prometheus scraping the local stack', () => {
  let dataDir: string;
  let stack: StackHandle;
  let obs: ObservabilityHandle;
  let prometheusPid: number | undefined;

  const token = (roles: string[], workspaces: string[] = ['*']) =>
    signDevToken({ subject: `${roles.join('+')}@e2e`, roles, workspaces, ttlSeconds: 600 }, { secret: stack.jwtSecret, issuer: 'ziggie-local', audience: 'ziggie-api' });
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${stack.gatewayUrl}${path}`, { ...init, headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.adminToken}`, ...(init.headers ?? {}) } });

  interface PromResponse<T> {
    status: string;
    error?: string;
    data: T;
  }
  const prom = async <T>(path: string, params: Record<string, string> = {}): Promise<PromResponse<T>> => {
    const res = await fetch(`${obs.prometheusUrl}${path}?${new URLSearchParams(params).toString()}`, { signal: AbortSignal.timeout(10_000) });
    return (await res.json()) as PromResponse<T>;
  };
  type Sample = { metric: Record<string, string>; value: [number, string] };
  const query = (expr: string) => prom<{ resultType: string; result: Sample[] }>('/api/v1/query', { query: expr });

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'ziggie-e2e-obs-'));
    stack = await startStack({
      dataDir,
      ports: await allocateFreePorts(),
      logLevel: 'warn',
      env: {
        RATE_LIMIT_USER_PER_MIN: '100000',
        RATE_LIMIT_ADMIN_PER_MIN: '100000',
        // workspace-coord asks the orchestrator for task stats every round: a few calls within a minute.
        HEALTH_INTERVAL_SECONDS: '2',
      },
    });
    obs = await startObservability({ dataDir, ports: stack.ports, prometheusPort: await freePort(), alertmanagerPort: await freePort(), scrapeInterval: '1s' });
    prometheusPid = obs.pids.prometheus;
  }, 180_000);

  afterAll(async () => {
    await obs?.stop();
    if (prometheusPid !== undefined) expect(isPidAlive(prometheusPid)).toBe(false);
    await stack?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it('scrapes every service, labelled service=<name>', async () => {
    await waitFor(
      async () => {
        const up = await query('up{job="ziggie"} == 1');
        return new Set(up.data.result.map((s) => s.metric.service)).size === SERVICES.length;
      },
      { timeoutMs: 30_000, what: 'every service to be scraped' },
    );
    const up = await query('up{job="ziggie"}');
    expect(up.data.result.map((s) => s.metric.service).sort()).toEqual([...SERVICES].sort());
    // The registry's own `service` label is kept as is (honor_labels), not renamed.
    expect((await query('count(ziggie_agents{exported_service!=""})')).data.result).toEqual([]);
  }, 60_000);

  it('loads every rule group of the project, each rule evaluating without error', async () => {
    type Rules = { groups: Array<{ name: string; file: string; rules: Array<{ name: string; health: string; lastError?: string; type: string }> }> };
    await waitFor(async () => (await prom<Rules>('/api/v1/rules')).data.groups.every((g) => g.rules.every((r) => r.health !== 'unknown')), {
      timeoutMs: 30_000,
      what: 'every rule to be evaluated once',
    });
    const { data } = await prom<Rules>('/api/v1/rules');
    expect(data.groups.map((g) => g.name).sort()).toEqual(GROUPS.map((g) => g.name).sort());
    for (const g of data.groups) {
      expect(g.file).toMatch(/observability\/prometheus\/rules\/ziggie\.rules\.yaml$/);
      expect(g.rules.map((r) => r.name)).toEqual(GROUPS.find((x) => x.name === g.name)!.rules.map((r) => ('alert' in r ? r.alert : r.record)));
      for (const r of g.rules) expect({ rule: r.name, health: r.health, error: r.lastError ?? '' }).toEqual({ rule: r.name, health: 'ok', error: '' });
    }
    // Prometheus found the local Alertmanager.
    const alertmanagers = async () => (await prom<{ activeAlertmanagers: Array<{ url: string }> }>('/api/v1/alertmanagers')).data.activeAlertmanagers.map((a) => a.url);
    await waitFor(async () => (await alertmanagers()).length > 0, { timeoutMs: 15_000, what: 'Prometheus to discover the Alertmanager' });
    expect(await alertmanagers()).toEqual([`${obs.alertmanagerUrl}/api/v2/alerts`]);
  }, 60_000);

  it('answers every panel query of every dashboard with data after a demo task and MCP calls', async () => {
    // A multi-wave task: orchestrator, registry, runtime and mcp-gateway at work.
    const created = await api('/v1/tasks', { method: 'POST', body: JSON.stringify(DEMO_TASK) });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    await (await api(`/v1/tasks/${id}/events`)).text();
    expect(((await (await api(`/v1/tasks/${id}`)).json()) as { status: string }).status).toBe('succeeded');

    // Tool calls spread over several scrapes (a rate needs a series to grow after it appears),
    // through REST and through the MCP endpoint; reads that reach agent-registry and workspace-coord.
    const mcp = new Client({ name: 'e2e-observability', version: '1.0.0' });
    await mcp.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { requestInit: { headers: { authorization: `Bearer ${token(['l1'], ['ziggie'])}` } } }));
    try {
      for (let i = 0; i < 4; i++) {
        const call = await api('/v1/mcp/tools/everything.echo/call', { method: 'POST', body: JSON.stringify({ arguments: { message: `scrape ${i}` } }) });
        expect(call.status).toBe(200);
        expect((await mcp.callTool({ name: 'everything.get-sum', arguments: { a: i, b: 1 } })).isError).toBeFalsy();
        expect((await api('/v1/agents/summary')).status).toBe(200);
        expect((await api('/v1/workspaces')).status).toBe(200);
        await sleep(1_500);
      }
    } finally {
      await mcp.close();
    }
    // A few more scrapes and rule evaluations after the last call.
    await sleep(4_000);

    const queries = DASHBOARDS.flatMap((d) => panelQueries(d.build()));
    expect(queries.length).toBeGreaterThan(50);
    const failures: string[] = [];
    for (const q of queries) {
      const expr = substitute(q.expr);
      const where = `${q.dashboard} / ${q.panel} / ${q.refId}`;
      const res = await query(expr);
      if (res.status !== 'success') failures.push(`${where}: ${res.error ?? res.status}\n    ${expr}`);
      else if (res.data.result.length === 0) failures.push(`${where}: no data\n    ${expr}`);
      else if (!res.data.result.some((s) => Number.isFinite(Number(s.value[1])))) failures.push(`${where}: only NaN/Inf\n    ${expr}`);
    }
    expect(failures).toEqual([]);
  }, 120_000);

  it('exposes only inventoried metrics, with the inventoried labels', async () => {
    const series = await prom<Array<Record<string, string>>>('/api/v1/series', { 'match[]': '{job="ziggie", __name__=~"ziggie_.+"}' });
    expect(series.status).toBe('success');
    expect(series.data.length).toBeGreaterThan(100);
    const scrapeLabels = new Set(['__name__', 'service', 'instance', 'job', 'le']);
    const problems = new Set<string>();
    for (const s of series.data) {
      const name = s.__name__!;
      // prom-client's default process and Node.js metrics: the inventory lists those the dashboards read.
      if (/^ziggie_(process|nodejs)_/.test(name)) continue;
      const spec = findMetric(name);
      if (!spec) problems.add(`${name}: not in observability/metrics.ts`);
      else for (const label of Object.keys(s)) if (!scrapeLabels.has(label) && !spec.labels.includes(label)) problems.add(`${name}: label ${label} not in the inventory`);
    }
    expect([...problems].sort()).toEqual([]);
  });
});
