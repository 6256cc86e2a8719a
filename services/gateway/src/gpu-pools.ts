// One pool name, one resource: a pool of workspace-coord (admission capacity, P0 reserve, leases)
// and, when mcp-gateway runs a GPU inference pool of the same name, the pods serving it. These are
// the shapes and the merge the gateway's /v1/pools routes answer with.
import { Logger } from '@nestjs/common';
import { GpuPoolView, InferenceView, pb, PoolList, PoolView, ZiggieError } from '@ziggie/contracts';
import { z } from 'zod';

const Count = z.number().int().min(0);

// The response shapes are shared with the console (libs/contracts).
export { GpuPoolView, InferenceView, PoolList, PoolView };

/**
 * Scale body: at least one of the three (VALIDATION_FAILED otherwise). How they relate to each
 * other and to the pool's current bounds (min ≤ max, replicas within them) is checked by
 * mcp-gateway, which knows the bounds: POOL_SCALE_INVALID.
 */
export const ScaleBody = z
  .object({
    replicas: Count.max(1000).optional().describe('Replicas now, within [minReplicas, maxReplicas] (keda mode: KEDA may change it at its next evaluation)'),
    minReplicas: Count.max(1000).optional().describe('Lower bound; deployment mode: the replicas are raised to it'),
    maxReplicas: Count.max(1000).optional().describe('Upper bound; deployment mode: the replicas are lowered to it'),
  })
  .strict()
  .refine((b) => b.replicas !== undefined || b.minReplicas !== undefined || b.maxReplicas !== undefined, 'give replicas, minReplicas or maxReplicas');

type Inference = z.infer<typeof InferenceView>;
type Pool = z.infer<typeof PoolView>;

export function inferenceOf(g: pb.GpuPool): Inference {
  return {
    mode: g.mode as Inference['mode'],
    namespace: g.namespace || null,
    target: g.target || null,
    replicas: g.replicas,
    readyReplicas: g.readyReplicas,
    minReplicas: g.minReplicas,
    maxReplicas: g.maxReplicas,
    queueDepth: g.queueDepth,
    inFlight: g.inFlight,
    servers: g.servers,
    lastScaledAt: g.lastScaledAt || null,
    lastScaleReason: (g.lastScaleReason || null) as Inference['lastScaleReason'],
  };
}

export function gpuPoolOf(g: pb.GpuPool): z.infer<typeof GpuPoolView> {
  return { name: g.name, ...inferenceOf(g) };
}

/**
 * A pool as answered: workspace-coord's fields (null when it does not know the pool) and
 * `inference` — the GPU pool, null when mcp-gateway has none of that name, left out when
 * mcp-gateway could not be asked (`gpu` undefined).
 */
export function poolView(name: string, coord: pb.Pool | undefined, gpu: pb.GpuPool | null | undefined): Pool {
  const base: Pool = coord
    ? { ...coord }
    : { name, kind: null, capacity: null, reservedP0: null, inUse: null, leases: null, description: null, updatedAt: null };
  return gpu === undefined ? base : { ...base, inference: gpu === null ? null : inferenceOf(gpu) };
}

/** Every pool either service knows, by name; `gpu` undefined when mcp-gateway could not be asked. */
export function mergePools(coord: pb.Pool[], gpu: pb.GpuPool[] | undefined): Pool[] {
  const gpus = new Map((gpu ?? []).map((g) => [g.name, g]));
  const names = [...new Set([...coord.map((p) => p.name), ...gpus.keys()])].sort();
  const byName = new Map(coord.map((p) => [p.name, p]));
  return names.map((n) => poolView(n, byName.get(n), gpu === undefined ? undefined : (gpus.get(n) ?? null)));
}

const logger = new Logger('pools');

/**
 * The mcp-gateway half of a read: its answer, null when it has no pool of that name, or
 * undefined when it could not be asked (unreachable, timed out, failing) — the read then goes
 * on with workspace-coord's view alone.
 */
export async function optionalGpu<T>(read: () => Promise<T>, what: string): Promise<T | null | undefined> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof ZiggieError && err.code === 'POOL_NOT_FOUND') return null;
    logger.warn(`${what} from mcp-gateway left out: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}
