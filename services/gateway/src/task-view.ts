import { pb, type StepErrorView, type TaskSummaryView, type TaskView } from '@ziggie/contracts';

/** The REST shape of a task: gRPC's empty strings become null, so clients can tell "unset". */
export function taskView(t: pb.Task): TaskView {
  return {
    id: t.id,
    title: t.title,
    workspace: t.workspace,
    priority: t.priority,
    status: t.status,
    waves: t.waves.map((w) => ({
      index: w.index,
      status: w.status,
      steps: w.steps.map((s) => ({
        id: s.id,
        capability: s.capability || null,
        action: s.action,
        workspace: s.workspace,
        status: s.status,
        agentId: s.agentId || null,
        attempt: s.attempt,
        wave: s.wave,
        dependsOn: s.dependsOn,
        input: s.input ?? {},
        output: s.output ?? null,
        error: stepError(s.error),
        dispatchedAt: s.dispatchedAt || null,
        startedAt: s.startedAt || null,
        finishedAt: s.finishedAt || null,
        retries: s.retries,
        timeoutMs: s.timeoutMs,
        pool: s.pool || null,
        gpu: s.gpu,
        waitingReason: s.waitingReason || null,
        approvedBy: s.approvedBy || null,
        childTaskId: s.childTaskId || null,
        attempts: s.attempts.map((a) => ({
          number: a.number,
          agentId: a.agentId || null,
          status: a.status,
          error: stepError(a.error),
          dispatchedAt: a.dispatchedAt || null,
          startedAt: a.startedAt || null,
          finishedAt: a.finishedAt || null,
        })),
      })),
    })),
    createdBy: t.createdBy,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
    finishedAt: t.finishedAt || null,
    errorCode: t.errorCode || null,
    errorMessage: t.errorMessage || null,
    correlationId: t.correlationId,
    output: t.output ?? null,
    notBefore: t.notBefore || null,
    blueprint: t.blueprint || null,
    parentTaskId: t.parentTaskId || null,
    parentStepId: t.parentStepId || null,
    depth: t.depth,
    currentWave: t.currentWave,
    waveCount: t.waveCount,
    failedStepId: t.failedStepId || null,
  };
}

/** A step's or an attempt's error as `{ code, message }`, or null while it has none. */
function stepError(e: pb.StepError | undefined): StepErrorView | null {
  return e?.code ? { code: e.code, message: e.message } : null;
}

/** A task without its waves, for lists. */
export function taskSummary(t: pb.Task): TaskSummaryView {
  const { waves: _waves, ...rest } = taskView(t);
  return rest;
}
