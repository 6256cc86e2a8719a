import { pb } from '@ziggie/contracts';

/** The REST shape of a task: gRPC's empty strings become null, so clients can tell "unset". */
export function taskView(t: pb.Task): Record<string, unknown> {
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
        error: s.error || null,
        startedAt: s.startedAt || null,
        finishedAt: s.finishedAt || null,
      })),
    })),
    createdBy: t.createdBy,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
    finishedAt: t.finishedAt || null,
    errorCode: t.errorCode || null,
    errorMessage: t.errorMessage || null,
    correlationId: t.correlationId,
  };
}

/** A task without its waves, for lists. */
export function taskSummary(t: pb.Task): Record<string, unknown> {
  const { waves: _waves, ...rest } = taskView(t);
  return rest;
}
