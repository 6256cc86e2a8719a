import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pb, ZiggieError } from '@ziggie/contracts';
import { bootstrapService, callStream, callUnary, createGrpcClient, RunningService } from '@ziggie/platform';
import { definition } from '../src/service';
import { canConnect, freePort, spawnTracked, startNats, stopProcess, waitFor, type NatsServerHandle, type TrackedProcess } from '../../../test/support';
import { KubernetesApiDouble } from './fixtures/kubernetes-api-double';

const everything = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist/index.js');
const memoryServer = join(dirname(require.resolve('@modelcontextprotocol/server-memory/package.json')), 'dist/index.js');

const NS = 'ziggie';
const admin: pb.Principal = { subject: 'admin@test', roles: ['admin'], workspaces: ['*'] };
const agent: pb.Principal = { subject: 'agent@test', roles: ['l2l3'], workspaces: ['ziggie'] };

async function callTool(client: pb.McpGatewayClient, name: string, args: Record<string, unknown>, timeoutMs = 60_000): Promise<pb.ToolResult> {
  for await (const e of callStream(client.callTool.bind(client), { name, arguments: args, principal: agent, workspace: 'ziggie', correlationId: 'gpu-pools', timeoutMs: 20_000 }, { timeoutMs })) {
    if (e.event?.$case === 'result') return e.event.value;
  }
  throw new Error('no result');
}

/** One sample of a metric from the Prometheus text format, or undefined when it has none. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.lastIndexOf('}'));
    const have = Object.fromEntries([...labelText.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

/**
 * GPU pools against a double of the Kubernetes API server (KubernetesApiDouble: the real
 * request paths, content types, watch stream and Status errors, plus a simulated Deployment
 * controller), with a real MCP server (server-everything over streamable HTTP) as the pod of
 * the deployment-mode pool: the double starts and stops it as the pool's replicas go above and
 * down to zero.
 */
