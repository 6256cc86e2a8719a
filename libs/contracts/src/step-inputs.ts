import { z } from 'zod';
import { PlanSchema } from './plan';

/**
 * What each step action takes as `input`, checked when a task is submitted (so a plan that can
 * only fail is refused with 400 and nothing is created) and again by the agent runtime on the
 * resolved input. A field that takes a non-string value may instead hold a string that is
 * exactly one output reference, `{{steps.<id>.output…}}`: its value is known at dispatch.
 */
export const WHOLE_OUTPUT_REFERENCE = /^\s*\{\{\s*steps\.[a-z0-9_-]+\.output(?:\.[A-Za-z0-9_-]+)*\s*\}\}\s*$/;

const OutputReference = z.string().regex(WHOLE_OUTPUT_REFERENCE, 'an output reference {{steps.<id>.output…}}');

/** The schema, or an output reference standing for a value of it. */
function orReference<T extends z.ZodType>(schema: T) {
  return z.union([schema, OutputReference]);
}

/** Namespaced tool names are at most 64 characters; a name built from references may be longer. */
const ToolName = z.string().min(1).max(512);

/** `tool` step: a tool name (or candidates in order of preference) and its arguments. */
export const ToolStepInput = z
  .object({
    tool: z.union([ToolName, z.array(ToolName).min(1).max(20)], { error: 'a tool name or a list of candidate tool names' }),
    arguments: orReference(z.record(z.string(), z.unknown())).optional(),
  })
  .strict();
export type ToolStepInput = z.infer<typeof ToolStepInput>;

const LlmMessage = z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string() }).strict();

/** `llm` step: a prompt or messages, for the chat tool the runtime finds in the catalog. */
export const LlmStepInput = z
  .object({
    prompt: z.string().optional(),
    messages: orReference(z.array(LlmMessage)).optional(),
    system: z.string().optional(),
    model: z.string().min(1).optional(),
    temperature: orReference(z.number().min(0).max(2)).optional(),
    maxTokens: orReference(z.number().int().min(1)).optional(),
  })
  .strict()
  .refine((i) => i.prompt !== undefined || (i.messages !== undefined && (typeof i.messages === 'string' || i.messages.length > 0)), {
    message: 'give prompt or messages',
    path: ['prompt'],
  });
export type LlmStepInput = z.infer<typeof LlmStepInput>;

/** `delegate` step: the child plan handed to the delegating agent's children, one level deeper. */
export const DelegateStepInput = z.object({ plan: orReference(PlanSchema) }).strict();
export type DelegateStepInput = z.infer<typeof DelegateStepInput>;

/** `approval` step: an optional note for the approver. */
export const ApprovalStepInput = z.object({ message: z.string().max(2_000).optional() }).strict();

export const STEP_INPUT_SCHEMAS = {
  tool: ToolStepInput,
  llm: LlmStepInput,
  delegate: DelegateStepInput,
  approval: ApprovalStepInput,
} as const;
