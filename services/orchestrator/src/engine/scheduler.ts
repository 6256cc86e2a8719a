import { Logger } from '@nestjs/common';
import { pb } from '@ziggie/contracts';
import { callUnary, PeerClients, sql } from '@ziggie/platform';
import { Counter } from 'prom-client';
import { OrchestratorConfig } from '../config';
import { evaluatePolicies, PolicyRule, toolsOf } from '../governance';
import { PoliciesService } from '../policies.service';
import { HeldLease, LeaseDecision, MAX_LEASES_PER_CALL, PoolLeases, PoolSkips } from '../pool-leases';
import { hasReferences } from '../templates';
import { FullLimit, ToolCapacity } from '../tool-capacity';
import { dispatchPayload, DispatchPublisher, inputOf, outputsFor } from './dispatches';
import { attemptIdOf, Candidate, Dispatch, IN_FLIGHT, lockTasks, nextAttemptIdOf, StepError, Trx } from './steps';
import { Effects, UnitOfWork } from './unit-of-work';

/** Only one orchestrator replica runs a scheduling round at a time (Postgres advisory lock). */
export const PUMP_LOCK_KEY = 0x5a1991e;

/** The tool steps (`s`, of task `t`) a reached limit holds back: one caller's calls of a tool, or a server's. */
function heldBy(full: FullLimit) {
  const which =
    full.scope === 'tool'
      ? sql`t.principal->>'subject' = ${full.subject} and s.input->>'tool' = ${full.tool}`
      : sql`split_part(s.input->>'tool', '.', 1) = ${full.server}`;
  return sql`(s.action = 'tool' and jsonb_typeof(s.input->'tool') = 'string' and ${which})`;
}

/** Leaves out of a round the tool steps whose caller's tool or server is at the gateway's limit. */
function fullToolFilter(full: FullLimit[]) {
  if (full.length === 0) return sql``;
  return sql`and not (${sql.join(full.map(heldBy), sql` or `)})`;
}

/** Leave out the pool steps a round would only be refused leases for. */
function poolSkipFilter(skips: PoolSkips) {
  if (skips.allPools) return sql`and (s.pool is null or s.action = 'approval')`;
  if (skips.pools.length === 0) return sql``;
  const refused = skips.pools.map((p) => sql`(s.pool = ${p.pool} and t.priority in (${sql.join(p.priorities)}))`);
  return sql`and (s.pool is null or s.action = 'approval' or not (${sql.join(refused, sql` or `)}))`;
}

type GrantedLease = HeldLease & { leaseId: string };

/** What a scheduling round hands from its transaction to after the commit. */
interface Round {
  outgoing: Dispatch[];
  /** Leases granted in the round, by holder; those not dispatched in the end are given back. */
  granted: Map<string, GrantedLease>;
  /** Attempt ids the round dispatched. */
  dispatched: Set<string>;
}

export type SchedulerSettings = Pick<OrchestratorConfig['extra'], 'DISPATCH_BATCH' | 'PRIORITY_AGING_SECONDS' | 'WORKSPACE_LIMITS' | 'WORKSPACE_MAX_IN_FLIGHT'>;

/**
 * Scheduling rounds: the ready steps of running tasks' current waves, by priority with aging,
 * within workspace limits and the gateway's tool limits, through the governance policies, pool
 * steps with a lease from workspace-coord, to agents chosen by the registry; marked dispatched
 * in the round's transaction and published on JetStream after it commits. Rounds never overlap
 * in a process (and, through an advisory lock, across replicas) and repeat while work is found.
 */
export class Scheduler {
  private readonly logger = new Logger('engine');
  private pumping?: Promise<void>;
  private pumpAgain = false;
  private stopped = false;

  constructor(
    private readonly uow: UnitOfWork,
    private readonly peers: PeerClients,
    private readonly policies: Pick<PoliciesService, 'rules'>,
    private readonly leases: PoolLeases,
    private readonly toolCapacity: ToolCapacity,
    private readonly publisher: DispatchPublisher,
    private readonly settings: SchedulerSettings,
    private readonly decisions?: Counter<'effect'>,
  ) {}

