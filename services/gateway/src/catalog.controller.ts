import { Controller, Get, Query } from '@nestjs/common';
import { pb } from '@ziggie/contracts';
import { callUnary, CurrentPrincipal, PeerClients, Principal, parseInput } from '@ziggie/platform';
import { page, PageQuery } from './pagination';

/** Read-only views of workspaces (agents: AgentsController; MCP: McpController). */
@Controller('v1')
export class CatalogController {
  constructor(private readonly peers: PeerClients) {}

  @Get('workspaces')
  async workspaces(@Query() query: unknown, @CurrentPrincipal() principal: Principal): Promise<object> {
    const q = parseInput(PageQuery, query);
    const coord = await this.peers.get('workspace-coord', pb.WorkspaceCoordClient);
    const res = await callUnary(coord.listWorkspaces.bind(coord), { page: { limit: q.limit, cursor: q.cursor ?? '' } }, { peer: 'workspace-coord' });
    const visible = res.items.filter((w) => principal.workspaces.includes('*') || principal.workspaces.includes(w.id));
    return page(visible, principal.workspaces.includes('*') ? res.total : visible.length, principal.workspaces.includes('*') ? res.nextCursor : '');
  }
}
