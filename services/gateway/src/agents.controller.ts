import { Controller, Get, Inject, Param, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { canAccessWorkspace, Cursors, pb, ZiggieError } from '@ziggie/contracts';
import { ApiDoc, CONFIG, CurrentPrincipal, PeerClients, PlatformConfig, Principal, UnaryApi, ValidQuery } from '@ziggie/platform';
import { z } from 'zod';
import { page, pageQuery, queryInt } from './pagination';

const AgentId = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/);
/**
 * A listing's cursor is the registry's keyset cursor when the registry's page is answered as it
 * is, or the gateway's own offset among the visible agents when it filters for a scoped token.
 */
const ListQuery = pageQuery(Cursors.agents, Cursors.agentsVisible).extend({
  workspace: z.string().min(1).max(63).optional(),
  level: queryInt(0, 3).optional(),
  capability: z.string().min(1).max(63).optional(),
  status: z.enum(['idle', 'busy', 'offline']).optional(),
  role: z.string().min(1).max(63).optional(),
  parent: AgentId.optional(),
}).strict();
const ChildrenQuery = pageQuery(Cursors.agentChildren, Cursors.agentsVisible).strict();
const SubtreeQuery = pageQuery(Cursors.agentSubtree, Cursors.agentsVisible).extend({ maxDepth: queryInt(0, 64, 0) }).strict();

/** Registry pages read per call while filtering a listing down to the token's workspaces. */
const SCAN_BATCH = 1000;

type Listing = pb.ListAgentsResponse;

const sees = (principal: Principal, agent: pb.Agent): boolean => canAccessWorkspace(principal.workspaces, agent.workspace);
const seesAll = (principal: Principal): boolean => principal.workspaces.includes('*');

function notFound(id: string): ZiggieError {
  // The registry's own words, so a hidden agent is indistinguishable from a missing one.
  return new ZiggieError('NOT_FOUND', `agent ${id} not found`);
}

function agentIdOf(id: string): string {
  if (!AgentId.safeParse(id).success) throw notFound(id);
  return id;
}

/**
 * One page of the agents a token may see out of a registry listing, which filters by one
 * workspace at most. The whole listing is read in batches (the total must count every visible
 * agent) and the page is cut by offset among the visible ones.
 */
async function visiblePage(fetch: (page: pb.PageRequest) => Promise<Listing>, visible: (a: pb.Agent) => boolean, limit: number, cursor: string | undefined): Promise<object> {
  const offset = Cursors.agentsVisible.decode(cursor)?.offset ?? 0;
  const items: pb.Agent[] = [];
  let total = 0;
  let next = '';
  do {
    const res = await fetch({ limit: SCAN_BATCH, cursor: next });
    for (const a of res.items) {
      if (!visible(a)) continue;
      if (total >= offset && items.length < limit) items.push(a);
      total++;
    }
    // A cursor that does not move would loop forever.
    next = res.nextCursor === next || res.items.length === 0 ? '' : res.nextCursor;
  } while (next);
  return page(items, total, offset + items.length < total ? Cursors.agentsVisible.encode({ offset: offset + items.length }) : '');
}

/** A registry listing page as it is. */
async function passThrough(fetch: (page: pb.PageRequest) => Promise<Listing>, limit: number, cursor: string | undefined): Promise<object> {
  const res = await fetch({ limit, cursor: cursor ?? '' });
  return page(res.items, res.total, res.nextCursor);
}

/** A registry listing as the token may see it: as it is for "*", filtered to its workspaces otherwise. */
function scopedPage(principal: Principal, fetch: (page: pb.PageRequest) => Promise<Listing>, limit: number, cursor: string | undefined): Promise<object> {
  return seesAll(principal) ? passThrough(fetch, limit, cursor) : visiblePage(fetch, (a) => sees(principal, a), limit, cursor);
}

/** The agent hierarchy: listings, one agent, its children, subtree, path and A2A card. */
@Controller('v1/agents')
export class AgentsController {
  private readonly registry: UnaryApi<pb.AgentRegistryService>;

  constructor(
    peers: PeerClients,
    @Inject(CONFIG) private readonly config: PlatformConfig & { extra?: Record<string, unknown> },
  ) {
    this.registry = peers.api('agent-registry', pb.AgentRegistryClient);
  }

  /** The agent if the token may see it; a hidden agent answers like a missing one. */
  private async visibleAgent(principal: Principal, id: string): Promise<pb.Agent> {
    const agent = await this.registry.getAgent({ id: agentIdOf(id) });
    if (!sees(principal, agent)) throw notFound(id);
    return agent;
  }

