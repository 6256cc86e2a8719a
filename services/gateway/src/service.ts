import { Module } from '@nestjs/common';
import { Streams } from '@ziggie/contracts';
import { AuthModule, ServiceDefinition } from '@ziggie/platform';
import { AgentsController } from './agents.controller';
import { CatalogController } from './catalog.controller';
import { GovernanceController } from './governance.controller';
import { McpController } from './mcp.controller';
import { TaskEventsService } from './task-events.service';
import { TasksController } from './tasks.controller';

@Module({ imports: [AuthModule], controllers: [TasksController, AgentsController, CatalogController, McpController, GovernanceController], providers: [TaskEventsService] })
export class GatewayModule {}

export const definition: ServiceDefinition<Record<string, never>> = {
  service: 'gateway',
  nats: { streams: [Streams.events], consumers: [] },
  module: () => GatewayModule,
};
