import { readFileSync } from 'node:fs';
import { GpuPoolName } from '@ziggie/contracts';
import { z } from 'zod';

/** A Kubernetes object name (DNS-1123 subdomain). */
const ObjectName = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'a Kubernetes object name (lowercase letters, digits, - and .)');
/** A namespace (DNS-1123 label). */
const Namespace = z
  .string()
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a Kubernetes namespace (lowercase letters, digits and -)');
const Replicas = z.number().int().min(0).max(1000);
const Endpoint = z.url({ protocol: /^https?$/ });

/** The fields of a pool whose pods Kubernetes runs (a Deployment, scaled directly or by KEDA). */
const scaled = {
  name: GpuPoolName,
  /** Defaults to POD_NAMESPACE, then the namespace of the Kubernetes client's context. */
  namespace: Namespace.optional(),
  /** The Deployment running the pool's pods. */
  deployment: ObjectName,
  /** Bounds of scaling; in keda mode the ScaledObject's own values win once it has been read. */
  minReplicas: Replicas.default(0),
  maxReplicas: Replicas.default(1),
  /** The pool's Service URL (what the pool's MCP servers point at); informational. */
  endpoint: Endpoint.optional(),
  /** How long a call waits for the first ready replica when the pool is scaled up from zero. */
  scaleUpTimeoutMs: z.number().int().min(1_000).max(3_600_000).default(180_000),
};

export const GpuPoolConfigSchema = z
  .discriminatedUnion('mode', [
    z.object({ ...scaled, mode: z.literal('deployment') }).strict(),
    z
      .object({
        ...scaled,
        mode: z.literal('keda'),
        /** The KEDA ScaledObject (keda.sh/v1alpha1) that owns the Deployment's replicas; defaults to the Deployment's name. */
        scaledObject: ObjectName.optional(),
      })
      .strict(),
    z
      .object({
        name: GpuPoolName,
        mode: z.literal('static'),
        /** Fixed replicas (the local stack): the pool has as many replicas as endpoints, all taken as ready. */
        endpoints: z.array(Endpoint).max(64).default([]),
        /** A one-element `endpoints`. */
        endpoint: Endpoint.optional(),
      })
      .strict(),
  ])
  .superRefine((p, ctx) => {
    if (p.mode === 'static') return;
    if (p.minReplicas > p.maxReplicas) ctx.addIssue({ code: 'custom', path: ['minReplicas'], message: `minReplicas ${p.minReplicas} exceeds maxReplicas ${p.maxReplicas}` });
    if (p.maxReplicas < 1) ctx.addIssue({ code: 'custom', path: ['maxReplicas'], message: 'maxReplicas must be at least 1 (a pool that can never run is no pool)' });
  })
  .transform((p) => (p.mode === 'static' ? { name: p.name, mode: p.mode, endpoints: p.endpoint && !p.endpoints.includes(p.endpoint) ? [...p.endpoints, p.endpoint] : p.endpoints } : p));

export type GpuPoolConfig = z.output<typeof GpuPoolConfigSchema>;
export type ScaledPoolConfig = Extract<GpuPoolConfig, { mode: 'deployment' | 'keda' }>;

export const GpuPoolsSchema = z.array(GpuPoolConfigSchema).superRefine((pools, ctx) => {
  const seen = new Set<string>();
  pools.forEach((p, i) => {
    if (seen.has(p.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `pool ${p.name} appears twice` });
    seen.add(p.name);
  });
});

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.map((s) => (typeof s === 'number' ? `[${s}]` : `.${String(s)}`)).join('').replace(/^\./, '') : '(root)'}: ${i.message}`).join('; ');
}

/** Parses the GPU pool list (JSON text); throws one error naming every problem. */
export function parseGpuPools(text: string): GpuPoolConfig[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  const parsed = GpuPoolsSchema.safeParse(raw);
  if (!parsed.success) throw new Error(describeIssues(parsed.error));
  return parsed.data;
}

/** A zod transform for an environment variable: the variable's own problems reported under its name. */
function poolsVar(read: (value: string) => string) {
  return z
    .string()
    .optional()
    .transform((value, ctx): GpuPoolConfig[] | undefined => {
      if (value === undefined || value.trim() === '') return undefined;
      try {
        return parseGpuPools(read(value));
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) });
        return z.NEVER;
      }
    });
}

/** The variables of the GPU pools, validated with the rest of mcp-gateway's configuration at start-up. */
export const gpuPoolEnv = {
  /** The GPU inference pools, as a JSON array (format in docs/mcp-gateway.md). */
  GPU_POOLS: poolsVar((v) => v),
  /** The same, read from a file (for long lists; the Helm chart passes GPU_POOLS). */
  GPU_POOLS_FILE: poolsVar((path) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }),
  /** Namespace of pools that name none (the pod's own, from the downward API). */
  POD_NAMESPACE: z.string().optional(),
  /** A kubeconfig file for the Kubernetes API; unset: in-cluster service account, else the usual defaults. */
  KUBECONFIG: z.string().optional(),
  /** Time limit of one Kubernetes API request. */
  GPU_POOL_KUBE_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
};

/** The configured pools: GPU_POOLS or GPU_POOLS_FILE (not both). */
export function configuredPools(extra: { GPU_POOLS?: GpuPoolConfig[]; GPU_POOLS_FILE?: GpuPoolConfig[] }): GpuPoolConfig[] {
  if (extra.GPU_POOLS && extra.GPU_POOLS_FILE) throw new Error('GPU_POOLS and GPU_POOLS_FILE are both set: use one');
  return extra.GPU_POOLS ?? extra.GPU_POOLS_FILE ?? [];
}