describe('GPU pools in mcp-gateway, against a double of the Kubernetes API server', () => {
  let dir: string;
  let nats: NatsServerHandle;
  let kube: KubernetesApiDouble;
  let podPort: number;
  let pod: TrackedProcess | undefined;
  /** While set, a new pod of gpu-sdxl waits for the test before it starts (calls stay queued meanwhile). */
  let podGate: { promise: Promise<void>; open: () => void } | undefined;
  const holdPods = (): void => {
    let open!: () => void;
    podGate = { promise: new Promise<void>((resolve) => (open = resolve)), open };
  };
  const releasePods = (): void => {
    podGate?.open();
    podGate = undefined;
  };
  let gw: RunningService;
  let grpc: pb.McpGatewayClient;
  let base: string;

  /** The "pod" of gpu-sdxl: server-everything, listening on the port its Service would route to. */
  const startPod = async (): Promise<void> => {
    if (pod && !pod.exited) return;
    pod = await spawnTracked(process.execPath, [everything, 'streamableHttp'], { env: { ...process.env, PORT: String(podPort) } });
    await waitFor(() => canConnect(podPort), { timeoutMs: 20_000, intervalMs: 50, what: 'server-everything to listen' });
  };
  const stopPod = async (): Promise<void> => {
    if (pod) await stopProcess(pod);
    pod = undefined;
  };

  const pool = (name: string, principal: pb.Principal = agent) => callUnary(grpc.getGpuPool.bind(grpc), { principal, name });
  const scale = (name: string, req: Omit<pb.ScaleGpuPoolRequest, 'principal' | 'name'>, principal: pb.Principal = admin) => callUnary(grpc.scaleGpuPool.bind(grpc), { principal, name, ...req });
  const metrics = async (): Promise<string> => (await fetch(`${base}/metrics`)).text();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ziggie-gpu-pools-'));
    nats = await startNats();
    podPort = await freePort();
    kube = new KubernetesApiDouble({
      readyDelayMs: 100,
      onReplicas: async (deployment, replicas) => {
        if (deployment !== 'gpu-sdxl') return;
        if (replicas === 0) return stopPod();
        await podGate?.promise;
        await startPod();
      },
    });
    await kube.start();
    kube.addDeployment(NS, 'gpu-sdxl', 1);
    kube.addDeployment(NS, 'gpu-llm', 0);
    kube.addScaledObject(NS, 'gpu-llm', { scaleTargetRef: { name: 'gpu-llm' }, minReplicaCount: 0, maxReplicaCount: 3, triggers: [{ type: 'prometheus', metadata: { query: 'sum(ziggie_gpu_pool_queue_depth{pool="llm"})', threshold: '1' } }] });
    kube.addDeployment(NS, 'gpu-stuck', 0, { neverReady: true });
    await startPod();

    const kubeconfig = join(dir, 'kubeconfig');
    kube.writeKubeconfig(kubeconfig, 'from-context');
    const serversFile = join(dir, 'servers.json');
    writeFileSync(
      serversFile,
      JSON.stringify({
        servers: [
          { name: 'sdxl-tools', transport: 'http', url: `http://127.0.0.1:${podPort}/mcp`, pool: 'sdxl' },
          { name: 'stuck-tools', transport: 'stdio', command: process.execPath, args: [memoryServer], env: { MEMORY_FILE_PATH: join(dir, 'memory.jsonl') }, pool: 'stuck' },
        ],
      }),
    );
    const pools = [
      { name: 'sdxl', mode: 'deployment', deployment: 'gpu-sdxl', minReplicas: 0, maxReplicas: 4, endpoint: `http://127.0.0.1:${podPort}`, scaleUpTimeoutMs: 30_000 },
      // Its bounds come from the ScaledObject once read (0..3), not from here.
      { name: 'llm', mode: 'keda', namespace: NS, deployment: 'gpu-llm', scaledObject: 'gpu-llm', minReplicas: 0, maxReplicas: 2 },
      { name: 'stuck', mode: 'deployment', deployment: 'gpu-stuck', maxReplicas: 1, scaleUpTimeoutMs: 1_500 },
      { name: 'comfyui', mode: 'static', endpoints: ['http://127.0.0.1:8188'] },
      { name: 'gpu', mode: 'static', endpoints: [] },
    ];
    gw = await bootstrapService(definition, {
      ZIGGIE_JWT_SECRET: 'gpu-pools-secret-0123456789abcdef',
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      LOG_LEVEL: 'warn',
      NATS_URL: nats.url,
      DATA_DIR: dir,
      MCP_SERVERS_FILE: serversFile,
      GPU_POOLS: JSON.stringify(pools),
      POD_NAMESPACE: NS,
      KUBECONFIG: kubeconfig,
      GPU_POOL_KUBE_TIMEOUT_MS: '2000',
    });
    grpc = createGrpcClient(pb.McpGatewayClient, `127.0.0.1:${gw.grpcPort}`);
    base = `http://127.0.0.1:${gw.httpPort}`;
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, { timeoutMs: 30_000, what: 'every upstream ready' });
    await waitFor(async () => (await pool('sdxl')).readyReplicas === 1 && (await pool('llm')).maxReplicas === 3, { what: 'the pools to follow their Deployments' });
  }, 90_000);

  afterAll(async () => {
    releasePods();
    grpc?.close();
    await gw?.stop();
    await stopPod();
    await kube?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('lists every pool as Kubernetes reports it (deployment, keda, static), with the servers that run on it', async () => {
    const { items } = await callUnary(grpc.listGpuPools.bind(grpc), { principal: agent });
    expect(items.map((p) => p.name)).toEqual(['comfyui', 'gpu', 'llm', 'sdxl', 'stuck']);
    const byName = Object.fromEntries(items.map((p) => [p.name, p]));
    expect(byName.sdxl).toEqual({
      name: 'sdxl',
      mode: 'deployment',
      namespace: NS,
      target: 'gpu-sdxl',
      replicas: 1,
      readyReplicas: 1,
      minReplicas: 0,
      maxReplicas: 4,
      queueDepth: 0,
      inFlight: 0,
      servers: ['sdxl-tools'],
      lastScaledAt: '',
      lastScaleReason: '',
    });
    expect(byName.llm).toMatchObject({ mode: 'keda', namespace: NS, target: 'gpu-llm', replicas: 0, readyReplicas: 0, minReplicas: 0, maxReplicas: 3, servers: [] });
    expect(byName.stuck).toMatchObject({ mode: 'deployment', namespace: NS, servers: ['stuck-tools'] });
    expect(byName.comfyui).toMatchObject({ mode: 'static', namespace: '', target: '', replicas: 1, readyReplicas: 1, minReplicas: 1, maxReplicas: 1 });
    expect(byName.gpu).toMatchObject({ mode: 'static', replicas: 0, readyReplicas: 0 });

    // The watch asked for the one Deployment, from the version of the list before it.
    const watch = kube.requests.find((r) => r.query.watch === 'true' && r.query.fieldSelector === 'metadata.name=gpu-sdxl');
    expect(watch).toMatchObject({ path: `/apis/apps/v1/namespaces/${NS}/deployments`, status: 200 });
    expect(watch?.query.resourceVersion).toMatch(/^\d+$/);

    await expect(pool('nope')).rejects.toMatchObject({ code: 'POOL_NOT_FOUND' });
    await expect(callUnary(grpc.listGpuPools.bind(grpc), { principal: undefined })).rejects.toMatchObject({ code: 'AUTH_FORBIDDEN' });
  });

  it('scales a deployment-mode pool through the scale subresource (merge patch), checking permission and bounds', async () => {
    await expect(scale('sdxl', { replicas: 2 }, agent)).rejects.toMatchObject({ code: 'AUTH_FORBIDDEN' });
    await expect(scale('sdxl', { replicas: 9 })).rejects.toMatchObject({ code: 'POOL_SCALE_INVALID', message: 'replicas 9 is outside [0, 4]' });
    await expect(scale('sdxl', { minReplicas: 3, maxReplicas: 2 })).rejects.toMatchObject({ code: 'POOL_SCALE_INVALID' });
    await expect(scale('sdxl', {})).rejects.toMatchObject({ code: 'POOL_SCALE_INVALID' });
    await expect(scale('nope', { replicas: 1 })).rejects.toMatchObject({ code: 'POOL_NOT_FOUND' });

    const mark = kube.requests.length;
    const view = await scale('sdxl', { replicas: 2 });
    expect(view).toMatchObject({ name: 'sdxl', replicas: 2, readyReplicas: 1, lastScaleReason: 'api' });
    expect(kube.requestsTo('PATCH', '/deployments/gpu-sdxl/scale', mark)).toEqual([
      expect.objectContaining({ contentType: 'application/merge-patch+json', body: { spec: { replicas: 2 } }, status: 200 }),
    ]);
    // The simulated controller reports the new pod ready; the watch brings it.
    await waitFor(async () => (await pool('sdxl')).readyReplicas === 2, { what: 'two ready replicas' });

    // A lower maximum pulls the replicas down to it; the bounds are kept (shared by every replica of the gateway).
    expect(await scale('sdxl', { maxReplicas: 1 })).toMatchObject({ replicas: 1, minReplicas: 0, maxReplicas: 1 });
    expect(kube.deployment(NS, 'gpu-sdxl')?.replicas).toBe(1);
    expect(await scale('sdxl', { maxReplicas: 4 })).toMatchObject({ replicas: 1, maxReplicas: 4 });
  });

  it('keda mode: bounds go to the ScaledObject (merge patch), an explicit replica count to the Deployment scale', async () => {
    const mark = kube.requests.length;
    expect(await scale('llm', { minReplicas: 1, maxReplicas: 5 })).toMatchObject({ mode: 'keda', minReplicas: 1, maxReplicas: 5 });
    expect(kube.requestsTo('PATCH', `/scaledobjects/gpu-llm`, mark)).toEqual([
      expect.objectContaining({ path: `/apis/keda.sh/v1alpha1/namespaces/${NS}/scaledobjects/gpu-llm`, contentType: 'application/merge-patch+json', body: { spec: { minReplicaCount: 1, maxReplicaCount: 5 } }, status: 200 }),
    ]);
    expect(kube.scaledObjectSpec(NS, 'gpu-llm')).toMatchObject({ minReplicaCount: 1, maxReplicaCount: 5, triggers: [expect.objectContaining({ type: 'prometheus' })] });
    // KEDA brings the Deployment up to its new minimum; the watch shows it.
    await waitFor(async () => (await pool('llm')).readyReplicas === 1, { what: 'KEDA to honour the new minimum' });

    await expect(scale('llm', { replicas: 6 })).rejects.toMatchObject({ code: 'POOL_SCALE_INVALID', message: 'replicas 6 is outside [1, 5]' });
    expect(await scale('llm', { replicas: 3 })).toMatchObject({ replicas: 3 });
    expect(kube.requestsTo('PATCH', '/deployments/gpu-llm/scale', mark)).toEqual([expect.objectContaining({ body: { spec: { replicas: 3 } } })]);
    await waitFor(async () => (await pool('llm')).readyReplicas === 3, { what: 'three ready replicas' });
  });

  it('refuses to scale a static pool', async () => {
    await expect(scale('comfyui', { replicas: 2 })).rejects.toMatchObject({ code: 'POOL_NOT_SCALABLE' });
    await expect(scale('gpu', { maxReplicas: 2 })).rejects.toMatchObject({ code: 'POOL_NOT_SCALABLE' });
  });

  it('scales a pool up from zero for the calls that need it: one scale-up for all of them, served by the real server once a replica is ready', async () => {
    // Down to zero: the pod goes, and with it the upstream; its tools stay listed.
    await scale('sdxl', { replicas: 0 });
    await waitFor(async () => (await pool('sdxl')).readyReplicas === 0 && pod === undefined, { what: 'the pool at zero' });
    const tools = await callUnary(grpc.listTools.bind(grpc), { principal: agent, page: { limit: 1000, cursor: '' }, server: 'sdxl-tools' });
    expect(tools.items.map((t) => t.name)).toContain('sdxl-tools.echo');

    const mark = kube.requests.length;
    holdPods();
    const calls = Array.from({ length: 4 }, (_, i) => callTool(grpc, 'sdxl-tools.echo', { message: `cold start ${i}` }));
    // Until the pod is up, the calls wait in the pool's queue.
    await waitFor(async () => (await pool('sdxl')).queueDepth === 4 && kube.deployment(NS, 'gpu-sdxl')?.replicas === 1, { what: 'four calls in the queue, one replica asked for' });
    expect(await pool('sdxl')).toMatchObject({ replicas: 1, readyReplicas: 0, inFlight: 0, lastScaleReason: 'demand' });
    releasePods();
    const results = await Promise.all(calls);
    for (const [i, r] of results.entries()) {
      expect(r.isError).toBe(false);
      expect(JSON.stringify(r.result)).toContain(`cold start ${i}`);
    }
    expect(kube.requestsTo('PATCH', '/deployments/gpu-sdxl/scale', mark)).toEqual([
      expect.objectContaining({ contentType: 'application/merge-patch+json', body: { spec: { replicas: 1 } }, status: 200 }),
    ]);
    expect(await pool('sdxl')).toMatchObject({ replicas: 1, readyReplicas: 1, queueDepth: 0, inFlight: 0, lastScaleReason: 'demand' });
    const text = await metrics();
    expect(sample(text, 'ziggie_gpu_pool_scale_events_total', { pool: 'sdxl', reason: 'demand' })).toBe(1);
    expect(sample(text, 'ziggie_mcp_calls_total', { server: 'sdxl-tools', tool: 'sdxl-tools.echo', outcome: 'ok' })).toBe(4);
  }, 60_000);

  it('counts calls waiting for a replica in the queue-depth gauge while they wait', async () => {
    await scale('sdxl', { replicas: 0 });
    await waitFor(async () => (await pool('sdxl')).readyReplicas === 0 && pod === undefined, { what: 'the pool at zero' });
    holdPods();
    const calls = Array.from({ length: 3 }, (_, i) => callTool(grpc, 'sdxl-tools.echo', { message: `queued ${i}` }));
    await waitFor(async () => sample(await metrics(), 'ziggie_gpu_pool_queue_depth', { pool: 'sdxl' }) === 3, { what: 'three calls in the queue' });
    expect(sample(await metrics(), 'ziggie_gpu_pool_in_flight', { pool: 'sdxl' })).toBe(0);
    releasePods();
    await Promise.all(calls);
    const text = await metrics();
    expect(sample(text, 'ziggie_gpu_pool_queue_depth', { pool: 'sdxl' })).toBe(0);
    expect(sample(text, 'ziggie_gpu_pool_in_flight', { pool: 'sdxl' })).toBe(0);
    expect(sample(text, 'ziggie_gpu_pool_scale_events_total', { pool: 'sdxl', reason: 'demand' })).toBe(2);
  }, 60_000);

  it('fails a call with POOL_SCALE_TIMEOUT when the pool never gets a ready replica, leaving nothing counted', async () => {
    const mark = kube.requests.length;
    const started = Date.now();
    const err = (await callTool(grpc, 'stuck-tools.read_graph', {}).catch((e: unknown) => e)) as ZiggieError;
    expect(err).toBeInstanceOf(ZiggieError);
    expect(err.code).toBe('POOL_SCALE_TIMEOUT');
    expect(err.message).toContain('pool stuck had no ready replica within 1500 ms');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
    expect(kube.requestsTo('PATCH', '/deployments/gpu-stuck/scale', mark)).toHaveLength(1);
    expect(await pool('stuck')).toMatchObject({ replicas: 1, readyReplicas: 0, queueDepth: 0, inFlight: 0 });
    expect(sample(await metrics(), 'ziggie_mcp_calls_total', { server: 'stuck-tools', outcome: 'pool_scale_timeout' })).toBe(1);
  });

  it('follows the Deployment again after the API server drops the watch', async () => {
    const before = kube.watchesOpened.get(`${NS}/gpu-sdxl`) ?? 0;
    expect(kube.dropWatches()).toBeGreaterThanOrEqual(3);
    // Someone else scales it while no watch is open.
    kube.scaleExternally(NS, 'gpu-sdxl', 3);
    await waitFor(async () => (await pool('sdxl')).readyReplicas === 3, { what: 'the change made while the watch was down' });
    expect(kube.watchesOpened.get(`${NS}/gpu-sdxl`)).toBeGreaterThan(before);
    // And the new watch carries later changes.
    kube.scaleExternally(NS, 'gpu-sdxl', 2);
    await waitFor(async () => (await pool('sdxl')).replicas === 2, { what: 'a change on the new watch' });
  });

  it('exports replicas, queue depth, calls in flight and scale events per pool', async () => {
    const text = await metrics();
    const replicas = (pool: string, state: string) => sample(text, 'ziggie_gpu_pool_replicas', { pool, state });
    expect([replicas('sdxl', 'desired'), replicas('sdxl', 'min'), replicas('sdxl', 'max')]).toEqual([2, 0, 4]);
    expect([replicas('llm', 'desired'), replicas('llm', 'ready'), replicas('llm', 'min'), replicas('llm', 'max')]).toEqual([3, 3, 1, 5]);
    expect([replicas('comfyui', 'ready'), replicas('gpu', 'desired'), replicas('gpu', 'max')]).toEqual([1, 0, 0]);
    for (const p of ['sdxl', 'llm', 'stuck', 'comfyui', 'gpu']) {
      expect(sample(text, 'ziggie_gpu_pool_queue_depth', { pool: p })).toBe(0);
      expect(sample(text, 'ziggie_gpu_pool_in_flight', { pool: p })).toBe(0);
    }
    expect(sample(text, 'ziggie_gpu_pool_scale_events_total', { pool: 'llm', reason: 'api' })).toBe(2);
    expect(sample(text, 'ziggie_gpu_pool_scale_events_total', { pool: 'gpu', reason: 'demand' })).toBe(0);
    expect(sample(text, 'ziggie_gpu_pool_scale_events_total', { pool: 'stuck', reason: 'demand' })).toBe(1);
  });

  it('answers POOL_BACKEND_UNAVAILABLE when the Kubernetes API is down, still serving the last known state', async () => {
    await kube.stop();
    await expect(scale('sdxl', { replicas: 1 })).rejects.toMatchObject({ code: 'POOL_BACKEND_UNAVAILABLE', message: expect.stringContaining('Kubernetes API unreachable') });
    await expect(scale('llm', { maxReplicas: 4 })).rejects.toMatchObject({ code: 'POOL_BACKEND_UNAVAILABLE' });
    expect(await pool('sdxl')).toMatchObject({ replicas: 2, readyReplicas: 2 });
  });
});

