import { z } from 'zod';
import { PlatformConfig } from '@ziggie/platform';

export const registryEnv = {
  /** `default` seeds the default 1,625-agent hierarchy when the registry is empty. */
  ZIGGIE_SEED: z.enum(['default', 'none']).default('none'),
  /** An agent whose last heartbeat is older than this is offline. */
  AGENT_OFFLINE_AFTER_SECONDS: z.coerce.number().int().min(1).default(60),
};

export type RegistryConfig = PlatformConfig & { extra: { ZIGGIE_SEED: 'default' | 'none'; AGENT_OFFLINE_AFTER_SECONDS: number } };
