/** The six deployables, with the loopback ports the local stack gives them by default. */
export const ServiceNames = [
  'gateway',
  'orchestrator',
  'agent-runtime',
  'mcp-gateway',
  'agent-registry',
  'workspace-coord',
] as const;
export type ServiceName = (typeof ServiceNames)[number];

export const DefaultPorts: Record<ServiceName, { http: number; grpc?: number }> = {
  gateway: { http: 4000 },
  orchestrator: { http: 4010, grpc: 50051 },
  'agent-registry': { http: 4020, grpc: 50052 },
  'workspace-coord': { http: 4030, grpc: 50053 },
  'agent-runtime': { http: 4040 },
  'mcp-gateway': { http: 4100, grpc: 50054 },
};

/** Services other services call over gRPC, and the variable that overrides each address. */
export const GrpcPeers = {
  orchestrator: 'ORCHESTRATOR_GRPC_ADDR',
  'agent-registry': 'AGENT_REGISTRY_GRPC_ADDR',
  'workspace-coord': 'WORKSPACE_COORD_GRPC_ADDR',
  'mcp-gateway': 'MCP_GATEWAY_GRPC_ADDR',
} as const;
export type GrpcPeer = keyof typeof GrpcPeers;
