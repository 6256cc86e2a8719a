import { Injectable } from '@nestjs/common';
import { Cursors, hasPermission, pb, PolicySchema, ZiggieError } from '@ziggie/contracts';
import { DatabaseService, json, Kysely, zodToZiggie } from '@ziggie/platform';
import { randomUUID } from 'node:crypto';
import { PolicyRule } from './governance';
import { OrchestratorDb, PolicyRow } from './migrations';
import { iso, pageOf, pageResult } from './views';

/** Policies are read on every scheduling round; a replica sees another's change within this time. */
const RULES_CACHE_MS = 2_000;

function requireConfigChange(principal: pb.Principal | undefined): pb.Principal {
  if (!principal || !hasPermission(principal.roles, 'config:change')) throw new ZiggieError('AUTH_FORBIDDEN', 'permission config:change required');
  return principal;
}

function parsePolicy(p: pb.Policy | undefined) {
  const m = p?.match;
  const budget = p?.budget && (p.budget.maxSteps || p.budget.maxGpuSteps) ? { maxSteps: p.budget.maxSteps || undefined, maxGpuSteps: p.budget.maxGpuSteps || undefined } : undefined;
  const parsed = PolicySchema.safeParse({
    name: p?.name,
    description: p?.description || undefined,
    effect: p?.effect,
    match: { capabilities: m?.capabilities ?? [], tools: m?.tools ?? [], workspaces: m?.workspaces ?? [], roles: m?.roles ?? [], actions: m?.actions ?? [], pools: m?.pools ?? [] },
    budget,
    priority: p?.priority ?? 100,
    enabled: p?.enabled ?? true,
  });
  if (!parsed.success) throw zodToZiggie(parsed.error, 'VALIDATION_FAILED');
  return parsed.data;
}

export function toPbPolicy(r: PolicyRow): pb.Policy {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    effect: r.effect,
    match: r.match,
    budget: r.budget ? { maxSteps: r.budget.maxSteps ?? 0, maxGpuSteps: r.budget.maxGpuSteps ?? 0 } : undefined,
    priority: r.priority,
    enabled: r.enabled,
    createdBy: r.created_by,
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  };
}

/** Governance policies: CRUD and the cached rule set the scheduler evaluates. */
@Injectable()
export class PoliciesService {
  private cache?: { at: number; rules: PolicyRule[] };

  constructor(private readonly database: DatabaseService) {}

  private get db(): Kysely<OrchestratorDb> {
    return this.database.db<OrchestratorDb>();
  }

  async rules(): Promise<PolicyRule[]> {
    if (this.cache && Date.now() - this.cache.at < RULES_CACHE_MS) return this.cache.rules;
    const rows = await this.db.selectFrom('policies').selectAll().where('enabled', '=', true).execute();
    const rules = rows.map((r) => ({ ...r, effect: r.effect as PolicyRule['effect'] }));
    this.cache = { at: Date.now(), rules };
    return rules;
  }

  async create(req: pb.CreatePolicyRequest): Promise<pb.Policy> {
    const principal = requireConfigChange(req.principal);
    const p = parsePolicy(req.policy);
    const row = await this.db
      .insertInto('policies')
      .values({ id: `pol_${randomUUID().replace(/-/g, '').slice(0, 16)}`, ...p, match: json(p.match), budget: p.budget ? json(p.budget) : null, created_by: principal.subject })
      .returningAll()
      .executeTakeFirstOrThrow();
    this.cache = undefined;
    return toPbPolicy(row);
  }

  async get(id: string): Promise<pb.Policy> {
    const row = await this.db.selectFrom('policies').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new ZiggieError('POLICY_NOT_FOUND', `policy ${id} not found`);
    return toPbPolicy(row);
  }

  async list(req: pb.ListPoliciesRequest): Promise<pb.ListPoliciesResponse> {
    const { limit, offset } = pageOf(req.page, Cursors.policies);
    const [rows, count] = await Promise.all([
      this.db.selectFrom('policies').selectAll().orderBy('priority').orderBy('id').limit(limit).offset(offset).execute(),
      this.db.selectFrom('policies').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return pageResult(rows.map(toPbPolicy), Number(count.n), offset, Cursors.policies);
  }

  async update(req: pb.UpdatePolicyRequest): Promise<pb.Policy> {
    requireConfigChange(req.principal);
    const id = req.policy?.id ?? '';
    const p = parsePolicy(req.policy);
    const row = await this.db
      .updateTable('policies')
      .set({ ...p, match: json(p.match), budget: p.budget ? json(p.budget) : null, updated_at: new Date() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new ZiggieError('POLICY_NOT_FOUND', `policy ${id} not found`);
    this.cache = undefined;
    return toPbPolicy(row);
  }

  async remove(req: pb.DeletePolicyRequest): Promise<pb.DeletePolicyResponse> {
    requireConfigChange(req.principal);
    const r = await this.db.deleteFrom('policies').where('id', '=', req.id).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new ZiggieError('POLICY_NOT_FOUND', `policy ${req.id} not found`);
    this.cache = undefined;
    return { deleted: true };
  }

  /** Recorded decisions, newest first; a caller sees the decisions of its workspaces only. */
  async decisions(req: pb.ListDecisionsRequest): Promise<pb.ListDecisionsResponse> {
    const { limit, offset } = pageOf(req.page, Cursors.decisions);
    const workspaces = req.principal?.workspaces ?? [];
    let q = this.db.selectFrom('policy_decisions');
    if (!workspaces.includes('*')) q = q.where('workspace', 'in', workspaces.length ? workspaces : ['']);
    if (req.taskId) q = q.where('task_id', '=', req.taskId);
    if (req.effect) q = q.where('effect', '=', req.effect);
    const [rows, count] = await Promise.all([
      q.selectAll().orderBy('at', 'desc').orderBy('id').limit(limit).offset(offset).execute(),
      q.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return pageResult(
      rows.map((r) => ({
        taskId: r.task_id,
        stepId: r.step_id,
        policyId: r.policy_id,
        policyName: r.policy_name,
        effect: r.effect,
        reason: r.reason,
        at: iso(r.at),
        workspace: r.workspace,
        subject: r.subject,
      })),
      Number(count.n),
      offset,
      Cursors.decisions,
    );
  }
}
