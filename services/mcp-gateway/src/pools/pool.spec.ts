import { ZiggieError } from '@ziggie/contracts';
import { GpuPoolConfig, parseGpuPools } from './config';
import type { DeploymentState, KubeApi, ReplicaBounds, WatchEnd } from './kubernetes';
import { InferencePool, PoolRecord, PoolRecordStore, ScaleReason } from './pool';

/** Lets pending promise callbacks run. */
const flush = () => new Promise((resolve) => setImmediate(resolve));

interface OpenWatch {
  resourceVersion: string;
  onState: (s: DeploymentState) => void;
  onEnd: WatchEnd;
  stopped: boolean;
}

/**
 * The Kubernetes API as a pool sees it, answering from fields the test sets; every request is
 * recorded. A request the test did not prepare for (the API marked down) fails like an
 * unreachable API server.
 */
class FakeKube implements KubeApi {
  deployment: DeploymentState = { exists: true, desired: 0, ready: 0 };
  scaledObject: ReplicaBounds = { minReplicas: 0, maxReplicas: 3 };
  down = false;
  /** A scale request waits for this when set, so the test can look at the pool meanwhile. */
  scaleGate?: Promise<void>;
  readonly calls: string[] = [];
  readonly watches: OpenWatch[] = [];
  private version = 1;

  private check(what: string): void {
    this.calls.push(what);
    if (this.down) throw new ZiggieError('POOL_BACKEND_UNAVAILABLE', `${what}: Kubernetes API unreachable: connect ECONNREFUSED`);
  }

  defaultNamespace(): string {
    return 'from-context';
  }

  readDeployment(namespace: string, name: string): Promise<{ state: DeploymentState; resourceVersion: string }> {
    this.check(`read ${namespace}/${name}`);
    return Promise.resolve({ state: { ...this.deployment }, resourceVersion: String(this.version) });
  }

  watchDeployment(namespace: string, name: string, resourceVersion: string, onState: (s: DeploymentState) => void, onEnd: WatchEnd): Promise<() => void> {
    this.check(`watch ${namespace}/${name}@${resourceVersion}`);
    const w: OpenWatch = { resourceVersion, onState, onEnd, stopped: false };
    this.watches.push(w);
    return Promise.resolve(() => {
      w.stopped = true;
    });
  }

  async scaleDeployment(namespace: string, name: string, replicas: number): Promise<number> {
    this.check(`scale ${namespace}/${name} ${replicas}`);
    await this.scaleGate;
    this.deployment = { ...this.deployment, desired: replicas };
    return replicas;
  }

  readScaledObject(namespace: string, name: string): Promise<ReplicaBounds> {
    this.check(`read scaledobject ${namespace}/${name}`);
    return Promise.resolve({ ...this.scaledObject });
  }

  patchScaledObject(namespace: string, name: string, bounds: Partial<ReplicaBounds>): Promise<ReplicaBounds> {
    this.check(`patch scaledobject ${namespace}/${name} ${JSON.stringify(bounds)}`);
    this.scaledObject = { ...this.scaledObject, ...bounds };
    return Promise.resolve({ ...this.scaledObject });
  }

  /** What the Deployment controller would report: a change, delivered to every open watch. */
  report(state: Partial<DeploymentState>): void {
    this.deployment = { ...this.deployment, ...state };
    this.version++;
    for (const w of this.watches.filter((x) => !x.stopped)) w.onState({ ...this.deployment });
  }

  get open(): OpenWatch[] {
    return this.watches.filter((w) => !w.stopped);
  }
}

class MemoryRecords implements PoolRecordStore {
  readonly values = new Map<string, PoolRecord>();
  get(pool: string): PoolRecord | undefined {
    return this.values.get(pool);
  }
  put(pool: string, record: PoolRecord): Promise<void> {
    this.values.set(pool, record);
    return Promise.resolve();
  }
}

function poolConfig(extra: Record<string, unknown> = {}): GpuPoolConfig {
  return parseGpuPools(JSON.stringify([{ name: 'sdxl', mode: 'deployment', deployment: 'gpu-sdxl', namespace: 'ziggie', minReplicas: 0, maxReplicas: 4, scaleUpTimeoutMs: 5_000, ...extra }]))[0]!;
}

