import { z } from 'zod';
import { TOKEN_PATTERN } from './plan';

/** Every NATS subject the platform uses, versioned. Suffixed subjects take one more token. */
export enum Subject {
  /** + `.<capability>`: one message per step attempt, on the work-queue stream. */
  StepDispatch = 'ziggie.step.dispatch.v1',
  StepResult = 'ziggie.step.result.v1',
  /** Dispatches whose deliveries were exhausted. */
  StepDeadLetter = 'ziggie.step.deadletter.v1',
  /** + `.<taskId>`: every task and step transition. */
  TaskEvent = 'ziggie.event.task.v1',
  /** + `.<agentId>`: core NATS, never persisted per beat. */
  AgentHeartbeat = 'ziggie.agent.heartbeat.v1',
  /** + `.<taskId>`: core NATS; runtimes abort the named in-flight attempts (late results are ignored anyway). */
  StepCancel = 'ziggie.step.cancel.v1',
  /** + `.<workspaceId>`: a workspace's health changed (on the events stream). */
  WorkspaceHealth = 'ziggie.event.workspace.v1',
}

const id = z.string().min(1).max(128);

export const StepDispatchPayload = z.object({
  taskId: id,
  stepId: z.string().regex(TOKEN_PATTERN),
  attemptId: id,
  attempt: z.number().int().min(1),
  capability: z.string().regex(TOKEN_PATTERN),
  action: z.enum(['tool', 'llm', 'delegate', 'approval']),
  workspace: z.string(),
  agentId: id,
  input: z.record(z.string(), z.unknown()),
  timeoutMs: z.number().int().positive(),
  correlationId: z.string().optional(),
  principal: z.object({ subject: z.string(), roles: z.array(z.string()), workspaces: z.array(z.string()) }),
  /** Delegation depth of the task (0 for a task an operator submitted). */
  depth: z.number().int().min(0).default(0),
  priority: z.enum(['P0', 'P1', 'P2']).default('P1'),
  pool: z.string().optional(),
});

export const StepResultPayload = z.object({
  taskId: id,
  stepId: z.string(),
  attemptId: id,
  agentId: id,
  /** `running` is a progress notice; `succeeded` and `failed` end the attempt. */
  status: z.enum(['running', 'succeeded', 'failed']),
  output: z.record(z.string(), z.unknown()).optional(),
  /**
   * For a capacity refusal: when the refused call may be tried again (retryAfterSeconds), and the
   * limit that refused it with its scope (`tool`: one caller's calls of the tool; `server`: the
   * upstream's capacity; `user`, `workspace`).
   */
  error: z
    .object({
      code: z.string(),
      message: z.string(),
      retryAfterSeconds: z.number().nonnegative().optional(),
      limit: z.number().int().positive().optional(),
      scope: z.string().optional(),
    })
    .optional(),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
});

export const StepDeadLetterPayload = z.object({
  dispatch: StepDispatchPayload,
  deliveries: z.number().int(),
  reason: z.string(),
});

export const TaskEventPayload = z.object({
  taskId: id,
  seq: z.number().int().min(0),
  type: z.enum([
    'task.queued',
    'task.running',
    'task.succeeded',
    'task.failed',
    'task.cancelled',
    'wave.started',
    'wave.succeeded',
    'wave.failed',
    'step.dispatched',
    'step.running',
    'step.succeeded',
    'step.failed',
    'step.retrying',
    'step.waiting',
    'step.approved',
    'step.rejected',
    'step.cancelled',
    'policy.decision',
  ]),
  at: z.string(),
  wave: z.number().int().optional(),
  stepId: z.string().optional(),
  agentId: z.string().optional(),
  status: z.string(),
  message: z.string().optional(),
});

export const StepCancelPayload = z.object({
  taskId: id,
  /** Attempts to abort; empty means every in-flight attempt of the task. */
  attemptIds: z.array(id).default([]),
  reason: z.string(),
});

export const AgentHeartbeatPayload = z.object({
  agentId: id,
  status: z.enum(['idle', 'busy', 'offline']),
  load: z.number().min(0),
  runtimeId: z.string(),
  at: z.string(),
});

export const WorkspaceHealthPayload = z.object({
  workspace: id,
  status: z.enum(['on-track', 'at-risk', 'blocked']),
  previous: z.enum(['on-track', 'at-risk', 'blocked']).optional(),
  reasons: z.array(z.string()),
  at: z.string(),
});

export const SubjectSchemas = {
  [Subject.StepDispatch]: StepDispatchPayload,
  [Subject.StepResult]: StepResultPayload,
  [Subject.StepDeadLetter]: StepDeadLetterPayload,
  [Subject.TaskEvent]: TaskEventPayload,
  [Subject.AgentHeartbeat]: AgentHeartbeatPayload,
  [Subject.StepCancel]: StepCancelPayload,
  [Subject.WorkspaceHealth]: WorkspaceHealthPayload,
} as const satisfies Record<Subject, z.ZodType>;

export type PayloadOf<S extends Subject> = z.infer<(typeof SubjectSchemas)[S]>;

/** Subjects that take a trailing token (capability, task id, agent id). */
const SUFFIXED = new Set<Subject>([Subject.StepDispatch, Subject.TaskEvent, Subject.AgentHeartbeat, Subject.StepCancel, Subject.WorkspaceHealth]);

export function subjectFor(subject: Subject, suffix?: string): string {
  if (SUFFIXED.has(subject)) {
    if (!suffix || !/^[A-Za-z0-9_-]+$/.test(suffix)) {
      throw new Error(`subject ${subject} needs a token suffix, got ${JSON.stringify(suffix)}`);
    }
    return `${subject}.${suffix}`;
  }
  return subject;
}

/** Wildcard that matches every concrete subject of a base subject. */
export function subjectWildcard(subject: Subject): string {
  return SUFFIXED.has(subject) ? `${subject}.>` : subject;
}

/** Which base subject a concrete subject belongs to. */
export function baseSubjectOf(concrete: string): Subject | undefined {
  return (Object.values(Subject) as string[]).find(
    (s) => concrete === s || concrete.startsWith(`${s}.`),
  ) as Subject | undefined;
}
