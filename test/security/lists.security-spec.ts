import { randomUUID } from 'node:crypto';
import { Cursors, CURSOR_MAX_LENGTH } from '@ziggie/contracts';
import fc from 'fast-check';
import { describe as describeReply, isProblem, leakedInternals, leaksIn, type Reply } from './support/http';
import { committedDocument, fillPath, operationsOf, randomHex, tinyTask, type Fixtures, type Operation } from './support/operations';
import { queryArbitrary, text, type JsonSchema } from './support/schema-arbitrary';
import { securityStackHooks } from './support/stack';

const SEED = 20_251_207;
const RUNS_PER_LIST = 40;

/** Every documented list: a GET route taking `limit` and `cursor`. Known when the file is loaded, so each gets its own tests. */
const LISTS = operationsOf(committedDocument()).filter((o) => o.method === 'GET' && o.query.some((q) => q.name === 'cursor') && o.query.some((q) => q.name === 'limit'));

/**
 * The cursor kinds each list accepts (Cursors in libs/contracts). Written out here so a list added
 * without saying which cursors it takes fails this file rather than going untested.
 */
const ACCEPTS: Record<string, readonly string[]> = {
  'GET /v1/tasks': ['tasks'],
  'GET /v1/tasks/{id}/decisions': ['decisions'],
  'GET /v1/policies/decisions': ['decisions'],
  'GET /v1/policies': ['policies'],
  'GET /v1/blueprints': ['blueprints'],
  'GET /v1/workspaces': ['workspaces'],
  'GET /v1/agents': ['agents', 'agents.visible'],
  'GET /v1/agents/{id}/children': ['agents.children', 'agents.visible'],
  'GET /v1/agents/{id}/subtree': ['agents.subtree', 'agents.visible'],
  'GET /v1/audit': ['audit'],
  'GET /v1/mcp/tools': ['mcp.catalog'],
  'GET /v1/mcp/resources': ['mcp.catalog'],
  'GET /v1/mcp/prompts': ['mcp.catalog'],
};

/** A well-formed cursor of every kind, whichever list it is then sent to. */
const SAMPLES: Record<string, string> = {
  [Cursors.tasks.kind]: Cursors.tasks.encode({ offset: 1 }),
  [Cursors.decisions.kind]: Cursors.decisions.encode({ offset: 1 }),
  [Cursors.blueprints.kind]: Cursors.blueprints.encode({ offset: 1 }),
  [Cursors.policies.kind]: Cursors.policies.encode({ offset: 1 }),
  [Cursors.workspaces.kind]: Cursors.workspaces.encode({ id: 'fitflow' }),
  [Cursors.agents.kind]: Cursors.agents.encode({ level: 1, id: 'l1-ziggie-01' }),
  [Cursors.agentChildren.kind]: Cursors.agentChildren.encode({ level: 1, id: 'l1-ziggie-01' }),
  [Cursors.agentSubtree.kind]: Cursors.agentSubtree.encode({ level: 2, id: 'l2-ziggie-01-01' }),
  [Cursors.agentsVisible.kind]: Cursors.agentsVisible.encode({ offset: 1 }),
  [Cursors.audit.kind]: Cursors.audit.encode({ at: new Date().toISOString(), id: randomUUID() }),
  [Cursors.mcpCatalog.kind]: Cursors.mcpCatalog.encode({ name: 'everything.echo' }),
};

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64url');

/** Never a cursor of any list: numbers (the probe's), garbage, broken encodings, bad envelopes and positions. */
const NOT_CURSORS: readonly string[] = [
  '99999999999999999999',
  'garbage',
  '-5',
  '0',
  '1',
  '',
  ' ',
  'null',
  '[]',
  '%zz',
  'ab+/cd==',
  'eyJ2IjoxfQ==',
  'A'.repeat(CURSOR_MAX_LENGTH + 1),
  b64('{"offset":1}'),
  b64('[1,"l1-ziggie-01"]'),
  b64('{"after":"everything.echo"}'),
  b64('not json'),
  Buffer.from([0xff, 0xfe, 0xfd]).toString('base64url'),
  b64('{"v":1,"k":"tasks","p":{"offset":-5}}'),
  b64('{"v":1,"k":"tasks","p":{"offset":99999999999999999999}}'),
  b64('{"v":1,"k":"tasks","p":{"offset":1e300}}'),
  b64('{"v":1,"k":"tasks","p":{"offset":"1"}}'),
  b64('{"v":2,"k":"tasks","p":{"offset":1}}'),
  b64('{"v":1,"k":"nothing","p":{"offset":1}}'),
  b64('{"v":1,"k":"audit","p":{"at":"0000-01-01T00:00:00Z","id":"x"}}'),
  b64('{"v":1,"k":"workspaces","p":{"id":"","x":1}}'),
];

