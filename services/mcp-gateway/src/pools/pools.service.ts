import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { hasPermission, ZiggieError } from '@ziggie/contracts';
import { CONFIG, MetricsService } from '@ziggie/platform';
import type { Counter, Gauge } from 'prom-client';
import type { McpConfig } from '../config';
import { McpStore } from '../store';
import { configuredPools } from './config';
import { KubeApi, KubeClient } from './kubernetes';
import { InferencePool, PoolRecord, PoolRecordStore, PoolView, ScaleReason, ScaleRequest } from './pool';

interface Caller {
  subject: string;
  roles: string[];
}

/**
 * The shared pool records (NATS KV, mirrored by its watch), with this replica's own writes
 * visible at once rather than when the watch brings them back.
 */
class SharedPoolRecords implements PoolRecordStore {
  private readonly pending = new Map<string, PoolRecord>();

  constructor(private readonly store: McpStore) {}

  get(pool: string): PoolRecord | undefined {
    return this.pending.get(pool) ?? (this.store.gpuPools?.get(pool) as PoolRecord | undefined);
  }

  async put(pool: string, record: PoolRecord): Promise<void> {
    this.pending.set(pool, record);
    if (!this.store.gpuPools) throw new Error('the pool store is not open yet');
    await this.store.gpuPools.put(pool, record);
  }

  /** The watch delivered a value: the mirror is current again. */
  settled(pool: string): void {
    this.pending.delete(pool);
  }
}

/**
 * The GPU inference pools (GPU_POOLS): their state from Kubernetes, their metrics, the admin
 * API (list, get, scale) and the admission of tool calls that run on them.
 */
