import { z } from 'zod';
import { PlatformConfig } from '@ziggie/platform';

export const POOL_KINDS = ['gpu', 'comfyui', 'inference', 'other'] as const;
export type PoolKind = (typeof POOL_KINDS)[number];

export const POOL_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/;

export interface PoolSeed {
  name: string;
  capacity: number;
  kind: PoolKind;
}

/** A pool named like a kind (`gpu`, `comfyui`, `inference`) is of that kind unless told otherwise. */
export function defaultPoolKind(name: string): PoolKind {
  return (POOL_KINDS as readonly string[]).includes(name) ? (name as PoolKind) : 'other';
}

/**
 * Parses `POOLS`: comma-separated `name=capacity[:kind]`, e.g. `gpu=4,comfyui=1,llm=8:inference`.
 * Throws with a message naming the bad entry.
 */
export function parsePools(value: string): PoolSeed[] {
  const pools: PoolSeed[] = [];
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const match = /^([^=\s]+)\s*=\s*(\d+)\s*(?::\s*(\S+))?$/.exec(entry);
    if (!match) throw new Error(`"${entry}" is not name=capacity[:kind]`);
    const [, name, capacityText, kind] = match as unknown as [string, string, string, string | undefined];
    if (!POOL_NAME_PATTERN.test(name)) throw new Error(`pool name "${name}" must match ${POOL_NAME_PATTERN.source}`);
    const capacity = Number(capacityText);
    if (!Number.isSafeInteger(capacity) || capacity > 1_000_000) throw new Error(`pool ${name}: capacity ${capacityText} is out of range`);
    if (kind !== undefined && !(POOL_KINDS as readonly string[]).includes(kind)) {
      throw new Error(`pool ${name}: kind "${kind}" is not one of ${POOL_KINDS.join(', ')}`);
    }
    if (pools.some((p) => p.name === name)) throw new Error(`pool ${name} is listed twice`);
    pools.push({ name, capacity, kind: (kind as PoolKind | undefined) ?? defaultPoolKind(name) });
  }
  return pools;
}

export const DEFAULT_POOLS = 'gpu=4,comfyui=1';

const PoolsVar = z.string().transform((s, ctx) => {
  try {
    return parsePools(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `${(err as Error).message} (expected e.g. ${DEFAULT_POOLS})` });
    return z.NEVER;
  }
});

const seconds = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);

export const workspaceEnv = {
  /** `default` seeds the five default workspaces when they are missing. */
  ZIGGIE_SEED: z.enum(['default', 'none']).default('none'),
  /** First port of the blocks handed to workspaces created without a port range. */
  PORT_RANGE_BASE: z.coerce.number().int().min(1).max(65535).default(20_000),
  /** Ports per block. */
  PORT_RANGE_SIZE: z.coerce.number().int().min(1).max(10_000).default(100),
  /** Shared resource pools created at start when missing: `name=capacity[:kind]`, comma-separated. */
  POOLS: PoolsVar.default(parsePools(DEFAULT_POOLS)),
  /** Finished tasks count towards health over this many seconds back. */
  HEALTH_WINDOW_SECONDS: seconds(60, 30 * 24 * 3600, 3600),
  /** Failed tasks in the window that make a workspace blocked (one is enough for at-risk). */
  HEALTH_FAILED_BLOCKED: z.coerce.number().int().min(1).max(1_000_000).default(5),
  /** How often every workspace's health is recomputed. */
  HEALTH_INTERVAL_SECONDS: seconds(1, 3600, 15),
  /** How often expired port leases, resource leases and health reports are deleted. */
  LEASE_SWEEP_INTERVAL_SECONDS: seconds(1, 3600, 30),
};

export type WorkspaceExtra = z.infer<z.ZodObject<typeof workspaceEnv>>;

export type WorkspaceConfig = PlatformConfig & { extra: WorkspaceExtra };
