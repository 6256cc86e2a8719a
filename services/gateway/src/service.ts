import { Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Streams } from '@ziggie/contracts';
import { AuthModule, ServiceDefinition, StrictInputInterceptor } from '@ziggie/platform';
import { API_CONTROLLERS, gatewayOpenApi } from './api';
import { OPENAPI_DOCUMENT, OpenApiController } from './openapi.controller';
import { TaskEventsService } from './task-events.service';

@Module({
  imports: [AuthModule],
  controllers: [OpenApiController, ...API_CONTROLLERS],
  providers: [
    TaskEventsService,
    { provide: OPENAPI_DOCUMENT, useFactory: gatewayOpenApi },
    { provide: APP_INTERCEPTOR, useClass: StrictInputInterceptor },
  ],
})
export class GatewayModule {}

export const definition: ServiceDefinition<Record<string, never>> = {
  service: 'gateway',
  nats: { streams: [Streams.events], consumers: [] },
  module: () => GatewayModule,
};
