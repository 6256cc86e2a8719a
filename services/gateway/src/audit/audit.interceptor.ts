import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply } from 'fastify';
import { IS_PUBLIC_KEY, toZiggieError } from '@ziggie/platform';
import { finalize, Observable, tap } from 'rxjs';
import { AuditedRequest, MUTATING_METHODS } from './audit-record';
import { AuditService } from './audit.service';

/**
 * Audits every mutating call on an authenticated route. Guards have accepted the call when this
 * runs; its pending record is durable before the handler starts (or the call is refused with
 * 503 AUDIT_UNAVAILABLE), and is completed with the status and error code when the handler ends.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  constructor(
    private readonly audit: AuditService,
    private readonly reflector: Reflector,
  ) {}

  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    if (context.getType() !== 'http') return next.handle();
    const http = context.switchToHttp();
    const req = http.getRequest<AuditedRequest>();
    const res = http.getResponse<FastifyReply>();
    const isPublic = this.reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC_KEY, [context.getHandler(), context.getClass()]);
    if (!MUTATING_METHODS.has(req.method) || isPublic) return next.handle();

    const started = performance.now();
    const record = await this.audit.begin(req);
    let failure: { status: number; code: string } | undefined;
    return next.handle().pipe(
      tap({
        error: (err: unknown) => {
          // The status and code the problem filter is about to answer with.
          const { error } = toZiggieError(err);
          failure = { status: error.httpStatus, code: error.code };
        },
      }),
      // Nest set the route's status code before the handler ran; a passthrough handler may have changed it.
      finalize(() => this.audit.complete(record, failure?.status ?? res.statusCode, failure?.code ?? null, performance.now() - started)),
    );
  }
}
