/**
 * The Prometheus rule file: recording rules the dashboards and alerts share, and the alerts of
 * DESIGN §10 plus the ones an operator needs to trust the rest (targets down or missing,
 * breakers, upstreams, GPU pools, audit). Generated into prometheus/rules/ziggie.rules.yaml.
 *
 * Each group records first and alerts after: rules of a group run in order, so an alert reads
 * the recording of the same evaluation. Aggregations keep `namespace` (absent locally) so one
 * Prometheus can watch several releases; `max` over replicas where every replica reports the
 * same fleet-wide value.
 */
import { ALL_SERVICES, apiErrors, apiRequests, maxBy, sel, sumBy } from './promql';
import { SERVICES, type Service } from './services';

export const RULES_FILE = 'observability/prometheus/rules/ziggie.rules.yaml';
/** Runbooks live in the repository; the URL is relative to its root. */
export const RUNBOOK_DIR = 'docs/runbooks';

export interface RecordingRule {
  record: string;
  expr: string;
}

export interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  severity: 'critical' | 'warning';
  /** Set when the expression's result does not carry `service`: every alert names the service to look at. */
  service?: Service;
  summary: string;
  description: string;
}

export interface RuleGroup {
  name: string;
  rules: Array<RecordingRule | AlertRule>;
}

const ns = ['namespace'];
const agents = (status: string) => sumBy(ns, maxBy(['namespace', 'level', 'status'], sel('ziggie_agents', status)));
const agentsByLevel = (status: string) => sumBy(['namespace', 'level'], maxBy(['namespace', 'level', 'status'], sel('ziggie_agents', status)));

