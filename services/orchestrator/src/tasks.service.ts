import { Inject, Injectable } from '@nestjs/common';
import { canAccessWorkspace, Cursors, hasPermission, MAX_DELEGATION_DEPTH, pb, Plan, planFromPb, PlanSchema, ZiggieError } from '@ziggie/contracts';
import { callUnary, CONFIG, DatabaseService, json, Kysely, PeerClients, zodToZiggie } from '@ziggie/platform';
import { randomUUID } from 'node:crypto';
import { expandBlueprint } from './blueprints/expand';
import { BlueprintsService } from './blueprints.service';
import { OrchestratorConfig } from './config';
import { EngineService } from './engine.service';
import { errorOf } from './engine/steps';
import { planBudgetViolation, toolsOf } from './governance';
import { AttemptTable, OrchestratorDb, StepRow, TaskRow } from './migrations';
import { computeWaves } from './plan';
import { PoliciesService } from './policies.service';
import { checkPlan, NamedInPlan } from './plan-checks';
import { iso, pageOf, pageResult } from './views';
import { workspaceStats } from './workspace-stats';

/** Capabilities, workspaces and agents known to exist are re-checked after this long. */
const CAPABILITY_CACHE_MS = 30_000;
const AGENT_LOOKUPS_AT_ONCE = 16;
const MAX_KNOWN_AGENTS = 50_000;

function requireDispatch(principal: pb.Principal | undefined): pb.Principal {
  if (!principal || !hasPermission(principal.roles, 'agent:dispatch')) throw new ZiggieError('AUTH_FORBIDDEN', 'permission agent:dispatch required');
  return principal;
}

function parseNotBefore(value: string): Date | undefined {
  if (!value) return undefined;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new ZiggieError('VALIDATION_FAILED', `notBefore must be an RFC 3339 time, got ${JSON.stringify(value)}`);
  return d;
}

interface Prepared {
  plan: Plan;
  waves: Map<string, number>;
  blueprint?: { ref: string; outputs: Record<string, unknown>; outputSchema?: Record<string, unknown> };
}

@Injectable()
export class TasksService {
  private capabilities?: { at: number; set: Set<string> };
  /** Workspaces and named agents known to exist, and when that was last confirmed. */
  private readonly workspaces = new Map<string, number>();
  private readonly agents = new Map<string, number>();

  constructor(
    private readonly database: DatabaseService,
    private readonly peers: PeerClients,
    private readonly engine: EngineService,
    private readonly blueprints: BlueprintsService,
    private readonly policies: PoliciesService,
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
    const known = this.workspaces.get(id);
    if (known && Date.now() - known < CAPABILITY_CACHE_MS) return;
    const coord = await this.peers.get('workspace-coord', pb.WorkspaceCoordClient);
    try {
      await callUnary(coord.getWorkspace.bind(coord), { id }, { peer: 'workspace-coord' });
      this.workspaces.set(id, Date.now());
    } catch (err) {
      if (err instanceof ZiggieError && (err.code === 'NOT_FOUND' || err.code === 'WORKSPACE_NOT_FOUND')) throw new ZiggieError('TASK_UNKNOWN_WORKSPACE', `workspace ${id} does not exist`, { workspace: id });
      throw err;
    }
  }

  /** The plan of a submission: given, or expanded from a blueprint and its inputs. */
  private async planOf(req: pb.SubmitTaskRequest): Promise<{ raw: unknown; blueprint?: Prepared['blueprint'] }> {
    if (req.blueprint && req.plan?.steps.length) throw new ZiggieError('VALIDATION_FAILED', 'give exactly one of plan or blueprint');
    if (!req.blueprint) return { raw: planFromPb(req.plan) };
    const blueprint = await this.blueprints.resolve(req.blueprint);
    const expanded = expandBlueprint(blueprint, req.inputs ?? {});
    return {
      raw: expanded.plan,
      blueprint: { ref: `${blueprint.name}@${blueprint.version}`, outputs: expanded.outputs, outputSchema: blueprint.outputSchema },
    };
  }

