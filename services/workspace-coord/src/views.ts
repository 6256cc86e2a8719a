import { pb } from '@ziggie/contracts';
import { Selectable } from '@ziggie/platform';
import { iso } from './db';
import { ALL_CLEAR } from './health-rules';
import { HealthReportTable, PoolTable, PortLeaseTable, ResourceLeaseTable, WorkspaceTable } from './migrations';

export type WorkspaceRow = Selectable<WorkspaceTable> & { health: string | null; health_reasons: string[] | null };

export function toPbWorkspace(row: WorkspaceRow): pb.Workspace {
  return {
    id: row.id,
    name: row.name,
    priority: row.priority,
    owner: row.owner,
    // A workspace is on-track until its first computation says otherwise.
    health: row.health ?? 'on-track',
    healthReasons: row.health_reasons ?? [ALL_CLEAR],
    dependsOn: row.depends_on,
    portRange: row.port_start !== null && row.port_end !== null ? { start: row.port_start, end: row.port_end } : undefined,
    description: row.description,
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
  };
}

export function toPbPortLease(row: Selectable<PortLeaseTable>): pb.PortLease {
  return {
    workspace: row.workspace,
    service: row.service,
    port: row.port,
    expiresAt: iso(row.expires_at),
    holder: row.holder,
    createdAt: iso(row.created_at),
  };
}

export function toPbPool(row: Selectable<PoolTable>, usage: { inUse: number; leases: number } = { inUse: 0, leases: 0 }): pb.Pool {
  return {
    name: row.name,
    kind: row.kind,
    capacity: row.capacity,
    reservedP0: row.reserved_p0,
    inUse: usage.inUse,
    leases: usage.leases,
    description: row.description,
    updatedAt: iso(row.updated_at),
  };
}

export function toPbLease(row: Selectable<ResourceLeaseTable>): pb.ResourceLease {
  return {
    id: row.id,
    workspace: row.workspace,
    resource: row.pool,
    units: row.units,
    expiresAt: iso(row.expires_at),
    holder: row.holder,
    priority: row.priority,
    createdAt: iso(row.created_at),
  };
}

export function toPbReport(row: Selectable<HealthReportTable>): pb.HealthReport {
  return {
    id: row.id,
    status: row.status,
    reason: row.reason,
    reportedBy: row.reported_by,
    reportedAt: iso(row.reported_at),
    expiresAt: iso(row.expires_at),
  };
}
