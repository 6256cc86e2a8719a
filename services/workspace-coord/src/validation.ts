import { CURSOR_MAX_LENGTH } from '@ziggie/contracts';
import { z } from 'zod';
import { POOL_KINDS, POOL_NAME_PATTERN } from './config';
import { HEALTH_STATUSES } from './health-rules';
import { MAX_PORT } from './port-ranges';
import { PRIORITIES } from './pool-rules';

export const WORKSPACE_ID_PATTERN = /^[a-z][a-z0-9-]{1,62}$/;

export const DEFAULT_PORT_TTL_SECONDS = 300;
export const DEFAULT_LEASE_TTL_SECONDS = 300;
export const MAX_TTL_SECONDS = 86_400;
export const DEFAULT_REPORT_TTL_SECONDS = 3_600;
export const MAX_REPORT_TTL_SECONDS = 7 * 86_400;
/** Requests per AcquireLeases call. */
export const MAX_LEASE_BATCH = 1_000;

/** Ids are checked against the id pattern when created; lookups only need a sane string. */
export const LookupId = z.string().min(1, 'required').max(128);
export const WorkspaceId = z.string().regex(WORKSPACE_ID_PATTERN, `must match ${WORKSPACE_ID_PATTERN.source}`);
export const Priority = z.enum(PRIORITIES);
export const HealthStatusSchema = z.enum(HEALTH_STATUSES);
const Text = (max: number) => z.string().trim().min(1, 'required').max(max);

/** proto3 cannot leave a number out: 0 means "the default". */
const ttl = (fallback: number, max: number) =>
  z
    .number()
    .int()
    .min(0)
    .max(max)
    .transform((v) => v || fallback);

export const PortRangeSchema = z
  .object({ start: z.number().int().min(1).max(MAX_PORT), end: z.number().int().min(1).max(MAX_PORT) })
  .refine((r) => r.end >= r.start, { message: 'end must not be below start', path: ['end'] });

/** An absent range and a zero range (proto3's empty message) both mean "none given". */
export function givenRange(r: { start: number; end: number } | undefined): { start: number; end: number } | undefined {
  return r && (r.start !== 0 || r.end !== 0) ? r : undefined;
}

const DependsOn = z
  .array(WorkspaceId)
  .max(256)
  .refine((ids) => new Set(ids).size === ids.length, 'must not name a workspace twice');

export const CreateWorkspaceInput = z.object({
  id: WorkspaceId,
  name: Text(128),
  priority: Priority,
  owner: Text(128),
  description: z.string().max(2_000),
  dependsOn: DependsOn,
  portRange: PortRangeSchema.optional(),
});

export const UpdateWorkspaceInput = z.object({
  id: LookupId,
  name: Text(128).optional(),
  priority: Priority.optional(),
  owner: Text(128).optional(),
  description: z.string().max(2_000).optional(),
  dependsOn: DependsOn.optional(),
  portRange: PortRangeSchema.optional(),
});

export const ListWorkspacesInput = z.object({
  limit: z.number().int().min(0).max(10_000),
  /** Decoded (strictly) by the shared cursor codec. */
  cursor: z.string().max(CURSOR_MAX_LENGTH),
  ids: z.array(z.string().max(128)).max(10_000),
  health: z.union([z.literal(''), HealthStatusSchema]),
});

export const AffectedInput = z.object({ workspaces: z.array(LookupId).max(10_000) });

export const ServiceName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 letters, digits, dots, dashes or underscores');

export const AllocatePortInput = z.object({
  workspace: LookupId,
  service: ServiceName,
  ttlSeconds: ttl(DEFAULT_PORT_TTL_SECONDS, MAX_TTL_SECONDS),
  port: z.number().int().min(0).max(MAX_PORT),
});

export const RenewPortInput = z.object({
  workspace: LookupId,
  port: z.number().int().min(1).max(MAX_PORT),
  ttlSeconds: ttl(DEFAULT_PORT_TTL_SECONDS, MAX_TTL_SECONDS),
});

export const ReleasePortInput = z.object({ workspace: LookupId, port: z.number().int().min(1).max(MAX_PORT) });

export const PoolName = z.string().regex(POOL_NAME_PATTERN, `must match ${POOL_NAME_PATTERN.source}`);

export const PutPoolInput = z
  .object({
    name: PoolName,
    kind: z.union([z.literal(''), z.enum(POOL_KINDS)]),
    capacity: z.number().int().min(0).max(1_000_000),
    reservedP0: z.number().int().min(0),
    description: z.string().max(2_000),
  })
  .refine((p) => p.reservedP0 <= p.capacity, { message: 'must not exceed capacity', path: ['reservedP0'] });

export const AcquireLeaseInput = z.object({
  workspace: LookupId,
  resource: LookupId,
  /** 0 asks for one unit. */
  units: z
    .number()
    .int()
    .min(0)
    .max(1_000_000)
    .transform((v) => v || 1),
  /** Empty takes the workspace's priority. */
  priority: z.union([z.literal(''), Priority]),
  ttlSeconds: ttl(DEFAULT_LEASE_TTL_SECONDS, MAX_TTL_SECONDS),
  holder: z.string().min(1, 'required (the attempt id, so a retry finds its lease)').max(256),
});
export type AcquireLeaseInput = z.infer<typeof AcquireLeaseInput>;

export const RenewLeaseInput = z.object({ id: LookupId, ttlSeconds: ttl(DEFAULT_LEASE_TTL_SECONDS, MAX_TTL_SECONDS) });

export const ReleaseLeasesInput = z
  .object({ ids: z.array(LookupId).max(10_000), holders: z.array(z.string().min(1).max(256)).max(10_000) })
  .refine((r) => r.ids.length + r.holders.length > 0, { message: 'give lease ids or holders' });

export const ListLeasesInput = z.object({ resource: z.string().max(128), workspace: z.string().max(128) });

export const ReportHealthInput = z.object({
  workspace: LookupId,
  status: HealthStatusSchema,
  reason: Text(1_000),
  ttlSeconds: ttl(DEFAULT_REPORT_TTL_SECONDS, MAX_REPORT_TTL_SECONDS),
});
