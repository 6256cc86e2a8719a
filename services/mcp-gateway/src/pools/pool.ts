import { Logger } from '@nestjs/common';
import { ZiggieError } from '@ziggie/contracts';
import type { GpuPoolConfig } from './config';
import { DeploymentState, KubeApi, kubeError, ReplicaBounds } from './kubernetes';

export type ScaleReason = 'demand' | 'api';

/** What every gateway replica shares about a pool (NATS KV): bounds set through the API (deployment mode) and the last scale. */
export interface PoolRecord {
  minReplicas?: number;
  maxReplicas?: number;
  lastScaledAt?: string;
  lastScaleReason?: ScaleReason;
}

export interface PoolRecordStore {
  get(pool: string): PoolRecord | undefined;
  put(pool: string, record: PoolRecord): Promise<void>;
}

export interface PoolView {
  name: string;
  mode: GpuPoolConfig['mode'];
  namespace: string;
  target: string;
  replicas: number;
  readyReplicas: number;
  minReplicas: number;
  maxReplicas: number;
  queueDepth: number;
  inFlight: number;
  servers: string[];
  lastScaledAt: string;
  lastScaleReason: string;
}

export interface ScaleRequest {
  replicas?: number;
  minReplicas?: number;
  maxReplicas?: number;
}

export interface PoolOptions {
  /** The Kubernetes API (not used by static pools); throws POOL_BACKEND_UNAVAILABLE while there is no client. */
  kube: () => KubeApi;
  /** The namespace of a pool whose config names none (start() may give it later). */
  defaultNamespace?: string;
  store: PoolRecordStore;
  /** After any change of what the pool reports (metrics follow it). */
  onChange?: (pool: InferencePool) => void;
  /** A scale request Kubernetes accepted. */
  onScaled?: (pool: InferencePool, reason: ScaleReason) => void;
  /**
   * The pool got its first ready replica after having none: its pods are new, so connections to
   * the old ones (and their sessions) are gone. Called before waiting calls are let in.
   */
  onReady?: (pool: InferencePool) => void;
  /** Backoff of the Deployment watch, doubling from the first delay (ms). */
  watchBackoff?: { firstMs: number; maxMs: number };
  /** How often a keda pool re-reads its ScaledObject's bounds (ms). */
  boundsRefreshMs?: number;
}

const MAX_REPLICAS = 1000;
/** A watch that stayed up this long was healthy: the next one starts again from the first delay. */
const HEALTHY_WATCH_MS = 10_000;

interface Waiter {
  done(err?: Error): void;
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new ZiggieError('TOOL_CALL_FAILED', 'the call was cancelled while it waited for its pool');
}

/**
 * One GPU inference pool: the pods serving it (a Deployment, scaled directly or through KEDA, or
 * fixed endpoints), what the Deployment watch says about them, the calls waiting for a ready
 * replica and the calls running on it, and scaling from zero when a call needs a replica.
 */
export class InferencePool {
  private readonly logger: Logger;
  private observed: DeploymentState = { exists: false, desired: 0, ready: 0 };
  /** Whether the Deployment has been read since start. */
  synced = false;
  lastError = '';
  private kedaBounds?: ReplicaBounds;
  private queue = 0;
  private running = 0;
  private readonly waiters = new Set<Waiter>();
  /** The scale-up started by demand, until the pool is ready or nobody waits any more. */
  private demand?: Promise<void>;
  private readonly serverNames = new Set<string>();
  private local: { lastScaledAt?: string; lastScaleReason?: ScaleReason } = {};
  private stopped = false;
  private stopWatch?: () => void;
  private wakeLoop?: () => void;
  private boundsTimer?: NodeJS.Timeout;
  private following = false;
  private ns: string;

  constructor(
    readonly config: GpuPoolConfig,
    private readonly opts: PoolOptions,
  ) {
    this.logger = new Logger(`pool:${config.name}`);
    this.ns = config.mode === 'static' ? '' : (config.namespace ?? opts.defaultNamespace ?? '');
  }

  get name(): string {
    return this.config.name;
  }

  get mode(): GpuPoolConfig['mode'] {
    return this.config.mode;
  }

  get namespace(): string {
    return this.ns;
  }

  get queueDepth(): number {
    return this.queue;
  }

  get inFlight(): number {
    return this.running;
  }

  get desiredReplicas(): number {
    return this.config.mode === 'static' ? this.config.endpoints.length : this.observed.desired;
  }

