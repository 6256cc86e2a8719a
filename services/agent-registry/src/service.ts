import { Module } from '@nestjs/common';
import { pb } from '@ziggie/contracts';
import { GrpcBinding, ServiceDefinition, unary } from '@ziggie/platform';
import { AgentsService } from './agents.service';
import { registryEnv } from './config';
import { migrations } from './migrations';

@Module({ providers: [AgentsService] })
export class AgentRegistryModule {}

function grpcBindings(agents: AgentsService): GrpcBinding[] {
  const implementation: pb.AgentRegistryServer = {
    selectAgent: unary((req) => agents.select(req)),
    selectAgents: unary((req) => agents.selectMany(req)),
    getAgent: unary((req) => agents.get(req.id)),
    listAgents: unary((req) => agents.list(req)),
    listChildren: unary((req) => agents.listChildren(req)),
    getSubtree: unary((req) => agents.subtree(req)),
    getPath: unary((req) => agents.path(req.id)),
    listCapabilities: unary(() => ({ capabilities: agents.capabilities() })),
    getHierarchySummary: unary((req) => agents.summary(req.workspaces)),
    getAgentCard: unary((req) => agents.card(req)),
  };
  return [{ definition: pb.AgentRegistryService, implementation }];
}

export const definition: ServiceDefinition<typeof registryEnv> = {
  service: 'agent-registry',
  extraConfig: registryEnv,
  migrations,
  nats: { streams: [], consumers: [] },
  module: () => AgentRegistryModule,
  grpc: (app) => grpcBindings(app.get(AgentsService)),
};