  /** Asks for a scheduling round. */
  schedulePump(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = (async () => {
      try {
        do {
          this.pumpAgain = false;
          const n = await this.pumpOnce().catch((err: unknown) => {
            this.logger.warn(`scheduling round failed: ${String(err)}`);
            return 0;
          });
          if (n >= this.settings.DISPATCH_BATCH) this.pumpAgain = true;
        } while (this.pumpAgain && !this.stopped);
      } finally {
        this.pumping = undefined;
      }
    })();
  }

  /** No new round starts; the one under way ends. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.pumping?.catch(() => undefined);
  }

  /** Resolves once no round is under way (the one running, and those it asked for, have ended). */
  async idle(): Promise<void> {
    while (this.pumping) await this.pumping.catch(() => undefined);
  }

  private workspaceLimit(ws: string): number {
    return this.settings.WORKSPACE_LIMITS[ws] ?? this.settings.WORKSPACE_MAX_IN_FLIGHT;
  }

  /** One scheduling round; returns how many candidate steps it looked at. */
  async pumpOnce(): Promise<number> {
    // Read before the transaction, which (with its advisory lock) stays as short as it can.
    const rules = await this.policies.rules();
    const round: Round = { outgoing: [], granted: new Map(), dispatched: new Set() };
    let looked: number;
    try {
      looked = await this.uow.commit((trx, fx) => this.scheduleRound(trx, fx, rules, round));
    } catch (err) {
      // The round rolled back (here when the commit itself failed): none of its leases is in use.
      if (round.granted.size > 0) await this.leases.releaseNow(round.granted.values());
      throw err;
    }
    // Granted, but the step failed before dispatch (no agent, unresolvable input). Awaited, so
    // this process's next round never asks for a holder whose release is still on its way.
    const unused = [...round.granted.values()].filter((l) => !round.dispatched.has(l.holder));
    if (unused.length > 0) await this.leases.releaseNow(unused);
    await this.publisher.publish(round.outgoing);
    return looked;
  }

