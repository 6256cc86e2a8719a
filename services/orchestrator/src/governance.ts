import { globMatches, PolicyEffect } from '@ziggie/contracts';

/** What a policy sees of a step about to be dispatched. */
export interface StepContext {
  capability: string | null;
  /** Tool names the step may call (a tool step's candidates; empty for other actions). */
  tools: string[];
  workspace: string;
  roles: string[];
  action: string;
  pool: string | null;
  gpu: boolean;
  /** Steps (and GPU steps) of the task dispatched before this one. */
  dispatchedSteps: number;
  dispatchedGpuSteps: number;
}

export interface PolicyRule {
  id: string;
  name: string;
  effect: PolicyEffect;
  match: { capabilities: string[]; tools: string[]; workspaces: string[]; roles: string[]; actions: string[]; pools: string[] };
  budget: { maxSteps?: number; maxGpuSteps?: number } | null;
  priority: number;
  enabled: boolean;
}

export interface Decision {
  effect: PolicyEffect;
  policy?: Pick<PolicyRule, 'id' | 'name'>;
  reason: string;
}

function listMatches(list: readonly string[], values: readonly (string | null)[], glob = false): boolean {
  if (list.length === 0) return true;
  return values.some((v) => v !== null && list.some((p) => (glob ? globMatches(p, v) : p === v)));
}

/** Which budget, if any, the step goes past; undefined when the policy has no budget. */
function budgetExceeded(rule: PolicyRule, step: StepContext): string | undefined | false {
  if (!rule.budget) return undefined;
  const { maxSteps, maxGpuSteps } = rule.budget;
  if (maxSteps !== undefined && step.dispatchedSteps >= maxSteps) return `the task already dispatched ${step.dispatchedSteps} steps (budget ${maxSteps})`;
  if (maxGpuSteps !== undefined && step.gpu && step.dispatchedGpuSteps >= maxGpuSteps) {
    return `the task already dispatched ${step.dispatchedGpuSteps} GPU steps (budget ${maxGpuSteps})`;
  }
  return false;
}

/**
 * Think → Govern → Act: the first enabled policy (by ascending priority, then id) that matches
 * the step decides; with no match the step is allowed. A policy with a budget matches only the
 * steps past its budget.
 */
export function evaluatePolicies(rules: readonly PolicyRule[], step: StepContext): Decision {
  const ordered = [...rules].filter((r) => r.enabled).sort((a, b) => a.priority - b.priority || a.id.localeCompare(b.id));
  for (const rule of ordered) {
    const m = rule.match;
    if (!listMatches(m.capabilities, [step.capability])) continue;
    if (!listMatches(m.workspaces, [step.workspace])) continue;
    if (!listMatches(m.actions, [step.action])) continue;
    if (!listMatches(m.pools, [step.pool])) continue;
    if (!listMatches(m.roles, step.roles)) continue;
    if (m.tools.length > 0 && !listMatches(m.tools, step.tools, true)) continue;
    const budget = budgetExceeded(rule, step);
    if (budget === false) continue;
    const why = budget ?? describeMatch(rule);
    return { effect: rule.effect, policy: { id: rule.id, name: rule.name }, reason: `policy ${rule.name}: ${why}` };
  }
  return { effect: 'allow', reason: 'no policy matched' };
}

function describeMatch(rule: PolicyRule): string {
  const parts = Object.entries(rule.match)
    .filter(([, v]) => (v as string[]).length > 0)
    .map(([k, v]) => `${k} ${(v as string[]).join('|')}`);
  return parts.length ? `matched ${parts.join(', ')}` : 'matches every step';
}

/** Tool names a step's input may call: `input.tool` as a string or a list of candidates. */
export function toolsOf(action: string, input: Record<string, unknown>): string[] {
  if (action !== 'tool') return [];
  const tool = input.tool;
  if (typeof tool === 'string') return [tool];
  if (Array.isArray(tool)) return tool.filter((t): t is string => typeof t === 'string');
  return [];
}

/**
 * Budgets checked when a task is submitted: a deny policy whose budget the plan already
 * exceeds refuses the task up front (instead of failing it half-way). Returns why, or undefined.
 */
export function planBudgetViolation(rules: readonly PolicyRule[], steps: ReadonlyArray<Omit<StepContext, 'dispatchedSteps' | 'dispatchedGpuSteps'>>): string | undefined {
  for (const rule of rules) {
    if (!rule.enabled || rule.effect !== 'deny' || !rule.budget) continue;
    const unbudgeted: PolicyRule = { ...rule, budget: null };
    const matching = steps.filter((s) => evaluatePolicies([unbudgeted], { ...s, dispatchedSteps: 0, dispatchedGpuSteps: 0 }).policy);
    const { maxSteps, maxGpuSteps } = rule.budget;
    if (maxSteps !== undefined && matching.length > maxSteps) return `policy ${rule.name}: the plan has ${matching.length} matching steps, the budget is ${maxSteps}`;
    const gpu = matching.filter((s) => s.gpu).length;
    if (maxGpuSteps !== undefined && gpu > maxGpuSteps) return `policy ${rule.name}: the plan has ${gpu} GPU steps, the budget is ${maxGpuSteps}`;
  }
  return undefined;
}