const BAD_LIMITS: readonly string[] = ['0', '-1', '-5', '501', '1e3', '1e1', '1.5', '5.0', 'NaN', 'Infinity', '', ' 5', '0x10', 'abc', '99999999999999999999'];

const kindOf = (cursor: string): string | undefined => {
  try {
    return (JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { k?: string }).k;
  } catch {
    return undefined;
  }
};

/** How an item is told apart from the others of its list, to check two pages do not overlap. */
function identity(item: Record<string, unknown>): string {
  if (typeof item.id === 'string') return `id:${item.id}`;
  if (typeof item.name === 'string') return `name:${item.name}@${String(item.version ?? '')}`;
  return JSON.stringify(item);
}

/** Small random changes to a real cursor: one character replaced, cut short, lengthened. */
function tampered(cursor: string): fc.Arbitrary<string> {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.%';
  return fc.oneof(
    fc.tuple(fc.nat({ max: Math.max(cursor.length - 1, 0) }), fc.constantFrom(...alphabet)).map(([i, ch]) => cursor.slice(0, i) + ch + cursor.slice(i + 1)),
    fc.nat({ max: Math.max(cursor.length - 1, 0) }).map((n) => cursor.slice(0, n)),
    fc.string({ minLength: 1, maxLength: 8 }).map((s) => cursor + s),
  );
}

