import { Module } from '@nestjs/common';
import { Consumers, Streams } from '@ziggie/contracts';
import { ServiceDefinition } from '@ziggie/platform';
import { runtimeEnv } from './config';
import { McpGatewayPeer, OrchestratorPeer, RegistryPeer } from './peers';
import { RuntimeService } from './runtime.service';

@Module({ providers: [McpGatewayPeer, RegistryPeer, OrchestratorPeer, RuntimeService] })
export class AgentRuntimeModule {}

export const definition: ServiceDefinition<typeof runtimeEnv> = {
  service: 'agent-runtime',
  extraConfig: runtimeEnv,
  nats: { streams: [Streams.steps, Streams.results], consumers: [Consumers.stepWorkers] },
  module: () => AgentRuntimeModule,
};