  get readyReplicas(): number {
    return this.config.mode === 'static' ? this.config.endpoints.length : this.observed.ready;
  }

  get bounds(): ReplicaBounds {
    const c = this.config;
    if (c.mode === 'static') return { minReplicas: c.endpoints.length, maxReplicas: c.endpoints.length };
    if (c.mode === 'keda') return this.kedaBounds ?? { minReplicas: c.minReplicas, maxReplicas: c.maxReplicas };
    const r = this.opts.store.get(c.name);
    return { minReplicas: r?.minReplicas ?? c.minReplicas, maxReplicas: r?.maxReplicas ?? c.maxReplicas };
  }

  /** The MCP servers whose calls run on this pool. */
  setServer(server: string, member: boolean): void {
    if (member) this.serverNames.add(server);
    else this.serverNames.delete(server);
  }

  view(): PoolView {
    const c = this.config;
    const shared = this.opts.store.get(c.name);
    // The newer of what this replica did and what the shared record says.
    const last = (this.local.lastScaledAt ?? '') >= (shared?.lastScaledAt ?? '') ? this.local : shared ?? {};
    return {
      name: c.name,
      mode: c.mode,
      namespace: this.namespace,
      target: c.mode === 'static' ? '' : c.deployment,
      replicas: this.desiredReplicas,
      readyReplicas: this.readyReplicas,
      ...this.bounds,
      queueDepth: this.queue,
      inFlight: this.running,
      servers: [...this.serverNames].sort(),
      lastScaledAt: last.lastScaledAt ?? '',
      lastScaleReason: last.lastScaleReason ?? '',
    };
  }

  // ---- following the Deployment -------------------------------------------------------------

  /**
   * Starts following the Deployment (list, then watch from that version; again with backoff
   * whenever the watch ends), in the config's namespace or else the one given.
   */
  start(defaultNamespace?: string): void {
    if (this.config.mode === 'static' || this.following) return;
    this.following = true;
    if (!this.config.namespace && defaultNamespace) this.ns = defaultNamespace;
    void this.follow();
    if (this.config.mode === 'keda') {
      const every = this.opts.boundsRefreshMs ?? 30_000;
      this.boundsTimer = setInterval(() => void this.refreshBounds().catch(() => undefined), every);
      this.boundsTimer.unref();
    }
  }

  /** Stops following the Deployment (a request in progress ends on its own time limit) and fails the calls still waiting. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.boundsTimer);
    this.stopWatch?.();
    this.wakeLoop?.();
    for (const w of [...this.waiters]) w.done(new ZiggieError('SERVICE_UNAVAILABLE', `mcp-gateway is stopping; pool ${this.name} was not ready`));
  }

  private kube(): KubeApi {
    return this.opts.kube();
  }

  private async follow(): Promise<void> {
    const { firstMs, maxMs } = this.opts.watchBackoff ?? { firstMs: 250, maxMs: 30_000 };
    let delay = firstMs;
    while (!this.stopped) {
      const startedAt = Date.now();
      try {
        const c = this.config as Extract<GpuPoolConfig, { mode: 'deployment' | 'keda' }>;
        const kube = this.kube();
        const { state, resourceVersion } = await kube.readDeployment(this.ns, c.deployment);
        if (!this.synced) this.logger.log(`following deployment ${this.ns}/${c.deployment}: ${state.exists ? `${state.ready}/${state.desired} ready` : 'not found'}`);
        this.apply(state);
        this.lastError = state.exists ? '' : `deployment ${this.ns}/${c.deployment} not found`;
        if (c.mode === 'keda') await this.refreshBounds().catch(() => undefined);
        let stopThis: (() => void) | undefined;
        const ended = await new Promise<Error | undefined>((resolve) => {
          if (this.stopped) return resolve(undefined);
          this.wakeLoop = () => resolve(undefined);
          kube.watchDeployment(this.ns, c.deployment, resourceVersion, (s) => this.apply(s), resolve).then(
            (stop) => {
              stopThis = stop;
              this.stopWatch = stop;
              if (this.stopped) stop();
            },
            (err: unknown) => resolve(err instanceof Error ? err : new Error(String(err))),
          );
        });
        stopThis?.();
        if (ended) throw ended;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (message !== this.lastError) this.logger.warn(`${message}; retrying with backoff`);
        this.lastError = message;
      }
      if (this.stopped) break;
      if (Date.now() - startedAt >= HEALTHY_WATCH_MS) delay = firstMs;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wakeLoop = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      delay = Math.min(delay * 2, maxMs);
    }
  }

  /** Takes in what the API says about the Deployment; a ready replica releases every waiting call. */
  apply(state: DeploymentState): void {
    const cameUp = this.synced && this.observed.ready === 0 && state.ready > 0;
    this.observed = state;
    this.synced = true;
    if (state.ready > 0) {
      if (cameUp) this.opts.onReady?.(this);
      this.demand = undefined;
      for (const w of [...this.waiters]) w.done();
    }
    this.changed();
  }