  /** Whether each named agent exists, asked of agent-registry (known ones re-checked after a while). */
  private async assertAgentsExist(ids: Iterable<string>): Promise<void> {
    const now = Date.now();
    const unknown = [...new Set(ids)].filter((id) => !((this.agents.get(id) ?? 0) > now - CAPABILITY_CACHE_MS));
    if (unknown.length === 0) return;
    const registry = await this.peers.get('agent-registry', pb.AgentRegistryClient);
    const missing: string[] = [];
    for (let i = 0; i < unknown.length; i += AGENT_LOOKUPS_AT_ONCE) {
      await Promise.all(
        unknown.slice(i, i + AGENT_LOOKUPS_AT_ONCE).map(async (id) => {
          try {
            await callUnary(registry.getAgent.bind(registry), { id }, { peer: 'agent-registry' });
            if (this.agents.size >= MAX_KNOWN_AGENTS) this.agents.clear();
            this.agents.set(id, now);
          } catch (err) {
            if (err instanceof ZiggieError && err.code === 'NOT_FOUND') missing.push(id);
            else throw err;
          }
        }),
      );
    }
    if (missing.length > 0) {
      missing.sort();
      throw new ZiggieError('TASK_UNKNOWN_AGENT', `the plan names agents that do not exist: ${missing.join(', ')}`, { unknown: missing });
    }
  }

  /** Validates a submission fully (shape, DAG, step inputs, child plans, capabilities, agents, workspaces, gates, budgets). */
  async validate(req: pb.SubmitTaskRequest): Promise<Prepared> {
    const { raw, blueprint } = await this.planOf(req);
    const parsed = PlanSchema.safeParse(raw);
    if (!parsed.success) throw zodToZiggie(parsed.error, 'TASK_INVALID_PLAN');
    const plan = parsed.data;
    const waves = computeWaves(plan.steps);
    const named: NamedInPlan = { capabilities: new Set(), agents: new Set(), workspaces: new Set([req.workspace]) };
    checkPlan(plan, waves, { depth: req.depth, workspace: req.workspace, where: '' }, named);
    const known = await this.knownCapabilities();
    const unknown = [...named.capabilities].filter((c) => !known.has(c));
    if (unknown.length > 0) {
      throw new ZiggieError('TASK_UNKNOWN_CAPABILITY', `unknown capabilities: ${unknown.join(', ')}`, { unknown, known: [...known].sort() });
    }
    for (const ws of named.workspaces) {
      if (!canAccessWorkspace(req.principal?.workspaces ?? [], ws)) throw new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', `workspace ${ws} not allowed for this token`);
      await this.assertWorkspaceExists(ws);
    }
    await this.assertAgentsExist(named.agents);
    const violation = planBudgetViolation(
      await this.policies.rules(),
      plan.steps.map((s) => ({
        capability: s.capability ?? null,
        tools: toolsOf(s.action, s.input),
        workspace: s.workspace ?? req.workspace,
        roles: req.principal?.roles ?? [],
        action: s.action,
        pool: s.pool ?? null,
        gpu: s.gpu,
      })),
    );
    if (violation) throw new ZiggieError('TASK_BUDGET_EXCEEDED', violation);
    return { plan, waves, blueprint };
  }