  /** The body of a round, in its transaction: picks the steps, then dispatches them. */
  private async scheduleRound(trx: Trx, fx: Effects, rules: PolicyRule[], round: Round): Promise<number> {
    const locked = await sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(${PUMP_LOCK_KEY}) as ok`.execute(trx);
    if (!locked.rows[0]?.ok) {
      // Another replica is scheduling; look again shortly.
      return 0;
    }
    const inFlight = await inFlightPerWorkspace(trx);
    // Approval steps take no capacity: a full workspace does not keep its gates from being held for a decision.
    const fullWorkspaces = [...inFlight].filter(([ws, n]) => n >= this.workspaceLimit(ws)).map(([ws]) => ws);
    // Steps of a tool at the gateway's limit stay out of the round (they would fill it and hold back
    // every step behind them); they show why they wait.
    const toolCalls = await this.toolCallsInFlight(trx);
    const fullTools = toolCalls ? this.toolCapacity.full(toolCalls) : [];
    for (const full of fullTools) await holdForTool(trx, fx, full);
    const candidates = (
      await sql<Candidate>`
        select s.*, t.priority as task_priority, t.principal, t.correlation_id, t.depth as task_depth
        from steps s join tasks t on t.id = s.task_id
        where s.status = 'pending' and t.status = 'running' and s.wave = t.current_wave
          and (s.next_attempt_at is null or s.next_attempt_at <= now())
          ${fullWorkspaces.length ? sql`and (s.action = 'approval' or s.workspace not in (${sql.join(fullWorkspaces)}))` : sql``}
          ${poolSkipFilter(this.leases.skips())}
          ${fullToolFilter(fullTools)}
        order by (case t.priority when 'P0' then 0 when 'P1' then 1 else 2 end)
                   - floor(extract(epoch from (now() - t.created_at)) / ${this.settings.PRIORITY_AGING_SECONDS}),
                 t.created_at, t.id, s.ordinal
        limit ${this.settings.DISPATCH_BATCH}`.execute(trx)
    ).rows;
    if (candidates.length === 0) return 0;
    const tasks = await lockTasks(trx, candidates.map((c) => c.task_id));
    const budgets = await dispatchedCounts(trx, [...tasks.keys()]);
    const capacityWaits = new Map<string, Candidate[]>();
    const chosen: Candidate[] = [];
    for (const step of candidates) {
      const task = tasks.get(step.task_id);
      if (!task || task.status !== 'running') continue;
      if (step.action === 'approval') {
        await holdForApproval(trx, fx, step, 'waiting for approval');
        continue;
      }
      const wsCount = inFlight.get(step.workspace) ?? 0;
      if (wsCount >= this.workspaceLimit(step.workspace)) continue;
      const used = budgets.get(step.task_id) ?? { steps: 0, gpu: 0 };
      const decision = evaluatePolicies(rules, {
        capability: step.capability,
        tools: toolsOf(step.action, step.input),
        workspace: step.workspace,
        roles: step.principal.roles,
        action: step.action,
        pool: step.pool,
        gpu: step.gpu,
        dispatchedSteps: used.steps,
        dispatchedGpuSteps: used.gpu,
      });
      this.decisions?.inc({ effect: decision.effect });
      if (decision.policy) {
        const approvedBefore = !!step.approved_by && decision.effect === 'require_approval';
        const effect = approvedBefore ? 'allow' : decision.effect;
        const recorded = await trx
          .insertInto('policy_decisions')
          .values({
            // One record per attempt and outcome: a step held for approval, then allowed, has both.
            id: `${step.task_id}.${step.id}.${step.attempt + 1}.${effect}`,
            task_id: step.task_id,
            step_id: step.id,
            policy_id: decision.policy.id,
            policy_name: decision.policy.name,
            effect,
            reason: approvedBefore ? `${decision.reason}; approved by ${step.approved_by}` : decision.reason,
            workspace: step.workspace,
            subject: step.principal.subject,
          })
          .onConflict((oc) => oc.column('id').doNothing())
          .returning('id')
          .executeTakeFirst();
        // A pool step waiting for its lease is decided again in every round that tries it: one event per record.
        if (recorded) fx.events.add(step.task_id, 'policy.decision', { wave: step.wave, stepId: step.id, status: decision.effect, message: decision.reason });
      }
      if (decision.effect === 'deny') {
        await failUndispatched(trx, fx, step, { code: 'POLICY_DENIED', message: decision.reason });
        continue;
      }
      if (decision.effect === 'require_approval' && !step.approved_by) {
        await holdForApproval(trx, fx, step, `waiting for approval: ${decision.reason}`);
        continue;
      }
      const tool = step.action === 'tool' && typeof step.input.tool === 'string' ? step.input.tool : undefined;
      if (toolCalls && tool) {
        const admitted = this.toolCapacity.admit(step.principal.subject, tool, toolCalls);
        if (!admitted.ok) {
          if (step.waiting_reason !== admitted.reason) capacityWaits.set(admitted.reason, [...(capacityWaits.get(admitted.reason) ?? []), step]);
          continue;
        }
      }
      inFlight.set(step.workspace, wsCount + 1);
      budgets.set(step.task_id, { steps: used.steps + 1, gpu: used.gpu + (step.gpu ? 1 : 0) });
      chosen.push(step);
    }
    for (const [reason, steps] of capacityWaits) await markWaiting(trx, fx, steps, reason);
    if (chosen.length === 0) return candidates.length;
    try {
      await this.dispatchChosen(trx, fx, chosen, round);
    } catch (err) {
      // Given back before the rollback ends the round's advisory lock, so no other round can
      // have been granted the same holders in between.
      await this.leases.releaseNow(round.granted.values());
      round.granted.clear();
      throw err;
    }
    return candidates.length;
  }

  /** Leases for the pool steps, agents for all, inputs resolved, then one statement marks them dispatched. */
  private async dispatchChosen(trx: Trx, fx: Effects, chosen: Candidate[], round: Round): Promise<void> {
    const leased = await this.leaseFor(trx, fx, chosen, round.granted);
    if (leased.length === 0) return;
    const agents = await this.selectAgents(leased);
    const outputs = await outputsFor(trx, leased.filter((s) => hasReferences(s.input)).map((s) => s.task_id));
    const ready: Array<{ step: Candidate; agentId: string; input: Record<string, unknown>; leaseId: string | null }> = [];
    for (const [i, step] of leased.entries()) {
      const pick = agents[i]!;
      if ('error' in pick) {
        await failUndispatched(trx, fx, step, pick.error);
        continue;
      }
      let input: Record<string, unknown>;
      try {
        input = inputOf(step, outputs);
      } catch (err) {
        await failUndispatched(trx, fx, step, { code: 'TASK_INVALID_PLAN', message: (err as Error).message });
        continue;
      }
      const lease = step.pool ? round.granted.get(nextAttemptIdOf(step)) : undefined;
      ready.push({ step, agentId: pick.agentId, input, leaseId: lease?.leaseId ?? null });
    }
    const dispatched = await markDispatched(
      trx,
      ready.map((r) => ({ taskId: r.step.task_id, stepId: r.step.id, agentId: r.agentId, leaseId: r.leaseId })),
    );
    for (const r of ready) {
      const attempt = dispatched.get(`${r.step.task_id}/${r.step.id}`);
      if (attempt === undefined) continue;
      round.dispatched.add(attemptIdOf(r.step.task_id, r.step.id, attempt));
      fx.events.add(r.step.task_id, 'step.dispatched', { wave: r.step.wave, stepId: r.step.id, agentId: r.agentId, status: 'dispatched' });
      round.outgoing.push(dispatchPayload(r.step, r.agentId, attempt, r.input));
    }
  }

  /**
   * The chosen steps that may be dispatched now: steps without a pool, and pool steps that were
   * granted a lease (one AcquireLeases call for the round, in its priority order, holder = the
   * attempt id the step is about to get). Refused steps stay pending with the reason.
   *
   * The call is made inside the round's transaction, after every other check: leases are asked
   * only for steps that are about to be dispatched, under the advisory lock, so no other round
   * can ask for the same holders meanwhile and a rollback gives them back first. Asking before
   * the transaction would mean guessing the round's steps from a read another replica's round
   * could overtake, and giving back leases that round may have been granted for the same holder
   * (acquisition is idempotent per holder). The price is bounded: a round already waits for the
   * registry's SelectAgents here, the call has a short deadline, a round without pool steps
   * makes none, and once workspace-coord failed or refused a pool, rounds skip those steps
   * until a lease is released or reconcile runs.
   */
  private async leaseFor(trx: Trx, fx: Effects, chosen: Candidate[], granted: Map<string, GrantedLease>): Promise<Candidate[]> {
    const poolSteps = chosen.filter((s) => s.pool);
    if (poolSteps.length === 0) return chosen;
    // One call per round, within what workspace-coord takes in one; the rest go next round.
    const asked = poolSteps.slice(0, MAX_LEASES_PER_CALL);
    if (asked.length < poolSteps.length) fx.pump = true;
    const decisions = await this.leases.acquire(
      asked.map((s) => ({ holder: nextAttemptIdOf(s), pool: s.pool!, workspace: s.workspace, priority: s.task_priority, timeoutMs: s.timeout_ms })),
    );
    const waiting = new Map<string, Candidate[]>();
    const leased: Candidate[] = [];
    for (const step of chosen) {
      if (!step.pool) {
        leased.push(step);
        continue;
      }
      const holder = nextAttemptIdOf(step);
      const decision: LeaseDecision | undefined = decisions.get(holder);
      if (!decision) continue;
      if (decision.granted) {
        granted.set(holder, { holder, pool: step.pool, leaseId: decision.leaseId });
        leased.push(step);
      } else if (step.waiting_reason !== decision.waitingReason) {
        const same = waiting.get(decision.waitingReason) ?? [];
        same.push(step);
        waiting.set(decision.waitingReason, same);
      }
    }
    for (const [reason, steps] of waiting) await markWaiting(trx, fx, steps, reason);
    return leased;
  }

  /**
   * Tool calls in flight per caller and tool, when the gateway's limits are known (undefined
   * otherwise: nothing to hold steps to).
   */
  private async toolCallsInFlight(trx: Trx): Promise<Map<string, number> | undefined> {
    if (!this.toolCapacity.active) return undefined;
    const rows = await sql<{ subject: string; tool: string; n: number }>`
      select t.principal->>'subject' as subject, s.input->>'tool' as tool, count(*)::int as n
      from steps s join tasks t on t.id = s.task_id
      where s.status in ('dispatched', 'running') and s.action = 'tool' and jsonb_typeof(s.input->'tool') = 'string'
      group by 1, 2`.execute(trx);
    return this.toolCapacity.inFlight(rows.rows);
  }

  /** One registry call for the whole round. A delegate step goes to an agent one level below the task's. */
  private async selectAgents(steps: Candidate[]): Promise<Array<{ agentId: string } | { error: StepError }>> {
    const registry = await this.peers.get('agent-registry', pb.AgentRegistryClient);
    const res = await callUnary(
      registry.selectAgents.bind(registry),
      {
        requests: steps.map((s) => ({
          capability: s.capability ?? '',
          workspace: s.workspace,
          agentId: s.agent ?? '',
          level: s.action === 'delegate' ? Math.min(s.task_depth + 1, 2) : 0,
          filterLevel: s.action === 'delegate' && !s.agent,
          withChildren: s.action === 'delegate' && !s.agent,
        })),
      },
      { peer: 'agent-registry', timeoutMs: 10_000 },
    );
    return steps.map((_, i) => {
      const r = res.results[i];
      if (r?.agent && !r.errorCode) return { agentId: r.agent.id };
      return { error: { code: r?.errorCode || 'AGENT_UNAVAILABLE', message: r?.errorMessage || 'no agent selected' } };
    });
  }
}

/** Steps in flight (dispatched or running) per workspace. */
export async function inFlightPerWorkspace(trx: Trx): Promise<Map<string, number>> {
  const rows = await trx
    .selectFrom('steps')
    .select(['workspace', (eb) => eb.fn.countAll<string>().as('n')])
    .where('status', 'in', [...IN_FLIGHT])
    .groupBy('workspace')
    .execute();
  return new Map(rows.map((r) => [r.workspace, Number(r.n)]));
}

/** Steps (and GPU steps) each task has dispatched so far, for budgets. */
export async function dispatchedCounts(trx: Trx, taskIds: string[]): Promise<Map<string, { steps: number; gpu: number }>> {
  if (taskIds.length === 0) return new Map();
  const rows = await trx
    .selectFrom('steps')
    .select(['task_id', sql<string>`count(*) filter (where attempt > 0)`.as('steps'), sql<string>`count(*) filter (where attempt > 0 and gpu)`.as('gpu')])
    .where('task_id', 'in', taskIds)
    .groupBy('task_id')
    .execute();
  return new Map(rows.map((r) => [r.task_id, { steps: Number(r.steps), gpu: Number(r.gpu) }]));
}

/** The ready steps a reached tool or server limit holds back get its reason (once) and a step.waiting event. */
async function holdForTool(trx: Trx, fx: Effects, full: FullLimit): Promise<void> {
  const held = await sql<{ task_id: string; id: string; wave: number }>`
    update steps s set waiting_reason = ${full.reason}, next_attempt_at = null
    from tasks t
    where t.id = s.task_id and t.status = 'running' and s.wave = t.current_wave and s.status = 'pending'
      and (s.next_attempt_at is null or s.next_attempt_at <= now())
      and ${heldBy(full)}
      and s.waiting_reason is distinct from ${full.reason}
    returning s.task_id, s.id, s.wave`.execute(trx);
  for (const h of held.rows) fx.events.add(h.task_id, 'step.waiting', { wave: h.wave, stepId: h.id, status: 'pending', message: full.reason });
}

/**
 * Steps that must wait for capacity (a pool lease refused, a tool at the gateway's limit) stay
 * pending with the reason and without a retry time: a release or a finished call lets them
 * through (workspace stats count pool steps waiting this way as blocked).
 */
async function markWaiting(trx: Trx, fx: Effects, steps: Candidate[], reason: string): Promise<void> {
  for (let i = 0; i < steps.length; i += 1000) {
    const chunk = steps.slice(i, i + 1000);
    await trx
      .updateTable('steps')
      .set({ waiting_reason: reason, next_attempt_at: null })
      .where(({ eb, refTuple, tuple }) => eb(refTuple('task_id', 'id'), 'in', chunk.map((s) => tuple(s.task_id, s.id))))
      .execute();
  }
  for (const s of steps) fx.events.add(s.task_id, 'step.waiting', { wave: s.wave, stepId: s.id, status: 'pending', message: reason });
}

async function holdForApproval(trx: Trx, fx: Effects, step: Candidate, reason: string): Promise<void> {
  await trx.updateTable('steps').set({ status: 'waiting_approval', waiting_reason: reason }).where('task_id', '=', step.task_id).where('id', '=', step.id).execute();
  fx.events.add(step.task_id, 'step.waiting', { wave: step.wave, stepId: step.id, status: 'waiting_approval', message: reason });
}

/** A step that cannot be dispatched (policy, no agent, unresolvable input) fails for good. */
async function failUndispatched(trx: Trx, fx: Effects, step: Candidate, error: StepError): Promise<void> {
  await trx
    .updateTable('steps')
    .set({ status: 'failed', error_code: error.code, error_message: error.message, finished_at: new Date(), waiting_reason: null })
    .where('task_id', '=', step.task_id)
    .where('id', '=', step.id)
    .execute();
  fx.events.add(step.task_id, 'step.failed', { wave: step.wave, stepId: step.id, status: 'failed', message: `${error.code}: ${error.message}` });
  fx.advance.add(step.task_id);
}

/** pending → dispatched for many steps in one statement, with their attempts; returns the new attempt numbers. */
export async function markDispatched(trx: Trx, rows: Array<{ taskId: string; stepId: string; agentId: string; leaseId: string | null }>): Promise<Map<string, number>> {
  const leaseOf = new Map(rows.map((r) => [`${r.taskId}/${r.stepId}`, r.leaseId]));
  const result = new Map<string, number>();
  for (let i = 0; i < rows.length; i += 1000) {
    const chunk = rows.slice(i, i + 1000);
    const values = sql.join(chunk.map((r) => sql`(${r.taskId}, ${r.stepId}, ${r.agentId})`));
    const updated = await sql<{ task_id: string; id: string; attempt: number; agent_id: string; dispatched_at: Date }>`
      update steps as s
      set status = 'dispatched', attempt = s.attempt + 1, agent_id = v.agent_id, dispatched_at = now(),
          published_at = null, dispatch_seq = null, waiting_reason = null, error_code = null, error_message = null, next_attempt_at = null
      from (values ${values}) as v(task_id, id, agent_id)
      where s.task_id = v.task_id and s.id = v.id and s.status = 'pending'
      returning s.task_id, s.id, s.attempt, s.agent_id, s.dispatched_at`.execute(trx);
    for (const u of updated.rows) result.set(`${u.task_id}/${u.id}`, u.attempt);
    if (updated.rows.length > 0) {
      await trx
        .insertInto('step_attempts')
        .values(
          updated.rows.map((u) => ({
            task_id: u.task_id,
            step_id: u.id,
            attempt: u.attempt,
            agent_id: u.agent_id,
            status: 'dispatched',
            dispatched_at: u.dispatched_at,
            lease_id: leaseOf.get(`${u.task_id}/${u.id}`) ?? null,
          })),
        )
        .onConflict((oc) => oc.columns(['task_id', 'step_id', 'attempt']).doNothing())
        .execute();
    }
  }
  return result;
}