  private async refreshBounds(): Promise<ReplicaBounds> {
    const c = this.config as Extract<GpuPoolConfig, { mode: 'keda' }>;
    const bounds = await this.kube().readScaledObject(this.ns, c.scaledObject ?? c.deployment);
    this.kedaBounds = bounds;
    this.changed();
    return bounds;
  }

  /** Tells the listener (metrics) that what the pool reports may have changed. */
  changed(): void {
    this.opts.onChange?.(this);
  }

  // ---- calls -----------------------------------------------------------------------------------

  /**
   * Admits one call to the pool: at once when a replica is ready; otherwise the call waits
   * (counted in the queue depth) for the first ready replica, scaling the pool up from zero once
   * for all the calls that wait, for at most scaleUpTimeoutMs or until the call is cancelled.
   * Resolves to the release of the call's in-flight slot, and whether the call had to wait.
   */
  async admit(signal?: AbortSignal): Promise<{ release: () => void; waited: boolean }> {
    const c = this.config;
    if (c.mode === 'static') {
      if (c.endpoints.length === 0) throw new ZiggieError('UPSTREAM_UNAVAILABLE', `pool ${c.name} has no endpoints`);
      return { release: this.enter(), waited: false };
    }
    if (this.observed.ready > 0) return { release: this.enter(), waited: false };
    if (signal?.aborted) throw abortReason(signal);
    if (this.bounds.maxReplicas < 1) throw new ZiggieError('UPSTREAM_UNAVAILABLE', `pool ${c.name} has no ready replica and may not scale up (maxReplicas 0)`);
    this.queue++;
    this.changed();
    try {
      await this.waitForReady(c.scaleUpTimeoutMs, signal);
    } finally {
      this.queue--;
      // Nobody waits any more: a later call may need to scale up again (the pool may have been scaled down meanwhile).
      if (this.queue === 0) this.demand = undefined;
      this.changed();
    }
    return { release: this.enter(), waited: true };
  }