export const GROUPS: RuleGroup[] = [
  {
    name: 'ziggie.agents',
    rules: [
      {
        record: 'namespace:ziggie_agent_utilization:ratio',
        expr: `${agents('status="busy"')}\n/\nclamp_min(${agents('status=~"busy|idle"')}, 1)`,
      },
      {
        record: 'namespace_level:ziggie_agent_utilization:ratio',
        expr: `${agentsByLevel('status="busy"')}\n/\nclamp_min(${agentsByLevel('status=~"busy|idle"')}, 1)`,
      },
      {
        alert: 'ZiggieAgentUtilizationHigh',
        expr: 'namespace:ziggie_agent_utilization:ratio > 0.9',
        for: '10m',
        severity: 'critical',
        service: 'agent-registry',
        summary: 'Agent utilization is {{ $value | humanizePercentage }}',
        description:
          'More than 90% of the live agents{{ with $labels.namespace }} in {{ . }}{{ end }} have been busy for 10 minutes: new steps wait for an agent. Add agent-runtime capacity or lower the load.',
      },
    ],
  },
  {
    name: 'ziggie.mcp',
    rules: [
      {
        record: 'namespace_server_tool:ziggie_mcp_call_duration_seconds:p95_rate5m',
        expr: `histogram_quantile(0.95, ${sumBy(['namespace', 'server', 'tool', 'le'], 'rate(ziggie_mcp_call_duration_seconds_bucket[5m])')})`,
      },
      {
        alert: 'ZiggieMcpLatencyHigh',
        expr: 'namespace_server_tool:ziggie_mcp_call_duration_seconds:p95_rate5m > 0.2',
        for: '10m',
        severity: 'warning',
        service: 'mcp-gateway',
        summary: 'MCP tool {{ $labels.tool }} p95 is {{ $value | humanizeDuration }}',
        description:
          'The 95th percentile duration of calls to {{ $labels.tool }} (upstream {{ $labels.server }}) has been above 200 ms for 10 minutes.',
      },
      {
        alert: 'ZiggieMcpBreakerOpen',
        expr: `${maxBy(['namespace', 'server', 'replica'], 'ziggie_mcp_breaker_state')} > 0`,
        for: '5m',
        severity: 'warning',
        service: 'mcp-gateway',
        summary: 'Circuit breaker of {{ $labels.server }} replica {{ $labels.replica }} is not closed',
        description:
          'The breaker of MCP upstream {{ $labels.server }} replica {{ $labels.replica }} has been open or half-open for 5 minutes: calls routed to it fail with UPSTREAM_CIRCUIT_OPEN or go to other replicas.',
      },
      {
        alert: 'ZiggieMcpUpstreamDown',
        expr: `${maxBy(['namespace', 'server'], 'ziggie_mcp_upstream_up')} == 0`,
        for: '5m',
        severity: 'warning',
        service: 'mcp-gateway',
        summary: 'MCP upstream {{ $labels.server }} has no ready replica',
        description: 'Every call to a tool of {{ $labels.server }} fails, and its tools may have left the catalog. It has had no ready replica for 5 minutes.',
      },
    ],
  },
  {
    name: 'ziggie.workspaces',
    rules: [
      {
        alert: 'ZiggieWorkspaceBlocked',
        expr: `${maxBy(['namespace', 'workspace'], sel('ziggie_workspace_health', 'status="blocked"'))} == 1`,
        for: '5m',
        severity: 'warning',
        service: 'workspace-coord',
        summary: 'Workspace {{ $labels.workspace }} is blocked',
        description: 'Workspace {{ $labels.workspace }} has been blocked for 5 minutes; GET /v1/workspaces/{{ $labels.workspace }}/health gives the reasons.',
      },
    ],
  },
  {
    name: 'ziggie.services',
    rules: [
      {
        record: 'namespace_service:ziggie_requests:rate5m',
        expr: sumBy(['namespace', 'service'], apiRequests('5m')),
      },
      {
        record: 'namespace_service:ziggie_request_errors:rate5m',
        expr: sumBy(['namespace', 'service'], apiErrors('5m')),
      },
      {
        record: 'namespace_service:ziggie_request_error_ratio:rate5m',
        expr: '(namespace_service:ziggie_request_errors:rate5m / namespace_service:ziggie_requests:rate5m)\nor\n(0 * namespace_service:ziggie_requests:rate5m)',
      },
      {
        alert: 'ZiggieHighErrorRate',
        expr: 'namespace_service:ziggie_request_error_ratio:rate5m > 0.05',
        for: '5m',
        severity: 'critical',
        summary: '{{ $labels.service }} fails {{ $value | humanizePercentage }} of its requests',
        description:
          'More than 5% of the API requests of {{ $labels.service }} (HTTP 5xx, gRPC server-side codes) have failed for 5 minutes. Roll back a recent deployment first, then diagnose.',
      },
      {
        alert: 'ZiggieServiceDown',
        expr: `${sumBy(['namespace', 'service'], sel('up', ALL_SERVICES))} == 0`,
        for: '2m',
        severity: 'critical',
        summary: 'Every {{ $labels.service }} target is down',
        description: 'Prometheus has not been able to scrape any instance of {{ $labels.service }} for 2 minutes.',
      },
      {
        alert: 'ZiggieTargetDown',
        expr: `${sel('up', ALL_SERVICES)} == 0`,
        for: '5m',
        severity: 'warning',
        summary: '{{ $labels.service }} target {{ $labels.instance }} is down',
        description: 'Prometheus has not been able to scrape {{ $labels.instance }} of {{ $labels.service }} for 5 minutes; the other instances carry its load.',
      },
      {
        alert: 'ZiggieServiceTargetMissing',
        expr: SERVICES.map((s) => `absent(up{service="${s}"})`).join('\nor\n'),
        for: '5m',
        severity: 'critical',
        summary: 'Prometheus has no {{ $labels.service }} target',
        description:
          'No scrape target of {{ $labels.service }} has existed for 5 minutes: the service is not deployed, or the scrape configuration (ServiceMonitor, local config) no longer finds it.',
      },
    ],
  },
  {
    name: 'ziggie.gpu',
    rules: [
      {
        alert: 'ZiggieGpuPoolStalled',
        expr: `${maxBy(['namespace', 'pool'], 'ziggie_gpu_pool_queue_depth')} > 0\nand on (namespace, pool)\n${maxBy(['namespace', 'pool'], sel('ziggie_gpu_pool_replicas', 'state="ready"'))} == 0`,
        for: '10m',
        severity: 'critical',
        service: 'mcp-gateway',
        summary: 'GPU pool {{ $labels.pool }} has queued requests and no ready replica',
        description: 'Requests have been waiting for GPU pool {{ $labels.pool }} for 10 minutes while it has no ready replica: scale-up is not happening or replicas cannot start.',
      },
    ],
  },
  {
    name: 'ziggie.audit',
    rules: [
      {
        alert: 'ZiggieAuditWriteFailures',
        // The second arm catches the first failure of a process: a counter that appears at 1 has no increase yet.
        expr: `${sumBy(['namespace', 'service'], 'increase(ziggie_audit_write_failures_total[5m])')} > 0\nor\n${sumBy(['namespace', 'service'], 'ziggie_audit_write_failures_total unless ziggie_audit_write_failures_total offset 5m')} > 0`,
        for: '1m',
        severity: 'critical',
        summary: '{{ $labels.service }} cannot write audit records',
        description:
          'Audit records failed to be written in the last 5 minutes. Mutating calls are refused with AUDIT_UNAVAILABLE while the pending record cannot be written, and completions or denials may be missing from the log.',
      },
    ],
  },
];

export function isAlert(rule: RecordingRule | AlertRule): rule is AlertRule {
  return 'alert' in rule;
}

export function alerts(): AlertRule[] {
  return GROUPS.flatMap((g) => g.rules.filter(isAlert));
}

/** The rule file as Prometheus reads it. */
export function ruleFile(): { groups: Array<{ name: string; rules: Array<Record<string, unknown>> }> } {
  return {
    groups: GROUPS.map((g) => ({
      name: g.name,
      rules: g.rules.map((r) =>
        isAlert(r)
          ? {
              alert: r.alert,
              expr: r.expr,
              for: r.for,
              labels: { severity: r.severity, ...(r.service ? { service: r.service } : {}) },
              annotations: { summary: r.summary, description: r.description, runbook_url: `${RUNBOOK_DIR}/${r.alert}.md` },
            }
          : { record: r.record, expr: r.expr },
      ),
    })),
  };
}
