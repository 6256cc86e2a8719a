import fc from 'fast-check';
import { describe as describeReply, isProblem, leakedInternals, leaksIn, wildcardWithCredentials, type Reply } from './support/http';
import { committedDocument, fillPath, operationsOf, randomHex, tinyTask, type Fixtures, type Operation } from './support/operations';
import { queryArbitrary, REFUSED_URLS, requestBodyArbitrary, text, toJsonText, type JsonSchema } from './support/schema-arbitrary';
import { securityStackHooks } from './support/stack';
import { rawHttpExchange } from '../support/raw-http';

const SEED = 20_251_121;
const RUNS_PER_OPERATION = 25;
const TERMINAL = ['succeeded', 'failed', 'cancelled'];

/** Known when the file is loaded so each operation gets its own test; the schemas come from the live document. */
const BODY_OPERATIONS = operationsOf(committedDocument()).filter((o) => o.bodySchema);
const QUERY_OPERATIONS = operationsOf(committedDocument()).filter((o) => o.method === 'GET' && o.query.length > 0);

function summary(body: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(body) ?? String(body);
  } catch {
    text = String(body);
  }
  return text.length > 300 ? `${text.slice(0, 300)}… (${text.length} chars)` : text;
}

/** The property every answer must have; what breaks it is added to `violations` (so one run lists every failure). */
async function checkAnswer(violations: string[], run: string, sent: string, send: () => Promise<Reply>): Promise<void> {
  try {
    const reply = await send();
    const problems: string[] = [];
    if (reply.status >= 500) problems.push(`status ${reply.status}`);
    if (reply.status >= 400 && reply.status < 500 && !isProblem(reply)) problems.push('a 4xx that is not problem+json with a code');
    const leak = leakedInternals(reply.text);
    if (leak) problems.push(leak);
    if (problems.length > 0) violations.push(`${run}: ${problems.join('; ')} → ${describeReply(reply)} for ${sent}`);
  } catch (err) {
    violations.push(`${run}: no answer (${(err as Error).message}) for ${sent}`);
  }
}

const isStdio = (b: unknown) => typeof b === 'object' && b !== null && (b as { transport?: unknown }).transport === 'stdio';

/**
 * Property-based fuzzing of every documented request body (and query string) with an admin
 * token: whatever is sent, the gateway answers below 500, every 4xx is problem+json with a
 * code, and nothing leaks.
 */