  private enter(): () => void {
    this.running++;
    this.changed();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.changed();
    };
  }

  private waitForReady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        done: (err) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          this.waiters.delete(waiter);
          if (err) reject(err);
          else resolve();
        },
      };
      const timer = setTimeout(() => {
        const c = this.config as Extract<GpuPoolConfig, { mode: 'deployment' | 'keda' }>;
        waiter.done(
          new ZiggieError(
            'POOL_SCALE_TIMEOUT',
            `pool ${c.name} had no ready replica within ${timeoutMs} ms (deployment ${this.ns}/${c.deployment}: ${this.observed.ready}/${this.observed.desired} ready${this.lastError ? `; ${this.lastError}` : ''})`,
            { pool: c.name, timeoutMs },
          ),
        );
      }, timeoutMs);
      const onAbort = (): void => waiter.done(abortReason(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
      this.scaleUpForDemand();
    });
  }

  /** Once per wait for a ready replica, however many calls wait: asks for max(1, minReplicas) replicas. */
  private scaleUpForDemand(): void {
    if (this.demand) return;
    const { minReplicas, maxReplicas } = this.bounds;
    const target = Math.min(Math.max(1, minReplicas), maxReplicas);
    // Already asked for (pods starting, or someone scaled it): just wait for them.
    if (this.synced && this.observed.desired >= target) return;
    const c = this.config as Extract<GpuPoolConfig, { mode: 'deployment' | 'keda' }>;
    this.demand = (async () => {
      try {
        const replicas = await this.kube().scaleDeployment(this.ns, c.deployment, target);
        // Until the watch reports it, so concurrent calls do not ask again.
        this.observed = { ...this.observed, desired: Math.max(this.observed.desired, replicas) };
        this.logger.log(`scaled deployment ${this.ns}/${c.deployment} to ${replicas} for ${this.queue} waiting call(s)`);
        await this.recordScale('demand');
      } catch (err) {
        const error = kubeError(err, `pool ${c.name}: scaling up for waiting calls`);
        this.logger.warn(error.message);
        this.demand = undefined;
        // Nothing will make the pool ready now: the waiting calls fail with the reason.
        for (const w of [...this.waiters]) w.done(error);
      }
    })();
  }

  // ---- scaling through the API -----------------------------------------------------------------

  /**
   * Scales the pool: `replicas` now, and/or the bounds. deployment mode: the scale subresource,
   * bounds kept in the shared record (a new bound pulls the replicas inside it). keda mode: the
   * ScaledObject's minReplicaCount/maxReplicaCount; `replicas` patches the Deployment's scale, which
   * KEDA may change again at its next evaluation.
   */
  async scale(req: ScaleRequest): Promise<PoolView> {
    const c = this.config;
    if (c.mode === 'static') throw new ZiggieError('POOL_NOT_SCALABLE', `pool ${c.name} has fixed endpoints (static mode) and cannot be scaled`);
    const given = (['replicas', 'minReplicas', 'maxReplicas'] as const).filter((k) => req[k] !== undefined);
    if (given.length === 0) throw new ZiggieError('POOL_SCALE_INVALID', 'give replicas, minReplicas or maxReplicas');
    for (const k of given) {
      const v = req[k]!;
      if (!Number.isInteger(v) || v < 0 || v > MAX_REPLICAS) throw new ZiggieError('POOL_SCALE_INVALID', `${k} must be an integer from 0 to ${MAX_REPLICAS}, got ${v}`);
    }
    const kube = this.kube();
    const current = c.mode === 'keda' ? await this.refreshBounds() : this.bounds;
    const minReplicas = req.minReplicas ?? current.minReplicas;
    const maxReplicas = req.maxReplicas ?? current.maxReplicas;
    if (minReplicas > maxReplicas) throw new ZiggieError('POOL_SCALE_INVALID', `minReplicas ${minReplicas} exceeds maxReplicas ${maxReplicas}`);
    if (req.replicas !== undefined && (req.replicas < minReplicas || req.replicas > maxReplicas)) {
      throw new ZiggieError('POOL_SCALE_INVALID', `replicas ${req.replicas} is outside [${minReplicas}, ${maxReplicas}]`);
    }
    const boundsChanged = minReplicas !== current.minReplicas || maxReplicas !== current.maxReplicas;

    if (c.mode === 'keda') {
      if (boundsChanged) {
        this.kedaBounds = await kube.patchScaledObject(this.ns, c.scaledObject ?? c.deployment, {
          ...(req.minReplicas !== undefined ? { minReplicas } : {}),
          ...(req.maxReplicas !== undefined ? { maxReplicas } : {}),
        });
      }
      if (req.replicas !== undefined) await this.scaleTo(kube, req.replicas);
    } else {
      if (!this.synced) this.apply((await kube.readDeployment(this.ns, c.deployment)).state);
      const target = req.replicas ?? Math.min(Math.max(this.observed.desired, minReplicas), maxReplicas);
      if (req.replicas !== undefined || target !== this.observed.desired) await this.scaleTo(kube, target);
      if (boundsChanged) {
        const record = this.opts.store.get(c.name) ?? {};
        await this.opts.store.put(c.name, { ...record, minReplicas, maxReplicas }).catch((err: unknown) => {
          throw new ZiggieError('SERVICE_UNAVAILABLE', `pool ${c.name}: the new bounds could not be stored: ${err instanceof Error ? err.message : String(err)}`);
        });
      }
    }
    await this.recordScale('api');
    this.changed();
    return this.view();
  }

  private async scaleTo(kube: KubeApi, replicas: number): Promise<void> {
    const c = this.config as Extract<GpuPoolConfig, { mode: 'deployment' | 'keda' }>;
    const applied = await kube.scaleDeployment(this.ns, c.deployment, replicas);
    // The watch confirms it shortly; until then the view shows what was asked.
    this.observed = { ...this.observed, desired: applied };
    this.logger.log(`scaled deployment ${this.ns}/${c.deployment} to ${applied}`);
  }

  private async recordScale(reason: ScaleReason): Promise<void> {
    const lastScaledAt = new Date().toISOString();
    this.local = { lastScaledAt, lastScaleReason: reason };
    this.opts.onScaled?.(this, reason);
    this.changed();
    const record = this.opts.store.get(this.name) ?? {};
    await this.opts.store.put(this.name, { ...record, lastScaledAt, lastScaleReason: reason }).catch((err: unknown) => {
      this.logger.warn(`recording the scale of ${this.name} failed: ${err instanceof Error ? err.message : String(err)}`);
    });
  }
}
