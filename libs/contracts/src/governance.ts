import { z } from 'zod';
import { MAX_PLAN_STEPS, QualityGateSchema, StepAction, TOKEN_PATTERN } from './plan';

/** Blueprint names are tokens; versions are semantic-version-like (1, 1.2, 1.2.3-beta). */
export const BLUEPRINT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const BLUEPRINT_VERSION = /^[0-9]+(\.[0-9]+){0,2}(-[0-9A-Za-z.-]{1,32})?$/;
export const MAX_FAN_OUT = 1_000;

/** Parses `name@version`. */
export function parseBlueprintRef(ref: string): { name: string; version: string } | undefined {
  const at = ref.lastIndexOf('@');
  if (at <= 0) return undefined;
  const name = ref.slice(0, at);
  const version = ref.slice(at + 1);
  return BLUEPRINT_NAME.test(name) && BLUEPRINT_VERSION.test(version) ? { name, version } : undefined;
}

/** A number, or a `{{inputs.x}}` parameter that resolves to one. */
const Count = z.union([z.number().int().min(1).max(MAX_FAN_OUT), z.string().regex(/^\{\{\s*inputs\.[A-Za-z0-9_]+\s*\}\}$/)]);

/**
 * A step of a blueprint template: a plan step whose values may contain `{{inputs.<name>}}`,
 * plus `fanOut`, which expands the step into N copies (`<id>-1` … `<id>-N`, each seeing
 * `{{fanOut.index}}` and `{{fanOut.item}}`). A later step depending on a fanned-out step depends
 * on every copy, and `{{steps.<id>.output…}}` becomes the list of the copies' outputs.
 */
export const BlueprintStepSchema = z
  .object({
    id: z.string().regex(TOKEN_PATTERN),
    capability: z.string().optional(),
    agent: z.string().max(128).optional(),
    workspace: z.string().optional(),
    action: StepAction.default('tool'),
    input: z.record(z.string(), z.unknown()).default({}),
    dependsOn: z.array(z.string()).max(MAX_PLAN_STEPS).default([]),
    retries: z.number().int().min(0).max(10).default(0),
    timeout: z.number().int().min(100).max(86_400_000).optional(),
    qualityGate: QualityGateSchema.optional(),
    pool: z.string().regex(TOKEN_PATTERN).optional(),
    gpu: z.boolean().default(false),
    retryBackoff: z.number().int().min(0).max(3_600_000).optional(),
    fanOut: z
      .union([z.object({ count: Count }).strict(), z.object({ forEach: z.string().regex(/^\{\{\s*inputs\.[A-Za-z0-9_]+\s*\}\}$/) }).strict()])
      .optional(),
  })
  .strict();
export type BlueprintStep = z.infer<typeof BlueprintStepSchema>;

const JsonSchemaObject = z.record(z.string(), z.unknown());

export const BlueprintSchema = z
  .object({
    name: z.string().regex(BLUEPRINT_NAME, 'lowercase letters, digits and -, at most 63'),
    version: z.string().regex(BLUEPRINT_VERSION, 'a version like 1, 1.2 or 1.2.3'),
    description: z.string().max(2_000).default(''),
    inputSchema: JsonSchemaObject.default({ type: 'object' }),
    outputSchema: JsonSchemaObject.optional(),
    template: z.object({ steps: z.array(BlueprintStepSchema).min(1).max(MAX_PLAN_STEPS) }).strict(),
    /** Task output: name → a `{{steps.<id>.output…}}` reference (or any JSON with references inside). */
    outputs: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();
export type Blueprint = z.infer<typeof BlueprintSchema>;

export const PolicyEffect = z.enum(['allow', 'deny', 'require_approval']);
export type PolicyEffect = z.infer<typeof PolicyEffect>;

const Names = z.array(z.string().min(1).max(128)).max(100).default([]);

/**
 * A governance policy. It matches a step when every non-empty list contains the step's value
 * (tools may be globs such as `comfyui.*`); empty lists match anything. Policies are tried by
 * ascending priority and the first match decides. With a budget, a policy matches only steps
 * past the budget (the task's n-th step, or n-th GPU step).
 */
export const PolicySchema = z
  .object({
    name: z.string().min(1).max(100),
    description: z.string().max(2_000).default(''),
    effect: PolicyEffect,
    match: z
      .object({ capabilities: Names, tools: Names, workspaces: Names, roles: Names, actions: z.array(StepAction).max(4).default([]), pools: Names })
      .strict()
      .default({ capabilities: [], tools: [], workspaces: [], roles: [], actions: [], pools: [] }),
    budget: z
      .object({ maxSteps: z.number().int().min(0).max(1_000_000).optional(), maxGpuSteps: z.number().int().min(0).max(1_000_000).optional() })
      .strict()
      .optional(),
    priority: z.number().int().min(0).max(1_000_000).default(100),
    enabled: z.boolean().default(true),
  })
  .strict();
export type Policy = z.infer<typeof PolicySchema>;
