/**
 * The six services as the dashboards and alerts see them. `ServiceNames` in libs/platform is the
 * source of the names; test/deploy checks that this list matches it (the observability code is
 * built on its own, without the workspaces).
 */
export const SERVICES = ['gateway', 'orchestrator', 'agent-runtime', 'mcp-gateway', 'agent-registry', 'workspace-coord'] as const;
export type Service = (typeof SERVICES)[number];

export interface ServiceShape {
  title: string;
  /** Serves an API over HTTP worth a RED row (the REST API, MCP streamable HTTP); probes and /metrics do not count. */
  httpApi: boolean;
  /** Serves gRPC. */
  grpcServer: boolean;
  /** Peers it calls over gRPC (the outgoing edges of the dependency graph). */
  calls: readonly Service[];
  /** Executes steps from JetStream (its RED is the step executions). */
  steps: boolean;
}

export const TOPOLOGY: Record<Service, ServiceShape> = {
  gateway: { title: 'Gateway', httpApi: true, grpcServer: false, calls: ['orchestrator', 'agent-registry', 'workspace-coord', 'mcp-gateway'], steps: false },
  orchestrator: { title: 'Orchestrator', httpApi: false, grpcServer: true, calls: ['agent-registry', 'workspace-coord'], steps: false },
  'agent-runtime': { title: 'Agent runtime', httpApi: false, grpcServer: false, calls: ['mcp-gateway', 'agent-registry', 'orchestrator'], steps: true },
  'mcp-gateway': { title: 'MCP gateway', httpApi: true, grpcServer: true, calls: [], steps: false },
  'agent-registry': { title: 'Agent registry', httpApi: false, grpcServer: true, calls: [], steps: false },
  'workspace-coord': { title: 'Workspace coordinator', httpApi: false, grpcServer: true, calls: ['orchestrator'], steps: false },
};