@Injectable()
export class PoolsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('gpu-pools');
  private readonly pools = new Map<string, InferencePool>();
  private readonly records: SharedPoolRecords;
  private readonly readyListeners: ((pool: string) => void)[] = [];
  private kube?: KubeApi;
  private kubeProblem = 'the Kubernetes client is not ready yet';
  private readonly replicas: Gauge<'pool' | 'state'>;
  private readonly queueDepth: Gauge<'pool'>;
  private readonly inFlight: Gauge<'pool'>;
  private readonly scaleEvents: Counter<'pool' | 'reason'>;

  constructor(
    @Inject(CONFIG) private readonly config: McpConfig,
    private readonly store: McpStore,
    metrics: MetricsService,
  ) {
    this.records = new SharedPoolRecords(store);
    this.replicas = metrics.gauge('ziggie_gpu_pool_replicas', 'GPU pool replicas by state: desired (spec), ready, min and max bounds', ['pool', 'state']);
    this.queueDepth = metrics.gauge('ziggie_gpu_pool_queue_depth', 'Tool calls waiting for a ready replica of the GPU pool (drives KEDA)', ['pool']);
    this.inFlight = metrics.gauge('ziggie_gpu_pool_in_flight', 'Tool calls running on the GPU pool', ['pool']);
    this.scaleEvents = metrics.counter('ziggie_gpu_pool_scale_events_total', 'Scale requests Kubernetes accepted, by reason (demand: a call found no ready replica; api: ScaleGpuPool)', ['pool', 'reason']);
    const x = config.extra;
    for (const c of configuredPools(x)) {
      const pool = new InferencePool(c, {
        kube: () => this.client(),
        store: this.records,
        onChange: (p) => this.publish(p),
        onScaled: (p, reason) => this.scaleEvents.inc({ pool: p.name, reason }),
        onReady: (p) => {
          for (const l of this.readyListeners) l(p.name);
        },
      });
      this.pools.set(c.name, pool);
      for (const reason of ['demand', 'api'] as const satisfies readonly ScaleReason[]) this.scaleEvents.inc({ pool: c.name, reason }, 0);
      this.publish(pool);
    }
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.pools.size === 0) return;
    await this.store.start(this.config.extra.MCP_SESSION_TTL_MS);
    this.store.gpuPools.onChange((name) => {
      this.records.settled(name);
      const pool = this.pools.get(name);
      if (pool) this.publish(pool);
    });
    const scaled = [...this.pools.values()].filter((p) => p.mode !== 'static');
    if (scaled.length > 0) {
      const x = this.config.extra;
      try {
        this.kube = await KubeClient.create({ kubeconfig: x.KUBECONFIG, timeoutMs: x.GPU_POOL_KUBE_TIMEOUT_MS });
      } catch (err) {
        this.kubeProblem = `no Kubernetes client: ${err instanceof Error ? err.message : String(err)}`;
        this.logger.error(`${this.kubeProblem}; pools ${scaled.map((p) => p.name).join(', ')} cannot be followed or scaled`);
      }
      const namespace = x.POD_NAMESPACE || this.kube?.defaultNamespace() || 'default';
      for (const p of scaled) p.start(namespace);
    }
    this.logger.log(`GPU pools: ${[...this.pools.values()].map((p) => `${p.name} (${p.mode}${p.namespace ? ` in ${p.namespace}` : ''})`).join(', ')}`);
  }

  onApplicationShutdown(): void {
    for (const p of this.pools.values()) p.stop();
  }

  private client(): KubeApi {
    if (!this.kube) throw new ZiggieError('POOL_BACKEND_UNAVAILABLE', this.kubeProblem);
    return this.kube;
  }

  private publish(pool: InferencePool): void {
    const v = pool.view();
    const labels = { pool: v.name };
    this.replicas.set({ ...labels, state: 'desired' }, v.replicas);
    this.replicas.set({ ...labels, state: 'ready' }, v.readyReplicas);
    this.replicas.set({ ...labels, state: 'min' }, v.minReplicas);
    this.replicas.set({ ...labels, state: 'max' }, v.maxReplicas);
    this.queueDepth.set(labels, v.queueDepth);
    this.inFlight.set(labels, v.inFlight);
  }

  // ---- for the tool call path -------------------------------------------------------------------

  has(name: string): boolean {
    return this.pools.has(name);
  }

  names(): string[] {
    return [...this.pools.keys()].sort();
  }

  /** Told when a pool gets a ready replica after having none (new pods: reconnect to them). */
  onPoolReady(listener: (pool: string) => void): void {
    this.readyListeners.push(listener);
  }

  /** Records which pool an MCP server's calls run on (none: undefined). */
  assignServer(server: string, pool: string | undefined): void {
    for (const p of this.pools.values()) p.setServer(server, p.name === pool);
  }

  /** Waits until the pool can take the call (scaling it up from zero if need be); see InferencePool.admit. */
  admit(name: string, signal?: AbortSignal): Promise<{ release: () => void; waited: boolean }> {
    const pool = this.pools.get(name);
    if (!pool) throw new ZiggieError('POOL_NOT_FOUND', `pool ${name} is not configured in mcp-gateway (GPU_POOLS)`);
    return pool.admit(signal);
  }

  // ---- API ---------------------------------------------------------------------------------------

  private pool(name: string): InferencePool {
    const pool = this.pools.get(name);
    if (!pool) throw new ZiggieError('POOL_NOT_FOUND', `GPU pool ${name} not found`);
    return pool;
  }

  private caller(caller: Caller | undefined): Caller {
    if (!caller || caller.roles.length === 0) throw new ZiggieError('AUTH_FORBIDDEN', 'an authenticated caller is required');
    return caller;
  }

  list(caller: Caller | undefined): PoolView[] {
    this.caller(caller);
    return this.names().map((n) => this.pools.get(n)!.view());
  }

  get(caller: Caller | undefined, name: string): PoolView {
    this.caller(caller);
    return this.pool(name).view();
  }

  async scale(caller: Caller | undefined, name: string, req: ScaleRequest): Promise<PoolView> {
    const c = this.caller(caller);
    if (!hasPermission(c.roles, 'config:change')) throw new ZiggieError('AUTH_FORBIDDEN', 'permission config:change required');
    const view = await this.pool(name).scale(req);
    this.logger.log(`pool ${name} scaled by ${c.subject}: ${JSON.stringify(req)}`);
    return view;
  }
}
