import { Logger } from '@nestjs/common';
import { isTerminalTaskStatus, MAX_DELEGATION_DEPTH, pb, PlanSchema, PlanStep, planStepToPb, ZiggieError } from '@ziggie/contracts';
import { OrchestratorPort, RegistryPort } from '../peers';
import { abortableSleep, abortKindOf } from '../abort';
import { ActionContext, Dispatch, failed, StepOutcome } from './types';

/** How often the child task is looked at. */
export const CHILD_POLL_MS = 500;
/** Errors of GetTask that mean "ask again later", not "the child is gone". */
const TRANSIENT = new Set(['SERVICE_UNAVAILABLE', 'UPSTREAM_TIMEOUT', 'RATE_LIMITED']);

/**
 * Gives each step without a named agent to one of the delegating agent's children that has the
 * step's capability (round-robin per capability, live children only); a step no child can take
 * keeps only its capability, and the registry chooses.
 */
export function assignChildren(steps: PlanStep[], children: pb.Agent[]): PlanStep[] {
  const live = children.filter((c) => c.status !== 'offline');
  const next = new Map<string, number>();
  return steps.map((step) => {
    if (step.agent !== undefined || step.capability === undefined) return step;
    const capability = step.capability;
    const matching = live.filter((c) => c.capabilities.includes(capability));
    if (matching.length === 0) return step;
    const i = next.get(capability) ?? 0;
    next.set(capability, i + 1);
    return { ...step, agent: matching[i % matching.length]!.id };
  });
}

export function childTaskRequest(dispatch: Dispatch, steps: PlanStep[]): pb.SubmitTaskRequest {
  return {
    title: `Delegated by ${dispatch.agentId}: ${dispatch.stepId}`,
    workspace: dispatch.workspace,
    priority: dispatch.priority,
    plan: { steps: steps.map(planStepToPb) },
    blueprint: '',
    inputs: undefined,
    principal: dispatch.principal,
    correlationId: dispatch.correlationId ?? '',
    notBefore: '',
    parentTaskId: dispatch.taskId,
    parentStepId: dispatch.stepId,
    depth: dispatch.depth + 1,
  };
}

/** A finished child task as the delegate step's outcome. */
export function childOutcome(task: pb.Task): StepOutcome {
  if (task.status === 'succeeded') {
    const steps: Record<string, unknown> = {};
    for (const wave of task.waves) for (const step of wave.steps) steps[step.id] = step.output ?? {};
    return { status: 'succeeded', output: { childTaskId: task.id, output: task.output ?? {}, steps } };
  }
  const code = task.errorCode || (task.status === 'cancelled' ? 'TASK_CANCELLED' : 'TASK_STEP_FAILED');
  const message = task.errorMessage || `child task ${task.id} ${task.status}${task.failedStepId ? ` at step ${task.failedStepId}` : ''}`;
  return { status: 'failed', output: { childTaskId: task.id }, error: { code, message } };
}

/**
 * Delegate steps: the step's plan becomes a child task (one level deeper) for the delegating
 * agent's children, and the step ends with it. The orchestrator de-duplicates child tasks by
 * parent task and step, so a redelivered step re-attaches to the child it already started.
 */
export class DelegateAction {
  private readonly logger = new Logger('delegate');

  constructor(
    private readonly orchestrator: OrchestratorPort,
    private readonly registry: RegistryPort,
    /** Children known without asking the registry (the hosted agents), used when it cannot answer. */
    private readonly knownChildren: (agentId: string) => pb.Agent[] = () => [],
    private readonly pollMs = CHILD_POLL_MS,
  ) {}

  async run(ctx: ActionContext): Promise<StepOutcome> {
    const { dispatch } = ctx;
    if (dispatch.depth + 1 > MAX_DELEGATION_DEPTH) {
      return failed('TASK_DEPTH_EXCEEDED', `delegation from depth ${dispatch.depth} would exceed the maximum depth of ${MAX_DELEGATION_DEPTH}`);
    }
    const parsed = PlanSchema.safeParse(dispatch.input.plan);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `plan.${i.path.join('.')}: ${i.message}`).join('; ');
      return failed('VALIDATION_FAILED', `a delegate step needs input.plan with steps: ${issues}`);
    }
    const steps = assignChildren(parsed.data.steps, await this.children(dispatch.agentId));
    let task = await this.orchestrator.submitTask(childTaskRequest(dispatch, steps));
    const childTaskId = task.id;
    const stopChild = () => this.cancelChild(ctx, childTaskId);
    // Aborted while the child was being submitted: the listener would never fire.
    if (ctx.signal.aborted) stopChild();
    ctx.signal.addEventListener('abort', stopChild, { once: true });
    try {
      while (!isTerminalTaskStatus(task.status)) {
        await abortableSleep(this.pollMs, ctx.signal);
        ctx.onProgress();
        try {
          task = await this.orchestrator.getTask(childTaskId, dispatch.principal);
        } catch (err) {
          if (!(err instanceof ZiggieError && TRANSIENT.has(err.code))) throw err;
          this.logger.warn(`child task ${childTaskId} not readable yet: ${err.message}`);
        }
      }
    } finally {
      ctx.signal.removeEventListener('abort', stopChild);
    }
    return childOutcome(task);
  }

  private async children(agentId: string): Promise<pb.Agent[]> {
    try {
      return await this.registry.listChildren(agentId);
    } catch (err) {
      this.logger.warn(`children of ${agentId} from the hosted agents (registry: ${String(err)})`);
      return this.knownChildren(agentId);
    }
  }

  /** On cancel or timeout the child goes too; on shutdown it keeps running for the redelivered step. */
  private cancelChild(ctx: ActionContext, childTaskId: string): void {
    const kind = abortKindOf(ctx.signal.reason);
    if (kind === 'shutdown') return;
    const reason = kind === 'timeout' ? `parent step ${ctx.dispatch.stepId} timed out` : `parent step ${ctx.dispatch.stepId} was cancelled`;
    this.orchestrator.cancelTask(childTaskId, ctx.dispatch.principal, reason).catch((err: unknown) => {
      this.logger.warn(`could not cancel child task ${childTaskId}: ${String(err)}`);
    });
  }
}
