import 'reflect-metadata';
import { Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { INestApplication, Module, Type } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { type CursorCodec, Cursors, ErrorCodes, GRPC_ERROR_CODE_KEY, type LevelIdPosition, pb } from '@ziggie/contracts';
import { AuthModule, ConfigModule, loadConfig, PeerClients, PlatformConfig, ProblemFilter, StrictInputModule, signDevToken, createHttpApplication } from '@ziggie/platform';
import { peersOver } from '../test/peer-doubles';
import { AgentsController } from './agents.controller';

const SECRET = 'agents-controller-test-secret-0123456789';
const config = loadConfig('gateway', undefined, { ZIGGIE_JWT_SECRET: SECRET, HTTP_PORT: '0', LOG_LEVEL: 'silent' });
const signer = { secret: SECRET, issuer: config.auth.issuer, audience: config.auth.audience };

function tokenFor(workspaces: string[], role = 'l2l3'): string {
  return signDevToken({ subject: `user-${role}`, roles: [role], workspaces, ttlSeconds: 300 }, signer);
}

function agent(id: string, level: number, parentId: string, workspace: string, capabilities: string[], status = 'idle'): pb.Agent {
  return { id, name: `Agent ${id}`, level, parentId, role: `${capabilities[0]}-r${level}`, workspace, capabilities, status, load: 0, lastSeenAt: '' };
}

/** root (alpha) → a lead per workspace → two workers each. */
const AGENTS: pb.Agent[] = [
  agent('root', 0, '', 'alpha', ['coordinate']),
  agent('lead-a', 1, 'root', 'alpha', ['code']),
  agent('lead-b', 1, 'root', 'beta', ['code']),
  agent('lead-g', 1, 'root', 'gamma', ['qa']),
  agent('w-a1', 2, 'lead-a', 'alpha', ['code'], 'busy'),
  agent('w-a2', 2, 'lead-a', 'alpha', ['code']),
  agent('w-b1', 2, 'lead-b', 'beta', ['code']),
  agent('w-b2', 2, 'lead-b', 'beta', ['code']),
  agent('w-g1', 2, 'lead-g', 'gamma', ['qa']),
  agent('w-g2', 2, 'lead-g', 'gamma', ['qa']),
];
const byId = new Map(AGENTS.map((a) => [a.id, a]));

function notFound(id: string): ServiceError {
  const metadata = new Metadata();
  metadata.set(GRPC_ERROR_CODE_KEY, 'NOT_FOUND');
  const code = ErrorCodes.NOT_FOUND.grpc as GrpcStatus;
  return Object.assign(new Error(`${code} agent ${id} not found`), { code, details: `agent ${id} not found`, metadata });
}

/** Keyset pages over a fixture list, with the registry's response shape and its cursors (the shared codec). */
function pageOf(items: pb.Agent[], page: pb.PageRequest | undefined, codec: CursorCodec<LevelIdPosition>): pb.ListAgentsResponse {
  const after = codec.decode(page?.cursor);
  const offset = after ? items.findIndex((a) => a.id === after.id) + 1 : 0;
  const limit = page?.limit || 100;
  const slice = items.slice(offset, offset + limit);
  const last = slice[slice.length - 1];
  return { items: slice, total: items.length, nextCursor: last && offset + slice.length < items.length ? codec.encode({ level: last.level, id: last.id }) : '' };
}
const at = (codec: CursorCodec<LevelIdPosition>, id: string): string => codec.encode({ level: byId.get(id)!.level, id });

/**
 * A test double of the agent-registry gRPC peer: the generated pb.AgentRegistryClient methods
 * the controller uses, answering from the fixtures and recording every request. A method the
 * controller should not call is not defined, so calling it fails the test.
 */
class FakeRegistry {
  readonly requests: Array<{ method: string; request: unknown }> = [];

  private unary<Req, Res>(method: string, answer: (req: Req) => Res | ServiceError) {
    return (request: Req, _metadata: Metadata, _options: unknown, callback: (err: ServiceError | null, res?: Res) => void) => {
      this.requests.push({ method, request });
      const res = answer(request);
      setImmediate(() => (res instanceof Error ? callback(res) : callback(null, res)));
      return {};
    };
  }

  getAgent = this.unary<pb.GetAgentRequest, pb.Agent>('getAgent', (req) => byId.get(req.id) ?? notFound(req.id));
  listAgents = this.unary<pb.ListAgentsRequest, pb.ListAgentsResponse>('listAgents', (req) =>
    pageOf(
      AGENTS.filter(
        (a) =>
          (!req.workspace || a.workspace === req.workspace) &&
          (!req.filterLevel || a.level === req.level) &&
          (!req.capability || a.capabilities.includes(req.capability)) &&
          (!req.status || a.status === req.status) &&
          (!req.parentId || a.parentId === req.parentId) &&
          (!req.role || a.role === req.role),
      ),
      req.page,
      Cursors.agents,
    ),
  );
  listChildren = this.unary<pb.ListChildrenRequest, pb.ListAgentsResponse>('listChildren', (req) =>
    byId.has(req.id) ? pageOf(AGENTS.filter((a) => a.parentId === req.id), req.page, Cursors.agentChildren) : notFound(req.id),
  );
  getSubtree = this.unary<pb.GetSubtreeRequest, pb.ListAgentsResponse>('getSubtree', (req) => {
    const root = byId.get(req.id);
    if (!root) return notFound(req.id);
    const below = AGENTS.filter((a) => a.level > root.level && (req.maxDepth === 0 || a.level <= root.level + req.maxDepth) && this.isBelow(a, root.id));
    return pageOf(below, req.page, Cursors.agentSubtree);
  });
  getPath = this.unary<pb.GetPathRequest, pb.AgentPath>('getPath', (req) => {
    const chain: pb.Agent[] = [];
    for (let a = byId.get(req.id); a; a = byId.get(a.parentId)) chain.unshift(a);
    return chain.length ? { agents: chain } : notFound(req.id);
  });
  getHierarchySummary = this.unary<pb.GetHierarchySummaryRequest, pb.HierarchySummary>('getHierarchySummary', (req) => ({
    total: AGENTS.filter((a) => req.workspaces.includes('*') || req.workspaces.includes(a.workspace)).length,
    levels: [],
    elite: 0,
    bmad: 0,
  }));
  getAgentCard = this.unary<pb.GetAgentCardRequest, pb.AgentCard>('getAgentCard', (req) =>
    byId.has(req.id) ? { card: { name: `Agent ${req.id}`, supportedInterfaces: [{ url: `${req.baseUrl}/v1/agents/${req.id}`, protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' }] } } : notFound(req.id),
  );

  private isBelow(a: pb.Agent, rootId: string): boolean {
    for (let p = byId.get(a.parentId); p; p = byId.get(p.parentId)) if (p.id === rootId) return true;
    return false;
  }
}

const fake = new FakeRegistry();
const fakePeers = peersOver(config, { 'agent-registry': fake });

function gatewayModule(cfg: PlatformConfig): Type {
  @Module({
    imports: [ConfigModule.forRoot(cfg), AuthModule, StrictInputModule],
    controllers: [AgentsController],
    providers: [
      { provide: PeerClients, useValue: fakePeers },
      { provide: APP_FILTER, useClass: ProblemFilter },
      ],
  })
  class TestGatewayModule {}
  return TestGatewayModule;
}

async function start(cfg: PlatformConfig): Promise<{ app: INestApplication; base: string }> {
  const app = await createHttpApplication(gatewayModule(cfg));
  await app.listen(0, '127.0.0.1');
  return { app, base: await app.getUrl() };
}

describe('AgentsController (REST /v1/agents, against a test double of the agent-registry gRPC peer)', () => {
  let app: INestApplication;
  let base: string;
  const admin = tokenFor(['*'], 'admin');
  const alpha = tokenFor(['alpha']);
  const alphaBeta = tokenFor(['alpha', 'beta']);
  const beta = tokenFor(['beta']);

  beforeAll(async () => {
    ({ app, base } = await start(config));
  });

  afterAll(async () => {
    await app.close();
  });

  beforeEach(() => {
    fake.requests.length = 0;
  });

  const get = (path: string, token?: string) => fetch(`${base}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const json = async (res: Response): Promise<Record<string, unknown>> => {
    expect(res.status).toBe(200);
    return (await res.json()) as Record<string, unknown>;
  };
  const ids = (body: Record<string, unknown>) => (body.items as pb.Agent[]).map((a) => a.id);
  const called = (method: string) => fake.requests.filter((r) => r.method === method).map((r) => r.request);

  async function problem(res: Response, status: number, code: string): Promise<Record<string, unknown>> {
    expect({ status: res.status, type: res.headers.get('content-type') }).toEqual({ status, type: expect.stringContaining('application/problem+json') });
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ status, code });
    return body;
  }

  /** Follows nextCursor to the end; every page must report the same total. */
  async function allPages(path: string, token: string): Promise<{ ids: string[]; total: number; pages: number }> {
    const out: string[] = [];
    let cursor: string | undefined;
    let total = -1;
    let pages = 0;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const body = await json(await get(`${path}${cursor ? `${sep}cursor=${encodeURIComponent(cursor)}` : ''}`, token));
      if (total >= 0) expect(body.total).toBe(total);
      total = body.total as number;
      out.push(...ids(body));
      cursor = body.nextCursor as string | undefined;
      pages++;
    } while (cursor);
    return { ids: out, total, pages };
  }

  it('answers 401 without a token', async () => {
    await problem(await get('/v1/agents'), 401, 'AUTH_MISSING_TOKEN');
    await problem(await get('/v1/agents/root/card'), 401, 'AUTH_MISSING_TOKEN');
    expect(fake.requests).toEqual([]);
  });

  describe('GET /v1/agents', () => {
    it('passes every filter and the page to the registry for a token that sees all', async () => {
      const res = await get('/v1/agents?workspace=beta&level=2&capability=code&status=idle&role=code-r2&parent=lead-b&limit=1', admin);
      expect(await json(res)).toEqual({ items: [byId.get('w-b1')], total: 2, nextCursor: at(Cursors.agents, 'w-b1') });
      expect(called('listAgents')).toEqual([
        { page: { limit: 1, cursor: '' }, workspace: 'beta', level: 2, filterLevel: true, capability: 'code', status: 'idle', parentId: 'lead-b', role: 'code-r2' },
      ]);
      const last = await json(await get(`/v1/agents?workspace=beta&level=2&cursor=${at(Cursors.agents, 'w-b1')}&limit=1`, admin));
      expect(last).toEqual({ items: [byId.get('w-b2')], total: 2 });
    });

    it('lists everything for "*", and only the token workspace for a one-workspace token', async () => {
      expect((await json(await get('/v1/agents', admin))).total).toBe(10);
      const own = await json(await get('/v1/agents', alpha));
      expect(ids(own)).toEqual(['root', 'lead-a', 'w-a1', 'w-a2']);
      expect(called('listAgents').map((r) => (r as pb.ListAgentsRequest).workspace)).toEqual(['', 'alpha']);
    });

    it('shows a several-workspace token its agents only, with the right total, page by page', async () => {
      const all = await allPages('/v1/agents?limit=2', alphaBeta);
      expect(all).toEqual({ ids: ['root', 'lead-a', 'lead-b', 'w-a1', 'w-a2', 'w-b1', 'w-b2'], total: 7, pages: 4 });
      // The registry is read unfiltered by workspace, in large batches.
      expect(called('listAgents').every((r) => (r as pb.ListAgentsRequest).workspace === '' && (r as pb.ListAgentsRequest).page?.limit === 1000)).toBe(true);
      const busy = await json(await get('/v1/agents?status=busy', alphaBeta));
      expect(busy).toEqual({ items: [byId.get('w-a1')], total: 1 });
    });

    it('answers an empty page for a workspace outside the token, without asking the registry', async () => {
      expect(await json(await get('/v1/agents?workspace=gamma', alphaBeta))).toEqual({ items: [], total: 0 });
      expect(await json(await get('/v1/agents', tokenFor([])))).toEqual({ items: [], total: 0 });
      expect(fake.requests).toEqual([]);
    });

    it.each([
      ['an unknown field', '?colour=red', 'colour'],
      ['a level above 3', '?level=4', 'level'],
      ['a fractional level', '?level=1.5', 'level'],
      ['an unknown status', '?status=sleeping', 'status'],
      ['a limit of 0', '?limit=0', 'limit'],
      ['a malformed parent', '?parent=a%20b', 'parent'],
      ['a repeated field', '?level=1&level=2', 'level'],
    ])('answers 400 VALIDATION_FAILED for %s', async (_what, query, field) => {
      const p = await problem(await get(`/v1/agents${query}`, admin), 400, 'VALIDATION_FAILED');
      expect(String(p.detail)).toContain(field);
      expect(fake.requests).toEqual([]);
    });

    it('refuses a cursor it did not hand out when it filters by workspace itself', async () => {
      await problem(await get('/v1/agents?cursor=bogus', alphaBeta), 400, 'VALIDATION_FAILED');
      // A registry cursor is not a position among the visible agents, and the other way round.
      await problem(await get(`/v1/agents?cursor=${at(Cursors.agents, 'lead-a')}`, alphaBeta), 400, 'VALIDATION_FAILED');
      await problem(await get(`/v1/agents?cursor=${Cursors.agentsVisible.encode({ offset: 2 })}`, admin), 400, 'VALIDATION_FAILED');
    });

    it.each([
      ['a huge number', '99999999999999999999'],
      ['a negative number', '-5'],
      ['garbage', 'garbage'],
      ['another list\'s cursor', Cursors.tasks.encode({ offset: 1 })],
      ['a subtree cursor', Cursors.agentSubtree.encode({ level: 1, id: 'lead-a' })],
      ['an empty cursor', ''],
    ])('answers 400 VALIDATION_FAILED naming the cursor for %s, before asking the registry', async (_what, cursor) => {
      for (const path of ['/v1/agents', '/v1/agents/root/children']) {
        const p = await problem(await get(`${path}?cursor=${encodeURIComponent(cursor)}`, admin), 400, 'VALIDATION_FAILED');
        expect(String(p.detail)).toMatch(/^cursor: /);
      }
      expect(fake.requests).toEqual([]);
    });

    it.each([['1e3'], ['1e1'], [' 5'], ['0x10'], ['5.0'], ['NaN'], ['-1'], ['501'], ['']])('answers 400 VALIDATION_FAILED for limit=%p', async (limit) => {
      const p = await problem(await get(`/v1/agents?limit=${encodeURIComponent(limit)}`, admin), 400, 'VALIDATION_FAILED');
      expect(String(p.detail)).toContain('limit');
      expect(fake.requests).toEqual([]);
    });
  });

  describe('GET /v1/agents/summary', () => {
    it("scopes the summary to the token's workspaces", async () => {
      expect(await json(await get('/v1/agents/summary', alphaBeta))).toEqual({ total: 7, levels: [], elite: 0, bmad: 0 });
      expect(await json(await get('/v1/agents/summary', admin))).toMatchObject({ total: 10 });
      expect(called('getHierarchySummary')).toEqual([{ workspaces: ['alpha', 'beta'] }, { workspaces: ['*'] }]);
    });

    it('gives a token without workspaces an empty summary, and refuses query fields', async () => {
      expect(await json(await get('/v1/agents/summary', tokenFor([])))).toEqual({ total: 0, levels: [], elite: 0, bmad: 0 });
      await problem(await get('/v1/agents/summary?workspace=alpha', admin), 400, 'VALIDATION_FAILED');
      expect(fake.requests).toEqual([]);
    });
  });

  describe('GET /v1/agents/{id}', () => {
    it('answers the agent the token may see', async () => {
      expect(await json(await get('/v1/agents/w-b1', beta))).toEqual(byId.get('w-b1'));
      expect(await json(await get('/v1/agents/w-g1', admin))).toEqual(byId.get('w-g1'));
    });

    it('answers 404 for a hidden agent exactly as for a missing one', async () => {
      const hidden = await problem(await get('/v1/agents/w-g1', alphaBeta), 404, 'NOT_FOUND');
      const missing = await problem(await get('/v1/agents/w-g9', alphaBeta), 404, 'NOT_FOUND');
      expect(hidden.detail).toBe('agent w-g1 not found');
      expect(missing.detail).toBe('agent w-g9 not found');
      expect(Object.keys(hidden).sort()).toEqual(Object.keys(missing).sort());
    });

    it('answers 404 for an id that cannot exist without asking the registry, and 400 for query fields', async () => {
      await problem(await get(`/v1/agents/${'x'.repeat(129)}`, admin), 404, 'NOT_FOUND');
      await problem(await get('/v1/agents/a.b', admin), 404, 'NOT_FOUND');
      await problem(await get('/v1/agents/root?verbose=1', admin), 400, 'VALIDATION_FAILED');
      expect(fake.requests).toEqual([]);
    });
  });

  describe('GET /v1/agents/{id}/children and /subtree', () => {
    it('passes the page through for a token that sees all', async () => {
      expect(await json(await get('/v1/agents/root/children?limit=2', admin))).toEqual({ items: [byId.get('lead-a'), byId.get('lead-b')], total: 3, nextCursor: at(Cursors.agentChildren, 'lead-b') });
      expect(called('listChildren')).toEqual([{ id: 'root', page: { limit: 2, cursor: '' } }]);
      // A "*" token sees every agent: the registry alone says whether it exists.
      expect(called('getAgent')).toEqual([]);
      await problem(await get('/v1/agents/ghost/children', admin), 404, 'NOT_FOUND');
      await problem(await get('/v1/agents/ghost/subtree', admin), 404, 'NOT_FOUND');
      await problem(await get('/v1/agents/ghost/path', admin), 404, 'NOT_FOUND');
    });

    it('shows a restricted token only the children it may see', async () => {
      expect(await json(await get('/v1/agents/root/children', alpha))).toEqual({ items: [byId.get('lead-a')], total: 1 });
      expect(called('getAgent')).toEqual([{ id: 'root' }]);
      expect(ids(await json(await get('/v1/agents/root/children', alphaBeta)))).toEqual(['lead-a', 'lead-b']);
    });

    it('answers 404 for the children of a hidden agent', async () => {
      await problem(await get('/v1/agents/lead-g/children', alphaBeta), 404, 'NOT_FOUND');
      expect(called('listChildren')).toEqual([]);
    });

    it('passes maxDepth, defaulting to 0 (all levels)', async () => {
      expect((await json(await get('/v1/agents/root/subtree', admin))).total).toBe(9);
      expect(ids(await json(await get('/v1/agents/root/subtree?maxDepth=1', admin)))).toEqual(['lead-a', 'lead-b', 'lead-g']);
      expect(called('getSubtree').map((r) => (r as pb.GetSubtreeRequest).maxDepth)).toEqual([0, 1]);
    });

    it('filters a subtree to the visible agents, page by page', async () => {
      const paged = await allPages('/v1/agents/root/subtree?limit=2', alphaBeta);
      expect(paged).toEqual({ ids: ['lead-a', 'lead-b', 'w-a1', 'w-a2', 'w-b1', 'w-b2'], total: 6, pages: 3 });
      await problem(await get('/v1/agents/lead-g/subtree', beta), 404, 'NOT_FOUND');
    });

    it.each(['?maxDepth=-1', '?maxDepth=x', '?depth=2'])('answers 400 for %s', async (query) => {
      await problem(await get(`/v1/agents/root/subtree${query}`, admin), 400, 'VALIDATION_FAILED');
      expect(fake.requests).toEqual([]);
    });
  });

  describe('GET /v1/agents/{id}/path', () => {
    it('goes from L0 to the agent, leaving out ancestors the token may not see', async () => {
      expect(ids(await json(await get('/v1/agents/w-b2/path', admin)))).toEqual(['root', 'lead-b', 'w-b2']);
      expect(await json(await get('/v1/agents/w-b2/path', beta))).toEqual({ items: [byId.get('lead-b'), byId.get('w-b2')], total: 2 });
      await problem(await get('/v1/agents/w-b2/path', alpha), 404, 'NOT_FOUND');
      expect(called('getPath')).toEqual([{ id: 'w-b2' }, { id: 'w-b2' }]);
    });
  });

  describe('GET /v1/agents/{id}/card', () => {
    it('builds the card on the scheme and host the request came in on', async () => {
      const card = await json(await get('/v1/agents/w-a1/card', alpha));
      expect(card.supportedInterfaces).toEqual([{ url: `${base}/v1/agents/w-a1`, protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' }]);
      expect(called('getAgentCard')).toEqual([{ id: 'w-a1', baseUrl: base }]);
    });

    it('answers 404 for a hidden agent without building its card, and passes NOT_FOUND through', async () => {
      await problem(await get('/v1/agents/w-g1/card', alpha), 404, 'NOT_FOUND');
      expect(called('getAgentCard')).toEqual([]);
      const missing = await problem(await get('/v1/agents/ghost/card', admin), 404, 'NOT_FOUND');
      expect(missing.detail).toBe('agent ghost not found');
    });

    it('uses PUBLIC_URL when the configuration has one', async () => {
      const other = await start({ ...config, extra: { PUBLIC_URL: 'https://ziggie.example.com' } } as PlatformConfig);
      try {
        const res = await fetch(`${other.base}/v1/agents/root/card`, { headers: { authorization: `Bearer ${admin}` } });
        expect((await json(res)).supportedInterfaces).toEqual([expect.objectContaining({ url: 'https://ziggie.example.com/v1/agents/root' })]);
        expect(called('getAgentCard')).toEqual([{ id: 'root', baseUrl: 'https://ziggie.example.com' }]);
      } finally {
        await other.app.close();
      }
    });
  });
});
