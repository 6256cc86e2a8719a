import { z } from 'zod';
import { PlatformConfig } from '@ziggie/platform';

export const orchestratorEnv = {
  /** Time limit of a step that does not set its own. */
  STEP_DEFAULT_TIMEOUT_MS: z.coerce.number().int().min(100).default(120_000),
  /** How often unfinished work is re-checked (lost dispatches republished, stalled tasks advanced). */
  RECONCILE_INTERVAL_MS: z.coerce.number().int().min(500).default(15_000),
};

export type OrchestratorConfig = PlatformConfig & { extra: { STEP_DEFAULT_TIMEOUT_MS: number; RECONCILE_INTERVAL_MS: number } };
