import { z } from 'zod';
import { PlatformConfig } from '@ziggie/platform';

export const registryEnv = {
  /** `default` seeds the default 1,625-agent hierarchy when the registry is empty. */
  ZIGGIE_SEED: z.enum(['default', 'none']).default('none'),
  /** How many agents `ZIGGIE_SEED=default` seeds: 1,625 is the default hierarchy; other sizes scale its L1 count (for measuring large fleets). */
  ZIGGIE_SEED_AGENTS: z.coerce.number().int().min(19).max(1_000_000).default(1625),
  /** An agent whose last heartbeat is older than this is offline. */
  AGENT_OFFLINE_AFTER_SECONDS: z.coerce.number().int().min(1).default(60),
};

export type RegistryConfig = PlatformConfig & { extra: { ZIGGIE_SEED: 'default' | 'none'; ZIGGIE_SEED_AGENTS: number; AGENT_OFFLINE_AFTER_SECONDS: number } };
