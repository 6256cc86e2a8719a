import { Inject, Injectable } from '@nestjs/common';
import { canAccessWorkspace, hasPermission, pb, Plan, PlanSchema, ZiggieError } from '@ziggie/contracts';
import { callUnary, CONFIG, DatabaseService, Kysely, PeerClients, zodToZiggie, json } from '@ziggie/platform';
import { randomUUID } from 'node:crypto';
import { OrchestratorConfig } from './config';
import { EngineService } from './engine.service';
import { OrchestratorDb, StepRow, TaskRow } from './migrations';
import { computeWaves } from './plan';
import { referencedSteps } from './templates';

const CAPABILITY_CACHE_MS = 30_000;

/** gRPC carries empty strings and zeros for unset fields; the plan schema wants them absent. */
function planFromPb(plan: pb.Plan | undefined): unknown {
  return {
    steps: (plan?.steps ?? []).map((s) => ({
      id: s.id,
      capability: s.capability || undefined,
      agent: s.agent || undefined,
      workspace: s.workspace || undefined,
      action: s.action || undefined,
      input: s.input ?? {},
      dependsOn: s.dependsOn,
      retries: s.retries,
      timeout: s.timeoutMs || undefined,
      qualityGate: s.qualityGate,
    })),
  };
}

const iso = (d: Date | null | undefined) => (d ? new Date(d).toISOString() : '');

@Injectable()
export class TasksService {
  private capabilities?: { at: number; set: Set<string> };

  constructor(
    private readonly database: DatabaseService,
    private readonly peers: PeerClients,
    private readonly engine: EngineService,
    @Inject(CONFIG) private readonly config: OrchestratorConfig,
  ) {}

  private get db(): Kysely<OrchestratorDb> {
    return this.database.db<OrchestratorDb>();
  }

  private async knownCapabilities(): Promise<Set<string>> {
    if (this.capabilities && Date.now() - this.capabilities.at < CAPABILITY_CACHE_MS) return this.capabilities.set;
    const registry = await this.peers.get('agent-registry', pb.AgentRegistryClient);
    const res = await callUnary(registry.listCapabilities.bind(registry), {}, { peer: 'agent-registry' });
    this.capabilities = { at: Date.now(), set: new Set(res.capabilities) };
    return this.capabilities.set;
  }

  private async assertWorkspaceExists(id: string): Promise<void> {
    const coord = await this.peers.get('workspace-coord', pb.WorkspaceCoordClient);
    try {
      await callUnary(coord.getWorkspace.bind(coord), { id }, { peer: 'workspace-coord' });
    } catch (err) {
      if (err instanceof ZiggieError && err.code === 'NOT_FOUND') throw new ZiggieError('TASK_UNKNOWN_WORKSPACE', `workspace ${id} does not exist`, { workspace: id });
      throw err;
    }
  }

  /** Validates a plan fully (shape, DAG, capabilities, workspaces, references) and returns its steps with waves. */
  async validate(req: pb.SubmitTaskRequest): Promise<{ plan: Plan; waves: Map<string, number> }> {
    const parsed = PlanSchema.safeParse(planFromPb(req.plan));
    if (!parsed.success) throw zodToZiggie(parsed.error, 'TASK_INVALID_PLAN');
    const plan = parsed.data;
    const waves = computeWaves(plan.steps);
    for (const s of plan.steps) {
      for (const ref of referencedSteps(s.input)) {
        if (!waves.has(ref) || waves.get(ref)! >= waves.get(s.id)!) {
          throw new ZiggieError('TASK_INVALID_PLAN', `step ${s.id} references the output of ${ref}, which does not run before it`, { stepId: s.id, reference: ref });
        }
      }
    }
    const known = await this.knownCapabilities();
    const unknown = [...new Set(plan.steps.map((s) => s.capability).filter((c): c is string => !!c && !known.has(c)))];
    if (unknown.length > 0) {
      throw new ZiggieError('TASK_UNKNOWN_CAPABILITY', `unknown capabilities: ${unknown.join(', ')}`, { unknown, known: [...known].sort() });
    }
    const workspaces = new Set([req.workspace, ...plan.steps.map((s) => s.workspace ?? req.workspace)]);
    for (const ws of workspaces) {
      if (!canAccessWorkspace(req.principal?.workspaces ?? [], ws)) throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', `workspace ${ws} not allowed for this token`);
      await this.assertWorkspaceExists(ws);
    }
    return { plan, waves };
  }