describe('security: fuzzing every documented request body and query string', () => {
  const sec = securityStackHooks('sec-fuzz');
  const http = sec.http;
  const unique = randomHex(4);
  let live: Operation[];
  let fixtures: Fixtures;
  let policiesBefore: Set<string>;
  let tasksBefore: Set<string>;

  const create = async (path: string, json: unknown, method = 'POST'): Promise<any> => {
    const r = await http.request(path, { method, json });
    if (r.status >= 300) throw new Error(`setup: ${method} ${path} answered ${describeReply(r)}`);
    return r.body;
  };

  const listIds = async (path: string): Promise<Array<{ id: string; status?: string }>> => {
    const r = await http.request(`${path}${path.includes('?') ? '&' : '?'}limit=500`);
    return ((r.body?.items ?? []) as Array<{ id: string; status?: string }>).map((x) => ({ id: x.id, status: x.status }));
  };

  beforeAll(async () => {
    live = operationsOf((await http.request('/openapi.json', { token: null })).body);
    const workspace = `fz-${unique}`;
    await create('/v1/workspaces', { id: workspace, name: 'Fuzz target', owner: 'security' });
    await create(`/v1/pools/fz-${unique}`, { capacity: 1000 }, 'PUT');
    const task = await create('/v1/tasks', { workspace: 'ziggie', plan: { steps: [{ id: 'a', capability: 'qa', action: 'approval' }] } });
    const port = await create(`/v1/workspaces/${workspace}/ports`, { service: 'fuzz' });
    const lease = await create(`/v1/pools/fz-${unique}/leases`, { workspace, units: 1 });
    const policy = await create('/v1/policies', { name: `fz-${unique}`, effect: 'allow', enabled: false });
    const agents = (await http.request('/v1/agents?workspace=ziggie&limit=1')).body as { items?: Array<{ id: string }> };
    fixtures = {
      taskId: task.id,
      stepId: 'a',
      workspace,
      port: port.port,
      pool: `fz-${unique}`,
      leaseId: lease.id,
      agentId: agents.items?.[0]?.id ?? 'no-agent',
      blueprint: 'comic-strip',
      blueprintVersion: '1.0.0',
      mcpServer: 'everything',
      tool: 'everything.echo',
      policyId: policy.id,
    };
    policiesBefore = new Set((await listIds('/v1/policies')).map((p) => p.id).filter((id) => id !== policy.id));
    tasksBefore = new Set((await listIds('/v1/tasks')).map((t) => t.id));
  }, 60_000);

  /** Plausible values for members whose random values would only ever be refused, and safe ones where a real value could reach out. */
  const overrides = (name: string, schema: JsonSchema): fc.Arbitrary<unknown> | undefined => {
    switch (name) {
      case 'workspace':
        return schema.type === 'string' ? fc.oneof(fc.constantFrom('ziggie', fixtures.workspace), text(0, 70)) : undefined;
      case 'capability':
        return schema.type === 'string' ? fc.oneof(fc.constantFrom('qa', 'code', 'content'), text(0, 70)) : undefined;
      case 'urls':
        return fc.array(fc.constantFrom(...REFUSED_URLS), { minLength: 1, maxLength: 3 });
      case 'secretFile':
        return fc.constant('/nonexistent/ziggie-fuzz-secret');
      default:
        return undefined;
    }
  };

  it.each(BODY_OPERATIONS.map((o) => ({ key: o.key, op: o })))(
    '$key: never 5xx, every 4xx is problem+json with a code, nothing leaks',
    async ({ op }) => {
      const current = live.find((o) => o.key === op.key);
      expect(current?.bodySchema).toBeDefined();
      let bodies = requestBodyArbitrary(current!.bodySchema!, { overrides, skipBranch: (b) => b.properties?.transport?.const === 'stdio' });
      // A stdio server would spawn a process on this machine.
      if (op.key === 'POST /v1/mcp/servers') bodies = bodies.filter((b) => !isStdio(b));
      const path = fillPath(op.path, fixtures);
      const violations: string[] = [];
      let run = 0;
      await fc.assert(
        fc.asyncProperty(bodies, async (body) => {
          run++;
          await checkAnswer(violations, `run ${run}`, summary(body), () => http.request(path, { method: op.method, rawBody: toJsonText(body), timeoutMs: 60_000 }));
          return true;
        }),
        { seed: SEED, numRuns: RUNS_PER_OPERATION, endOnFailure: true },
      );
      expect(violations).toEqual([]);
    },
    180_000,
  );

  it.each(QUERY_OPERATIONS.map((o) => ({ key: o.key, op: o })))(
    '$key with generated query strings: never 5xx, every 4xx is problem+json with a code, nothing leaks',
    async ({ op }) => {
      const current = live.find((o) => o.key === op.key);
      expect(current?.query.length).toBeGreaterThan(0);
      const path = fillPath(op.path, fixtures);
      const violations: string[] = [];
      let run = 0;
      await fc.assert(
        fc.asyncProperty(queryArbitrary(current!.query), async (pairs) => {
          run++;
          const search = new URLSearchParams(pairs).toString();
          await checkAnswer(violations, `run ${run}`, `?${search.slice(0, 300)}`, () => http.request(`${path}?${search}`, { timeoutMs: 60_000 }));
          return true;
        }),
        { seed: SEED, numRuns: RUNS_PER_OPERATION, endOnFailure: true },
      );
      expect(violations).toEqual([]);
    },
    180_000,
  );

  it('answers requests the HTTP parser refuses (over-long query, malformed request line) with problem+json, on every service', async () => {
    for (const [name, ports] of Object.entries(sec.stack.ports.services)) {
      const long = await fetch(`http://127.0.0.1:${ports.http}/v1/audit?q=${'x'.repeat(20_000)}`);
      expect(`${name} ${long.status} ${long.headers.get('content-type')}`).toBe(`${name} 431 application/problem+json`);
      expect(await long.json()).toMatchObject({ status: 431, code: 'REQUEST_HEADERS_TOO_LARGE' });
      const raw = await rawHttpExchange(ports.http, 'GARBAGE / NOT-HTTP\r\n\r\n');
      expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(raw).toContain('"code":"REQUEST_MALFORMED"');
    }
  });

  it('is still ready afterwards, and a tiny task still succeeds', async () => {
    // Undo what fuzzing configured (a random policy may deny everything) and stop what it started.
    for (const p of await listIds('/v1/policies')) if (!policiesBefore.has(p.id)) await http.request(`/v1/policies/${p.id}`, { method: 'DELETE' });
    for (const t of await listIds('/v1/tasks')) {
      if (!tasksBefore.has(t.id) && !TERMINAL.includes(t.status ?? '')) await http.request(`/v1/tasks/${t.id}/cancel`, { json: {} });
    }
    expect((await http.request('/readyz', { token: null })).status).toBe(200);
    for (const [name, ports] of Object.entries(sec.stack.ports.services)) {
      const ready = await fetch(`http://127.0.0.1:${ports.http}/readyz`, { signal: AbortSignal.timeout(5_000) });
      expect(`${name} ${ready.status}`).toBe(`${name} 200`);
    }
    const submitted = await http.request('/v1/tasks', { json: tinyTask('ziggie') });
    expect(submitted.status).toBe(201);
    const deadline = Date.now() + 45_000;
    let status = '';
    while (Date.now() < deadline) {
      status = (await http.request(`/v1/tasks/${submitted.body.id as string}`)).body?.status as string;
      if (TERMINAL.includes(status)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(status).toBe('succeeded');
  }, 120_000);

  it('answered nothing in this file with a stack trace, a source path, an error dump, or any origin with credentials', () => {
    expect(http.replies.length).toBeGreaterThan((BODY_OPERATIONS.length + QUERY_OPERATIONS.length) * RUNS_PER_OPERATION);
    expect({ leaks: leaksIn(http.replies), wildcardOriginWithCredentials: wildcardWithCredentials(http.replies) }).toEqual({ leaks: [], wildcardOriginWithCredentials: [] });
  });
});