  /** Fails as not found unless the token may see the agent; a "*" token leaves that to the registry. */
  private async assertVisible(principal: Principal, id: string): Promise<void> {
    agentIdOf(id);
    if (!seesAll(principal)) await this.visibleAgent(principal, id);
  }

  @Get()
  @ApiDoc({ summary: 'Agents of the token\'s workspaces, filtered by workspace, level, capability, status, role or parent' })
  async list(@ValidQuery(ListQuery) q: z.infer<typeof ListQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    const concrete = principal.workspaces.filter((w) => w !== '*');
    if (q.workspace ? !canAccessWorkspace(principal.workspaces, q.workspace) : !seesAll(principal) && concrete.length === 0) return page([], 0, '');
    // One workspace (asked for, or the token's only one) is a registry filter; several need a scan.
    const workspace = q.workspace ?? (seesAll(principal) ? '' : concrete.length === 1 ? concrete[0]! : undefined);
    const request = (p: pb.PageRequest, ws: string): pb.ListAgentsRequest => ({
      page: p,
      workspace: ws,
      level: q.level ?? 0,
      filterLevel: q.level !== undefined,
      capability: q.capability ?? '',
      status: q.status ?? '',
      parentId: q.parent ?? '',
      role: q.role ?? '',
    });
    const call = (p: pb.PageRequest, ws: string) => this.registry.listAgents(request(p, ws));
    if (workspace !== undefined) return passThrough((p) => call(p, workspace), q.limit, q.cursor);
    return visiblePage((p) => call(p, ''), (a) => sees(principal, a), q.limit, q.cursor);
  }

  @Get('summary')
  @ApiDoc({ summary: 'Agent counts by level and status in the token\'s workspaces' })
  async summary(@CurrentPrincipal() principal: Principal): Promise<pb.HierarchySummary> {
    // An empty list would mean "all" to the registry; a token without workspaces sees nothing.
    if (principal.workspaces.length === 0) return { total: 0, levels: [], elite: 0, bmad: 0 };
    return this.registry.getHierarchySummary({ workspaces: principal.workspaces });
  }

  @Get(':id')
  @ApiDoc({ summary: 'One agent with its live status and load' })
  async get(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<pb.Agent> {
    return this.visibleAgent(principal, id);
  }

  @Get(':id/children')
  @ApiDoc({ summary: 'The agent\'s direct reports' })
  async children(@Param('id') id: string, @ValidQuery(ChildrenQuery) q: z.infer<typeof ChildrenQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    await this.assertVisible(principal, id);
    return scopedPage(principal, (p) => this.registry.listChildren({ id, page: p }), q.limit, q.cursor);
  }

  @Get(':id/subtree')
  @ApiDoc({ summary: 'Every agent under the agent, breadth first, down to maxDepth levels (0: all)' })
  async subtree(@Param('id') id: string, @ValidQuery(SubtreeQuery) q: z.infer<typeof SubtreeQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    await this.assertVisible(principal, id);
    return scopedPage(principal, (p) => this.registry.getSubtree({ id, maxDepth: q.maxDepth, page: p }), q.limit, q.cursor);
  }

  /** From L0 down to the agent, leaving out ancestors the token may not see. */
  @Get(':id/path')
  @ApiDoc({ summary: 'The chain of command from L0 down to the agent' })
  async path(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<object> {
    await this.assertVisible(principal, id);
    const res = await this.registry.getPath({ id });
    const items = res.agents.filter((a) => sees(principal, a));
    return { items, total: items.length };
  }

  @Get(':id/card')
  @ApiDoc({ summary: 'The agent\'s A2A 1.0 agent card' })
  async card(@Param('id') id: string, @CurrentPrincipal() principal: Principal, @Req() req: FastifyRequest): Promise<object> {
    await this.assertVisible(principal, id);
    const res = await this.registry.getAgentCard({ id, baseUrl: this.baseUrl(req) });
    return res.card ?? {};
  }

  /** PUBLIC_URL when the gateway's configuration has one, else the scheme and host the request came in on. */
  private baseUrl(req: FastifyRequest): string {
    const configured = this.config.extra?.PUBLIC_URL;
    if (typeof configured === 'string' && configured) return configured;
    const host = req.host ?? '';
    try {
      return new URL(`${req.protocol}://${host}`).origin;
    } catch {
      throw new ZiggieError('VALIDATION_FAILED', 'the request has no usable Host header');
    }
  }
}
