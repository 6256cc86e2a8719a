/**
 * The Master Command Center (DESIGN §10): agents, MCP tools, workspaces, tasks and waves, GPU
 * pools, and the services with their dependency graph, on one screen.
 */
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import {
  ALL_SERVICES,
  apiErrors,
  apiRequests,
  GRPC_ERRORS,
  HTTP_BUCKET,
  MCP_FAILURES,
  NOT_PROBES,
  maxBy,
  quantile,
  rate,
  sel,
  sumBy,
  sumRate,
} from '../promql';
import { Board, gaugePanel, IN_NAMESPACE as N, stateMappings, statPanel, tablePanel, timeseriesPanel } from './common';

export const MASTER_UID = 'ziggie-master';

const RI = '$__rate_interval';
/** Every registry replica reports the whole fleet: one value per namespace, level and status. */
const agents = (status: string, by: string[]) => sumBy(by, maxBy(['namespace', 'level', 'status'], sel('ziggie_agents', status, N)));
const waves = (state?: string) => maxBy(['namespace', 'state'], sel('ziggie_orchestrator_live_waves', state, N));
const mcpCalls = sel('ziggie_mcp_calls_total', N);
const mcpBucket = sel('ziggie_mcp_call_duration_seconds_bucket', N);
const grpcClient = sel('ziggie_grpc_client_requests_total', N);
/** MCP upstreams as callees of mcp-gateway, next to the gRPC peers. */
const mcpEdges = (selector: string) => `label_replace(${rate(selector, RI)}, "target", "mcp:$1", "server", "(.*)")`;