/**
 * The double answers @kubernetes/client-node as the API server does, beyond the requests the
 * pools make: PUT with an optimistic-concurrency conflict, JSON patch, strategic merge patch,
 * refused media types, validation errors and missing objects as Status objects.
 */
// An ES module: loaded with import() (see src/pools/kubernetes.ts).
const importClientNode = () => import('@kubernetes/client-node');
type ClientNode = Awaited<ReturnType<typeof importClientNode>>;

describe('KubernetesApiDouble, a double of the Kubernetes API server, seen through @kubernetes/client-node', () => {
  let kube: KubernetesApiDouble;
  let dir: string;
  let apps: InstanceType<ClientNode['AppsV1Api']>;
  let custom: InstanceType<ClientNode['CustomObjectsApi']>;
  let k8s: ClientNode;
  const keda = { group: 'keda.sh', version: 'v1alpha1', namespace: NS, plural: 'scaledobjects' };
  const failure = (p: Promise<unknown>) => p.then(() => undefined, (err: { code?: number; body?: string }) => ({ code: err.code, body: JSON.parse(err.body ?? '{}') as Record<string, unknown> }));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ziggie-kube-double-'));
    kube = new KubernetesApiDouble({ readyDelayMs: 10 });
    await kube.start();
    kube.addDeployment(NS, 'web', 1);
    kube.addScaledObject(NS, 'web', { scaleTargetRef: { name: 'web' }, minReplicaCount: 0, maxReplicaCount: 4 });
    kube.writeKubeconfig(join(dir, 'kubeconfig'));
    k8s = await importClientNode();
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(join(dir, 'kubeconfig'));
    apps = kc.makeApiClient(k8s.AppsV1Api);
    custom = kc.makeApiClient(k8s.CustomObjectsApi);
  });

  afterAll(async () => {
    await kube.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves Deployments and their scale (GET, PUT with resourceVersion, every patch type), with Status errors', async () => {
    const d = await apps.readNamespacedDeployment({ namespace: NS, name: 'web' });
    expect([d.kind, d.spec?.replicas, d.status?.readyReplicas]).toEqual(['Deployment', 1, 1]);
    const scale = await apps.readNamespacedDeploymentScale({ namespace: NS, name: 'web' });
    expect([scale.kind, scale.apiVersion, scale.spec?.replicas]).toEqual(['Scale', 'autoscaling/v1', 1]);

    const put = await apps.replaceNamespacedDeploymentScale({ namespace: NS, name: 'web', body: { ...scale, spec: { replicas: 2 } } });
    expect(put.spec?.replicas).toBe(2);
    // The same (now stale) resourceVersion again: someone else changed it meanwhile.
    expect(await failure(apps.replaceNamespacedDeploymentScale({ namespace: NS, name: 'web', body: { ...scale, spec: { replicas: 3 } } }))).toMatchObject({ code: 409, body: { kind: 'Status', reason: 'Conflict', code: 409 } });

    const jsonPatch = await apps.patchNamespacedDeploymentScale({ namespace: NS, name: 'web', body: [{ op: 'replace', path: '/spec/replicas', value: 3 }] });
    expect(jsonPatch.spec?.replicas).toBe(3);
    const strategic = await apps.patchNamespacedDeploymentScale({ namespace: NS, name: 'web', body: { spec: { replicas: 1 } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch));
    expect(strategic.spec?.replicas).toBe(1);
    expect(kube.requestsTo('PATCH', '/deployments/web/scale').map((r) => r.contentType)).toEqual(['application/json-patch+json', 'application/strategic-merge-patch+json']);
    expect(await failure(apps.patchNamespacedDeploymentScale({ namespace: NS, name: 'web', body: { spec: { replicas: -2 } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)))).toMatchObject({
      code: 422,
      body: { reason: 'Invalid', message: expect.stringContaining('spec.replicas') },
    });
    expect(await failure(apps.patchNamespacedDeploymentScale({ namespace: NS, name: 'web', body: { spec: { replicas: 1 } } }, k8s.setHeaderOptions('Content-Type', 'application/json')))).toMatchObject({ code: 415 });
    expect(await failure(apps.readNamespacedDeploymentScale({ namespace: NS, name: 'gone' }))).toMatchObject({
      code: 404,
      body: { kind: 'Status', status: 'Failure', reason: 'NotFound', message: 'deployments.apps "gone" not found', details: { name: 'gone', kind: 'deployments' } },
    });
    await waitFor(() => kube.deployment(NS, 'web')?.readyReplicas === 1, { what: 'the simulated controller' });
  });

  it('serves KEDA ScaledObjects: merge and JSON patch, no strategic merge patch for a custom resource, bounds validated', async () => {
    const so = (await custom.getNamespacedCustomObject({ ...keda, name: 'web' })) as { spec: Record<string, unknown> };
    expect(so.spec).toMatchObject({ minReplicaCount: 0, maxReplicaCount: 4 });
    const merged = (await custom.patchNamespacedCustomObject({ ...keda, name: 'web', body: { spec: { maxReplicaCount: 6 } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch))) as { spec: Record<string, unknown> };
    expect(merged.spec).toMatchObject({ minReplicaCount: 0, maxReplicaCount: 6, scaleTargetRef: { name: 'web' } });
    const patched = (await custom.patchNamespacedCustomObject({ ...keda, name: 'web', body: [{ op: 'replace', path: '/spec/minReplicaCount', value: 2 }] })) as { spec: Record<string, unknown> };
    expect(patched.spec.minReplicaCount).toBe(2);
    // KEDA keeps the Deployment within the new bounds.
    expect(kube.deployment(NS, 'web')?.replicas).toBe(2);
    expect(await failure(custom.patchNamespacedCustomObject({ ...keda, name: 'web', body: { spec: {} } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch)))).toMatchObject({ code: 415 });
    expect(await failure(custom.patchNamespacedCustomObject({ ...keda, name: 'web', body: { spec: { minReplicaCount: 9 } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)))).toMatchObject({ code: 422 });
    expect(await failure(custom.getNamespacedCustomObject({ ...keda, name: 'gone' }))).toMatchObject({ code: 404, body: { reason: 'NotFound' } });
  });

  it('refuses a request without the kubeconfig token with 401, and a watch from a version it no longer has with a 410 ERROR event', async () => {
    const anonymous = await fetch(`${kube.url}/apis/apps/v1/namespaces/${NS}/deployments`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ kind: 'Status', reason: 'Unauthorized', code: 401 });
    const gone = await fetch(`${kube.url}/apis/apps/v1/namespaces/${NS}/deployments?watch=true&resourceVersion=1`, { headers: { authorization: `Bearer ${kube.token}` } });
    expect(gone.status).toBe(200);
    expect(JSON.parse((await gone.text()).trim())).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
  });
});
