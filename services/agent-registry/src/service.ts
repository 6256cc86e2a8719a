import { Module } from '@nestjs/common';
import { pb, ZiggieError } from '@ziggie/contracts';
import { GrpcBinding, ServiceDefinition, unary } from '@ziggie/platform';
import { AgentsService } from './agents.service';
import { registryEnv } from './config';
import { migrations } from './migrations';

@Module({ providers: [AgentsService] })
export class AgentRegistryModule {}

function grpcBindings(agents: AgentsService): GrpcBinding[] {
  const implementation: pb.AgentRegistryServer = {
    selectAgent: unary((req) => agents.select(req)),
    getAgent: unary((req) => agents.get(req.id)),
    listAgents: unary((req) => agents.list(req)),
    listCapabilities: unary(() => ({ capabilities: agents.capabilities() })),
    getHierarchySummary: unary(() => agents.summary()),
    selectAgents: unary(() => Promise.reject(new ZiggieError('UNIMPLEMENTED'))),
    listChildren: unary(() => Promise.reject(new ZiggieError('UNIMPLEMENTED'))),
    getSubtree: unary(() => Promise.reject(new ZiggieError('UNIMPLEMENTED'))),
    getPath: unary(() => Promise.reject(new ZiggieError('UNIMPLEMENTED'))),
    getAgentCard: unary(() => Promise.reject(new ZiggieError('UNIMPLEMENTED'))),
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