  async submit(req: pb.SubmitTaskRequest): Promise<pb.Task> {
    const principal = requireDispatch(req.principal);
    if (req.depth < 0 || req.depth > MAX_DELEGATION_DEPTH) throw new ZiggieError('TASK_DEPTH_EXCEEDED', `delegation depth ${req.depth} is over the limit of ${MAX_DELEGATION_DEPTH}`);
    if (req.parentTaskId) {
      // A delegate step that is redelivered re-attaches to the child it created the first time.
      const existing = await this.childOf(req.parentTaskId, req.parentStepId);
      if (existing) return this.get(existing, principal);
      await this.get(req.parentTaskId, principal);
    }
    const notBefore = parseNotBefore(req.notBefore);
    const { plan, waves, blueprint } = await this.validate(req);
    const id = `tsk_${randomUUID().replace(/-/g, '')}`;
    const defaultTimeout = this.config.extra.STEP_DEFAULT_TIMEOUT_MS;
    const startNow = !notBefore || notBefore.getTime() <= Date.now();
    const created = await this.engine.create({
      task: {
        id,
        title: req.title || `Task ${id.slice(4, 12)}`,
        workspace: req.workspace,
        priority: req.priority || 'P1',
        status: startNow ? 'running' : 'queued',
        current_wave: startNow ? 1 : 0,
        wave_count: Math.max(...waves.values()),
        principal: json({ subject: principal.subject, roles: principal.roles, workspaces: principal.workspaces }),
        correlation_id: req.correlationId || id,
        not_before: notBefore ?? null,
        parent_task_id: req.parentTaskId || null,
        parent_step_id: req.parentTaskId ? req.parentStepId : null,
        depth: req.depth,
        blueprint: blueprint?.ref ?? null,
        output_template: blueprint ? json(blueprint.outputs) : null,
        output_schema: blueprint?.outputSchema ? json(blueprint.outputSchema) : null,
      },
      steps: plan.steps.map((s, ordinal) => ({
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
        quality_gate: s.qualityGate ? json<Record<string, unknown>>(s.qualityGate) : null,
        pool: s.pool ?? null,
        gpu: s.gpu,
        retry_backoff_ms: s.retryBackoff ?? 0,
      })),
      parent: req.parentTaskId ? { taskId: req.parentTaskId, stepId: req.parentStepId } : undefined,
    });
    if (!created) {
      // Two deliveries of the same delegate step raced; the other one created the child.
      return this.get((await this.childOf(req.parentTaskId, req.parentStepId))!, principal);
    }
    // The task as inserted (no step has an attempt yet): no need to read it back.
    return toPbTask(created.task, created.steps, []);
  }

  /** The child task a delegate step created, if any. */
  private async childOf(parentTaskId: string, parentStepId: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('tasks').select('id').where('parent_task_id', '=', parentTaskId).where('parent_step_id', '=', parentStepId).executeTakeFirst();
    return row?.id;
  }

  private async visibleTask(id: string, principal: pb.Principal | undefined): Promise<TaskRow> {
    const task = await this.db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirst();
    // A task outside the caller's workspaces does not exist for them.
    if (!task || !canAccessWorkspace(principal?.workspaces ?? [], task.workspace)) throw new ZiggieError('TASK_NOT_FOUND', `task ${id} not found`);
    return task;
  }

  async get(id: string, principal: pb.Principal | undefined): Promise<pb.Task> {
    const task = await this.visibleTask(id, principal);
    const [steps, attempts] = await Promise.all([
      this.db.selectFrom('steps').selectAll().where('task_id', '=', id).orderBy('wave').orderBy('ordinal').execute(),
      this.db.selectFrom('step_attempts').selectAll().where('task_id', '=', id).orderBy('attempt').execute(),
    ]);
    return toPbTask(task, steps, attempts);
  }

