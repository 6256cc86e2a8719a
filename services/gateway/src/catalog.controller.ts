import { Controller, Get, Query } from '@nestjs/common';
import { pb } from '@ziggie/contracts';
import { callUnary, CurrentPrincipal, PeerClients, Principal, parseInput } from '@ziggie/platform';
import { z } from 'zod';
import { page, PageQuery } from './pagination';

/** Read-only views of agents and workspaces (the MCP routes live in McpController). */
@Controller('v1')
export class CatalogController {
  constructor(private readonly peers: PeerClients) {}

  @Get('agents')
  async agents(@Query() query: unknown, @CurrentPrincipal() principal: Principal): Promise<object> {
    const q = parseInput(
      PageQuery.extend({ workspace: z.string().max(63).optional(), level: z.coerce.number().int().min(0).max(3).optional(), capability: z.string().max(63).optional() }),
      query,
    );
    const workspace = q.workspace ?? (principal.workspaces.includes('*') ? '' : principal.workspaces[0] ?? '');
    if (workspace && !principal.workspaces.includes('*') && !principal.workspaces.includes(workspace)) return page([], 0, '');
    const registry = await this.peers.get('agent-registry', pb.AgentRegistryClient);
    const res = await callUnary(
      registry.listAgents.bind(registry),
      { page: { limit: q.limit, cursor: q.cursor ?? '' }, workspace, level: q.level ?? 0, filterLevel: q.level !== undefined, capability: q.capability ?? '', status: '', parentId: '', role: '' },
      { peer: 'agent-registry' },
    );
    return page(res.items, res.total, res.nextCursor);
  }

  @Get('agents/summary')
  async agentSummary(): Promise<object> {
    const registry = await this.peers.get('agent-registry', pb.AgentRegistryClient);
    return callUnary(registry.getHierarchySummary.bind(registry), { workspaces: [] }, { peer: 'agent-registry' });
  }

  @Get('workspaces')
  async workspaces(@Query() query: unknown, @CurrentPrincipal() principal: Principal): Promise<object> {
    const q = parseInput(PageQuery, query);
    const coord = await this.peers.get('workspace-coord', pb.WorkspaceCoordClient);
    const res = await callUnary(coord.listWorkspaces.bind(coord), { page: { limit: q.limit, cursor: q.cursor ?? '' } }, { peer: 'workspace-coord' });
    const visible = res.items.filter((w) => principal.workspaces.includes('*') || principal.workspaces.includes(w.id));
    return page(visible, principal.workspaces.includes('*') ? res.total : visible.length, principal.workspaces.includes('*') ? res.nextCursor : '');
  }
}
