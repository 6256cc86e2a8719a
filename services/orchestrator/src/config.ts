import { z } from 'zod';
import { PlatformConfig } from '@ziggie/platform';

/** `{"ziggie": 50}`-style JSON maps of limits. */
const LimitMap = z
  .string()
  .transform((s, ctx) => {
    try {
      return z.record(z.string(), z.number().int().min(1)).parse(JSON.parse(s));
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be a JSON object of positive integers, e.g. {"ziggie": 50}' });
      return z.NEVER;
    }
  });

export const orchestratorEnv = {
  /** Time limit of a step that does not set its own. */
  STEP_DEFAULT_TIMEOUT_MS: z.coerce.number().int().min(100).default(120_000),
  /** A running step is failed with STEP_TIMEOUT this long after its own timeout if no result came (the runtime enforces the timeout first). */
  STEP_TIMEOUT_GRACE_MS: z.coerce.number().int().min(0).default(30_000),
  /** How often unfinished work is re-checked (lost dispatches republished, stalled tasks advanced, timeouts, delayed starts). */
  RECONCILE_INTERVAL_MS: z.coerce.number().int().min(200).default(5_000),
  /** Steps dispatched per scheduling round. */
  DISPATCH_BATCH: z.coerce.number().int().min(1).max(5_000).default(1_000),
  /** A waiting step gains one priority level per this many seconds, so P2 never starves. */
  PRIORITY_AGING_SECONDS: z.coerce.number().int().min(1).default(60),
  /** Steps in flight (dispatched or running) per workspace, unless WORKSPACE_LIMITS says otherwise. */
  WORKSPACE_MAX_IN_FLIGHT: z.coerce.number().int().min(1).default(2_000),
  WORKSPACE_LIMITS: LimitMap.default({}),
  /** Results recorded per database transaction. */
  RESULT_BATCH_MAX: z.coerce.number().int().min(1).max(2_000).default(256),
};

export interface OrchestratorExtra {
  STEP_DEFAULT_TIMEOUT_MS: number;
  STEP_TIMEOUT_GRACE_MS: number;
  RECONCILE_INTERVAL_MS: number;
  DISPATCH_BATCH: number;
  PRIORITY_AGING_SECONDS: number;
  WORKSPACE_MAX_IN_FLIGHT: number;
  WORKSPACE_LIMITS: Record<string, number>;
  RESULT_BATCH_MAX: number;
}

export type OrchestratorConfig = PlatformConfig & { extra: OrchestratorExtra };
