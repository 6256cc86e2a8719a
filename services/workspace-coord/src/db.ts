import { sql, Transaction } from '@ziggie/platform';
import { WorkspaceDb } from './migrations';

export type Trx = Transaction<WorkspaceDb>;

/**
 * Lease times come from the database clock, the one clock every replica shares. The wall
 * clock rather than now(): a transaction that waited for a lock must not date a lease back to
 * when it began.
 */
export const dbNow = () => sql<Date>`clock_timestamp()`;

export const dbNowPlusSeconds = (seconds: number) => sql<Date>`clock_timestamp() + (${seconds}::integer * interval '1 second')`;

/**
 * Serialises every change to the dependency graph and to port ranges (create, update, delete)
 * across replicas, so a cycle check or an overlap check always sees every committed change.
 * Released when the transaction ends.
 */
const WORKSPACE_GRAPH_LOCK = 0x7a5c00d;

export async function lockWorkspaceGraph(trx: Trx): Promise<void> {
  await sql`select pg_advisory_xact_lock(${WORKSPACE_GRAPH_LOCK})`.execute(trx);
}

/** Postgres reports unique violations with SQLSTATE 23505. */
export function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}

export const iso = (d: Date | string | null | undefined): string => (d ? new Date(d).toISOString() : '');
