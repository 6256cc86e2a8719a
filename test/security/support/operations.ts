import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JsonSchema } from './schema-arbitrary';

export type OpenApiDocument = { paths: Record<string, Record<string, Record<string, any>>> } & Record<string, unknown>;

export interface Operation {
  method: string;
  /** OpenAPI form: /v1/tasks/{id} */
  path: string;
  key: string;
  permission?: string;
  isPublic: boolean;
  bodySchema?: JsonSchema;
  query: Array<{ name: string; required: boolean; schema: JsonSchema }>;
}

export const REPO_ROOT = join(__dirname, '..', '..', '..');

export function committedDocument(): OpenApiDocument {
  return JSON.parse(readFileSync(join(REPO_ROOT, 'docs', 'openapi.json'), 'utf8')) as OpenApiDocument;
}

export function operationsOf(doc: OpenApiDocument): Operation[] {
  const ops: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      ops.push({
        method: method.toUpperCase(),
        path,
        key: `${method.toUpperCase()} ${path}`,
        permission: op['x-required-permission'] as string | undefined,
        isPublic: Array.isArray(op.security) && op.security.length === 0,
        bodySchema: op.requestBody?.content?.['application/json']?.schema as JsonSchema | undefined,
        query: ((op.parameters ?? []) as Array<{ name: string; in: string; required?: boolean; schema?: JsonSchema }>)
          .filter((p) => p.in === 'query')
          .map((p) => ({ name: p.name, required: p.required === true, schema: p.schema ?? {} })),
      });
    }
  }
  return ops;
}

/** The objects a spec created, named so a path template can be filled with them. */
export interface Fixtures {
  taskId: string;
  stepId: string;
  workspace: string;
  port: number | string;
  pool: string;
  leaseId: string;
  agentId: string;
  blueprint: string;
  blueprintVersion: string;
  mcpServer: string;
  tool: string;
  policyId: string;
}

/** Which fixture a path parameter takes, by the path segment before it. */
const PARAMETER_SOURCES: Record<string, keyof Fixtures | ((f: Fixtures) => string)> = {
  tasks: 'taskId',
  steps: 'stepId',
  workspaces: 'workspace',
  ports: 'port',
  pools: 'pool',
  leases: 'leaseId',
  agents: 'agentId',
  blueprints: 'blueprint',
  versions: 'blueprintVersion',
  servers: 'mcpServer',
  tools: 'tool',
  pins: 'tool',
  prompts: () => 'everything.args-prompt',
  policies: 'policyId',
  docs: () => 'init.js',
  // The web console: a screen, one of its items, and a file of the built app.
  console: () => 'tasks',
  '{screen}': 'taskId',
  assets: () => 'index.js',
};

/** `/v1/tasks/{id}/cancel` → `/v1/tasks/tsk_…/cancel`; a parameter with no known source throws, so new routes get noticed. */
export function fillPath(template: string, fixtures: Partial<Fixtures>): string {
  const segments = template.split('/');
  return segments
    .map((segment, i) => {
      if (!/^\{.+\}$/.test(segment)) return segment;
      const source = PARAMETER_SOURCES[segments[i - 1] ?? ''];
      if (source === undefined) throw new Error(`no fixture for parameter ${segment} of ${template}`);
      const value = typeof source === 'function' ? source(fixtures as Fixtures) : fixtures[source];
      if (value === undefined) throw new Error(`fixture ${String(source)} missing for ${template}`);
      return encodeURIComponent(String(value));
    })
    .join('/');
}

export const echoStep = (id = 'a', message = 'x') => ({ id, capability: 'qa', input: { tool: 'everything.echo', arguments: { message } } });
export const tinyTask = (workspace: string) => ({ workspace, plan: { steps: [echoStep()] } });

/**
 * A minimal valid body for every documented operation that takes one, written by hand from the
 * schemas. A route missing here fails the tests that need it, so new routes get a body.
 */
export function minimalBodies(f: Partial<Fixtures>, unique: string): Record<string, unknown> {
  return {
    'POST /v1/tasks': tinyTask(f.workspace ?? 'ziggie'),
    'POST /v1/tasks/{id}/cancel': { reason: 'security suite' },
    'POST /v1/tasks/{id}/steps/{stepId}/approve': { decision: 'approve' },
    'POST /v1/workspaces': { id: `ws-${unique}`, name: 'Security suite', owner: 'security' },
    'PATCH /v1/workspaces/{id}': { name: 'Security suite (renamed)' },
    'POST /v1/workspaces/{id}/health/reports': { status: 'on-track', reason: 'security suite' },
    'POST /v1/workspaces/{id}/ports': { service: `svc-${unique}` },
    'POST /v1/workspaces/{id}/ports/{port}/renew': { ttlSeconds: 60 },
    'PUT /v1/pools/{name}': { capacity: 2 },
    'POST /v1/pools/{name}/scale': { replicas: 0 },
    'POST /v1/pools/{name}/leases': { workspace: f.workspace ?? 'ziggie' },
    'POST /v1/pools/{name}/leases/{leaseId}/renew': { ttlSeconds: 60 },
    'POST /v1/blueprints': { name: `bp-${unique}`, version: '1.0.0', template: { steps: [echoStep()] } },
    'POST /v1/policies': { name: `policy-${unique}`, effect: 'allow', enabled: false },
    'PUT /v1/policies/{id}': { name: `policy-${unique}`, effect: 'allow', enabled: false },
    // Schema-valid; the SSRF guard refuses the address afterwards, so nothing is ever added.
    'POST /v1/mcp/servers': { name: `srv-${unique}`, transport: 'http', urls: ['http://10.0.0.1/mcp'] },
    'POST /v1/mcp/tools/{name}/call': { arguments: { message: 'x' } },
    'POST /v1/mcp/pins/{name}/approve': { hash: '0'.repeat(64) },
    'POST /v1/mcp/prompts/{name}/get': { arguments: { city: 'x' } },
  };
}

/** Codes that mean the body did not match its schema (as opposed to a later, semantic refusal). */
export const SCHEMA_REFUSALS = ['VALIDATION_FAILED', 'BLUEPRINT_INVALID'];

export const randomHex = (bytes: number): string => Array.from({ length: bytes }, () => Math.floor(Math.random() * 256).toString(16).padStart(2, '0')).join('');
