import { Controller, Get } from '@nestjs/common';
import { ApiDoc, CurrentPrincipal, Principal, RequirePermission, ValidQuery } from '@ziggie/platform';
import { Cursors } from '@ziggie/contracts';
import { z } from 'zod';
import { pageQuery } from '../pagination';
import { AuditService } from './audit.service';

const Outcome = z.enum(['pending', 'success', 'failure', 'denied', 'unknown']);
// Year 0 parses in JavaScript but is no PostgreSQL timestamp.
const Instant = z.iso.datetime({ offset: true }).refine((s) => Number(s.slice(0, 4)) >= 1, 'a year from 0001');

export const AuditQuery = pageQuery(Cursors.audit)
  .extend({
    actor: z.string().min(1).max(256).optional(),
    workspace: z.string().min(1).max(128).optional(),
    /** Method and route template, e.g. `POST /v1/tasks`. */
    action: z.string().min(1).max(1100).optional(),
    outcome: Outcome.optional(),
    /** Inclusive. */
    from: Instant.optional(),
    /** Exclusive. */
    to: Instant.optional(),
    correlationId: z.string().min(1).max(128).optional(),
  })
  .strict()
  .refine((q) => q.from === undefined || q.to === undefined || Date.parse(q.from) < Date.parse(q.to), { message: 'must be before to', path: ['from'] });

const AuditEntrySchema = z.object({
  id: z.string(),
  at: z.string(),
  actor: z.string(),
  roles: z.array(z.string()),
  action: z.string(),
  resource: z.string(),
  resourceId: z.string().nullable(),
  workspace: z.string().nullable(),
  ip: z.string().nullable(),
  userAgent: z.string().nullable(),
  correlationId: z.string().nullable(),
  status: z.number().int().nullable(),
  outcome: Outcome,
  errorCode: z.string().nullable(),
  durationMs: z.number().int().nullable(),
});

const AuditPage = z.object({ items: z.array(AuditEntrySchema), nextCursor: z.string().optional() });

@Controller('v1/audit')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @RequirePermission('config:change')
  @ApiDoc({
    summary: 'The audit log: mutating calls and denials, newest first',
    description:
      'Filters combine with AND. `outcome` is `pending` while a call runs and `unknown` when the gateway stopped before it ended. ' +
      'A token without "*" sees only records of its workspaces. No `total`: counting 90 days of records for every page would cost a scan each time.',
    tag: 'audit',
    response: AuditPage,
  })
  list(@ValidQuery(AuditQuery) query: z.infer<typeof AuditQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    return this.audit.list(query, principal);
  }
}
