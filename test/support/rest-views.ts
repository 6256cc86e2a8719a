import type { StepView, TaskView, WaveView } from '@ziggie/contracts';

/** A step as GET /v1/tasks/{id} answers it, with the fields a test does not care about at their empty values. */
export function restStep(step: Partial<StepView> & Pick<StepView, 'id' | 'status' | 'wave'>): StepView {
  return {
    capability: null,
    action: 'tool',
    workspace: 'ziggie',
    agentId: null,
    attempt: 0,
    dependsOn: [],
    input: {},
    output: null,
    error: null,
    dispatchedAt: null,
    startedAt: null,
    finishedAt: null,
    retries: 0,
    timeoutMs: 0,
    pool: null,
    gpu: false,
    waitingReason: null,
    approvedBy: null,
    childTaskId: null,
    attempts: [],
    ...step,
  };
}

/** A task as GET /v1/tasks/{id} answers it, likewise. */
export function restTask(task: Partial<TaskView> & Pick<TaskView, 'id' | 'status'> & { waves: WaveView[] }): TaskView {
  return {
    title: '',
    workspace: 'ziggie',
    priority: 'P1',
    createdBy: 'admin@local',
    createdAt: new Date(0).toISOString(),
    updatedAt: new Date(0).toISOString(),
    finishedAt: null,
    errorCode: null,
    errorMessage: null,
    correlationId: 'corr-test',
    output: null,
    notBefore: null,
    blueprint: null,
    parentTaskId: null,
    parentStepId: null,
    depth: 0,
    currentWave: 0,
    waveCount: task.waves.length,
    failedStepId: null,
    ...task,
  };
}