  async submit(req: pb.SubmitTaskRequest): Promise<pb.Task> {
    const principal = req.principal;
    if (!principal || !hasPermission(principal.roles, 'agent:dispatch')) throw new ZiggieError('AUTH_FORBIDDEN', 'permission agent:dispatch required');
    if (req.blueprint) throw new ZiggieError('UNIMPLEMENTED', 'blueprints are not available yet; submit a plan');
    const { plan, waves } = await this.validate(req);
    const id = `tsk_${randomUUID().replace(/-/g, '')}`;
    const defaultTimeout = this.config.extra.STEP_DEFAULT_TIMEOUT_MS;
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('tasks')
        .values({
          id,
          title: req.title || `Task ${id.slice(4, 12)}`,
          workspace: req.workspace,
          priority: req.priority || 'P1',
          status: 'queued',
          wave_count: Math.max(...waves.values()),
          principal: json({ subject: principal.subject, roles: principal.roles, workspaces: principal.workspaces }),
          correlation_id: req.correlationId || id,
        })
        .execute();
      const rows = plan.steps.map((s, ordinal) => ({
        task_id: id,
        id: s.id,
        ordinal,
        wave: waves.get(s.id)!,
        capability: s.capability ?? null,
        agent: s.agent ?? null,
        action: s.action,
        workspace: s.workspace ?? req.workspace,
        input: json<Record<string, unknown>>(s.input),
        depends_on: json<string[]>(s.dependsOn),
        retries: s.retries,
        timeout_ms: s.timeout ?? defaultTimeout,
        status: 'pending',
      }));
      for (let i = 0; i < rows.length; i += 500) await trx.insertInto('steps').values(rows.slice(i, i + 500)).execute();
      await this.engine.emit(id, 'task.queued', { status: 'queued' }, trx);
    });
    await this.engine.advance(id);
    return this.get(id, principal);
  }

  async get(id: string, principal: pb.Principal | undefined): Promise<pb.Task> {
    const task = await this.db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirst();
    // A task outside the caller's workspaces does not exist for them.
    if (!task || !canAccessWorkspace(principal?.workspaces ?? [], task.workspace)) throw new ZiggieError('TASK_NOT_FOUND', `task ${id} not found`);
    const steps = await this.db.selectFrom('steps').selectAll().where('task_id', '=', id).orderBy('wave').orderBy('ordinal').execute();
    return toPbTask(task, steps);
  }

  async list(req: pb.ListTasksRequest): Promise<pb.ListTasksResponse> {
    const workspaces = req.principal?.workspaces ?? [];
    let q = this.db.selectFrom('tasks');
    if (!workspaces.includes('*')) q = q.where('workspace', 'in', workspaces.length ? workspaces : ['']);
    if (req.workspace) q = q.where('workspace', '=', req.workspace);
    if (req.status) q = q.where('status', '=', req.status);
    const limit = Math.min(Math.max(req.page?.limit || 50, 1), 500);
    const offset = Number.parseInt(req.page?.cursor || '0', 10) || 0;
    const [rows, count] = await Promise.all([
      q.selectAll().orderBy('created_at', 'desc').orderBy('id').limit(limit).offset(offset).execute(),
      q.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    const total = Number(count.n);
    return { items: rows.map((t) => toPbTask(t, [])), total, nextCursor: offset + rows.length < total ? String(offset + rows.length) : '' };
  }

  async cancel(req: pb.CancelTaskRequest): Promise<pb.Task> {
    if (!req.principal || !hasPermission(req.principal.roles, 'agent:dispatch')) throw new ZiggieError('AUTH_FORBIDDEN', 'permission agent:dispatch required');
    await this.get(req.id, req.principal);
    await this.engine.cancel(req.id, req.reason || 'cancelled by request');
    return this.get(req.id, req.principal);
  }
}

export function toPbTask(task: TaskRow, steps: StepRow[]): pb.Task {
  const waves = new Map<number, pb.Step[]>();
  for (const s of steps) {
    const list = waves.get(s.wave) ?? [];
    list.push({
      id: s.id,
      capability: s.capability ?? '',
      action: s.action,
      workspace: s.workspace,
      status: s.status,
      agentId: s.agent_id ?? '',
      attempt: s.attempt,
      wave: s.wave,
      dependsOn: s.depends_on,
      input: s.input,
      output: s.output ?? undefined,
      error: s.error ?? '',
      startedAt: iso(s.started_at),
      finishedAt: iso(s.finished_at),
    });
    waves.set(s.wave, list);
  }
  return {
    id: task.id,
    title: task.title,
    workspace: task.workspace,
    priority: task.priority,
    status: task.status,
    waves: [...waves.entries()].sort(([a], [b]) => a - b).map(([index, list]) => ({ index, status: waveStatus(list), steps: list })),
    createdBy: task.principal.subject,
    createdAt: iso(task.created_at),
    updatedAt: iso(task.updated_at),
    finishedAt: iso(task.finished_at),
    errorCode: task.error_code ?? '',
    errorMessage: task.error_message ?? '',
    correlationId: task.correlation_id,
  };
}

function waveStatus(steps: pb.Step[]): string {
  if (steps.every((s) => s.status === 'succeeded')) return 'succeeded';
  if (steps.some((s) => s.status === 'failed')) return 'failed';
  if (steps.every((s) => s.status === 'cancelled' || s.status === 'succeeded')) return 'cancelled';
  if (steps.some((s) => s.status !== 'pending')) return 'running';
  return 'pending';
}
