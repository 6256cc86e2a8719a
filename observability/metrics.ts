/**
 * Every Prometheus series Ziggie exposes or records, with its labels. Dashboards and rules may
 * only read names listed here (test/deploy checks each query), the list is checked against the
 * metrics the code registers, and docs/observability.md shows it (generated, see generate.ts).
 *
 * Every series scraped from a service also carries `service` (the registry's default label),
 * and the scrape adds `instance` and `job` (plus `namespace`, `pod`, ... in the cluster).
 */
import type { Service } from './services';

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'recorded' | 'synthetic';

export interface MetricSpec {
  name: string;
  type: MetricType;
  labels: readonly string[];
  /** The service that registers it, 'all' for the platform's own, 'prometheus' for scrape series, 'rules' for recorded ones. */
  source: Service | 'all' | 'prometheus' | 'rules';
  help: string;
}

export const METRICS: readonly MetricSpec[] = [
  // Platform (libs/platform), every service
  { name: 'ziggie_http_request_duration_seconds', type: 'histogram', labels: ['method', 'route', 'status'], source: 'all', help: 'HTTP request duration by route template and status code' },
  { name: 'ziggie_grpc_server_requests_total', type: 'counter', labels: ['method', 'code'], source: 'all', help: 'gRPC calls served, by method and status code name' },
  { name: 'ziggie_grpc_server_request_duration_seconds', type: 'histogram', labels: ['method'], source: 'all', help: 'gRPC call duration on the server, by method' },
  { name: 'ziggie_grpc_client_requests_total', type: 'counter', labels: ['target', 'method', 'code'], source: 'all', help: 'Outgoing gRPC calls by peer service (`target`), method and status code name; `service` is the caller' },
  { name: 'ziggie_grpc_client_request_duration_seconds', type: 'histogram', labels: ['target', 'method'], source: 'all', help: 'Outgoing gRPC call duration by peer service and method' },
  // gateway
  { name: 'ziggie_audit_write_failures_total', type: 'counter', labels: ['kind'], source: 'gateway', help: 'Audit records that could not be written (kind: pending, completion, denial)' },
  { name: 'ziggie_audit_retention_deleted_total', type: 'counter', labels: [], source: 'gateway', help: 'Audit records deleted by the 90-day retention job' },
  // orchestrator
  { name: 'ziggie_orchestrator_transitions_total', type: 'counter', labels: ['kind', 'status'], source: 'orchestrator', help: 'Task, wave, step and policy events written (kind: task, wave, step, policy; status: the new status)' },
  { name: 'ziggie_orchestrator_live_tasks', type: 'gauge', labels: ['status'], source: 'orchestrator', help: 'Tasks not yet finished, by status (queued, running); read from the database, so every replica reports the same' },
  { name: 'ziggie_orchestrator_live_waves', type: 'gauge', labels: ['state'], source: 'orchestrator', help: 'Waves of running tasks by state (completed, running, pending); wave progress = completed / all' },
  { name: 'ziggie_task_duration_seconds', type: 'histogram', labels: ['status'], source: 'orchestrator', help: 'Task submit to terminal state, by terminal status' },
  { name: 'ziggie_policy_decisions_total', type: 'counter', labels: ['effect'], source: 'orchestrator', help: 'Governance decisions before dispatch (allow, deny, require_approval)' },
  { name: 'ziggie_orchestrator_pool_lease_requests_total', type: 'counter', labels: ['outcome'], source: 'orchestrator', help: 'Pool lease requests to workspace-coord by outcome' },
  // agent-runtime
  { name: 'ziggie_step_duration_seconds', type: 'histogram', labels: ['action', 'status'], source: 'agent-runtime', help: 'Step execution time in the runtime, by action and outcome' },
  { name: 'ziggie_runtime_steps_in_flight', type: 'gauge', labels: ['action'], source: 'agent-runtime', help: 'Steps the runtime holds, by action' },
  { name: 'ziggie_runtime_hosted_agents', type: 'gauge', labels: [], source: 'agent-runtime', help: 'Agents the runtime hosts and sends heartbeats for' },
  // mcp-gateway
  { name: 'ziggie_mcp_calls_total', type: 'counter', labels: ['server', 'tool', 'outcome'], source: 'mcp-gateway', help: 'MCP tool calls by upstream server, namespaced tool and outcome (ok, tool_error, limited, invalid_arguments, or an error code in lower case)' },
  { name: 'ziggie_mcp_call_duration_seconds', type: 'histogram', labels: ['server', 'tool'], source: 'mcp-gateway', help: 'MCP tool call duration, upstream included' },
  { name: 'ziggie_mcp_calls_in_flight', type: 'gauge', labels: ['server'], source: 'mcp-gateway', help: 'MCP tool calls in flight by upstream server' },
  { name: 'ziggie_mcp_breaker_state', type: 'gauge', labels: ['server', 'replica'], source: 'mcp-gateway', help: 'Circuit breaker per upstream replica: 0 closed, 1 half-open, 2 open' },
  { name: 'ziggie_mcp_upstream_up', type: 'gauge', labels: ['server'], source: 'mcp-gateway', help: '1 while the upstream has a ready replica' },
  { name: 'ziggie_mcp_tools_quarantined', type: 'gauge', labels: [], source: 'mcp-gateway', help: 'Tools held back because their definition changed since it was pinned' },
  { name: 'ziggie_gpu_pool_replicas', type: 'gauge', labels: ['pool', 'state'], source: 'mcp-gateway', help: 'GPU inference pool replicas by state: desired (spec), ready, min and max bounds' },
  { name: 'ziggie_gpu_pool_queue_depth', type: 'gauge', labels: ['pool'], source: 'mcp-gateway', help: 'Tool calls waiting for a ready replica of the GPU pool (drives KEDA)' },
  { name: 'ziggie_gpu_pool_in_flight', type: 'gauge', labels: ['pool'], source: 'mcp-gateway', help: 'Tool calls running on the GPU pool' },
  { name: 'ziggie_gpu_pool_scale_events_total', type: 'counter', labels: ['pool', 'reason'], source: 'mcp-gateway', help: 'Scale requests Kubernetes accepted, by reason (demand, api)' },
  // agent-registry
  { name: 'ziggie_agents', type: 'gauge', labels: ['level', 'status'], source: 'agent-registry', help: 'Agents by level (0-3) and live status (idle, busy, offline), zeros included; every replica reports the whole fleet' },
  { name: 'ziggie_agent_heartbeats_total', type: 'counter', labels: ['result'], source: 'agent-registry', help: 'Agent heartbeats received (accepted, unknown_agent)' },
  // workspace-coord
  { name: 'ziggie_workspace_health', type: 'gauge', labels: ['workspace', 'status'], source: 'workspace-coord', help: 'Workspace health: 1 for the current status (on-track, at-risk, blocked), 0 for the others' },
  { name: 'ziggie_pool_capacity_units', type: 'gauge', labels: ['pool'], source: 'workspace-coord', help: 'Units of each shared resource pool' },
  { name: 'ziggie_pool_units_in_use', type: 'gauge', labels: ['pool'], source: 'workspace-coord', help: 'Units of each shared resource pool held by live leases' },
  { name: 'ziggie_resource_lease_requests_total', type: 'counter', labels: ['result'], source: 'workspace-coord', help: 'Resource lease requests by result (granted or an error code)' },
  { name: 'ziggie_port_allocations_total', type: 'counter', labels: ['result'], source: 'workspace-coord', help: 'Port allocation requests by result' },
  // prom-client default metrics (prefix ziggie_), every service; only those the dashboards read are listed
  { name: 'ziggie_process_cpu_seconds_total', type: 'counter', labels: [], source: 'all', help: 'CPU time, user and system (prom-client default metrics: ziggie_process_*, ziggie_nodejs_*)' },
  { name: 'ziggie_process_resident_memory_bytes', type: 'gauge', labels: [], source: 'all', help: 'Resident memory' },
  { name: 'ziggie_process_start_time_seconds', type: 'gauge', labels: [], source: 'all', help: 'Process start time' },
  { name: 'ziggie_nodejs_eventloop_lag_p99_seconds', type: 'gauge', labels: [], source: 'all', help: 'Event loop delay, 99th percentile' },
  { name: 'ziggie_nodejs_heap_size_used_bytes', type: 'gauge', labels: [], source: 'all', help: 'V8 heap used' },
  // Scrape series
  { name: 'up', type: 'synthetic', labels: ['service', 'instance', 'job'], source: 'prometheus', help: '1 when the last scrape of the target succeeded' },
  // Recording rules (observability/rules.ts)
  { name: 'namespace:ziggie_agent_utilization:ratio', type: 'recorded', labels: ['namespace'], source: 'rules', help: 'Busy / live (busy + idle) agents' },
  { name: 'namespace_level:ziggie_agent_utilization:ratio', type: 'recorded', labels: ['namespace', 'level'], source: 'rules', help: 'Busy / live agents per level' },
  { name: 'namespace_service:ziggie_requests:rate5m', type: 'recorded', labels: ['namespace', 'service'], source: 'rules', help: 'API requests per second (HTTP without probes, plus gRPC served)' },
  { name: 'namespace_service:ziggie_request_errors:rate5m', type: 'recorded', labels: ['namespace', 'service'], source: 'rules', help: 'Failed API requests per second (HTTP 5xx, gRPC server-side codes)' },
  { name: 'namespace_service:ziggie_request_error_ratio:rate5m', type: 'recorded', labels: ['namespace', 'service'], source: 'rules', help: 'Failed / all API requests (0 while nothing fails)' },
  { name: 'namespace_server_tool:ziggie_mcp_call_duration_seconds:p95_rate5m', type: 'recorded', labels: ['namespace', 'server', 'tool'], source: 'rules', help: '95th percentile MCP tool call duration over 5 minutes' },
];

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'];

/** The inventory entry a series name belongs to (histogram series map to their histogram). */
export function findMetric(series: string): MetricSpec | undefined {
  const exact = METRICS.find((m) => m.name === series);
  if (exact) return exact;
  for (const suffix of HISTOGRAM_SUFFIXES) {
    if (!series.endsWith(suffix)) continue;
    const base = METRICS.find((m) => m.name === series.slice(0, -suffix.length));
    if (base?.type === 'histogram') return base;
  }
  return undefined;
}
