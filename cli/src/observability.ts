/**
 * `ziggie up --with-observability`: a local Prometheus scraping every service with the project's
 * alert rules, and an Alertmanager receiving its alerts, both on loopback next to the stack.
 * Children run like nats-server in stack.ts: their own process group, a log under
 * `<dataDir>/logs`, SIGTERM then SIGKILL on stop.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ServiceNames, type ServiceName } from '@ziggie/platform/services';
import { findExecutable, Managed, pickPort, REPO_ROOT, spawnManaged, StackError, type StackPorts } from './stack';

export const PROMETHEUS = 'prometheus';
/** Debian names the binary prometheus-alertmanager; upstream tarballs name it alertmanager. */
export const ALERTMANAGER_NAMES = ['alertmanager', 'prometheus-alertmanager'];
export const DEFAULT_PROMETHEUS_PORT = 9090;
export const DEFAULT_ALERTMANAGER_PORT = 9093;
export const DEFAULT_SCRAPE_INTERVAL = '5s';
export const OBSERVABILITY_INSTALL_HINT = 'sudo apt-get install -y prometheus prometheus-alertmanager';
export const RULES_FILE = join('observability', 'prometheus', 'rules', 'ziggie.rules.yaml');
export const ALERTMANAGER_FILE = join('observability', 'alertmanager', 'alertmanager.yml');
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;

export interface PrometheusConfigOptions {
  ports: StackPorts;
  /** Absolute path of the rule file. */
  rulesFile: string;
  scrapeInterval?: string;
  /** Where alerts go; omitted, Prometheus evaluates rules without sending alerts anywhere. */
  alertmanagerPort?: number;
}

/**
 * prometheus.yml for the local stack. One job, one target per service, labelled `service` like
 * the ServiceMonitor labels them in the cluster, so dashboards and rules work unchanged. Every
 * series a service exposes already carries `service`; honor_labels keeps it as is instead of
 * renaming it to exported_service.
 */
