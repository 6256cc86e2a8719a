import { startCountingServer, type CountingServer } from './support/counting-server';
import { DEFAULT_INHERITED_ENV_VARS } from '@modelcontextprotocol/sdk/client/stdio.js';
import { describe as describeReply, headerValue, HttpRecorder, leaksIn, problemMismatch, wildcardWithCredentials, type Reply } from './support/http';
import { echoStep, fillPath, minimalBodies, operationsOf, randomHex, SCHEMA_REFUSALS, tinyTask, type Fixtures, type OpenApiDocument, type Operation } from './support/operations';
import { securityStackHooks } from './support/stack';

/** Seed 001 §9, the matrix DESIGN §8.3 requires exactly; written out here rather than imported, so a wrong contract fails. */
const MATRIX = {
  admin: { 'workspace:manage': true, 'agent:dispatch': true, 'mcp:call': true, 'config:change': true },
  l1: { 'workspace:manage': false, 'agent:dispatch': true, 'mcp:call': true, 'config:change': false },
  l2l3: { 'workspace:manage': false, 'agent:dispatch': false, 'mcp:call': true, 'config:change': false },
  bmad: { 'workspace:manage': false, 'agent:dispatch': true, 'mcp:call': true, 'config:change': false },
} as const;
type Role = keyof typeof MATRIX;
type Permission = keyof (typeof MATRIX)['admin'];
const ROLES = Object.keys(MATRIX) as Role[];
const PERMISSIONS = Object.keys(MATRIX.admin) as Permission[];

/** Workspace A holds the objects; the attacker's token is an admin of workspace B only. */
const WS_A = 'fitflow';
const WS_B = 'simstudio';
/** Members a client must never set; each is added to a valid body where the schema does not declare it. */
const MASS_ASSIGNMENT_FIELDS = ['id', 'createdBy', 'status', 'isAdmin', 'principal'];
const MAX_PLAN_STEPS = 10_000;

/** Problem fields a client sees, with the object's id blanked, to compare a hidden object with a missing one. */
function notFoundShape(reply: Reply, id: string): Record<string, unknown> {
  const b = (reply.body ?? {}) as Record<string, unknown>;
  const blank = (v: unknown) => (typeof v === 'string' ? v.split(id).join('<id>') : v);
  return { status: reply.status, contentType: reply.contentType, code: b.code, title: b.title, type: b.type, detail: blank(b.detail) };
}

/** The JSON-RPC messages of an /mcp answer: one JSON body, or the `data:` lines of an event stream. */
function jsonRpcMessages(reply: Reply): Array<Record<string, any>> {
  if (reply.body !== undefined) return [reply.body].flat() as Array<Record<string, any>>;
  return reply.text
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .flatMap((line) => {
      try {
        return [JSON.parse(line.slice(5)) as Record<string, any>].flat();
      } catch {
        return [];
      }
    });
}

/** Top-level string members that take free text (no pattern, enum, format or const), with their schemas. */
function freeTextMembers(schema: Record<string, any> | undefined): Array<[string, Record<string, any>]> {
  const found = new Map<string, Record<string, any>>();
  for (const s of [schema, ...((schema?.oneOf ?? schema?.anyOf ?? []) as Array<Record<string, any>>)]) {
    for (const [name, p] of Object.entries((s?.properties ?? {}) as Record<string, Record<string, any>>)) {
      if (p.type === 'string' && !p.pattern && !p.enum && !p.format && !('const' in p)) found.set(name, p);
    }
  }
  return [...found.entries()];
}

/** Top-level members that take any JSON: `{}` or an object of anything. */
function freeFormMembers(schema: Record<string, any> | undefined): string[] {
  const anything = (s: Record<string, any> | undefined) => s !== undefined && Object.keys(s).filter((k) => k !== 'description' && k !== 'default').length === 0;
  return Object.entries((schema?.properties ?? {}) as Record<string, Record<string, any>>)
    .filter(([, p]) => anything(p) || (p.type === 'object' && !p.properties && anything(p.additionalProperties as Record<string, any> | undefined)))
    .map(([name]) => name);
}

function declaredMembers(schema: Record<string, any> | undefined): Set<string> {
  const names = new Set<string>();
  for (const s of [schema, ...((schema?.oneOf ?? schema?.anyOf ?? []) as Array<Record<string, any>>)]) for (const n of Object.keys(s?.properties ?? {})) names.add(n);
  return names;
}

