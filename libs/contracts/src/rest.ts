import { z } from 'zod';
import type { PayloadOf, Subject } from './subjects';

/**
 * Response shapes of the public REST API that the gateway builds itself (the others are the gRPC
 * messages of `pb` as JSON). The gateway returns them, the CLI and the console read them.
 */

/** A step's or an attempt's error. */
export interface StepErrorView {
  code: string;
  message: string;
}

export interface AttemptView {
  number: number;
  agentId: string | null;
  status: string;
  error: StepErrorView | null;
  dispatchedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface StepView {
  id: string;
  capability: string | null;
  action: string;
  workspace: string;
  status: string;
  agentId: string | null;
  attempt: number;
  wave: number;
  dependsOn: string[];
  input: Record<string, unknown>;
  output: Record<string, unknown> | null;
  error: StepErrorView | null;
  dispatchedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  retries: number;
  timeoutMs: number;
  pool: string | null;
  gpu: boolean;
  waitingReason: string | null;
  approvedBy: string | null;
  childTaskId: string | null;
  attempts: AttemptView[];
}

export interface WaveView {
  index: number;
  status: string;
  steps: StepView[];
}

/** A task as listed: everything but its waves. */
export interface TaskSummaryView {
  id: string;
  title: string;
  workspace: string;
  priority: string;
  status: string;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  correlationId: string;
  output: Record<string, unknown> | null;
  notBefore: string | null;
  blueprint: string | null;
  parentTaskId: string | null;
  parentStepId: string | null;
  depth: number;
  currentWave: number;
  waveCount: number;
  failedStepId: string | null;
}

/** A task with its waves, steps and attempts. */
export interface TaskView extends TaskSummaryView {
  waves: WaveView[];
}

/** Every list: one page, the total, and the cursor of the next page when there is one. */
export interface PageView<T> {
  items: T[];
  total: number;
  nextCursor?: string;
}

/** RFC 9457 problem details as the API answers them, with the stable `code`. */
export interface ProblemView {
  type?: string;
  title: string;
  status: number;
  detail?: string;
  code: string;
  correlationId?: string;
  errors?: Array<{ path: string; message: string }>;
  [extra: string]: unknown;
}

/** The events of GET /v1/events, by SSE event name. */
export interface LiveEventMap {
  ready: { at: string };
  task: PayloadOf<Subject.TaskEvent>;
  workspace: PayloadOf<Subject.WorkspaceHealth>;
}

const AgentStatusCounts = z.object({ idle: z.number().int(), busy: z.number().int(), offline: z.number().int() });

// MCP tool call figures: GET /v1/mcp/stats, and their summary in GET /v1/overview.
/** Calls over a window, merged over every mcp-gateway replica (mcp_gateway.proto ToolStatsWindow). */
export const McpWindowFigures = z.object({
  minutes: z.number().int().describe('Length of the window; the current minute counts for the part of it that has passed'),
  calls: z.number().int().min(0).describe('Calls that reached the upstream (refusals for limits or arguments are not counted)'),
  errors: z.number().int().min(0).describe('Calls that failed or whose result was an error (isError)'),
  callsPerMinute: z.number().min(0),
  errorsPerMinute: z.number().min(0),
  p50Ms: z.number().nullable().describe('Estimated from the latency histogram buckets (as histogram_quantile); null without calls'),
  p95Ms: z.number().nullable(),
});
export type McpWindowFigures = z.infer<typeof McpWindowFigures>;

export const McpToolStatsView = z.object({ tool: z.string().describe('Namespaced server.tool'), server: z.string(), last5m: McpWindowFigures, last60m: McpWindowFigures });
export type McpToolStatsView = z.infer<typeof McpToolStatsView>;

/** GET /v1/mcp/stats: per tool over the last 5 and 60 minutes, in the token's workspaces. */
export const McpStatsResponse = z.object({
  items: z.array(McpToolStatsView).describe('Tools called in the last 60 minutes, most called first'),
  total5m: McpWindowFigures,
  total60m: McpWindowFigures,
  replicas: z.number().int().describe('mcp-gateway replicas whose windows were merged'),
  bucketBoundsMs: z.array(z.number()).describe('Upper bounds of the latency buckets (ms); a p95 beyond the last is reported as the last'),
  at: z.string(),
});
export type McpStatsView = z.infer<typeof McpStatsResponse>;

/** The MCP part of the overview. */
export const OverviewMcp = z.object({
  callsPerMinute: z.number().describe('Over the last 5 minutes'),
  errorsPerMinute: z.number(),
  callsLastHour: z.number().int(),
  p95Ms: z.number().nullable().describe('Every tool together, over the last 5 minutes'),
  topTools: z
    .array(z.object({ tool: z.string(), server: z.string(), callsPerMinute: z.number(), calls: z.number().int(), errors: z.number().int(), p95Ms: z.number().nullable() }))
    .describe('The most called tools of the last 60 minutes (at most 5), with their figures over those 60 minutes'),
});
export type OverviewMcpView = z.infer<typeof OverviewMcp>;

// Resources and prompts: GET /v1/mcp/resources, GET /v1/mcp/resources/read, GET /v1/mcp/prompts, POST /v1/mcp/prompts/{name}/get.
export const McpResourceView = z.object({ uri: z.string(), server: z.string(), name: z.string(), title: z.string(), description: z.string(), mimeType: z.string() });
export const McpResourceTemplateView = z.object({ uriTemplate: z.string().describe('RFC 6570 URI template'), server: z.string(), name: z.string(), title: z.string(), description: z.string(), mimeType: z.string() });
export const McpResourceList = z.object({
  items: z.array(McpResourceView),
  total: z.number().int(),
  nextCursor: z.string().optional(),
  templates: z.array(McpResourceTemplateView).describe('URI templates a resource may also be read through (not paged)'),
});
export type McpResourceListView = z.infer<typeof McpResourceList>;
export type McpResourceView = z.infer<typeof McpResourceView>;

const McpResourceContents = z.object({ uri: z.string(), mimeType: z.string().optional(), text: z.string().optional(), blob: z.string().optional().describe('base64') }).loose();
export const McpResourceRead = z.object({ contents: z.array(McpResourceContents).describe('The MCP ReadResourceResult contents') }).loose();
export type McpResourceReadView = z.infer<typeof McpResourceRead>;

export const McpPromptView = z.object({
  name: z.string().describe('Namespaced server.prompt'),
  server: z.string(),
  title: z.string(),
  description: z.string(),
  arguments: z.array(z.object({ name: z.string(), title: z.string(), description: z.string(), required: z.boolean() })),
});
export type McpPromptView = z.infer<typeof McpPromptView>;
export const McpPromptList = z.object({ items: z.array(McpPromptView), total: z.number().int(), nextCursor: z.string().optional() });

export const McpPromptResult = z
  .object({
    description: z.string().optional(),
    messages: z.array(z.object({ role: z.enum(['user', 'assistant']), content: z.record(z.string(), z.unknown()).describe('text, image, audio, resource link or embedded resource') }).loose()),
  })
  .loose()
  .describe('The MCP GetPromptResult');
export type McpPromptResultView = z.infer<typeof McpPromptResult>;

/** GET /v1/overview: the command center at a glance, for the token's workspaces. */
export const OverviewResponse = z.object({
  agents: z.object({
    total: z.number().int(),
    byLevel: z.array(AgentStatusCounts.extend({ level: z.number().int() })).describe('Agents per level (0 to 3) by live status'),
  }),
  tasks: z.object({
    queued: z.number().int(),
    running: z.number().int(),
    succeeded: z.number().int(),
    failed: z.number().int(),
    cancelled: z.number().int(),
  }),
  tasksLastHour: z
    .object({ succeeded: z.number().int(), failed: z.number().int(), cancelled: z.number().int() })
    .describe('Tasks that finished in the last 60 minutes, by outcome'),
  mcp: OverviewMcp.nullable().describe('null: the token may not call tools (mcp:call), or mcp-gateway did not answer'),
  workspaces: z.array(
    z.object({
      id: z.string(),
      name: z.string(),
      priority: z.string(),
      health: z.string().describe('on-track | at-risk | blocked'),
      healthReasons: z.array(z.string()),
      dependsOn: z.array(z.string()),
    }),
  ),
  at: z.string().describe('When these figures were read'),
});
export type OverviewView = z.infer<typeof OverviewResponse>;

const Count = z.number().int().min(0);

// Pools: GET /v1/pools, GET /v1/pools/{name}, POST /v1/pools/{name}/scale.
/** The mcp-gateway view of a GPU inference pool (mcp_gateway.proto GpuPool). */
export const InferenceView = z
  .object({
    mode: z.enum(['deployment', 'keda', 'static']).describe('deployment: the Deployment\'s scale subresource; keda: a KEDA ScaledObject owns the replicas; static: fixed endpoints'),
    namespace: z.string().nullable().describe('Kubernetes namespace (null for static pools)'),
    target: z.string().nullable().describe('The Deployment running the pool\'s pods (null for static pools)'),
    replicas: Count.describe('Desired replicas (spec.replicas)'),
    readyReplicas: Count.describe('Replicas passing their readiness probe'),
    minReplicas: Count,
    maxReplicas: Count,
    queueDepth: Count.describe('Tool calls waiting for a ready replica (on the answering mcp-gateway replica)'),
    inFlight: Count.describe('Tool calls running on the pool (on the answering mcp-gateway replica)'),
    servers: z.array(z.string()).describe('MCP servers whose calls run on the pool'),
    lastScaledAt: z.string().nullable(),
    lastScaleReason: z.enum(['demand', 'api']).nullable().describe('demand: a call found no ready replica; api: POST /v1/pools/{name}/scale'),
  })
  .describe('The GPU inference pool of this name in mcp-gateway');

/** What POST /v1/pools/{name}/scale answers. */
export const GpuPoolView = InferenceView.extend({ name: z.string() });

export const PoolView = z.object({
  name: z.string(),
  kind: z.string().nullable().describe('gpu | comfyui | inference | other; null when only mcp-gateway knows the pool'),
  capacity: Count.nullable().describe('Units leases may take (workspace-coord); null when only mcp-gateway knows the pool'),
  reservedP0: Count.nullable(),
  inUse: Count.nullable(),
  leases: Count.nullable(),
  description: z.string().nullable(),
  updatedAt: z.string().nullable(),
  inference: InferenceView.nullable()
    .optional()
    .describe('null: mcp-gateway has no GPU pool of this name; absent: mcp-gateway could not be asked (the rest is still workspace-coord\'s view)'),
});

export const PoolList = z.object({ items: z.array(PoolView), total: Count });
export type PoolView = z.infer<typeof PoolView>;

/** How an audited call ended. */
export type AuditOutcome = 'pending' | 'success' | 'failure' | 'denied' | 'unknown';

/** One record of GET /v1/audit. */
export interface AuditEntryView {
  id: string;
  at: string;
  actor: string;
  roles: string[];
  action: string;
  resource: string;
  resourceId: string | null;
  workspace: string | null;
  ip: string | null;
  userAgent: string | null;
  correlationId: string | null;
  status: number | null;
  outcome: AuditOutcome;
  errorCode: string | null;
  durationMs: number | null;
}