export function prometheusConfig(o: PrometheusConfigOptions): Record<string, unknown> {
  const interval = o.scrapeInterval ?? DEFAULT_SCRAPE_INTERVAL;
  return {
    global: { scrape_interval: interval, evaluation_interval: interval, scrape_timeout: interval },
    rule_files: [o.rulesFile],
    ...(o.alertmanagerPort === undefined
      ? {}
      : { alerting: { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${o.alertmanagerPort}`] }] }] } }),
    scrape_configs: [
      {
        job_name: 'ziggie',
        honor_labels: true,
        metrics_path: '/metrics',
        static_configs: ServiceNames.map((name: ServiceName) => ({
          targets: [`127.0.0.1:${o.ports.services[name].http}`],
          labels: { service: name },
        })),
      },
    ],
  };
}

/** The Alertmanager binary, under either name. */
export function findAlertmanager(pathEnv?: string): string | undefined {
  for (const name of ALERTMANAGER_NAMES) {
    const found = findExecutable(name, pathEnv);
    if (found) return found;
  }
  return undefined;
}

export interface ObservabilityOptions {
  dataDir: string;
  ports: StackPorts;
  repoRoot?: string;
  /** Preferred ports; a busy one is replaced by a free one (a system Prometheus often holds 9090). */
  prometheusPort?: number;
  alertmanagerPort?: number;
  scrapeInterval?: string;
  /** Start Alertmanager too (default true when installed). */
  alertmanager?: boolean;
  /** Called when a child exits on its own after start-up. */
  onExit?: (name: string, description: string) => void;
  pathEnv?: string;
}

export interface ObservabilityHandle {
  prometheusUrl: string;
  alertmanagerUrl?: string;
  /** Why Alertmanager is not running, when it is not. */
  alertmanagerSkipped?: string;
  pids: Record<string, number>;
  logsDir: string;
  /** Stops what was started, Alertmanager last so Prometheus's final notifications have somewhere to go. Idempotent. */
  stop(): Promise<void>;
}

async function waitReady(child: Managed, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!child.running) break;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() >= deadline) break;
    await Promise.race([child.exited, sleep(200)]);
  }
  const why = child.running ? `${child.name} did not become ready within ${timeoutMs / 1000} s (GET ${url})` : `${child.describeExit()} before it was ready`;
  await child.terminate(STOP_GRACE_MS);
  const tail = await child.tail();
  throw new StackError(`${why}\nLast lines of ${child.logFile}:\n${tail.replace(/^/gm, '    ')}`, child.name, tail);
}

/**
 * Starts Prometheus (required) and Alertmanager (when installed) for a running stack. Throws a
 * StackError naming the package to install when Prometheus is missing.
 */
export async function startObservability(o: ObservabilityOptions): Promise<ObservabilityHandle> {
  const repoRoot = o.repoRoot ?? REPO_ROOT;
  const dataDir = resolve(o.dataDir);
  const logsDir = join(dataDir, 'logs');
  const prometheusBin = findExecutable(PROMETHEUS, o.pathEnv);
  if (!prometheusBin) {
    throw new StackError(`prometheus is not installed, so --with-observability cannot start it. Install it with:\n\n  ${OBSERVABILITY_INSTALL_HINT}\n`, PROMETHEUS);
  }
  const alertmanagerBin = o.alertmanager === false ? undefined : findAlertmanager(o.pathEnv);
  const promDir = join(dataDir, 'prometheus');
  const amDir = join(dataDir, 'alertmanager');
  await mkdir(logsDir, { recursive: true });
  await mkdir(join(promDir, 'data'), { recursive: true });

  const children: Managed[] = [];
  const onProcessExit = (): void => {
    for (const c of children) if (c.running && c.child.pid !== undefined) c.child.kill('SIGTERM');
  };
  process.on('exit', onProcessExit);
  let stopping = false;
  let stopPromise: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopPromise ??= (async () => {
      stopping = true;
      for (const c of [...children].reverse()) await c.terminate(STOP_GRACE_MS);
      process.removeListener('exit', onProcessExit);
    })());
  const watch = (c: Managed): void => {
    void c.exited.then(() => {
      if (!stopping) o.onExit?.(c.name, `${c.describeExit()}; see ${c.logFile}`);
    });
  };

  try {
    let alertmanagerPort: number | undefined;
    let alertmanagerSkipped: string | undefined;
    if (alertmanagerBin) {
      await mkdir(amDir, { recursive: true });
      alertmanagerPort = await pickPort(o.alertmanagerPort ?? DEFAULT_ALERTMANAGER_PORT);
      const am = spawnManaged(
        'alertmanager',
        alertmanagerBin,
        [
          `--config.file=${join(repoRoot, ALERTMANAGER_FILE)}`,
          `--storage.path=${amDir}`,
          `--web.listen-address=127.0.0.1:${alertmanagerPort}`,
          // No gossip: a single local instance, and no port 9094 taken.
          '--cluster.listen-address=',
        ],
        { cwd: repoRoot, env: process.env, logFile: join(logsDir, 'alertmanager.log') },
      );
      children.push(am);
      await waitReady(am, `http://127.0.0.1:${alertmanagerPort}/-/ready`, READY_TIMEOUT_MS);
      watch(am);
    } else {
      alertmanagerSkipped =
        o.alertmanager === false ? 'not requested' : `not installed (${ALERTMANAGER_NAMES.join(' or ')}); alerts are evaluated but not routed. Install it with: ${OBSERVABILITY_INSTALL_HINT}`;
    }

    const prometheusPort = await pickPort(o.prometheusPort ?? DEFAULT_PROMETHEUS_PORT);
    const configFile = join(promDir, 'prometheus.yml');
    const config = prometheusConfig({ ports: o.ports, rulesFile: join(repoRoot, RULES_FILE), scrapeInterval: o.scrapeInterval, alertmanagerPort });
    // YAML is a superset of JSON: no YAML writer needed.
    await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`);
    const prom = spawnManaged(
      PROMETHEUS,
      prometheusBin,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(promDir, 'data')}`,
        '--storage.tsdb.retention.time=7d',
        `--web.listen-address=127.0.0.1:${prometheusPort}`,
      ],
      { cwd: repoRoot, env: process.env, logFile: join(logsDir, 'prometheus.log') },
    );
    children.push(prom);
    await waitReady(prom, `http://127.0.0.1:${prometheusPort}/-/ready`, READY_TIMEOUT_MS);
    watch(prom);

    const pids: Record<string, number> = {};
    for (const c of children) if (c.child.pid !== undefined) pids[c.name] = c.child.pid;
    return {
      prometheusUrl: `http://127.0.0.1:${prometheusPort}`,
      alertmanagerUrl: alertmanagerPort === undefined ? undefined : `http://127.0.0.1:${alertmanagerPort}`,
      alertmanagerSkipped,
      pids,
      logsDir,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The lines `ziggie up` prints under the stack summary. */
export function describeObservability(h: ObservabilityHandle, repoRoot = REPO_ROOT): string[] {
  const lines = [`  Prometheus      ${h.prometheusUrl}  (alerts: ${h.prometheusUrl}/alerts)`];
  if (h.alertmanagerUrl) lines.push(`  Alertmanager    ${h.alertmanagerUrl}`);
  else lines.push(`  Alertmanager    ${h.alertmanagerSkipped ?? 'not running'}`);
  lines.push(`  Dashboards      ${join(repoRoot, 'observability', 'dashboards', 'json')}  (import into Grafana with this Prometheus as the data source)`);
  return lines;
}
