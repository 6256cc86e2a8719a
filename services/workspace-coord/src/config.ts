import { z } from 'zod';
import { PlatformConfig } from '@ziggie/platform';

export const workspaceEnv = {
  /** `default` seeds the five default workspaces when they are missing. */
  ZIGGIE_SEED: z.enum(['default', 'none']).default('none'),
};

export type WorkspaceConfig = PlatformConfig & { extra: { ZIGGIE_SEED: 'default' | 'none' } };
