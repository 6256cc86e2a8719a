import { z } from 'zod';
import { MAX_PATTERN_LENGTH, userPatternProblem } from './patterns';

/** Step ids and capabilities become NATS subject tokens, so they are kept to a safe alphabet. */
export const TOKEN_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const MAX_PLAN_STEPS = 10_000;
/** A delegate step's child plan may itself delegate, down to this depth (L0 → L1 → L2 → L3). */
export const MAX_DELEGATION_DEPTH = 3;

export const Priority = z.enum(['P0', 'P1', 'P2']);
export type Priority = z.infer<typeof Priority>;

export const StepAction = z.enum(['tool', 'llm', 'delegate', 'approval']);

/** A user's regular expression: refused here when RE2 (the engine that will run it) cannot take it. */
export const UserPatternSchema = z
  .string()
  .max(MAX_PATTERN_LENGTH)
  .superRefine((pattern, ctx) => {
    const problem = userPatternProblem(pattern, { caseInsensitive: true });
    if (problem) ctx.addIssue({ code: 'custom', message: `pattern ${JSON.stringify(pattern)} is not a supported regular expression (RE2 syntax): ${problem}` });
  });

/**
 * Checked when a step succeeds: its output must match `outputSchema` (JSON Schema), and none of
 * the `rejectPatterns` (regular expressions) may match the output's text. A step that fails its
 * gate fails with QUALITY_GATE_FAILED and the reason (and is retried if it has retries left).
 */
export const QualityGateSchema = z
  .object({
    outputSchema: z.record(z.string(), z.unknown()).optional(),
    /** Case-insensitive, RE2 syntax (linear time; no backreferences or lookaround). */
    rejectPatterns: z.array(UserPatternSchema).max(50).optional(),
    /** Fail the gate unless the output's text has at least this many characters. */
    minTextLength: z.number().int().min(0).optional(),
  })
  .strict();
export type QualityGate = z.infer<typeof QualityGateSchema>;

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
    qualityGate: QualityGateSchema.optional(),
    pool: z.string().regex(TOKEN_PATTERN).optional().describe('shared resource pool the step needs, e.g. gpu'),
    gpu: z.boolean().default(false).describe('counts against GPU-step budgets'),
    retryBackoff: z.number().int().min(0).max(3_600_000).optional().describe('milliseconds before the first retry; doubles per attempt'),
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
    notBefore: z.string().datetime({ offset: true }).optional().describe('RFC 3339: the task starts no earlier'),
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
  | 'waiting_approval'
  | 'rejected';

export function isTerminalTaskStatus(status: string): boolean {
  return (TERMINAL_TASK_STATUSES as readonly string[]).includes(status);
}
