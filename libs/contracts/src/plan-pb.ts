import type { PlanStep } from './plan';
import type { Plan as PbPlan, PlanStep as PbPlanStep } from './gen/ziggie/v1/orchestrator';

/** A validated plan step as the Orchestrator gRPC API carries it (unset fields become '' and 0). */
export function planStepToPb(step: PlanStep): PbPlanStep {
  return {
    id: step.id,
    capability: step.capability ?? '',
    agent: step.agent ?? '',
    workspace: step.workspace ?? '',
    action: step.action,
    input: step.input,
    dependsOn: step.dependsOn,
    retries: step.retries,
    timeoutMs: step.timeout ?? 0,
    qualityGate: step.qualityGate,
    pool: step.pool ?? '',
    gpu: step.gpu,
    retryBackoffMs: step.retryBackoff ?? 0,
  };
}

/** The reverse, for validation: gRPC's empty strings and zeros become absent fields. */
export function planFromPb(plan: PbPlan | undefined): unknown {
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
      pool: s.pool || undefined,
      gpu: s.gpu,
      retryBackoff: s.retryBackoffMs || undefined,
    })),
  };
}