export function masterDashboard(): dashboard.Dashboard {
  const board = new Board({
    uid: MASTER_UID,
    title: 'Ziggie / Master Command Center',
    description: 'Agents, MCP tools, workspaces, tasks and waves, GPU pools and the service dependency graph of Ziggie Command Center.',
    tags: ['overview'],
  });

  board
    .row('Agents')
    .panel(
      statPanel({
        title: 'Active agents',
        description: 'Agents whose runtime reports them busy.',
        unit: 'short',
        span: 4,
        height: 5,
        queries: [{ expr: agents('status="busy"', []), legend: 'busy' }],
      }),
    )
    .panel(
      statPanel({
        title: 'Idle agents',
        description: 'Live agents with nothing to do (never heard from counts as idle).',
        unit: 'short',
        span: 4,
        height: 5,
        queries: [{ expr: agents('status="idle"', []), legend: 'idle' }],
      }),
    )
    .panel(
      statPanel({
        title: 'Offline agents',
        description: 'Agents whose runtimes stopped sending heartbeats.',
        unit: 'short',
        span: 4,
        height: 5,
        warnAt: 1,
        queries: [{ expr: agents('status="offline"', []), legend: 'offline' }],
      }),
    )
    .panel(
      gaugePanel({
        title: 'Agent utilization',
        description: 'Busy / live (busy + idle) agents, the series ZiggieAgentUtilizationHigh alerts on above 90%.',
        unit: 'percentunit',
        span: 4,
        height: 5,
        min: 0,
        max: 1,
        warnAt: 0.75,
        critAt: 0.9,
        queries: [{ expr: `max(${sel('namespace:ziggie_agent_utilization:ratio', N)})`, legend: 'utilization' }],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'Agents by level and status',
        description: 'Active (busy), idle and offline agents per hierarchy level (L0 coordinator to L3).',
        unit: 'short',
        span: 8,
        height: 5,
        stack: true,
        queries: [{ expr: agents('', ['level', 'status']), legend: 'L{{level}} {{status}}' }],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'Utilization by level',
        description: 'Busy / live agents per level.',
        unit: 'percentunit',
        span: 24,
        height: 6,
        min: 0,
        max: 1,
        critAt: 0.9,
        queries: [{ expr: maxBy(['level'], sel('namespace_level:ziggie_agent_utilization:ratio', N)), legend: 'L{{level}}' }],
      }),
    );

  board
    .row('MCP tools')
    .panel(
      statPanel({
        title: 'MCP calls per minute',
        description: 'Tool calls through the MCP gateway, every upstream and outcome.',
        unit: 'cpm',
        span: 6,
        height: 5,
        queries: [{ expr: `${sumRate([], mcpCalls)} * 60`, legend: 'calls/min' }],
      }),
    )
    .panel(
      statPanel({
        title: 'MCP p95',
        description: '95th percentile duration of all tool calls, upstream included.',
        unit: 's',
        span: 6,
        height: 5,
        warnAt: 0.1,
        critAt: 0.2,
        queries: [{ expr: quantile(0.95, [], mcpBucket), legend: 'p95' }],
      }),
    )
    .panel(
      statPanel({
        title: 'Upstreams',
        description: 'Whether each upstream MCP server has a ready replica.',
        unit: 'none',
        span: 6,
        height: 5,
        mappings: stateMappings({ '0': { text: 'down', color: 'red' }, '1': { text: 'ready', color: 'green' } }),
        queries: [{ expr: maxBy(['server'], sel('ziggie_mcp_upstream_up', N)), legend: '{{server}}' }],
      }),
    )
    .panel(
      statPanel({
        title: 'Quarantined tools',
        description: 'Tools held back because their definition changed since it was pinned; approve or reject them under /v1/mcp/pins.',
        unit: 'short',
        span: 6,
        height: 5,
        warnAt: 1,
        queries: [{ expr: `max(${sel('ziggie_mcp_tools_quarantined', N)})`, legend: 'quarantined' }],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'MCP calls per minute by tool',
        description: 'Tool calls per minute, by namespaced tool.',
        unit: 'cpm',
        queries: [{ expr: `${sumRate(['tool'], mcpCalls)} * 60`, legend: '{{tool}}' }],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'MCP p95 by tool',
        description: '95th percentile call duration per tool; ZiggieMcpLatencyHigh fires above 200 ms (dashed).',
        unit: 's',
        critAt: 0.2,
        queries: [{ expr: quantile(0.95, ['tool'], mcpBucket), legend: '{{tool}}' }],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'MCP calls per minute by outcome',
        description: 'ok, tool_error (the tool answered with an error), limited, invalid_arguments, or the error code of a failed call.',
        unit: 'cpm',
        stack: true,
        queries: [{ expr: `${sumRate(['outcome'], mcpCalls)} * 60`, legend: '{{outcome}}' }],
      }),
    )
    .panel(
      statPanel({
        title: 'Circuit breakers',
        description: 'Breaker state per upstream replica; ZiggieMcpBreakerOpen fires when one stays open or half-open for 5 minutes.',
        unit: 'none',
        span: 24,
        height: 5,
        mappings: stateMappings({ '0': { text: 'closed', color: 'green' }, '1': { text: 'half-open', color: 'orange' }, '2': { text: 'open', color: 'red' } }),
        queries: [{ expr: maxBy(['server', 'replica'], sel('ziggie_mcp_breaker_state', N)), legend: '{{server}} / {{replica}}' }],
      }),
    );

  board
    .row('Workspaces')
    .panel(
      statPanel({
        title: 'Workspaces by health',
        description: 'How many workspaces are on track, at risk or blocked.',
        unit: 'short',
        span: 8,
        height: 6,
        queries: [{ expr: sumBy(['status'], maxBy(['namespace', 'workspace', 'status'], sel('ziggie_workspace_health', N))), legend: '{{status}}' }],
      }),
    )
    .panel(
      tablePanel({
        title: 'Workspace health',
        description: 'The current health of each workspace; GET /v1/workspaces/{id}/health gives the reasons.',
        unit: 'none',
        span: 16,
        height: 6,
        hideValue: true,
        columns: { workspace: 'Workspace', status: 'Health' },
        mappings: stateMappings({ 'on-track': { text: 'on track', color: 'green' }, 'at-risk': { text: 'at risk', color: 'orange' }, blocked: { text: 'blocked', color: 'red' } }),
        queries: [{ expr: `${maxBy(['workspace', 'status'], sel('ziggie_workspace_health', N))} == 1` }],
      }),
    );

  const taskTransitions = (status: string) => sel('ziggie_orchestrator_transitions_total', 'kind="task"', status, N);
  board
    .row('Tasks and waves')
    .panel(
      statPanel({
        title: 'Tasks completed (last hour)',
        description: 'Tasks that reached succeeded in the last hour.',
        unit: 'short',
        span: 6,
        height: 6,
        queries: [{ expr: `sum(increase(${taskTransitions('status="succeeded"')}[1h]))`, legend: 'completed' }],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'Tasks finished per hour',
        description: 'Tasks reaching a terminal status, as an hourly rate.',
        unit: 'suffix: tasks/h',
        span: 6,
        height: 6,
        queries: [{ expr: `${sumRate(['status'], taskTransitions('status=~"succeeded|failed|cancelled"'))} * 3600`, legend: '{{status}}' }],
      }),
    )
    .panel(
      gaugePanel({
        title: 'Wave progress',
        description: 'Completed / all waves of the running tasks (0 when none runs).',
        unit: 'percentunit',
        span: 4,
        height: 6,
        min: 0,
        max: 1,
        queries: [{ expr: `sum(${waves('state="completed"')})\n/\nclamp_min(sum(${waves()}), 1)`, legend: 'progress' }],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'Waves of running tasks',
        description: 'Completed, running and pending waves of the tasks that are running now.',
        unit: 'short',
        span: 8,
        height: 6,
        stack: true,
        queries: [{ expr: sumBy(['state'], waves()), legend: '{{state}}' }],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'Live tasks',
        description: 'Tasks queued (incl. delayed starts) and running.',
        unit: 'short',
        span: 12,
        height: 6,
        queries: [{ expr: sumBy(['status'], maxBy(['namespace', 'status'], sel('ziggie_orchestrator_live_tasks', N))), legend: '{{status}}' }],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'Waves started and finished per minute',
        description: 'Wave transitions: running = started, succeeded, failed.',
        unit: 'cpm',
        span: 12,
        height: 6,
        queries: [{ expr: `${sumRate(['status'], sel('ziggie_orchestrator_transitions_total', 'kind="wave"', N))} * 60`, legend: '{{status}}' }],
      }),
    );

  board
    .row('GPU pools and shared resources')
    .panel(
      timeseriesPanel({
        title: 'GPU pool replicas',
        description: 'Desired, ready, min and max replicas of each GPU inference pool.',
        unit: 'short',
        queries: [{ expr: maxBy(['pool', 'state'], sel('ziggie_gpu_pool_replicas', N)), legend: '{{pool}} {{state}}' }],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'GPU pool queue depth',
        description: 'Requests waiting for a replica of each pool; ZiggieGpuPoolStalled fires when some wait with no ready replica.',
        unit: 'short',
        queries: [{ expr: maxBy(['pool'], sel('ziggie_gpu_pool_queue_depth', N)), legend: '{{pool}}' }],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'Shared resource pools in use',
        description: 'Units held by live leases / capacity, per workspace-coord resource pool (GPU, ComfyUI).',
        unit: 'percentunit',
        min: 0,
        max: 1,
        queries: [
          {
            expr: `${maxBy(['pool'], sel('ziggie_pool_units_in_use', N))}\n/\nclamp_min(${maxBy(['pool'], sel('ziggie_pool_capacity_units', N))}, 1)`,
            legend: '{{pool}}',
          },
        ],
      }),
    );

  const edges = (s: string, m: string) => `${sumBy(['service', 'target'], rate(s, RI))}\nor\n${sumBy(['service', 'target'], mcpEdges(m))}`;
  board
    .row('Services')
    .panel(
      tablePanel({
        title: 'Service dependencies',
        description:
          'Caller → callee edges with calls per second and the failed share: gRPC calls between services (client side, UNAVAILABLE and other server-side codes count as failed) and MCP calls from mcp-gateway to each upstream ("mcp:<server>").',
        unit: 'reqps',
        span: 12,
        height: 9,
        columns: { service: 'Caller', target: 'Callee', 'Value #A': 'Calls/s', 'Value #B': 'Failed' },
        queries: [
          { expr: edges(grpcClient, mcpCalls) },
          {
            expr: `(${edges(sel('ziggie_grpc_client_requests_total', GRPC_ERRORS, N), sel('ziggie_mcp_calls_total', MCP_FAILURES, N))})\n/\n(${edges(grpcClient, mcpCalls)})\nor\n0 * (${edges(grpcClient, mcpCalls)})`,
          },
        ],
      }).overrideByName('Failed', [{ id: 'unit', value: 'percentunit' }]),
    )
    .panel(
      statPanel({
        title: 'Targets up',
        description: 'Scrape targets answering per service; ZiggieServiceDown fires when a service has none for 2 minutes.',
        unit: 'short',
        span: 12,
        height: 9,
        mappings: stateMappings({ '0': { text: 'down', color: 'red' } }),
        queries: [{ expr: sumBy(['service'], sel('up', ALL_SERVICES, N)), legend: '{{service}}' }],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'API requests per second by service',
        description: 'HTTP API requests (probes and scrapes excluded) and gRPC calls served.',
        unit: 'reqps',
        queries: [{ expr: sumBy(['service'], apiRequests(RI, N)), legend: '{{service}}' }],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'API error ratio by service',
        description: 'HTTP 5xx and server-side gRPC codes / all API requests; ZiggieHighErrorRate fires above 5% (dashed).',
        unit: 'percentunit',
        critAt: 0.05,
        queries: [
          {
            expr: `(${sumBy(['service'], apiErrors(RI, N))} / ${sumBy(['service'], apiRequests(RI, N))})\nor\n0 * ${sumBy(['service'], apiRequests(RI, N))}`,
            legend: '{{service}}',
          },
        ],
      }),
    )
    .panel(
      timeseriesPanel({
        title: 'API p95 by service',
        description: '95th percentile duration of HTTP API requests and of gRPC calls served.',
        unit: 's',
        queries: [
          { expr: quantile(0.95, ['service'], sel(HTTP_BUCKET, NOT_PROBES, N)), legend: '{{service}} HTTP' },
          { expr: quantile(0.95, ['service'], sel('ziggie_grpc_server_request_duration_seconds_bucket', N)), legend: '{{service}} gRPC' },
        ],
      }),
    );
  return board.build();
}
