// Generated gRPC code, re-exported under one name so callers write `pb.Task`, `pb.OrchestratorClient`.
export * from './gen/ziggie/v1/common';
export * from './gen/ziggie/v1/orchestrator';
export * from './gen/ziggie/v1/agent_registry';
export * from './gen/ziggie/v1/workspace_coord';
export * from './gen/ziggie/v1/mcp_gateway';
