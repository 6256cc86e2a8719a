/**
 * Dashboards, alert rules and Alertmanager routing, checked offline with the real tools:
 * generated files match the code (and the chart's copies match them), every panel and rule reads
 * only inventoried metrics, promtool and amtool accept everything, every alert has its labels,
 * annotations, runbook and a promtool test on both sides of firing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { ServiceNames } from '../../libs/platform/src/config/services';
import { prometheusConfig } from '../../cli/src/observability';
import { DASHBOARDS } from '../../observability/dashboards';
import { CHART_DASHBOARD_DIR, CHART_RULES_FILE, DASHBOARD_DIR, drift, repoRoot } from '../../observability/generate';
import { findMetric, METRICS } from '../../observability/metrics';
import { metricNames } from '../../observability/promql';
import { panelQueries, panelsOf, substitute } from '../../observability/queries';
import { GROUPS, isAlert, RULES_FILE, RUNBOOK_DIR } from '../../observability/rules';
import { SERVICES } from '../../observability/services';

const ROOT = repoRoot(join(__dirname, '..', '..', 'observability'));
const TESTS_DIR = join(ROOT, 'observability', 'prometheus', 'tests');
const ALERTMANAGER_FILE = join(ROOT, 'observability', 'alertmanager', 'alertmanager.yml');
const dashboards = DASHBOARDS.map((d) => ({ file: d.file, json: d.build() }));
const queries = dashboards.flatMap((d) => panelQueries(d.json));

function tool(name: string, args: string[], cwd = ROOT): { status: number | null; stdout: string; output: string } {
  const r = spawnSync(name, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new Error(`${name} could not run (${r.error.message}); install it: sudo apt-get install -y prometheus prometheus-alertmanager`);
  return { status: r.status, stdout: r.stdout, output: `${r.stdout}${r.stderr}` };
}

describe('generated files', () => {
  it('match what observability/*.ts generates (npm run observability:gen), chart copies included', () => {
    expect(drift(ROOT)).toEqual([]);
  });

  it('ship every dashboard and the rule file in the chart, byte for byte', () => {
    const ours = readdirSync(join(ROOT, DASHBOARD_DIR)).sort();
    expect(readdirSync(join(ROOT, CHART_DASHBOARD_DIR)).filter((f) => f.endsWith('.json')).sort()).toEqual(ours);
    for (const f of ours) expect(readFileSync(join(ROOT, CHART_DASHBOARD_DIR, f), 'utf8')).toBe(readFileSync(join(ROOT, DASHBOARD_DIR, f), 'utf8'));
    expect(readFileSync(join(ROOT, CHART_RULES_FILE), 'utf8')).toBe(readFileSync(join(ROOT, RULES_FILE), 'utf8'));
  });

  it('name the same six services as libs/platform', () => {
    expect([...SERVICES].sort()).toEqual([...ServiceNames].sort());
  });
});

describe('dashboards', () => {
  it('are the Master Command Center and one RED dashboard per service, with fixed unique uids', () => {
    expect(dashboards.map((d) => d.json.uid).sort()).toEqual(['ziggie-master', ...SERVICES.map((s) => `ziggie-red-${s}`)].sort());
  });

  it.each(dashboards.map((d) => [d.file, d.json] as const))('%s: a prometheus ${datasource} variable, unique panel ids, a query in every panel', (_file, d) => {
    const vars = d.templating?.list ?? [];
    expect(vars.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(vars.find((v) => v.name === 'namespace')).toMatchObject({ type: 'query', includeAll: true, allValue: '.*', datasource: { uid: '${datasource}' } });
    const ids = (d.panels ?? []).map((p) => (p as { id?: number }).id);
    expect(ids.every((id) => typeof id === 'number')).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panelsOf(d)) {
      expect({ panel: p.title, hasQuery: (p.targets?.length ?? 0) > 0 }).toEqual({ panel: p.title, hasQuery: true });
      for (const t of p.targets!) {
        expect({ panel: p.title, expr: t.expr?.trim() ? 'set' : 'empty' }).toEqual({ panel: p.title, expr: 'set' });
        expect((t as { datasource?: { uid?: string } }).datasource?.uid).toBe('${datasource}');
      }
      expect((p as { description?: string }).description).toBeTruthy();
    }
  });

  it('filter every query by $namespace, and every RED query by its service', () => {
    for (const q of queries) {
      expect({ q: q.expr, ns: q.expr.includes('namespace=~"$namespace"') }).toEqual({ q: q.expr, ns: true });
      const red = /^ziggie-red-(.+)$/.exec(q.dashboard);
      if (red) expect({ q: q.expr, own: q.expr.includes(`service="${red[1]}"`) }).toEqual({ q: q.expr, own: true });
    }
  });

  it('have queries Prometheus parses (each checked as a recording rule by promtool)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ziggie-panels-'));
    try {
      const file = join(dir, 'panels.yaml');
      const rules = queries.map((q, i) => ({ record: `panel:check_${i}`, expr: substitute(q.expr) }));
      writeFileSync(file, stringify({ groups: [{ name: 'panels', rules }] }));
      const r = tool('promtool', ['check', 'rules', file]);
      expect(r.output).toContain(`SUCCESS: ${rules.length} rules found`);
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('metrics inventory', () => {
  const ruleExprs = GROUPS.flatMap((g) => g.rules.map((r) => ({ where: isAlert(r) ? r.alert : r.record, expr: r.expr })));
  // Variables: label_values(<selector>, <label>) reads the selector's metric.
  const variableExprs = dashboards.flatMap((d) =>
    (d.json.templating?.list ?? [])
      .filter((v) => v.type === 'query')
      .map((v) => ({ where: `${d.json.uid} / $${v.name}`, expr: String(v.query).replace(/^label_values\((.+),\s*\w+\)$/, '$1') })),
  );
  const used = [...queries.map((q) => ({ where: `${q.dashboard} / ${q.panel}`, expr: q.expr })), ...ruleExprs, ...variableExprs];

  it('lists every metric a panel or a rule reads', () => {
    const unknown = used.flatMap((u) => metricNames(u.expr).filter((n) => !findMetric(n)).map((n) => `${n} (${u.where})`));
    expect(unknown).toEqual([]);
    // The parser does find names: every expression reads at least one metric.
    for (const u of used) expect({ where: u.where, names: metricNames(u.expr).length > 0 }).toEqual({ where: u.where, names: true });
  });

  it('lists exactly the metrics the code registers', () => {
    const registered = new Set<string>();
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) {
          if (e.name !== 'node_modules' && e.name !== 'dist') walk(p);
        } else if (e.name.endsWith('.ts') && !/\.(spec|int-spec)\.ts$/.test(e.name)) {
          const text = readFileSync(p, 'utf8');
          const patterns = [/\.(?:counter|gauge|histogram)\(\s*'(ziggie_\w+)'/g, /\bname:\s*'(ziggie_\w+)'/g, /export const [A-Z_]+ = '(ziggie_\w+)'/g];
          for (const re of patterns) for (const m of text.matchAll(re)) registered.add(m[1]!);
        }
      }
    };
    for (const top of ['libs', 'services']) for (const pkg of readdirSync(join(ROOT, top))) if (existsSync(join(ROOT, top, pkg, 'src'))) walk(join(ROOT, top, pkg, 'src'));
    const inventoried = METRICS.filter((m) => m.source !== 'prometheus' && m.source !== 'rules' && !/^ziggie_(process|nodejs)_/.test(m.name)).map((m) => m.name);
    expect([...registered].sort()).toEqual([...inventoried].sort());
  });

  it('records only series that are listed, with the rule file\'s names', () => {
    const recorded = GROUPS.flatMap((g) => g.rules.filter((r) => !isAlert(r)).map((r) => (r as { record: string }).record)).sort();
    expect(METRICS.filter((m) => m.type === 'recorded').map((m) => m.name).sort()).toEqual(recorded);
  });
});

describe('alert rules', () => {
  const file = parse(readFileSync(join(ROOT, RULES_FILE), 'utf8')) as { groups: Array<{ name: string; rules: Array<Record<string, any>> }> };
  const fileAlerts = file.groups.flatMap((g) => g.rules.filter((r) => 'alert' in r));

  it('pass promtool check rules', () => {
    const r = tool('promtool', ['check', 'rules', RULES_FILE]);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it('cover DESIGN §10: utilization > 90%, MCP p95 > 200 ms, a workspace blocked, error rate > 5%', () => {
    const expr = (name: string) => fileAlerts.find((a) => a.alert === name)?.expr as string;
    expect(expr('ZiggieAgentUtilizationHigh')).toMatch(/ratio > 0\.9$/);
    expect(expr('ZiggieMcpLatencyHigh')).toMatch(/p95_rate5m > 0\.2$/);
    expect(expr('ZiggieWorkspaceBlocked')).toContain('status="blocked"');
    expect(expr('ZiggieHighErrorRate')).toMatch(/ratio:rate5m > 0\.05$/);
  });

  it.each(fileAlerts.map((a) => [a.alert as string, a] as const))('%s has for, severity, summary, description and a runbook that exists', (name, a) => {
    expect(a.for).toMatch(/^\d+[smh]$/);
    expect(['critical', 'warning']).toContain(a.labels?.severity);
    expect(a.annotations?.summary).toBeTruthy();
    expect(a.annotations?.description).toBeTruthy();
    expect(a.annotations?.runbook_url).toBe(`${RUNBOOK_DIR}/${name}.md`);
    const runbook = readFileSync(join(ROOT, RUNBOOK_DIR, `${name}.md`), 'utf8');
    expect(runbook.startsWith(`# ${name}`)).toBe(true);
    for (const section of ['## Meaning', '## Impact', '## Diagnosis', '## Mitigation']) expect(runbook).toContain(section);
  });

  it('have no runbook without an alert', () => {
    const names = new Set(fileAlerts.map((a) => `${a.alert}.md`));
    expect(readdirSync(join(ROOT, RUNBOOK_DIR)).filter((f) => !names.has(f))).toEqual([]);
  });

  const testFiles = readdirSync(TESTS_DIR).filter((f) => f.endsWith('.test.yaml'));

  it('pass promtool test rules', () => {
    expect(testFiles.length).toBeGreaterThan(0);
    const r = tool('promtool', ['test', 'rules', ...testFiles], TESTS_DIR);
    expect(r.output).not.toContain('FAILED');
    expect(r.status).toBe(0);
  });

  it('each have a promtool case before firing (no alert) and after (with every label and annotation)', () => {
    const cases = testFiles.flatMap((f) => {
      const doc = parse(readFileSync(join(TESTS_DIR, f), 'utf8')) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: Array<Record<string, any>> }> }> };
      return doc.tests.flatMap((t) => t.alert_rule_test ?? []);
    });
    for (const a of fileAlerts) {
      const mine = cases.filter((c) => c.alertname === a.alert);
      const silent = mine.filter((c) => (c.exp_alerts ?? []).length === 0);
      const firing = mine.filter((c) => (c.exp_alerts ?? []).length > 0);
      expect({ alert: a.alert, before: silent.length > 0, after: firing.length > 0 }).toEqual({ alert: a.alert, before: true, after: true });
      for (const c of firing) {
        for (const e of c.exp_alerts!) {
          expect(e.exp_labels).toMatchObject(a.labels);
          // Inhibition matches on service: every alert carries it, from its expression or as a rule label.
          expect({ alert: a.alert, service: typeof e.exp_labels.service }).toEqual({ alert: a.alert, service: 'string' });
          expect(Object.keys(e.exp_annotations ?? {}).sort()).toEqual(['description', 'runbook_url', 'summary']);
        }
      }
    }
  });

  it('load in a local Prometheus configuration that promtool accepts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ziggie-prom-'));
    try {
      const ports = { nats: 4222, natsMonitor: 8222, services: Object.fromEntries(ServiceNames.map((s, i) => [s, { http: 4000 + i }])) } as Parameters<typeof prometheusConfig>[0]['ports'];
      const configFile = join(dir, 'prometheus.yml');
      writeFileSync(configFile, JSON.stringify(prometheusConfig({ ports, rulesFile: join(ROOT, RULES_FILE), alertmanagerPort: 9093 })));
      const r = tool('promtool', ['check', 'config', configFile]);
      expect(r.output).toContain('SUCCESS');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('alertmanager.yml', () => {
  it('passes amtool check-config', () => {
    const r = tool('amtool', ['check-config', ALERTMANAGER_FILE]);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it.each([
    ['page', ['alertname=ZiggieServiceDown', 'severity=critical', 'service=gateway']],
    ['notify', ['alertname=ZiggieMcpBreakerOpen', 'severity=warning', 'service=mcp-gateway', 'server=flaky']],
    ['null', ['alertname=Watchdog', 'severity=none']],
  ])('routes to %s: %j', (receiver, labels) => {
    const r = tool('amtool', ['config', 'routes', 'test', `--config.file=${ALERTMANAGER_FILE}`, `--verify.receivers=${receiver}`, ...labels]);
    expect(r.stdout.trim()).toBe(receiver);
    expect(r.status).toBe(0);
  });

  it('inhibits warnings of a service while one of its critical alerts fires', () => {
    const config = parse(readFileSync(ALERTMANAGER_FILE, 'utf8')) as { inhibit_rules: Array<Record<string, unknown>> };
    expect(config.inhibit_rules).toEqual([{ source_matchers: ['severity="critical"'], target_matchers: ['severity="warning"'], equal: ['namespace', 'service'] }]);
  });
});
