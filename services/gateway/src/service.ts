import { Module } from '@nestjs/common';
import { Streams } from '@ziggie/contracts';
import { AuthModule, ServiceDefinition, StrictInputModule } from '@ziggie/platform';
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
  // Global guards run in import order: who calls (auth), how often (limits), with what (strict
  // input), then the audit of the accepted call.
  imports: [AuthModule, RateLimitModule.forRoot(), StrictInputModule, AuditModule],
  controllers: [OpenApiController, ConsoleController, ...API_CONTROLLERS],
  providers: [
    TaskEventsService,
    LiveEventsService,
    { provide: OPENAPI_DOCUMENT, useFactory: gatewayOpenApi },
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