function makePool(config: GpuPoolConfig, kube = new FakeKube()) {
  const records = new MemoryRecords();
  const scaled: ScaleReason[] = [];
  let changes = 0;
  const pool = new InferencePool(config, {
    kube: () => kube,
    store: records,
    onChange: () => changes++,
    onScaled: (_p, reason) => scaled.push(reason),
    watchBackoff: { firstMs: 5, maxMs: 20 },
  });
  return { pool, kube, records, scaled, changes: () => changes };
}

describe('InferencePool', () => {
  afterEach(() => jest.useRealTimers());

  describe('admission of calls', () => {
    it('admits at once while a replica is ready, counting calls in flight until released (once)', async () => {
      const { pool, kube } = makePool(poolConfig());
      pool.apply({ exists: true, desired: 2, ready: 1 });
      const a = await pool.admit();
      const b = await pool.admit();
      expect([a.waited, b.waited]).toEqual([false, false]);
      expect([pool.inFlight, pool.queueDepth]).toEqual([2, 0]);
      a.release();
      a.release();
      expect(pool.inFlight).toBe(1);
      b.release();
      expect(pool.inFlight).toBe(0);
      expect(kube.calls).toEqual([]);
    });

    it('scales up from zero once for every call waiting, to max(1, minReplicas), and lets them all in at the first ready replica', async () => {
      const { pool, kube, scaled } = makePool(poolConfig({ minReplicas: 0 }));
      pool.apply({ exists: true, desired: 0, ready: 0 });
      const calls = [pool.admit(), pool.admit(), pool.admit()];
      await flush();
      expect(pool.queueDepth).toBe(3);
      expect(pool.inFlight).toBe(0);
      expect(kube.calls).toEqual(['scale ziggie/gpu-sdxl 1']);
      expect(pool.view()).toMatchObject({ replicas: 1, readyReplicas: 0, lastScaleReason: 'demand' });
      expect(scaled).toEqual(['demand']);

      // Another call while the pod starts waits too, without asking again.
      calls.push(pool.admit());
      await flush();
      expect(kube.calls).toHaveLength(1);

      pool.apply({ exists: true, desired: 1, ready: 1 });
      const admitted = await Promise.all(calls);
      expect(admitted.every((a) => a.waited)).toBe(true);
      expect([pool.queueDepth, pool.inFlight]).toEqual([0, 4]);
      for (const a of admitted) a.release();
      expect(pool.inFlight).toBe(0);
    });

    it('asks for minReplicas when that is more than one, and does not ask while enough replicas are already starting', async () => {
      const { pool, kube } = makePool(poolConfig({ minReplicas: 2 }));
      pool.apply({ exists: true, desired: 0, ready: 0 });
      const first = pool.admit();
      await flush();
      expect(kube.calls).toEqual(['scale ziggie/gpu-sdxl 2']);
      pool.apply({ exists: true, desired: 2, ready: 1 });
      (await first).release();

      const { pool: starting, kube: kube2 } = makePool(poolConfig({ minReplicas: 2 }));
      starting.apply({ exists: true, desired: 2, ready: 0 });
      const waiting = starting.admit();
      await flush();
      expect(kube2.calls).toEqual([]);
      starting.apply({ exists: true, desired: 2, ready: 2 });
      expect((await waiting).waited).toBe(true);
    });

    it('fails a call with POOL_SCALE_TIMEOUT when no replica gets ready in time, leaving nothing counted', async () => {
      jest.useFakeTimers({ doNotFake: ['setImmediate'] });
      const { pool } = makePool(poolConfig({ scaleUpTimeoutMs: 2_000 }));
      pool.apply({ exists: true, desired: 0, ready: 0 });
      const call = pool.admit();
      const outcome = call.then(
        () => 'admitted',
        (err: ZiggieError) => err,
      );
      await flush();
      expect(pool.queueDepth).toBe(1);
      jest.advanceTimersByTime(2_000);
      const err = (await outcome) as ZiggieError;
      expect(err).toBeInstanceOf(ZiggieError);
      expect(err.code).toBe('POOL_SCALE_TIMEOUT');
      expect(err.message).toContain('pool sdxl had no ready replica within 2000 ms');
      expect(err.extras).toEqual({ pool: 'sdxl', timeoutMs: 2_000 });
      expect([pool.queueDepth, pool.inFlight]).toEqual([0, 0]);
    });

    it('stops waiting when the call is cancelled, and takes it out of the queue', async () => {
      const { pool } = makePool(poolConfig());
      pool.apply({ exists: true, desired: 0, ready: 0 });
      const abort = new AbortController();
      const call = pool.admit(abort.signal);
      await flush();
      expect(pool.queueDepth).toBe(1);
      abort.abort(new Error('client went away'));
      await expect(call).rejects.toThrow('client went away');
      expect([pool.queueDepth, pool.inFlight]).toEqual([0, 0]);
      await expect(pool.admit(abort.signal)).rejects.toThrow('client went away');
      expect(pool.queueDepth).toBe(0);
    });

    it('fails every waiting call at once when the scale-up is refused, and tries again for the next call', async () => {
      const { pool, kube } = makePool(poolConfig());
      pool.apply({ exists: true, desired: 0, ready: 0 });
      kube.down = true;
      const calls = [pool.admit(), pool.admit()].map((c) => c.catch((err: ZiggieError) => err.code));
      expect(await Promise.all(calls)).toEqual(['POOL_BACKEND_UNAVAILABLE', 'POOL_BACKEND_UNAVAILABLE']);
      expect(pool.queueDepth).toBe(0);
      kube.down = false;
      const again = pool.admit();
      await flush();
      expect(kube.calls.filter((c) => c.startsWith('scale'))).toEqual(['scale ziggie/gpu-sdxl 1', 'scale ziggie/gpu-sdxl 1']);
      pool.apply({ exists: true, desired: 1, ready: 1 });
      expect((await again).waited).toBe(true);
    });

    it('does not scale a pool whose maxReplicas is 0, and refuses calls on a static pool without endpoints', async () => {
      const { pool, kube } = makePool(poolConfig());
      pool.apply({ exists: true, desired: 0, ready: 0 });
      await pool.scale({ minReplicas: 0, maxReplicas: 0 });
      await expect(pool.admit()).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
      expect(kube.calls.filter((c) => c.startsWith('scale'))).toEqual([]);

      const empty = makePool(parseGpuPools('[{"name":"gpu","mode":"static"}]')[0]!).pool;
      await expect(empty.admit()).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE', message: 'pool gpu has no endpoints' });
    });
  });

  describe('static pools', () => {
    it('report one ready replica per endpoint, admit calls, and cannot be scaled', async () => {
      const { pool, kube } = makePool(parseGpuPools('[{"name":"comfyui","mode":"static","endpoints":["http://127.0.0.1:8188","http://127.0.0.1:8189"]}]')[0]!);
      pool.start('ignored');
      expect(pool.view()).toEqual({
        name: 'comfyui',
        mode: 'static',
        namespace: '',
        target: '',
        replicas: 2,
        readyReplicas: 2,
        minReplicas: 2,
        maxReplicas: 2,
        queueDepth: 0,
        inFlight: 0,
        servers: [],
        lastScaledAt: '',
        lastScaleReason: '',
      });
      const a = await pool.admit();
      expect(pool.inFlight).toBe(1);
      a.release();
      await expect(pool.scale({ replicas: 1 })).rejects.toMatchObject({ code: 'POOL_NOT_SCALABLE' });
      expect(kube.calls).toEqual([]);
    });
  });

  describe('scaling through the API', () => {
    it('refuses requests that give nothing, negative or fractional counts, min above max, replicas outside the bounds', async () => {
      const { pool, kube } = makePool(poolConfig({ minReplicas: 1, maxReplicas: 4 }));
      pool.apply({ exists: true, desired: 1, ready: 1 });
      const refused = async (req: Parameters<InferencePool['scale']>[0]) => pool.scale(req).then(() => 'accepted', (err: ZiggieError) => `${err.code}: ${err.message}`);
      expect(await refused({})).toBe('POOL_SCALE_INVALID: give replicas, minReplicas or maxReplicas');
      expect(await refused({ replicas: -1 })).toBe('POOL_SCALE_INVALID: replicas must be an integer from 0 to 1000, got -1');
      expect(await refused({ maxReplicas: 1.5 })).toBe('POOL_SCALE_INVALID: maxReplicas must be an integer from 0 to 1000, got 1.5');
      expect(await refused({ minReplicas: 5 })).toBe('POOL_SCALE_INVALID: minReplicas 5 exceeds maxReplicas 4');
      expect(await refused({ replicas: 6 })).toBe('POOL_SCALE_INVALID: replicas 6 is outside [1, 4]');
      expect(await refused({ replicas: 0 })).toBe('POOL_SCALE_INVALID: replicas 0 is outside [1, 4]');
      expect(kube.calls).toEqual([]);
    });

    it('deployment mode: patches the scale subresource, keeps bounds in the shared record, and pulls replicas inside new bounds', async () => {
      const { pool, kube, records, scaled } = makePool(poolConfig({ minReplicas: 0, maxReplicas: 4 }));
      pool.apply({ exists: true, desired: 1, ready: 1 });
      pool.setServer('comfy', true);
      const view = await pool.scale({ replicas: 3 });
      expect(view).toMatchObject({ name: 'sdxl', mode: 'deployment', namespace: 'ziggie', target: 'gpu-sdxl', replicas: 3, readyReplicas: 1, minReplicas: 0, maxReplicas: 4, servers: ['comfy'], lastScaleReason: 'api' });
      expect(Date.parse(view.lastScaledAt)).not.toBeNaN();
      expect(kube.calls).toEqual(['scale ziggie/gpu-sdxl 3']);

      // Lowering the maximum below the replicas brings them down to it.
      expect(await pool.scale({ maxReplicas: 2 })).toMatchObject({ replicas: 2, minReplicas: 0, maxReplicas: 2 });
      expect(kube.calls).toEqual(['scale ziggie/gpu-sdxl 3', 'scale ziggie/gpu-sdxl 2']);
      expect(records.get('sdxl')).toMatchObject({ minReplicas: 0, maxReplicas: 2, lastScaleReason: 'api' });
      // Bounds within which the replicas already are change nothing in Kubernetes.
      expect(await pool.scale({ minReplicas: 1 })).toMatchObject({ replicas: 2, minReplicas: 1, maxReplicas: 2 });
      expect(kube.calls).toHaveLength(2);
      expect(scaled).toEqual(['api', 'api', 'api']);
    });

    it('deployment mode: reads the Deployment first when the watch has not yet, and answers POOL_BACKEND_UNAVAILABLE when the API is down', async () => {
      const { pool, kube } = makePool(poolConfig());
      kube.deployment = { exists: true, desired: 2, ready: 2 };
      expect(await pool.scale({ maxReplicas: 1 })).toMatchObject({ replicas: 1, maxReplicas: 1 });
      expect(kube.calls).toEqual(['read ziggie/gpu-sdxl', 'scale ziggie/gpu-sdxl 1']);
      kube.down = true;
      await expect(pool.scale({ replicas: 0 })).rejects.toMatchObject({ code: 'POOL_BACKEND_UNAVAILABLE' });
      expect(pool.view()).toMatchObject({ replicas: 1, maxReplicas: 1 });
    });

    it('keda mode: bounds go to the ScaledObject (read fresh first), replicas to the Deployment scale', async () => {
      const config = parseGpuPools(JSON.stringify([{ name: 'llm', mode: 'keda', deployment: 'gpu-llm', scaledObject: 'llm-so', minReplicas: 0, maxReplicas: 1 }]))[0]!;
      const kube = new FakeKube();
      kube.scaledObject = { minReplicas: 0, maxReplicas: 8 };
      const { pool, records } = makePool(config, kube);
      pool.start('ziggie');
      await flush();
      expect(pool.view()).toMatchObject({ mode: 'keda', namespace: 'ziggie', target: 'gpu-llm', minReplicas: 0, maxReplicas: 8 });

      kube.scaledObject = { minReplicas: 0, maxReplicas: 6 };
      await expect(pool.scale({ replicas: 7 })).rejects.toMatchObject({ code: 'POOL_SCALE_INVALID', message: 'replicas 7 is outside [0, 6]' });
      expect(await pool.scale({ minReplicas: 1, maxReplicas: 5, replicas: 2 })).toMatchObject({ replicas: 2, minReplicas: 1, maxReplicas: 5, lastScaleReason: 'api' });
      expect(kube.calls.filter((c) => !c.startsWith('read ziggie/gpu-llm') && !c.startsWith('watch'))).toEqual([
        'read scaledobject ziggie/llm-so',
        'read scaledobject ziggie/llm-so',
        'read scaledobject ziggie/llm-so',
        'patch scaledobject ziggie/llm-so {"minReplicas":1,"maxReplicas":5}',
        'scale ziggie/gpu-llm 2',
      ]);
      // KEDA's bounds live in the ScaledObject, not in the shared record.
      expect(records.get('llm')?.minReplicas).toBeUndefined();
      pool.stop();
    });
  });

  describe('following the Deployment', () => {
    it('lists, then watches from that version; a watch that ends is replaced after a backoff by a new list and watch', async () => {
      const { pool, kube } = makePool(poolConfig({ namespace: undefined }));
      kube.deployment = { exists: true, desired: 1, ready: 0 };
      pool.start('from-env');
      await flush();
      expect(pool.synced).toBe(true);
      expect(pool.namespace).toBe('from-env');
      expect(kube.calls).toEqual(['read from-env/gpu-sdxl', 'watch from-env/gpu-sdxl@1']);
      expect(pool.view()).toMatchObject({ replicas: 1, readyReplicas: 0 });

      kube.report({ ready: 1 });
      expect(pool.view()).toMatchObject({ replicas: 1, readyReplicas: 1 });

      // The API server drops the watch; meanwhile the Deployment changes.
      kube.open[0]!.onEnd();
      kube.open[0]!.stopped = true;
      kube.deployment = { exists: true, desired: 3, ready: 2 };
      const deadline = Date.now() + 2_000;
      while (kube.open.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(kube.calls.slice(2)).toEqual(['read from-env/gpu-sdxl', 'watch from-env/gpu-sdxl@2']);
      expect(pool.view()).toMatchObject({ replicas: 3, readyReplicas: 2 });

      // A deleted Deployment has no replicas.
      kube.open[0]!.onState({ exists: false, desired: 0, ready: 0 });
      expect(pool.view()).toMatchObject({ replicas: 0, readyReplicas: 0 });
      pool.stop();
      expect(kube.open).toEqual([]);
    });

    it('keeps retrying with backoff while the API is down, and releases waiting calls once it reports a ready replica', async () => {
      const { pool, kube } = makePool(poolConfig());
      kube.down = true;
      pool.start();
      const deadline = Date.now() + 2_000;
      while (kube.calls.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(pool.synced).toBe(false);
      expect(pool.lastError).toContain('Kubernetes API unreachable');
      expect(kube.calls.slice(0, 3)).toEqual(['read ziggie/gpu-sdxl', 'read ziggie/gpu-sdxl', 'read ziggie/gpu-sdxl']);

      kube.down = false;
      kube.deployment = { exists: true, desired: 1, ready: 0 };
      while (kube.open.length === 0 && Date.now() < deadline + 2_000) await new Promise((r) => setTimeout(r, 5));
      const call = pool.admit();
      await flush();
      expect(pool.queueDepth).toBe(1);
      // One replica is already asked for: nothing more is.
      expect(kube.calls.filter((c) => c.startsWith('scale'))).toEqual([]);
      kube.report({ ready: 1 });
      expect((await call).waited).toBe(true);
      pool.stop();
    });
  });
});
