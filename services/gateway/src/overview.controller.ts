import { Controller, Get, Logger } from '@nestjs/common';
import { hasPermission, OverviewResponse, pb, type OverviewMcpView, type OverviewView } from '@ziggie/contracts';
import { ApiDoc, CurrentPrincipal, PeerClients, Principal } from '@ziggie/platform';

const LEVELS = [0, 1, 2, 3] as const;
const AGENT_STATUSES = ['idle', 'busy', 'offline'] as const;
const TASK_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
/** More workspaces than a deployment has: the overview lists them all on one page. */
const WORKSPACE_PAGE = 500;
const LAST_HOUR_SECONDS = 3_600;
const TOP_TOOLS = 5;

/**
 * One request for the console's overview, instead of the twenty it would take from the browser
 * (each counted against the caller's rate limit): every figure comes from a count the services
 * already answer (a list with limit 1 and its total).
 */
@Controller('v1/overview')
export class OverviewController {
  private readonly logger = new Logger('overview');

  constructor(private readonly peers: PeerClients) {}

  /**
   * Tool call figures of the token's workspaces; null without mcp:call, or when mcp-gateway does
   * not answer (the rest of the overview still does).
   */
  private async mcpSummary(principal: Principal): Promise<OverviewMcpView | null> {
    if (!hasPermission(principal.roles, 'mcp:call') || principal.workspaces.length === 0) return null;
    try {
      const s = await this.peers.api('mcp-gateway', pb.McpGatewayClient).getToolStats({ principal, workspace: '' }, { timeoutMs: 5_000 });
      return {
        callsPerMinute: s.total5m?.callsPerMinute ?? 0,
        errorsPerMinute: s.total5m?.errorsPerMinute ?? 0,
        callsLastHour: s.total60m?.calls ?? 0,
        p95Ms: s.total5m?.p95Ms ?? null,
        topTools: s.items.slice(0, TOP_TOOLS).map((t) => ({
          tool: t.tool,
          server: t.server,
          callsPerMinute: t.last60m?.callsPerMinute ?? 0,
          calls: t.last60m?.calls ?? 0,
          errors: t.last60m?.errors ?? 0,
          p95Ms: t.last60m?.p95Ms ?? null,
        })),
      };
    } catch (err) {
      this.logger.warn(`overview without MCP figures: ${err instanceof Error ? err.message : String(err)}`);
      return null;
    }
  }

  @Get()
  @ApiDoc({
    summary: 'Agents by level and status, tasks by status and finished in the last hour, workspace health and MCP calls per minute with p95 per tool, for the token\'s workspaces',
    tag: 'overview',
    response: OverviewResponse,
  })
  async get(@CurrentPrincipal() principal: Principal): Promise<OverviewView> {
    const all = principal.workspaces.includes('*');
    const scoped = all ? [''] : principal.workspaces;
    const registry = this.peers.api('agent-registry', pb.AgentRegistryClient);
    const orchestrator = this.peers.api('orchestrator', pb.OrchestratorClient);
    const coord = this.peers.api('workspace-coord', pb.WorkspaceCoordClient);
    const agentCount = async (level: number, status: string): Promise<number> => {
      const totals = await Promise.all(
        scoped.map((workspace) =>
          registry.listAgents({ page: { limit: 1, cursor: '' }, workspace, level, filterLevel: true, capability: '', status, parentId: '', role: '' }).then((r) => r.total),
        ),
      );
      return totals.reduce((a, b) => a + b, 0);
    };
    const taskCount = (status: string): Promise<number> =>
      orchestrator.listTasks({ principal, page: { limit: 1, cursor: '' }, workspace: '', status, priority: '', parentTaskId: '', blueprint: '' }).then((r) => r.total);

    // Finished in the last hour, from the orchestrator's per-workspace counts (every workspace with tasks for a "*" token).
    const lastHour = async (): Promise<OverviewView['tasksLastHour']> => {
      const zero = { succeeded: 0, failed: 0, cancelled: 0 };
      if (scoped.length === 0) return zero;
      const res = await orchestrator.getWorkspaceStats({ workspaces: all ? [] : principal.workspaces, windowSeconds: LAST_HOUR_SECONDS });
      return res.items.reduce((sum, w) => ({ succeeded: sum.succeeded + w.succeeded, failed: sum.failed + w.failed, cancelled: sum.cancelled + w.cancelled }), zero);
    };

    const [byLevel, tasks, workspaces, tasksLastHour, mcp] = await Promise.all([
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
        : coord.listWorkspaces({ page: { limit: WORKSPACE_PAGE, cursor: '' }, ids: all ? [] : principal.workspaces, health: '' }),
      lastHour(),
      this.mcpSummary(principal),
    ]);
    return {
      agents: { total: byLevel.reduce((sum, l) => sum + l.idle + l.busy + l.offline, 0), byLevel },
      tasks: Object.fromEntries(TASK_STATUSES.map((s, i) => [s, tasks[i]!])) as OverviewView['tasks'],
      tasksLastHour,
      mcp,
      workspaces: workspaces.items.map((w) => ({ id: w.id, name: w.name, priority: w.priority, health: w.health, healthReasons: w.healthReasons, dependsOn: w.dependsOn })),
      at: new Date().toISOString(),
    };
  }
}
