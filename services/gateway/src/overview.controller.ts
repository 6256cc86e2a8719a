import { Controller, Get } from '@nestjs/common';
import { OverviewResponse, pb, type OverviewView } from '@ziggie/contracts';
import { ApiDoc, callUnary, CurrentPrincipal, PeerClients, Principal } from '@ziggie/platform';

const LEVELS = [0, 1, 2, 3] as const;
const AGENT_STATUSES = ['idle', 'busy', 'offline'] as const;
const TASK_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
/** More workspaces than a deployment has: the overview lists them all on one page. */
const WORKSPACE_PAGE = 500;

/**
 * One request for the console's overview, instead of the twenty it would take from the browser
 * (each counted against the caller's rate limit): every figure comes from a count the services
 * already answer (a list with limit 1 and its total).
 */
@Controller('v1/overview')
export class OverviewController {
  constructor(private readonly peers: PeerClients) {}

  @Get()
  @ApiDoc({
    summary: 'Agents by level and status, tasks by status and workspace health, for the token\'s workspaces',
    tag: 'overview',
    response: OverviewResponse,
  })
  async get(@CurrentPrincipal() principal: Principal): Promise<OverviewView> {
    const all = principal.workspaces.includes('*');
    const scoped = all ? [''] : principal.workspaces;
    const [registry, orchestrator, coord] = await Promise.all([
      this.peers.get('agent-registry', pb.AgentRegistryClient),
      this.peers.get('orchestrator', pb.OrchestratorClient),
      this.peers.get('workspace-coord', pb.WorkspaceCoordClient),
    ]);
    const agentCount = async (level: number, status: string): Promise<number> => {
      const totals = await Promise.all(
        scoped.map((workspace) =>
          callUnary(
            registry.listAgents.bind(registry),
            { page: { limit: 1, cursor: '' }, workspace, level, filterLevel: true, capability: '', status, parentId: '', role: '' },
            { peer: 'agent-registry' },
          ).then((r) => r.total),
        ),
      );
      return totals.reduce((a, b) => a + b, 0);
    };
    const taskCount = (status: string): Promise<number> =>
      callUnary(
        orchestrator.listTasks.bind(orchestrator),
        { principal, page: { limit: 1, cursor: '' }, workspace: '', status, priority: '', parentTaskId: '', blueprint: '' },
        { peer: 'orchestrator' },
      ).then((r) => r.total);

    const [byLevel, tasks, workspaces] = await Promise.all([
      scoped.length === 0
        ? []
        : Promise.all(
            LEVELS.map(async (level) => {
              const [idle, busy, offline] = await Promise.all(AGENT_STATUSES.map((s) => agentCount(level, s)));
              return { level, idle: idle!, busy: busy!, offline: offline! };
            }),
          ),
      Promise.all(TASK_STATUSES.map(taskCount)),
      scoped.length === 0
        ? { items: [] as pb.Workspace[] }
        : callUnary(coord.listWorkspaces.bind(coord), { page: { limit: WORKSPACE_PAGE, cursor: '' }, ids: all ? [] : principal.workspaces, health: '' }, { peer: 'workspace-coord' }),
    ]);
    return {
      agents: { total: byLevel.reduce((sum, l) => sum + l.idle + l.busy + l.offline, 0), byLevel },
      tasks: Object.fromEntries(TASK_STATUSES.map((s, i) => [s, tasks[i]!])) as OverviewView['tasks'],
      workspaces: workspaces.items.map((w) => ({ id: w.id, name: w.name, priority: w.priority, health: w.health, healthReasons: w.healthReasons, dependsOn: w.dependsOn })),
      at: new Date().toISOString(),
    };
  }
}
