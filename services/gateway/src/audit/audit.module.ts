import { Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { AuditController } from './audit.controller';
import { AuditInterceptor } from './audit.interceptor';
import { AuditRetentionService } from './audit-retention.service';
import { AuditService } from './audit.service';

/**
 * The audit log of the gateway: needs the platform's DatabaseService (the gateway's
 * `migrations`) and ProblemEvents, and an auth guard in front so records know who called.
 */
@Module({
  controllers: [AuditController],
  providers: [AuditService, AuditRetentionService, { provide: APP_INTERCEPTOR, useClass: AuditInterceptor }],
  exports: [AuditService, AuditRetentionService],
})
export class AuditModule {}
