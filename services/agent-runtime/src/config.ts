import { z } from 'zod';
import { PlatformConfig } from '@ziggie/platform';

export const runtimeEnv = {
  /** Steps this runtime executes at once. */
  RUNTIME_CONCURRENCY: z.coerce.number().int().min(1).max(1000).default(32),
  /** Heartbeat period of busy agents. */
  HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(500).default(10_000),
};

export type RuntimeConfig = PlatformConfig & { extra: { RUNTIME_CONCURRENCY: number; HEARTBEAT_INTERVAL_MS: number } };
