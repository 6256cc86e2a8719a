import { randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { Principal } from '@ziggie/platform';
import { AuditLogTable, AuditOutcome } from '../migrations';

/** What the gateway writes: one row of audit_log. */
export type AuditRecord = Omit<AuditLogTable, 'at'> & { at: Date };

export type AuditedRequest = FastifyRequest & { principal?: Principal };

export const MUTATING_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** 401, 403 and 429: the calls the gateway refused. */
export function isDenial(status: number): boolean {
  return status === 401 || status === 403 || status === 429;
}

export function outcomeOf(status: number): AuditOutcome {
  if (isDenial(status)) return 'denied';
  return status < 400 ? 'success' : 'failure';
}

/** UUIDv7: the millisecond clock first, so ids sort by creation time. */
export function auditId(now: number = Date.now()): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Clipped, and without NUL characters, which Postgres text cannot hold (a decoded path parameter may carry one). */
function clip(value: string, max: number): string {
  const clean = value.includes('\u0000') ? value.replaceAll('\u0000', '\uFFFD') : value;
  return clean.length > max ? clean.slice(0, max) : clean;
}

function text(value: unknown, max: number): string | null {
  return typeof value === 'string' && value.length > 0 ? clip(value, max) : null;
}

function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

const WORKSPACE_PATH = /^\/v1\/workspaces\/([^/]+)/;

/** The workspace a call is about: `/v1/workspaces/:id…`, else `workspace` in the body, else in the query. */
function workspaceOf(req: AuditedRequest, path: string): string | null {
  const inPath = WORKSPACE_PATH.exec(path)?.[1];
  if (inPath) return clip(decoded(inPath), 128);
  const body: unknown = req.body;
  const inBody = body && typeof body === 'object' ? (body as Record<string, unknown>).workspace : undefined;
  return text(inBody, 128) ?? text((req.query as Record<string, unknown> | undefined)?.workspace, 128);
}

/** Who, what, where and why of a request, before anything is known about its outcome. */
export function describeRequest(req: AuditedRequest, now: number = Date.now()): AuditRecord {
  const path = clip((req.originalUrl ?? req.url).split('?')[0] ?? '', 1024);
  // The route template keeps actions few and filterable; a request no route matched keeps its path.
  const template: unknown = req.routeOptions?.url;
  const firstParam = Object.values((req.params as Record<string, unknown> | undefined) ?? {})[0];
  return {
    id: auditId(now),
    at: new Date(now),
    actor: clip(req.principal?.subject ?? 'anonymous', 256),
    roles: req.principal?.roles ?? [],
    action: clip(`${req.method} ${typeof template === 'string' ? template : path}`, 1100),
    resource: path,
    resource_id: text(firstParam, 256),
    workspace: workspaceOf(req, path),
    ip: text(req.ip, 64),
    user_agent: text(req.headers['user-agent'], 256),
    // The request id is the correlation id the caller got in X-Request-ID.
    correlation_id: text(req.id, 128),
    status: null,
    outcome: 'pending',
    error_code: null,
    duration_ms: null,
  };
}