/**
 * Authorisation and input handling of the running gateway: the RBAC matrix, workspace scoping,
 * mass assignment, size limits and SSRF.
 */
describe('security: access control and input handling', () => {
  const sec = securityStackHooks('sec-access');
  const http = sec.http;
  let ops: Operation[];
  const unique = randomHex(4);

  beforeAll(async () => {
    ops = operationsOf((await http.request('/openapi.json', { token: null })).body as OpenApiDocument);
  }, 30_000);

  /** Creates something with the admin token and returns its body, failing loudly when that does not work. */
  const create = async (path: string, json: unknown, method = 'POST'): Promise<any> => {
    const r = await http.request(path, { method, json });
    if (r.status >= 300) throw new Error(`setup: ${method} ${path} answered ${describeReply(r)}`);
    return r.body;
  };

  describe('RBAC', () => {
    /** Path values for every route: the guard refuses before anything is looked up, so they only need to be well-formed. */
    const anyIds: Partial<Fixtures> = {
      taskId: `tsk_${randomHex(16)}`,
      stepId: 'a',
      workspace: 'ziggie',
      port: 20_001,
      pool: 'gpu',
      leaseId: `lease-${unique}`,
      agentId: 'no-such-agent',
      blueprint: 'comic-strip',
      blueprintVersion: '1.0.0',
      mcpServer: 'everything',
      tool: 'everything.echo',
      policyId: `pol_${randomHex(8)}`,
    };

    /** A representative route per permission, with a valid body so an allowed role really gets through. */
    const representative: Record<Permission, (role: Role) => { method: string; path: string; json?: unknown; cleanup?: (body: any) => Promise<void> }> = {
      'workspace:manage': (role) => ({
        method: 'POST',
        path: '/v1/workspaces',
        json: { id: `rbac-${role}-${unique}`, name: `RBAC ${role}`, owner: 'security' },
        cleanup: async () => void (await http.request(`/v1/workspaces/rbac-${role}-${unique}`, { method: 'DELETE' })),
      }),
      'agent:dispatch': () => ({ method: 'POST', path: '/v1/tasks', json: tinyTask('ziggie') }),
      'mcp:call': () => ({ method: 'GET', path: '/v1/mcp/tools' }),
      'config:change': (role) => ({
        method: 'POST',
        path: '/v1/policies',
        json: { name: `rbac-${role}-${unique}`, effect: 'allow', enabled: false },
        cleanup: async (body) => void (body?.id && (await http.request(`/v1/policies/${body.id as string}`, { method: 'DELETE' }))),
      }),
    };

    it.each(ROLES.flatMap((role) => PERMISSIONS.map((permission) => ({ role, permission, allowed: MATRIX[role][permission] }))))(
      '$role on a $permission route: allowed = $allowed',
      async ({ role, permission, allowed }) => {
        const route = representative[permission](role);
        const reply = await http.request(route.path, { method: route.method, json: route.json, token: sec.token([role]) });
        if (reply.status < 300) await route.cleanup?.(reply.body);
        if (allowed) expect(`${route.method} ${route.path} → ${describeReply(reply)}`).toMatch(/ → 2\d\d /);
        else expect(problemMismatch(reply, 403, ['AUTH_FORBIDDEN'])).toBeNull();
      },
      30_000,
    );

    it('refuses, on every documented operation guarded by a permission, each role lacking it with 403 AUTH_FORBIDDEN', async () => {
      const guarded = ops.filter((o) => o.permission);
      expect(guarded.length).toBeGreaterThan(15);
      const mismatches: string[] = [];
      for (const op of guarded) {
        expect(PERMISSIONS).toContain(op.permission);
        for (const role of ROLES.filter((r) => !MATRIX[r][op.permission as Permission])) {
          const reply = await http.request(fillPath(op.path, anyIds), { method: op.method, json: op.bodySchema ? {} : undefined, token: sec.token([role]) });
          const wrong = problemMismatch(reply, 403, ['AUTH_FORBIDDEN']);
          if (wrong) mismatches.push(`${op.key} as ${role}: ${wrong}`);
        }
      }
      expect(mismatches).toEqual([]);
    }, 120_000);

    it('answers every documented operation that is not public with 401 when no token is given', async () => {
      const mismatches: string[] = [];
      for (const op of ops.filter((o) => !o.isPublic)) {
        const reply = await http.request(fillPath(op.path, anyIds), { method: op.method, json: op.bodySchema ? {} : undefined, token: null });
        const wrong = problemMismatch(reply, 401, ['AUTH_MISSING_TOKEN']);
        if (wrong) mismatches.push(`${op.key}: ${wrong}`);
      }
      expect(mismatches).toEqual([]);
    }, 120_000);

    it('keeps the audit log to admins: GET /v1/audit is 403 for l1, l2l3 and bmad and 200 for admin', async () => {
      const answers: Record<string, string> = {};
      for (const role of ROLES) answers[role] = describeReply(await http.request('/v1/audit', { token: sec.token([role]) }));
      expect(answers).toEqual({
        admin: expect.stringMatching(/^200 /),
        l1: expect.stringMatching(/^403 AUTH_FORBIDDEN /),
        l2l3: expect.stringMatching(/^403 AUTH_FORBIDDEN /),
        bmad: expect.stringMatching(/^403 AUTH_FORBIDDEN /),
      });
    }, 30_000);
  });

  describe(`workspace scoping: a token for ${WS_B} only (role admin) against objects of ${WS_A}`, () => {
    let a: { taskId: string; port: number; leaseId: string; agentIds: string[] };
    const bToken = () => sec.token(['admin'], [WS_B]);

    beforeAll(async () => {
      const task = await create('/v1/tasks', tinyTask(WS_A));
      const portLease = await create(`/v1/workspaces/${WS_A}/ports`, { service: `sec-${unique}` });
      const lease = await create('/v1/pools/gpu/leases', { workspace: WS_A, units: 1 });
      await create(`/v1/workspaces/${WS_A}/health/reports`, { status: 'at-risk', reason: 'security suite' });
      const agents = (await http.request(`/v1/agents?workspace=${WS_A}&limit=5`)).body as { items: Array<{ id: string; workspace: string }> };
      if (!agents?.items?.length) throw new Error(`setup: no agents listed for ${WS_A}`);
      a = { taskId: task.id as string, port: portLease.port as number, leaseId: lease.id as string, agentIds: agents.items.map((x) => x.id) };
    }, 60_000);

    /** `[route template, method, body?]`; `{id}` is A's object, compared with the same route on a random id. */
    const TASK_ROUTES: Array<[string, string, unknown?]> = [
      ['/v1/tasks/{id}', 'GET'],
      ['/v1/tasks/{id}/events', 'GET'],
      ['/v1/tasks/{id}/decisions', 'GET'],
      ['/v1/tasks/{id}/affected-workspaces', 'GET'],
      ['/v1/tasks/{id}/cancel', 'POST', { reason: 'cross-workspace' }],
      ['/v1/tasks/{id}/steps/a/approve', 'POST', { decision: 'approve' }],
    ];
    const WORKSPACE_ROUTES: Array<[string, string, unknown?]> = [
      ['/v1/workspaces/{id}', 'GET'],
      ['/v1/workspaces/{id}', 'PATCH', { name: 'taken over' }],
      ['/v1/workspaces/{id}', 'DELETE'],
      ['/v1/workspaces/{id}/health', 'GET'],
      ['/v1/workspaces/{id}/health/reports', 'POST', { status: 'blocked', reason: 'cross-workspace' }],
      ['/v1/workspaces/{id}/affected', 'GET'],
      ['/v1/workspaces/{id}/ports', 'GET'],
      ['/v1/workspaces/{id}/ports', 'POST', { service: 'intruder' }],
      ['/v1/workspaces/{id}/ports/{port}/renew', 'POST', { ttlSeconds: 60 }],
      ['/v1/workspaces/{id}/ports/{port}', 'DELETE'],
    ];
    const LEASE_ROUTES: Array<[string, string, unknown?]> = [
      ['/v1/pools/gpu/leases/{id}/renew', 'POST', { ttlSeconds: 60 }],
      ['/v1/pools/gpu/leases/{id}', 'DELETE'],
    ];
    const AGENT_ROUTES: Array<[string, string, unknown?]> = [
      ['/v1/agents/{id}', 'GET'],
      ['/v1/agents/{id}/children', 'GET'],
      ['/v1/agents/{id}/subtree', 'GET'],
      ['/v1/agents/{id}/path', 'GET'],
      ['/v1/agents/{id}/card', 'GET'],
    ];

    const hiddenVersusMissing = async (routes: Array<[string, string, unknown?]>, hiddenId: string, missingId: string): Promise<string[]> => {
      const mismatches: string[] = [];
      for (const [template, method, json] of routes) {
        const path = (id: string) => template.replace('{id}', encodeURIComponent(id)).replace('{port}', String(a.port));
        const hidden = await http.request(path(hiddenId), { method, json, token: bToken() });
        const missing = await http.request(path(missingId), { method, json, token: bToken() });
        if (hidden.status !== 404) mismatches.push(`${method} ${path(hiddenId)}: expected 404, got ${describeReply(hidden)}`);
        else if (JSON.stringify(notFoundShape(hidden, hiddenId)) !== JSON.stringify(notFoundShape(missing, missingId))) {
          mismatches.push(`${method} ${template}: hidden ${JSON.stringify(notFoundShape(hidden, hiddenId))} differs from missing ${JSON.stringify(notFoundShape(missing, missingId))}`);
        }
      }
      return mismatches;
    };

    it(`answers A's task and every sub-route 404, exactly like a task that does not exist`, async () => {
      expect(await hiddenVersusMissing(TASK_ROUTES, a.taskId, `tsk_${randomHex(16)}`)).toEqual([]);
    }, 60_000);

    it(`answers A's workspace routes (get, patch, delete, health, reports, affected, ports, port renew and release) 404, like a missing workspace`, async () => {
      expect(await hiddenVersusMissing(WORKSPACE_ROUTES, WS_A, `zz-${unique}`)).toEqual([]);
    }, 60_000);

    it(`answers renewing or releasing A's pool lease 404, like a missing lease`, async () => {
      expect(await hiddenVersusMissing(LEASE_ROUTES, a.leaseId, `lease-${randomHex(8)}`)).toEqual([]);
    }, 30_000);

    it(`answers A's agents (get, children, subtree, path, card) 404, like a missing agent`, async () => {
      expect(await hiddenVersusMissing(AGENT_ROUTES, a.agentIds[0]!, `no-such-agent-${unique}`)).toEqual([]);
    }, 30_000);

    it(`refuses to lease pool units for A with 404, like a workspace that does not exist`, async () => {
      const hidden = await http.request('/v1/pools/gpu/leases', { json: { workspace: WS_A }, token: bToken() });
      const missing = await http.request('/v1/pools/gpu/leases', { json: { workspace: `zz-${unique}` }, token: bToken() });
      expect(notFoundShape(hidden, WS_A)).toEqual({ ...notFoundShape(missing, `zz-${unique}`), status: 404 });
    }, 30_000);

    it('the A objects above still exist for a token that may see them (the 404s were scoping, not absence)', async () => {
      const answers = [
        await http.request(`/v1/tasks/${a.taskId}`),
        await http.request(`/v1/workspaces/${WS_A}`),
        await http.request(`/v1/agents/${a.agentIds[0]!}`),
        await http.request(`/v1/pools/gpu/leases?workspace=${WS_A}`),
      ];
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      expect(JSON.stringify(answers[3]!.body)).toContain(a.leaseId);
    }, 30_000);

    it(`never lists A's objects to the B token`, async () => {
      const aIds = [a.taskId, a.leaseId, ...a.agentIds, `"${WS_A}"`];
      const listings = ['/v1/tasks', `/v1/tasks?workspace=${WS_A}`, '/v1/workspaces', '/v1/pools/gpu/leases', `/v1/pools/gpu/leases?workspace=${WS_A}`, '/v1/agents?limit=500', `/v1/agents?workspace=${WS_A}`, '/v1/policies/decisions', `/v1/workspaces/${WS_B}/affected`];
      const problems: string[] = [];
      for (const path of listings) {
        const r = await http.request(path, { token: bToken() });
        if (r.status >= 500) problems.push(`${path}: ${describeReply(r)}`);
        const listed = JSON.stringify(r.status === 200 ? r.body : {});
        for (const id of aIds) if (listed.includes(id)) problems.push(`${path} lists ${id}`);
      }
      expect(problems).toEqual([]);
    }, 60_000);
  });

  describe('request bodies and query strings beyond their schema', () => {
    let fixtures: Partial<Fixtures>;

    beforeAll(async () => {
      const workspace = `ma-${unique}`;
      await create('/v1/workspaces', { id: workspace, name: 'Mass assignment', owner: 'security' });
      const task = await create('/v1/tasks', { workspace: 'ziggie', plan: { steps: [{ id: 'a', capability: 'qa', action: 'approval' }] } });
      const port = await create(`/v1/workspaces/${workspace}/ports`, { service: 'base' });
      const lease = await create('/v1/pools/gpu/leases', { workspace, units: 1 });
      const policy = await create('/v1/policies', { name: `ma-${unique}`, effect: 'allow', enabled: false });
      await create(`/v1/pools/ma-${unique}`, { capacity: 1 }, 'PUT');
      const agents = (await http.request('/v1/agents?workspace=ziggie&limit=1')).body as { items?: Array<{ id: string }> };
      fixtures = {
        agentId: agents.items?.[0]?.id ?? 'no-agent',
        taskId: task.id,
        stepId: 'a',
        workspace,
        port: port.port,
        pool: `ma-${unique}`,
        leaseId: lease.id,
        policyId: policy.id,
        tool: 'everything.echo',
      };
    }, 60_000);

    it('refuses with 400 every documented request body that carries a member its schema does not declare', async () => {
      const bodies = minimalBodies(fixtures, unique);
      const withBody = ops.filter((o) => o.bodySchema);
      expect(withBody.length).toBeGreaterThan(10);
      const mismatches: string[] = [];
      for (const op of withBody) {
        const base = bodies[op.key];
        if (base === undefined) {
          mismatches.push(`${op.key}: no minimal body written for it in support/operations.ts`);
          continue;
        }
        // The fixture lease is on gpu; the pool route itself changes the suite's own pool.
        const path = fillPath(op.path, op.path.startsWith('/v1/pools/{name}/leases') ? { ...fixtures, pool: 'gpu' } : fixtures);
        const baseReply = await http.request(path, { method: op.method, json: base });
        if (baseReply.status === 400 && SCHEMA_REFUSALS.includes(baseReply.body?.code as string)) {
          mismatches.push(`${op.key}: the minimal body itself is refused (${describeReply(baseReply)})`);
          continue;
        }
        const declared = declaredMembers(op.bodySchema);
        for (const field of MASS_ASSIGNMENT_FIELDS.filter((f) => !declared.has(f))) {
          const json = { ...(base as object), [field]: field === 'principal' ? { subject: 'root', roles: ['admin'], workspaces: ['*'] } : field === 'isAdmin' ? true : 'injected' };
          const reply = await http.request(path, { method: op.method, json });
          const wrong = problemMismatch(reply, 400, SCHEMA_REFUSALS);
          if (wrong) mismatches.push(`${op.method} ${path} with extra "${field}": ${wrong}`);
        }
      }
      expect(mismatches).toEqual([]);
    }, 180_000);

    /** The path of an operation on this describe's fixtures (leases live on gpu, the pool route changes the suite's own pool). */
    const pathOf = (op: Operation) => fillPath(op.path, op.path.startsWith('/v1/pools/{name}/leases') ? { ...fixtures, pool: 'gpu' } : fixtures);

    it('answers a U+0000 in any free-text member of an otherwise valid body with a 4xx problem, never 5xx', async () => {
      const bodies = minimalBodies(fixtures, `${unique}n`);
      const outcomes: string[] = [];
      for (const op of ops.filter((o) => o.bodySchema && bodies[o.key] !== undefined)) {
        for (const [member, schema] of freeTextMembers(op.bodySchema)) {
          const json = { ...(bodies[op.key] as object), [member]: `${'x'.repeat(Math.max(0, (schema.minLength as number | undefined) ?? 0))}a\u0000b` };
          const reply = await http.request(pathOf(op), { method: op.method, json });
          if (reply.status >= 500 || (reply.status >= 400 && problemMismatch(reply, reply.status) !== null)) outcomes.push(`${op.method} ${pathOf(op)} with ${member} containing U+0000: ${describeReply(reply)}`);
        }
      }
      expect(outcomes).toEqual([]);
    }, 120_000);

    it('answers JSON nested 100 levels deep in any free-form member of an otherwise valid body without a 5xx', async () => {
      const bodies = minimalBodies(fixtures, `${unique}d`);
      let nested: unknown = 'bottom';
      for (let i = 0; i < 100; i++) nested = [nested];
      const outcomes: string[] = [];
      for (const op of ops.filter((o) => o.bodySchema && bodies[o.key] !== undefined)) {
        for (const member of freeFormMembers(op.bodySchema)) {
          const json = { ...(bodies[op.key] as object), [member]: { nested } };
          const reply = await http.request(pathOf(op), { method: op.method, json });
          if (reply.status >= 500) outcomes.push(`${op.method} ${pathOf(op)} with ${member} nested 100 deep: ${describeReply(reply)}`);
        }
      }
      // The same inside a plan step's input, the free-form member every task carries.
      const step = await http.request('/v1/tasks', { json: { workspace: 'ziggie', plan: { steps: [{ ...echoStep(), input: { tool: 'everything.echo', arguments: { message: 'x' }, nested } }] } } });
      if (step.status >= 500) outcomes.push(`POST /v1/tasks with plan.steps[0].input nested 100 deep: ${describeReply(step)}`);
      expect(outcomes).toEqual([]);
    }, 120_000);

    it('answers a U+0000 in any string query parameter with a 4xx problem or success, never 5xx', async () => {
      const outcomes: string[] = [];
      for (const op of ops.filter((o) => o.method === 'GET' && o.query.length > 0)) {
        for (const p of op.query.filter((q) => q.schema.type === 'string' && !q.schema.enum && !q.schema.format)) {
          const path = `${pathOf(op)}?${new URLSearchParams({ [p.name]: 'a\u0000b' }).toString()}`;
          const reply = await http.request(path);
          if (reply.status >= 500 || (reply.status >= 400 && problemMismatch(reply, reply.status) !== null)) outcomes.push(`GET ${path}: ${describeReply(reply)}`);
        }
      }
      expect(outcomes).toEqual([]);
    }, 120_000);
  });

  describe('size limits', () => {
    it('refuses a 3 MB JSON body on POST /v1/tasks with 413 PAYLOAD_TOO_LARGE problem+json', async () => {
      const reply = await http.request('/v1/tasks', { rawBody: JSON.stringify({ ...tinyTask('ziggie'), title: 'x'.repeat(3 * 1024 * 1024) }) });
      expect(problemMismatch(reply, 413, ['PAYLOAD_TOO_LARGE'])).toBeNull();
    }, 30_000);

    it('refuses a 3 MB JSON body on every other documented body route with 413 PAYLOAD_TOO_LARGE', async () => {
      const fixtures: Partial<Fixtures> = { taskId: `tsk_${randomHex(16)}`, stepId: 'a', workspace: 'ziggie', port: 20_001, pool: 'gpu', leaseId: 'l1', policyId: `pol_${randomHex(8)}`, tool: 'everything.echo' };
      const filler = JSON.stringify({ filler: 'x'.repeat(3 * 1024 * 1024) });
      const mismatches: string[] = [];
      for (const op of ops.filter((o) => o.bodySchema && o.key !== 'POST /v1/tasks')) {
        const reply = await http.request(fillPath(op.path, fixtures), { method: op.method, rawBody: filler });
        const wrong = problemMismatch(reply, 413, ['PAYLOAD_TOO_LARGE']);
        if (wrong) mismatches.push(`${op.key}: ${wrong}`);
      }
      expect(mismatches).toEqual([]);
    }, 60_000);

    it(`refuses a plan of ${MAX_PLAN_STEPS + 1} (tiny) steps with 400, and a blueprint template of as many`, async () => {
      const steps = Array.from({ length: MAX_PLAN_STEPS + 1 }, (_, i) => ({ id: `s${i}`, capability: 'qa' }));
      const plan = await http.request('/v1/tasks', { json: { workspace: 'ziggie', plan: { steps } } });
      const blueprint = await http.request('/v1/blueprints', { json: { name: `big-${unique}`, version: '1.0.0', template: { steps } } });
      expect(Buffer.byteLength(JSON.stringify({ workspace: 'ziggie', plan: { steps } }))).toBeLessThan(2 * 1024 * 1024);
      expect([problemMismatch(plan, 400), problemMismatch(blueprint, 400)]).toEqual([null, null]);
    }, 30_000);
  });

  describe('SSRF', () => {
    const REFUSED = [
      'http://127.0.0.1/',
      'http://localhost/',
      'http://[::1]/',
      'http://10.0.0.1/',
      'http://169.254.169.254/latest/meta-data',
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://0.0.0.0/',
      'http://2130706433/',
      'file:///etc/passwd',
      'gopher://x',
      // Other spellings of the same places.
      'http://127.1/',
      'http://0x7f000001/',
      'http://017700000001/',
      'http://[::ffff:127.0.0.1]/',
      'http://[::ffff:a9fe:a9fe]/',
      'http://[0:0:0:0:0:0:0:1]/',
      'http://100.100.100.200/',
      'http://[fd00:ec2::254]/',
      'http://192.168.1.1/',
      'http://172.16.0.1/',
      'http://user:pass@10.0.0.1/',
    ];
    const URL_REFUSALS = ['URL_NOT_ALLOWED', 'VALIDATION_FAILED'];
    let counter: CountingServer;

    beforeAll(async () => {
      counter = await startCountingServer({ '/schema.json': { type: 'application/schema+json', body: JSON.stringify({ type: 'string' }) } });
    });
    afterAll(async () => {
      await counter?.close();
    });

    it('refuses an http MCP server at any internal, loopback, metadata or non-http URL with 400, and adds none of them', async () => {
      const mismatches: string[] = [];
      for (const [i, url] of REFUSED.entries()) {
        const reply = await http.request('/v1/mcp/servers', { json: { name: `ssrf-${i}`, transport: 'http', urls: [url] }, timeoutMs: 45_000 });
        const wrong = problemMismatch(reply, 400, URL_REFUSALS);
        if (wrong) mismatches.push(`${url}: ${wrong}`);
      }
      const servers = await http.request('/v1/mcp/servers');
      expect(servers.status).toBe(200);
      const added = ((servers.body?.items ?? []) as Array<{ name: string }>).map((s) => s.name).filter((n) => n.startsWith('ssrf-'));
      expect({ mismatches, added }).toEqual({ mismatches: [], added: [] });
    }, 180_000);

    it('refuses internal URLs on every other URL-taking transport and on the `url` shorthand', async () => {
      const cases: Array<Record<string, unknown>> = [];
      for (const transport of ['sse', 'comfyui', 'ollama', 'openai']) {
        cases.push({ transport, urls: ['http://169.254.169.254/'] }, { transport, urls: ['http://127.0.0.1:8188/'] });
      }
      cases.push({ transport: 'ws', urls: ['ws://127.0.0.1:9/'] }, { transport: 'ws', urls: ['ws://169.254.169.254/'] }, { transport: 'ws', urls: ['wss://10.0.0.1/'] });
      cases.push({ transport: 'http', url: 'http://169.254.169.254/latest/meta-data' });
      cases.push({ transport: 'http', urls: ['http://10.0.0.2/', 'http://127.0.0.1/'] });
      const mismatches: string[] = [];
      for (const [i, c] of cases.entries()) {
        const reply = await http.request('/v1/mcp/servers', { json: { name: `ssrf-t${i}`, ...c } });
        const wrong = problemMismatch(reply, 400, URL_REFUSALS);
        if (wrong) mismatches.push(`${JSON.stringify(c)}: ${wrong}`);
      }
      const names = ((await http.request('/v1/mcp/servers')).body?.items ?? []) as Array<{ name: string }>;
      expect({ mismatches, added: names.map((s) => s.name).filter((n) => n.startsWith('ssrf-')) }).toEqual({ mismatches: [], added: [] });
    }, 120_000);

    it('refuses a blueprint whose inputSchema or outputSchema has a remote $ref with 400, without fetching it', async () => {
      const local = `${counter.url}/schema.json`;
      const blueprint = (name: string, schemas: { inputSchema?: object; outputSchema?: object }) => ({ name, version: '1.0.0', template: { steps: [echoStep()] }, ...schemas });
      const cases = [
        blueprint(`ref-meta-${unique}`, { inputSchema: { type: 'object', properties: { x: { $ref: 'http://169.254.169.254/latest/meta-data' } } } }),
        blueprint(`ref-local-${unique}`, { inputSchema: { type: 'object', properties: { x: { $ref: local } } } }),
        blueprint(`ref-root-${unique}`, { inputSchema: { $ref: local } }),
        blueprint(`ref-out-${unique}`, { outputSchema: { type: 'object', properties: { x: { $ref: local } } } }),
      ];
      const mismatches: string[] = [];
      for (const body of cases) {
        const reply = await http.request('/v1/blueprints', { json: body });
        const wrong = problemMismatch(reply, 400);
        if (wrong) {
          mismatches.push(`${JSON.stringify(body.inputSchema ?? body.outputSchema)}: ${wrong}`);
          // Accepted: running it is where a lazy resolver would fetch.
          if (reply.status === 201) await http.request('/v1/tasks', { json: { workspace: 'ziggie', blueprint: `${body.name}@1.0.0`, inputs: { x: 'y' } } });
        }
      }
      await new Promise((r) => setTimeout(r, 1_000));
      expect({ mismatches, hits: counter.hits }).toEqual({ mismatches: [], hits: [] });
    }, 60_000);

    it('never fetches a remote $ref in a step quality gate either', async () => {
      const step = { ...echoStep(), qualityGate: { outputSchema: { type: 'object', properties: { text: { $ref: `${counter.url}/schema.json` } } } } };
      const reply = await http.request('/v1/tasks', { json: { workspace: 'ziggie', plan: { steps: [step] } } });
      expect(reply.status).toBeLessThan(500);
      if (reply.status === 201) {
        const deadline = Date.now() + 20_000;
        for (;;) {
          const t = await http.request(`/v1/tasks/${reply.body.id as string}`);
          if (['succeeded', 'failed', 'cancelled'].includes(t.body?.status as string) || Date.now() > deadline) break;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      expect(counter.hits).toEqual([]);
    }, 40_000);
  });

  describe("the local stack's default tool policies: nothing reveals the server's environment to non-admins", () => {
    const HOST_REVEALING = ['everything.get-env', 'everything.gzip-file-as-resource'];
    const call = (tool: string, role: string) => http.request(`/v1/mcp/tools/${tool}/call`, { json: { arguments: {} }, token: sec.token([role]) });

    it.each(['l1', 'l2l3', 'bmad'].flatMap((role) => HOST_REVEALING.map((tool) => ({ role, tool }))))(
      'refuses $tool to $role with 403 POLICY_DENIED',
      async ({ role, tool }) => {
        expect(problemMismatch(await call(tool, role), 403, ['POLICY_DENIED'])).toBeNull();
      },
      30_000,
    );

    it('refuses everything.get-env to an l1 token over /mcp too', async () => {
      const mcp = new HttpRecorder(() => sec.stack.mcpUrl.replace(/\/mcp$/, ''));
      const token = sec.token(['l1']);
      const headers = { accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };
      const init = await mcp.request('/mcp', {
        token,
        json: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'security-spec', version: '1.0.0' } } },
        headers: { accept: headers.accept },
      });
      const session = headerValue(init, 'mcp-session-id');
      expect([init.status, typeof session]).toEqual([200, 'string']);
      const withSession = { ...headers, 'mcp-session-id': session as string };
      await mcp.request('/mcp', { token, json: { jsonrpc: '2.0', method: 'notifications/initialized' }, headers: withSession });
      const reply = await mcp.request('/mcp', { token, json: { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'everything.get-env', arguments: {} } }, headers: withSession });
      http.replies.push(...mcp.replies);
      expect(jsonRpcMessages(reply).find((m) => m.id === 2)).toMatchObject({ error: { data: { code: 'POLICY_DENIED' } } });
    }, 30_000);

    it("lets an admin call everything.get-env, which shows a minimal environment without the gateway's secrets", async () => {
      // Its own recorder: showing the server's PATH (node_modules directories under npm) is this tool's job, not a leak of the gateway's.
      const own = new HttpRecorder(() => sec.stack.gatewayUrl);
      const reply = await own.request('/v1/mcp/tools/everything.get-env/call', { json: { arguments: {} }, token: sec.token(['admin']) });
      expect(describeReply(reply)).toMatch(/^200 /);
      const text = (reply.body?.result?.content ?? []).map((c: { text?: string }) => c.text ?? '').join('');
      const env = JSON.parse(text) as Record<string, string>;
      // Only what the MCP SDK passes a stdio child by default (HOME, PATH, USER, …) plus the server's configured env, which is empty.
      expect({
        beyondTheMinimum: Object.keys(env).filter((k) => !DEFAULT_INHERITED_ENV_VARS.includes(k)),
        gatewaySecrets: Object.keys(env).filter((k) => ['ZIGGIE_JWT_SECRET', 'DATABASE_URL', 'JWT_PUBLIC_KEY_FILE', 'NATS_URL'].includes(k)),
        secretValueShown: text.includes(sec.stack.jwtSecret),
      }).toEqual({ beyondTheMinimum: [], gatewaySecrets: [], secretValueShown: false });
      expect(Object.keys(env)).toContain('PATH');
    }, 30_000);
  });

  it('answered nothing in this file with a stack trace, a source path, an error dump, or any origin with credentials', () => {
    expect(http.replies.length).toBeGreaterThan(100);
    expect({ leaks: leaksIn(http.replies), wildcardOriginWithCredentials: wildcardWithCredentials(http.replies) }).toEqual({ leaks: [], wildcardOriginWithCredentials: [] });
  });
});
