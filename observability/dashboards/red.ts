/**
 * One RED dashboard per service (rate, errors, duration) for what it serves: its HTTP API, its
 * gRPC methods, the gRPC calls it makes, the steps it executes; then its process and the few
 * metrics only it has.
 */
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import {
  errorRatio,
  GRPC_ERRORS,
  GRPC_SERVED,
  HTTP_BUCKET,
  HTTP_COUNT,
  HTTP_ERRORS,
  NOT_PROBES,
  maxBy,
  quantile,
  sel,
  STEP_FAILURES,
  sumBy,
  sumRate,
} from '../promql';
import { TOPOLOGY, type Service } from '../services';
import { Board, IN_NAMESPACE, queryVariable, timeseriesPanel } from './common';

export const redUid = (service: Service) => `ziggie-red-${service}`;

const percentiles = (bucket: string, by: string[] = [], prefix = '') =>
  [0.5, 0.95, 0.99].map((q) => ({ expr: quantile(q, by, bucket), legend: `${prefix}p${q * 100}` }));

export function redDashboard(service: Service): dashboard.Dashboard {
  const shape = TOPOLOGY[service];
  const F = [`service="${service}"`, IN_NAMESPACE, 'instance=~"$instance"'];
  const board = new Board({
    uid: redUid(service),
    title: `Ziggie / ${shape.title} RED`,
    description: `Rate, errors and duration of what ${service} serves and calls, and its process.`,
    tags: ['red', service],
    variables: [queryVariable('instance', 'Instance', `label_values(up{service="${service}", ${IN_NAMESPACE}}, instance)`)],
  });

  if (shape.httpApi) {
    const all = sel(HTTP_COUNT, ...F, NOT_PROBES);
    board
      .row('HTTP API')
      .panel(timeseriesPanel({ title: 'Requests by route', description: 'HTTP requests per second by method and route template (probes and scrapes excluded).', unit: 'reqps', queries: [{ expr: sumRate(['method', 'route'], all), legend: '{{method}} {{route}}' }] }))
      .panel(
        timeseriesPanel({
          title: 'Error ratio by route',
          description: '5xx answers / requests; 4xx are the caller\'s and not counted.',
          unit: 'percentunit',
          critAt: 0.05,
          queries: [{ expr: errorRatio(['method', 'route'], sel(HTTP_COUNT, ...F, NOT_PROBES, HTTP_ERRORS), all), legend: '{{method}} {{route}}' }],
        }),
      )
      .panel(timeseriesPanel({ title: 'Duration', description: 'HTTP request duration percentiles, all routes.', unit: 's', queries: percentiles(sel(HTTP_BUCKET, ...F, NOT_PROBES)) }))
      .panel(timeseriesPanel({ title: 'Responses by status', description: 'HTTP answers per second by status code.', unit: 'reqps', span: 12, stack: true, queries: [{ expr: sumRate(['status'], all), legend: '{{status}}' }] }))
      .panel(timeseriesPanel({ title: 'p95 by route', description: '95th percentile duration per route.', unit: 's', span: 12, queries: [{ expr: quantile(0.95, ['method', 'route'], sel(HTTP_BUCKET, ...F, NOT_PROBES)), legend: '{{method}} {{route}}' }] }));
  }

  if (shape.grpcServer) {
    const all = sel(GRPC_SERVED, ...F);
    board
      .row('gRPC served')
      .panel(timeseriesPanel({ title: 'Calls by method', description: 'gRPC calls served per second, by method.', unit: 'reqps', queries: [{ expr: sumRate(['method'], all), legend: '{{method}}' }] }))
      .panel(
        timeseriesPanel({
          title: 'Error ratio by method',
          description: 'Calls ending in a server-side code (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS) / calls.',
          unit: 'percentunit',
          critAt: 0.05,
          queries: [{ expr: errorRatio(['method'], sel(GRPC_SERVED, ...F, GRPC_ERRORS), all), legend: '{{method}}' }],
        }),
      )
      .panel(timeseriesPanel({ title: 'Duration', description: 'gRPC call duration percentiles, all methods.', unit: 's', queries: percentiles(sel('ziggie_grpc_server_request_duration_seconds_bucket', ...F)) }))
      .panel(timeseriesPanel({ title: 'Calls by code', description: 'gRPC calls served per second by status code.', unit: 'reqps', span: 12, stack: true, queries: [{ expr: sumRate(['code'], all), legend: '{{code}}' }] }))
      .panel(timeseriesPanel({ title: 'p95 by method', description: '95th percentile duration per method.', unit: 's', span: 12, queries: [{ expr: quantile(0.95, ['method'], sel('ziggie_grpc_server_request_duration_seconds_bucket', ...F)), legend: '{{method}}' }] }));
  }

  if (shape.calls.length > 0) {
    const all = sel('ziggie_grpc_client_requests_total', ...F);
    board
      .row(`gRPC calls to ${shape.calls.join(', ')}`)
      .panel(timeseriesPanel({ title: 'Calls by peer and method', description: 'Outgoing gRPC calls per second.', unit: 'reqps', queries: [{ expr: sumRate(['target', 'method'], all), legend: '{{target}} {{method}}' }] }))
      .panel(
        timeseriesPanel({
          title: 'Error ratio by peer',
          description: 'Outgoing calls ending in a server-side code (UNAVAILABLE when the peer is down) / calls.',
          unit: 'percentunit',
          critAt: 0.05,
          queries: [{ expr: errorRatio(['target'], sel('ziggie_grpc_client_requests_total', ...F, GRPC_ERRORS), all), legend: '{{target}}' }],
        }),
      )
      .panel(timeseriesPanel({ title: 'p95 by peer', description: '95th percentile duration of outgoing calls, as the caller sees it.', unit: 's', queries: [{ expr: quantile(0.95, ['target'], sel('ziggie_grpc_client_request_duration_seconds_bucket', ...F)), legend: '{{target}}' }] }));
  }

  if (shape.steps) {
    const all = sel('ziggie_step_duration_seconds_count', ...F);
    board
      .row('Step executions')
      .panel(timeseriesPanel({ title: 'Steps by action and outcome', description: 'Steps executed per second.', unit: 'ops', queries: [{ expr: sumRate(['action', 'status'], all), legend: '{{action}} {{status}}' }] }))
      .panel(
        timeseriesPanel({
          title: 'Failure ratio by action',
          description: 'Steps not ending succeeded / steps.',
          unit: 'percentunit',
          critAt: 0.05,
          queries: [{ expr: errorRatio(['action'], sel('ziggie_step_duration_seconds_count', ...F, STEP_FAILURES), all), legend: '{{action}}' }],
        }),
      )
      .panel(timeseriesPanel({ title: 'p95 by action', description: '95th percentile step execution time.', unit: 's', queries: [{ expr: quantile(0.95, ['action'], sel('ziggie_step_duration_seconds_bucket', ...F)), legend: '{{action}}' }] }))
      .panel(timeseriesPanel({ title: 'Steps in flight', description: 'Steps held by the runtime, by action.', unit: 'short', span: 12, queries: [{ expr: sumBy(['action'], sel('ziggie_runtime_steps_in_flight', ...F)), legend: '{{action}}' }] }))
      .panel(timeseriesPanel({ title: 'Hosted agents', description: 'Agents the runtime hosts and beats for.', unit: 'short', span: 12, queries: [{ expr: sumBy(['instance'], sel('ziggie_runtime_hosted_agents', ...F)), legend: '{{instance}}' }] }));
  }

  const specific = SPECIFIC[service]?.(F);
  if (specific) {
    board.row(specific.title);
    for (const p of specific.panels) board.panel(p);
  }

  board
    .row('Process')
    .panel(timeseriesPanel({ title: 'CPU', description: 'CPU time per second (1 = one core).', unit: 'percentunit', queries: [{ expr: sumRate(['instance'], sel('ziggie_process_cpu_seconds_total', ...F)), legend: '{{instance}}' }] }))
    .panel(
      timeseriesPanel({
        title: 'Memory',
        description: 'Resident memory and V8 heap used.',
        unit: 'bytes',
        queries: [
          { expr: sumBy(['instance'], sel('ziggie_process_resident_memory_bytes', ...F)), legend: '{{instance}} resident' },
          { expr: sumBy(['instance'], sel('ziggie_nodejs_heap_size_used_bytes', ...F)), legend: '{{instance}} heap' },
        ],
      }),
    )
    .panel(timeseriesPanel({ title: 'Event loop lag p99', description: 'A busy event loop delays every request the process serves.', unit: 's', warnAt: 0.1, critAt: 0.5, queries: [{ expr: maxBy(['instance'], sel('ziggie_nodejs_eventloop_lag_p99_seconds', ...F)), legend: '{{instance}}' }] }));

  return board.build();
}