  async list(req: pb.ListTasksRequest): Promise<pb.ListTasksResponse> {
    const workspaces = req.principal?.workspaces ?? [];
    let q = this.db.selectFrom('tasks');
    if (!workspaces.includes('*')) q = q.where('workspace', 'in', workspaces.length ? workspaces : ['']);
    if (req.workspace) q = q.where('workspace', '=', req.workspace);
    if (req.status) q = q.where('status', '=', req.status);
    if (req.priority) q = q.where('priority', '=', req.priority);
    if (req.parentTaskId) q = q.where('parent_task_id', '=', req.parentTaskId);
    if (req.blueprint) q = q.where('blueprint', 'like', req.blueprint.includes('@') ? req.blueprint : `${req.blueprint}@%`);
    const { limit, offset } = pageOf(req.page, Cursors.tasks);
    const [rows, count] = await Promise.all([
      q.selectAll().orderBy('created_at', 'desc').orderBy('id').limit(limit).offset(offset).execute(),
      q.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return pageResult(rows.map((t) => toPbTask(t, [], [])), Number(count.n), offset, Cursors.tasks);
  }

  /** Task counts per workspace, for workspace-coord's health (an internal call: no principal). */
  stats(req: pb.GetWorkspaceStatsRequest): Promise<pb.GetWorkspaceStatsResponse> {
    return workspaceStats(this.db, req);
  }

  async cancel(req: pb.CancelTaskRequest): Promise<pb.Task> {
    requireDispatch(req.principal);
    await this.visibleTask(req.id, req.principal);
    await this.engine.cancel(req.id, req.reason || 'cancelled by request');
    return this.get(req.id, req.principal);
  }

  async approve(req: pb.ApproveStepRequest): Promise<pb.Task> {
    const principal = requireDispatch(req.principal);
    const decision = req.decision || 'approve';
    if (decision !== 'approve' && decision !== 'reject') throw new ZiggieError('VALIDATION_FAILED', `decision must be approve or reject, got ${JSON.stringify(decision)}`);
    const task = await this.visibleTask(req.taskId, principal);
    if (task.status !== 'running') throw new ZiggieError('TASK_NOT_RUNNING', `task ${task.id} is ${task.status}`);
    await this.engine.decide(task.id, req.stepId, principal.subject, decision === 'approve', req.comment);
    return this.get(task.id, principal);
  }
}

type AttemptRow = { [K in keyof AttemptTable]: AttemptTable[K] };

export function toPbTask(task: TaskRow, steps: StepRow[], attempts: AttemptRow[]): pb.Task {
  const attemptsOf = new Map<string, pb.Attempt[]>();
  for (const a of attempts) {
    const list = attemptsOf.get(a.step_id) ?? [];
    list.push({
      number: a.attempt,
      agentId: a.agent_id ?? '',
      status: a.status,
      error: stepErrorOf(a),
      dispatchedAt: iso(a.dispatched_at),
      startedAt: iso(a.started_at),
      finishedAt: iso(a.finished_at),
    });
    attemptsOf.set(a.step_id, list);
  }
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
      error: stepErrorOf(s),
      startedAt: iso(s.started_at),
      finishedAt: iso(s.finished_at),
      attempts: attemptsOf.get(s.id) ?? [],
      dispatchedAt: iso(s.dispatched_at),
      pool: s.pool ?? '',
      retries: s.retries,
      timeoutMs: s.timeout_ms,
      waitingReason: s.waiting_reason ?? '',
      approvedBy: s.approved_by ?? '',
      gpu: s.gpu,
      childTaskId: s.child_task_id ?? '',
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
    output: task.output ?? undefined,
    notBefore: iso(task.not_before),
    parentTaskId: task.parent_task_id ?? '',
    parentStepId: task.parent_step_id ?? '',
    blueprint: task.blueprint ?? '',
    depth: task.depth,
    currentWave: task.current_wave,
    waveCount: task.wave_count,
    failedStepId: task.failed_step_id ?? '',
  };
}

function stepErrorOf(row: { error_code: string | null; error_message: string | null }): pb.StepError | undefined {
  const e = errorOf(row);
  return e ? { code: e.code, message: e.message } : undefined;
}

function waveStatus(steps: pb.Step[]): string {
  if (steps.every((s) => s.status === 'succeeded')) return 'succeeded';
  if (steps.some((s) => s.status === 'failed')) return 'failed';
  if (steps.every((s) => s.status === 'cancelled' || s.status === 'succeeded')) return 'cancelled';
  if (steps.some((s) => s.status !== 'pending')) return 'running';
  return 'pending';
}
