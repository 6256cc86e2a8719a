import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AuditController } from './audit.controller';
import { AuditGuard } from './audit.guard';
import { AuditRetentionService } from './audit-retention.service';
import { AuditService } from './audit.service';

/**
 * The audit log of the gateway: needs the platform's DatabaseService (the gateway's
 * `migrations`) and ProblemEvents. Import it after the modules whose guards may refuse a call
 * (auth, limits, input): global guards run in import order, and the audit guard's record is of an
 * accepted call.
 */
@Module({
  controllers: [AuditController],
  providers: [AuditService, AuditRetentionService, { provide: APP_GUARD, useClass: AuditGuard }],
  exports: [AuditService, AuditRetentionService],
})
export class AuditModule {}