type Specific = (F: string[]) => { title: string; panels: ReturnType<typeof timeseriesPanel>[] };

/** What only one service measures. */
const SPECIFIC: Partial<Record<Service, Specific>> = {
  orchestrator: (F) => ({
    title: 'Tasks',
    panels: [
      timeseriesPanel({ title: 'Task duration', description: 'Submit to terminal state, percentiles over every terminal status.', unit: 's', span: 12, queries: percentiles(sel('ziggie_task_duration_seconds_bucket', ...F), []) }),
      timeseriesPanel({ title: 'Governance decisions', description: 'Policy decisions before dispatch per second, by effect.', unit: 'ops', span: 12, queries: [{ expr: sumRate(['effect'], sel('ziggie_policy_decisions_total', ...F)), legend: '{{effect}}' }] }),
    ],
  }),
  'agent-registry': (F) => ({
    title: 'Heartbeats',
    panels: [timeseriesPanel({ title: 'Heartbeats', description: 'Agent heartbeats received per second; unknown_agent means a runtime beats for an agent the registry does not have.', unit: 'ops', span: 24, queries: [{ expr: sumRate(['result'], sel('ziggie_agent_heartbeats_total', ...F)), legend: '{{result}}' }] })],
  }),
  'mcp-gateway': (F) => ({
    title: 'Upstream calls',
    panels: [timeseriesPanel({ title: 'Calls in flight', description: 'Tool calls waiting on each upstream server.', unit: 'short', span: 24, queries: [{ expr: sumBy(['server'], sel('ziggie_mcp_calls_in_flight', ...F)), legend: '{{server}}' }] })],
  }),
  'workspace-coord': (F) => ({
    title: 'Resource pools',
    panels: [
      timeseriesPanel({ title: 'Pool units in use', description: 'Units held by live leases, per pool.', unit: 'short', span: 12, queries: [{ expr: maxBy(['pool'], sel('ziggie_pool_units_in_use', ...F)), legend: '{{pool}}' }] }),
      timeseriesPanel({ title: 'Pool capacity', description: 'Units of each pool.', unit: 'short', span: 12, queries: [{ expr: maxBy(['pool'], sel('ziggie_pool_capacity_units', ...F)), legend: '{{pool}}' }] }),
    ],
  }),
};
