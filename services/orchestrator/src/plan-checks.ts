import { MAX_DELEGATION_DEPTH, Plan, STEP_INPUT_SCHEMAS, ZiggieError } from '@ziggie/contracts';
import { schemaProblem } from './json-schema';
import { computeWaves } from './plan';
import { outputReferences, referenceProblem } from './templates';

/** What a plan (child plans included) names that only other services can confirm. */
export interface NamedInPlan {
  capabilities: Set<string>;
  agents: Set<string>;
  workspaces: Set<string>;
}

export interface PlanScope {
  /** Delegation depth of the task the plan belongs to (0 for a task submitted over REST). */
  depth: number;
  /** The task's workspace, which steps without one inherit. */
  workspace: string;
  /** Where the plan sits, for messages: '' at the top, "step x's child plan: " below. */
  where: string;
  /**
   * False in child plans: a delegate step's input is resolved when the parent step is
   * dispatched, so references inside its child plan point at the parent's steps (checked there).
   */
  ownReferences?: boolean;
}

function invalid(scope: PlanScope, stepId: string, message: string, extras: Record<string, unknown> = {}): ZiggieError {
  return new ZiggieError('TASK_INVALID_PLAN', `${scope.where}step ${stepId}: ${message}`, { stepId, ...extras });
}

/**
 * The checks of a submission that need no other service, over the plan and every child plan a
 * delegate step carries: each step's input against its action's schema, output references
 * (earlier steps only, never through prototype keys), quality gate schemas that compile, and
 * delegation depth. Whatever would make the task fail later is refused now, before anything is
 * created. Fills `named` with the capabilities, agents and workspaces to confirm.
 */
export function checkPlan(plan: Plan, waves: ReadonlyMap<string, number>, scope: PlanScope, named: NamedInPlan): void {
  for (const s of plan.steps) {
    if (s.capability) named.capabilities.add(s.capability);
    if (s.agent) named.agents.add(s.agent);
    const workspace = s.workspace ?? scope.workspace;
    named.workspaces.add(workspace);

    const input = STEP_INPUT_SCHEMAS[s.action].safeParse(s.input);
    if (!input.success) {
      const issue = input.error.issues[0]!;
      const path = ['input', ...issue.path.map(String)].join('.');
      throw invalid(scope, s.id, `${path}: ${issue.message} (a ${s.action} step takes ${inputShape(s.action)})`, { path });
    }
    for (const ref of scope.ownReferences === false ? [] : outputReferences(s.input)) {
      const problem = referenceProblem(ref);
      if (problem) throw invalid(scope, s.id, problem, { reference: ref.text });
      if (!waves.has(ref.step) || waves.get(ref.step)! >= waves.get(s.id)!) {
        throw invalid(scope, s.id, `references the output of ${ref.step}, which does not run before it`, { reference: ref.step });
      }
    }
    if (s.qualityGate?.outputSchema) {
      const problem = schemaProblem(s.qualityGate.outputSchema);
      if (problem) throw invalid(scope, s.id, `the quality gate's outputSchema does not compile: ${problem}`);
    }
    if (s.action === 'delegate') {
      if (scope.depth + 1 > MAX_DELEGATION_DEPTH) {
        throw new ZiggieError('TASK_DEPTH_EXCEEDED', `${scope.where}step ${s.id} would delegate to depth ${scope.depth + 1}; the limit is ${MAX_DELEGATION_DEPTH}`, {
          stepId: s.id,
        });
      }
      const child = input.data as { plan: Plan | string };
      // A child plan that is an output reference is known only at dispatch; the child task's own submission checks it.
      if (typeof child.plan !== 'string') {
        const childScope = { depth: scope.depth + 1, workspace, where: `${scope.where}step ${s.id}'s child plan: `, ownReferences: false };
        let childWaves: Map<string, number>;
        try {
          childWaves = computeWaves(child.plan.steps);
        } catch (err) {
          if (err instanceof ZiggieError) throw new ZiggieError(err.code, `${childScope.where}${err.message}`, err.extras);
          throw err;
        }
        checkPlan(child.plan, childWaves, childScope, named);
      }
    }
  }
}

function inputShape(action: keyof typeof STEP_INPUT_SCHEMAS): string {
  switch (action) {
    case 'tool':
      return '{ tool: name | [names], arguments?: {…} }';
    case 'llm':
      return '{ prompt | messages, system?, model?, temperature?, maxTokens? }';
    case 'delegate':
      return '{ plan: { steps: [...] } }';
    case 'approval':
      return '{ message? }';
  }
}
