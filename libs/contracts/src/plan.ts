import { z } from 'zod';

/** Step ids and capabilities become NATS subject tokens, so they are kept to a safe alphabet. */
export const TOKEN_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const MAX_PLAN_STEPS = 10_000;

export const Priority = z.enum(['P0', 'P1', 'P2']);
export type Priority = z.infer<typeof Priority>;

export const StepAction = z.enum(['tool', 'llm', 'delegate', 'approval']);

export const PlanStepSchema = z
  .object({
    id: z.string().regex(TOKEN_PATTERN, 'lowercase letters, digits, _ and -, at most 63'),
    capability: z.string().regex(TOKEN_PATTERN).optional(),
    agent: z.string().min(1).max(128).optional(),
    workspace: z.string().regex(TOKEN_PATTERN).optional(),
    action: StepAction.default('tool'),
    input: z.record(z.string(), z.unknown()).default({}),
    dependsOn: z.array(z.string()).max(MAX_PLAN_STEPS).default([]),
    retries: z.number().int().min(0).max(10).default(0),
    timeout: z.number().int().min(100).max(86_400_000).optional().describe('milliseconds'),
    qualityGate: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()
  .refine((s) => s.capability !== undefined || s.agent !== undefined, {
    message: 'a step needs a capability or a named agent',
    path: ['capability'],
  });
export type PlanStep = z.infer<typeof PlanStepSchema>;

export const PlanSchema = z
  .object({ steps: z.array(PlanStepSchema).min(1).max(MAX_PLAN_STEPS) })
  .strict();
export type Plan = z.infer<typeof PlanSchema>;

/** Body of POST /v1/tasks. */
export const SubmitTaskBody = z
  .object({
    title: z.string().max(200).optional(),
    workspace: z.string().regex(TOKEN_PATTERN),
    priority: Priority.default('P1'),
    plan: PlanSchema.optional(),
    blueprint: z.string().regex(/^[a-z0-9-]+@[0-9A-Za-z.-]+$/).optional(),
    inputs: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()
  .refine((b) => (b.plan === undefined) !== (b.blueprint === undefined), {
    message: 'give exactly one of plan or blueprint',
    path: ['plan'],
  });
export type SubmitTaskBody = z.infer<typeof SubmitTaskBody>;

export const TERMINAL_TASK_STATUSES = ['succeeded', 'failed', 'cancelled'] as const;
export type TaskStatus = 'queued' | 'running' | (typeof TERMINAL_TASK_STATUSES)[number];
export type StepStatus =
  | 'pending'
  | 'dispatched'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'cancelled'
  | 'waiting_approval';

export function isTerminalTaskStatus(status: string): boolean {
  return (TERMINAL_TASK_STATUSES as readonly string[]).includes(status);
}
