import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServiceNames } from '@ziggie/platform';
import { ALERTMANAGER_FILE, describeObservability, findAlertmanager, prometheusConfig, RULES_FILE } from './observability';
import { allocateFreePorts, defaultPorts, REPO_ROOT } from './stack';

interface ScrapeConfig {
  job_name: string;
  honor_labels: boolean;
  metrics_path: string;
  static_configs: Array<{ targets: string[]; labels: Record<string, string> }>;
}

describe('prometheusConfig', () => {
  it('scrapes every service on its HTTP port, labelled service=<name> like the chart does', async () => {
    const ports = await allocateFreePorts();
    const config = prometheusConfig({ ports, rulesFile: '/rules.yaml' });
    const [job, ...others] = config.scrape_configs as ScrapeConfig[];
    expect(others).toEqual([]);
    expect(job).toMatchObject({ job_name: 'ziggie', honor_labels: true, metrics_path: '/metrics' });
    expect(job!.static_configs).toEqual(
      ServiceNames.map((name) => ({ targets: [`127.0.0.1:${ports.services[name].http}`], labels: { service: name } })),
    );
  });

  it('loads the rule file and evaluates it at the scrape interval (5 s unless asked)', () => {
    const ports = defaultPorts();
    expect(prometheusConfig({ ports, rulesFile: '/r.yaml' })).toMatchObject({
      global: { scrape_interval: '5s', evaluation_interval: '5s', scrape_timeout: '5s' },
      rule_files: ['/r.yaml'],
    });
    expect(prometheusConfig({ ports, rulesFile: '/r.yaml', scrapeInterval: '1s' })).toMatchObject({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
    });
  });

  it('sends alerts to the local Alertmanager only when there is one', () => {
    const ports = defaultPorts();
    expect(prometheusConfig({ ports, rulesFile: '/r.yaml' })).not.toHaveProperty('alerting');
    expect(prometheusConfig({ ports, rulesFile: '/r.yaml', alertmanagerPort: 19093 })).toMatchObject({
      alerting: { alertmanagers: [{ static_configs: [{ targets: ['127.0.0.1:19093'] }] }] },
    });
  });

  it('is JSON, which Prometheus reads as YAML', () => {
    const config = prometheusConfig({ ports: defaultPorts(), rulesFile: '/r.yaml', alertmanagerPort: 9093 });
    expect(JSON.parse(JSON.stringify(config))).toEqual(config);
  });

  it('points at files that exist in the repository', () => {
    expect(existsSync(join(REPO_ROOT, RULES_FILE))).toBe(true);
    expect(existsSync(join(REPO_ROOT, ALERTMANAGER_FILE))).toBe(true);
  });
});

describe('findAlertmanager', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ziggie-am-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const executable = (name: string) => {
    writeFileSync(join(dir, name), '#!/bin/sh\n');
    chmodSync(join(dir, name), 0o755);
  };

  it('finds the Debian name, prometheus-alertmanager', () => {
    executable('prometheus-alertmanager');
    expect(findAlertmanager(dir)).toBe(join(dir, 'prometheus-alertmanager'));
  });

  it('prefers the upstream name, alertmanager', () => {
    executable('prometheus-alertmanager');
    executable('alertmanager');
    expect(findAlertmanager(dir)).toBe(join(dir, 'alertmanager'));
  });
});

describe('describeObservability', () => {
  it('prints the URLs, or why Alertmanager is not running', () => {
    const stop = () => Promise.resolve();
    const both = describeObservability({ prometheusUrl: 'http://127.0.0.1:9090', alertmanagerUrl: 'http://127.0.0.1:9093', pids: {}, logsDir: '/l', stop }, '/repo');
    expect(both).toEqual([
      '  Prometheus      http://127.0.0.1:9090  (alerts: http://127.0.0.1:9090/alerts)',
      '  Alertmanager    http://127.0.0.1:9093',
      '  Dashboards      /repo/observability/dashboards/json  (import into Grafana with this Prometheus as the data source)',
    ]);
    const without = describeObservability({ prometheusUrl: 'http://127.0.0.1:9090', alertmanagerSkipped: 'not installed', pids: {}, logsDir: '/l', stop }, '/repo');
    expect(without[1]).toBe('  Alertmanager    not installed');
  });
});
