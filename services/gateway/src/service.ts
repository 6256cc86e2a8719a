import { Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Streams } from '@ziggie/contracts';
import { AuthModule, ServiceDefinition, StrictInputInterceptor } from '@ziggie/platform';
import { API_CONTROLLERS, gatewayOpenApi } from './api';
import { auditEnv } from './audit/audit.config';
import { AuditModule } from './audit/audit.module';
import { migrations } from './migrations';
import { OPENAPI_DOCUMENT, OpenApiController } from './openapi.controller';
import { corsEnv, corsOptions } from './cors';
import { rateLimitEnv, RateLimitModule } from './rate-limit';
import { ConsoleController } from './console.controller';
import { LiveEventsService } from './live-events.service';
import { TaskEventsService } from './task-events.service';

@Module({
  // RateLimitModule after AuthModule: its guard needs the principal the AuthGuard sets.
  imports: [AuthModule, AuditModule, RateLimitModule.forRoot()],
  controllers: [OpenApiController, ConsoleController, ...API_CONTROLLERS],
  providers: [
    TaskEventsService,
    LiveEventsService,
    { provide: OPENAPI_DOCUMENT, useFactory: gatewayOpenApi },
    { provide: APP_INTERCEPTOR, useClass: StrictInputInterceptor },
  ],
})
export class GatewayModule {}

export const definition: ServiceDefinition<typeof auditEnv & typeof rateLimitEnv & typeof corsEnv> = {
  service: 'gateway',
  extraConfig: { ...auditEnv, ...rateLimitEnv, ...corsEnv },
  // TRUST_PROXY decides the client address of every request (audit records and per-IP limits alike).
  httpServer: (config) => ({ trustProxy: config.extra.TRUST_PROXY }),
  configureApp: (app, config) => {
    const cors = corsOptions(config.extra.CORS_ORIGINS);
    if (cors) app.enableCors(cors);
  },
  migrations,
  nats: { streams: [Streams.events], consumers: [] },
  module: () => GatewayModule,
};