describe('security: every list takes one strict cursor convention, and its limit and filters are validated', () => {
  const sec = securityStackHooks('sec-lists');
  const http = sec.http;
  const unique = randomHex(4);
  let fixtures: Partial<Fixtures>;
  let live: Operation[];
  /** A real nextCursor of each list (limit=1), when it has a second page. */
  const issued = new Map<string, string>();

  beforeAll(async () => {
    live = operationsOf((await http.request('/openapi.json', { token: null })).body);
    // Enough objects for every list to have a second page.
    for (let i = 0; i < 3; i++) {
      const p = await http.request('/v1/policies', { json: { name: `lists-${unique}-${i}`, effect: 'allow', enabled: false } });
      if (p.status !== 201) throw new Error(`setup: POST /v1/policies answered ${describeReply(p)}`);
    }
    let taskId = '';
    for (let i = 0; i < 3; i++) {
      const t = await http.request('/v1/tasks', { json: tinyTask('ziggie') });
      if (t.status !== 201) throw new Error(`setup: POST /v1/tasks answered ${describeReply(t)}`);
      taskId = t.body.id as string;
    }
    fixtures = { taskId, agentId: 'l0-coordinator' };
    for (const op of LISTS) {
      const r = await http.request(`${fillPath(op.path, fixtures)}?limit=1`);
      if (r.status !== 200) throw new Error(`setup: ${op.key}?limit=1 answered ${describeReply(r)}`);
      if (typeof r.body.nextCursor === 'string') issued.set(op.key, r.body.nextCursor);
    }
  }, 120_000);

  it('covers every list of the live document, and the live document has the committed lists', () => {
    const liveLists = live.filter((o) => o.method === 'GET' && o.query.some((q) => q.name === 'cursor')).map((o) => o.key);
    expect(liveLists.sort()).toEqual(LISTS.map((o) => o.key).sort());
    expect(LISTS.map((o) => o.key).sort()).toEqual(Object.keys(ACCEPTS).sort());
    // Most lists have a second page with this data; a cursor of each is what the fuzzing mutates.
    expect(issued.size).toBeGreaterThanOrEqual(LISTS.length - 2);
  });

  it('answers the probe from the issue with 400 VALIDATION_FAILED naming the cursor', async () => {
    for (const cursor of ['99999999999999999999', 'garbage', '-5']) {
      const r = await http.request(`/v1/tasks?cursor=${encodeURIComponent(cursor)}`);
      expect({ cursor, status: r.status, problem: isProblem(r), code: r.body?.code }).toEqual({ cursor, status: 400, problem: true, code: 'VALIDATION_FAILED' });
      expect(String(r.body.detail)).toMatch(/cursor/);
    }
  });

  describe.each(LISTS.map((o) => ({ key: o.key, op: o })))('$key', ({ op }) => {
    const path = () => fillPath(op.path, fixtures);
    const get = (query: string) => http.request(`${path()}?${query}`, { timeoutMs: 60_000 });
    const accepted = ACCEPTS[op.key] ?? [];

    it('refuses anything that is not a cursor, and every other list\'s cursor, with 400 VALIDATION_FAILED naming the cursor', async () => {
      const foreign = [
        ...Object.entries(SAMPLES).filter(([kind]) => !accepted.includes(kind)).map(([, c]) => c),
        ...[...issued.entries()].filter(([key, c]) => key !== op.key && !accepted.includes(kindOf(c) ?? '')).map(([, c]) => c),
      ];
      const wrong: string[] = [];
      for (const cursor of [...NOT_CURSORS, ...foreign]) {
        const r = await get(`cursor=${encodeURIComponent(cursor)}`);
        if (r.status !== 400 || !isProblem(r) || r.body.code !== 'VALIDATION_FAILED' || !/cursor/.test(String(r.body.detail))) wrong.push(`${cursor.slice(0, 60)} → ${describeReply(r)}`);
      }
      expect(wrong).toEqual([]);
    }, 120_000);

    it('refuses a limit that is not a plain integer from 1 to 500, and takes one that is', async () => {
      const wrong: string[] = [];
      for (const limit of BAD_LIMITS) {
        const r = await get(`limit=${encodeURIComponent(limit)}`);
        if (r.status !== 400 || !isProblem(r) || r.body.code !== 'VALIDATION_FAILED' || !/limit/.test(String(r.body.detail))) wrong.push(`${JSON.stringify(limit)} → ${describeReply(r)}`);
      }
      for (const limit of ['1', '500']) {
        const r = await get(`limit=${limit}`);
        if (r.status !== 200 || !Array.isArray(r.body?.items) || r.body.items.length > Number(limit)) wrong.push(`${limit} → ${describeReply(r)}`);
      }
      // Same name twice, and a name the list does not declare.
      for (const q of ['limit=1&limit=2', 'cursor=a&cursor=b', 'colour=red', 'offset=5', 'page=2']) {
        const r = await get(q);
        if (r.status !== 400 || r.body?.code !== 'VALIDATION_FAILED') wrong.push(`${q} → ${describeReply(r)}`);
      }
      expect(wrong).toEqual([]);
    }, 120_000);

    it('refuses an empty filter, and an enum filter outside its values, and takes every value of the enum', async () => {
      const wrong: string[] = [];
      for (const q of op.query.filter((p) => p.name !== 'limit' && p.name !== 'cursor')) {
        const bad = ['', ...(q.schema.enum ? ['bogus', `${String(q.schema.enum[0])}x`, ` ${String(q.schema.enum[0])}`] : [])];
        for (const v of bad) {
          const r = await get(`${q.name}=${encodeURIComponent(v)}`);
          if (r.status !== 400 || r.body?.code !== 'VALIDATION_FAILED' || !String(r.body.detail).includes(q.name)) wrong.push(`${q.name}=${JSON.stringify(v)} → ${describeReply(r)}`);
        }
        for (const v of (q.schema.enum ?? []) as string[]) {
          const r = await get(`${q.name}=${encodeURIComponent(v)}&limit=1`);
          if (r.status !== 200) wrong.push(`${q.name}=${v} → ${describeReply(r)}`);
        }
      }
      expect(wrong).toEqual([]);
    }, 120_000);

    it('pages: the cursor of page 1 gives page 2, with no item of page 1, and the same total', async () => {
      const first = await get('limit=1');
      expect(first.status).toBe(200);
      const next = first.body.nextCursor as string | undefined;
      if (next === undefined) {
        // A one-page list: nothing to follow, and it says so by leaving nextCursor out.
        expect(first.body.items.length).toBeLessThanOrEqual(1);
        return;
      }
      expect(next).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(accepted).toContain(kindOf(next));
      const second = await get(`limit=1&cursor=${encodeURIComponent(next)}`);
      expect(second.status).toBe(200);
      expect(second.body.items).toHaveLength(1);
      const seen = new Set((first.body.items as Array<Record<string, unknown>>).map(identity));
      expect((second.body.items as Array<Record<string, unknown>>).map(identity).filter((id) => seen.has(id))).toEqual([]);
      if (first.body.total !== undefined) expect(second.body.total).toBe(first.body.total);
      // Two pages of 1 are the first two items of a page of 2.
      const both = await get('limit=2');
      expect((both.body.items as Array<Record<string, unknown>>).map(identity)).toEqual([...first.body.items, ...second.body.items].map(identity));
    }, 60_000);

    it('fuzzed cursor, limit and filters: 200 or 400, never 5xx; every 400 is problem+json VALIDATION_FAILED; nothing leaks', async () => {
      const own = issued.get(op.key);
      const cursors = fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(...NOT_CURSORS, ...Object.values(SAMPLES), ...issued.values()) },
        { weight: 3, arbitrary: own ? tampered(own) : fc.constant('garbage') },
        { weight: 2, arbitrary: fc.base64String({ maxLength: 120 }).map((s) => s.replace(/\+/g, '-').replace(/\//g, '_')) },
        { weight: 1, arbitrary: fc.json({ maxDepth: 2 }).map(b64) },
        { weight: 1, arbitrary: fc.record({ v: fc.constantFrom(1, 2), k: fc.constantFrom(...Object.keys(SAMPLES)), p: fc.record({ offset: fc.oneof(fc.integer(), fc.double()) }) }).map((e) => b64(JSON.stringify(e))) },
        { weight: 1, arbitrary: fc.bigInt().map(String) },
        { weight: 1, arbitrary: text(0, 40) },
      );
      const limits = fc.oneof(fc.integer({ min: -10, max: 600 }).map(String), fc.constantFrom(...BAD_LIMITS), fc.double().map(String), text(0, 8));
      const filters = queryArbitrary(op.query.filter((p) => p.name !== 'limit' && p.name !== 'cursor') as Array<{ name: string; required: boolean; schema: JsonSchema }>);
      const queries = fc.tuple(fc.option(cursors, { nil: undefined }), fc.option(limits, { nil: undefined }), filters).map(([cursor, limit, rest]) => {
        const pairs: Array<[string, string]> = [...rest];
        if (cursor !== undefined) pairs.push(['cursor', cursor]);
        if (limit !== undefined) pairs.push(['limit', limit]);
        return new URLSearchParams(pairs).toString();
      });
      const violations: string[] = [];
      let run = 0;
      await fc.assert(
        fc.asyncProperty(queries, async (query) => {
          run++;
          let reply: Reply;
          try {
            reply = await get(query);
          } catch (err) {
            violations.push(`run ${run}: no answer (${(err as Error).message}${(err as Error).cause ? `: ${String((err as Error).cause)}` : ''}) for ?${query.slice(0, 200)}`);
            return true;
          }
          const problems: string[] = [];
          // A token in the query string is refused by authentication before any list sees it (the auth suite's subject).
          const tokenInQuery = new URLSearchParams(query).has('access_token') && reply.status === 401 && reply.body?.code === 'AUTH_INVALID_TOKEN';
          if (reply.status !== 200 && reply.status !== 400 && !tokenInQuery) problems.push(`status ${reply.status}`);
          if (reply.status === 400 && (!isProblem(reply) || reply.body.code !== 'VALIDATION_FAILED')) problems.push('a 400 that is not problem+json VALIDATION_FAILED');
          if (reply.status === 200 && (!Array.isArray(reply.body?.items) || (reply.body.nextCursor !== undefined && !/^[A-Za-z0-9_-]+$/.test(String(reply.body.nextCursor))))) problems.push('a 200 that is not a page');
          const leak = leakedInternals(reply.text);
          if (leak) problems.push(leak);
          if (problems.length > 0) violations.push(`run ${run}: ${problems.join('; ')} → ${describeReply(reply)} for ?${query.slice(0, 200)}`);
          return true;
        }),
        { seed: SEED, numRuns: RUNS_PER_LIST, endOnFailure: true },
      );
      expect(violations).toEqual([]);
    }, 240_000);
  });

  it('pages the agents a workspace-scoped token sees with the gateway\'s own cursors, and refuses the registry\'s there', async () => {
    const scoped = sec.token(['l2l3'], ['ziggie', 'fitflow']);
    const first = await http.request('/v1/agents?limit=2', { token: scoped });
    expect(first.status).toBe(200);
    const next = first.body.nextCursor as string;
    expect(kindOf(next)).toBe('agents.visible');
    const second = await http.request(`/v1/agents?limit=2&cursor=${next}`, { token: scoped });
    expect(second.status).toBe(200);
    const seen = new Set((first.body.items as Array<{ id: string }>).map((a) => a.id));
    expect((second.body.items as Array<{ id: string }>).filter((a) => seen.has(a.id))).toEqual([]);
    expect(second.body.total).toBe(first.body.total);
    const registryCursor = issued.get('GET /v1/agents');
    expect(registryCursor).toBeDefined();
    const refused = await http.request(`/v1/agents?cursor=${registryCursor}`, { token: scoped });
    expect({ status: refused.status, code: refused.body?.code }).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
    // And the gateway's own cursor is no registry cursor for a token that sees everything.
    const back = await http.request(`/v1/agents?cursor=${next}`);
    expect({ status: back.status, code: back.body?.code }).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
  });

  it('is still ready afterwards, and answered nothing with a stack trace or a source path', async () => {
    expect((await http.request('/readyz', { token: null })).status).toBe(200);
    for (const [name, ports] of Object.entries(sec.stack.ports.services)) {
      const ready = await fetch(`http://127.0.0.1:${ports.http}/readyz`, { signal: AbortSignal.timeout(5_000) });
      expect(`${name} ${ready.status}`).toBe(`${name} 200`);
    }
    expect(leaksIn(http.replies)).toEqual([]);
  });
});
