import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply } from 'fastify';
import { IS_PUBLIC_KEY } from '@ziggie/platform';
import { AuditedRequest, MUTATING_METHODS } from './audit-record';
import { AuditService } from './audit.service';

/**
 * Audits every mutating call on an authenticated route. It runs after the guards that may refuse
 * the call (auth, limits, input), so what it records was accepted; the pending record is durable
 * before the handler starts (or the call is refused with 503 AUDIT_UNAVAILABLE), and is completed
 * with the status and error code the caller got once the response is over. A guard rather than
 * an interceptor: a request that meets no interceptor skips Nest's observable pipeline.
 */
@Injectable()
export class AuditGuard implements CanActivate {
  constructor(
    private readonly audit: AuditService,
    private readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const http = context.switchToHttp();
    const req = http.getRequest<AuditedRequest>();
    if (!MUTATING_METHODS.has(req.method)) return true;
    if (this.reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC_KEY, [context.getHandler(), context.getClass()])) return true;
    await this.audit.begin(req, http.getResponse<FastifyReply>().raw);
    return true;
  }
}
