import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootstrapService, RunningService, signDevToken } from '@ziggie/platform';
import { definition as gatewayDefinition } from '../src/service';
import { AuditService } from '../src/audit/audit.service';
import { definition as mcpGatewayDefinition } from '../../mcp-gateway/src/service';
import { KubernetesApiDouble } from '../../mcp-gateway/test/fixtures/kubernetes-api-double';
import { definition as workspaceCoordDefinition } from '../../workspace-coord/src/service';
import { startNats, startPostgres, waitFor, type NatsServerHandle, type PostgresHandle } from '../../../test/support';

const SECRET = 'gateway-pools-secret-0123456789abcdef';
const AUTH = { secret: SECRET, issuer: 'ziggie-local', audience: 'ziggie-api' };
const token = (subject: string, roles: string[]) => signDevToken({ subject, roles, workspaces: ['*'], ttlSeconds: 600 }, AUTH);
const ADMIN = token('ada', ['admin']);
const L1 = token('lin', ['l1']);

interface Reply {
  status: number;
  type: string;
  body: any;
}

/**
 * /v1/pools through the real gateway, against a real workspace-coord (the pools' capacity and
 * leases) and a real mcp-gateway (the GPU inference pools; its Kubernetes is the double of the
 * API server from mcp-gateway's tests).
 */
describe('gateway /v1/pools: workspace-coord pools merged with mcp-gateway GPU pools', () => {
  let dir: string;
  let nats: NatsServerHandle;
  let coordDb: PostgresHandle;
  let gatewayDb: PostgresHandle;
  let kube: KubernetesApiDouble;
  let coord: RunningService;
  let mcp: RunningService | undefined;
  let gateway: RunningService;
  let base: string;

  const request = async (method: string, path: string, opts: { token?: string; json?: unknown } = {}): Promise<Reply> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${opts.token ?? ADMIN}`, ...(opts.json !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: opts.json !== undefined ? JSON.stringify(opts.json) : undefined,
    });
    const text = await res.text();
    return { status: res.status, type: res.headers.get('content-type') ?? '', body: text ? JSON.parse(text) : undefined };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ziggie-gateway-pools-'));
    [nats, coordDb, gatewayDb] = await Promise.all([startNats(), startPostgres(), startPostgres()]);
    kube = new KubernetesApiDouble({ readyDelayMs: 20 });
    await kube.start();
    kube.addDeployment('ziggie', 'gpu-sdxl', 1);
    const kubeconfig = join(dir, 'kubeconfig');
    kube.writeKubeconfig(kubeconfig, 'ziggie');

    const common = { ZIGGIE_JWT_SECRET: SECRET, HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', LOG_LEVEL: 'silent', NATS_URL: nats.url };
    const dataDir = (name: string) => {
      const d = join(dir, name);
      mkdirSync(d);
      return d;
    };
    coord = await bootstrapService(workspaceCoordDefinition, { ...common, DATA_DIR: dataDir('coord'), DATABASE_URL: coordDb.url, POOLS: 'gpu=4,comfyui=1' });
    mcp = await bootstrapService(mcpGatewayDefinition, {
      ...common,
      DATA_DIR: dataDir('mcp'),
      KUBECONFIG: kubeconfig,
      GPU_POOLS: JSON.stringify([
        { name: 'gpu', mode: 'static', endpoints: ['http://127.0.0.1:9001', 'http://127.0.0.1:9002'] },
        { name: 'sdxl', mode: 'deployment', deployment: 'gpu-sdxl', minReplicas: 0, maxReplicas: 4 },
      ]),
    });
    gateway = await bootstrapService(gatewayDefinition, {
      ...common,
      DATA_DIR: dataDir('gateway'),
      DATABASE_URL: gatewayDb.url,
      WORKSPACE_COORD_GRPC_ADDR: `127.0.0.1:${coord.grpcPort}`,
      MCP_GATEWAY_GRPC_ADDR: `127.0.0.1:${mcp.grpcPort}`,
      RATE_LIMIT_ADMIN_PER_MIN: '0',
    });
    base = `http://127.0.0.1:${gateway.httpPort}`;
    await waitFor(async () => (await request('GET', '/v1/pools/sdxl')).body?.inference?.readyReplicas === 1, { timeoutMs: 20_000, what: 'mcp-gateway to follow gpu-sdxl' });
  }, 120_000);

  afterAll(async () => {
    await gateway?.stop();
    await mcp?.stop();
    await coord?.stop();
    await kube?.stop();
    await nats?.stop();
    await Promise.all([coordDb?.stop(), gatewayDb?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('lists every pool once: capacity from workspace-coord, `inference` from mcp-gateway (null when it has none), GPU-only pools with null capacity', async () => {
    const res = await request('GET', '/v1/pools', { token: L1 });
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(3);
    const [comfyui, gpu, sdxl] = res.body.items;
    expect(comfyui).toMatchObject({ name: 'comfyui', kind: 'comfyui', capacity: 1, reservedP0: 0, inUse: 0, leases: 0, inference: null });
    expect(gpu).toMatchObject({
      name: 'gpu',
      kind: 'gpu',
      capacity: 4,
      inference: { mode: 'static', namespace: null, target: null, replicas: 2, readyReplicas: 2, minReplicas: 2, maxReplicas: 2, queueDepth: 0, inFlight: 0, servers: [], lastScaledAt: null, lastScaleReason: null },
    });
    expect(sdxl).toEqual({
      name: 'sdxl',
      kind: null,
      capacity: null,
      reservedP0: null,
      inUse: null,
      leases: null,
      description: null,
      updatedAt: null,
      inference: { mode: 'deployment', namespace: 'ziggie', target: 'gpu-sdxl', replicas: 1, readyReplicas: 1, minReplicas: 0, maxReplicas: 4, queueDepth: 0, inFlight: 0, servers: [], lastScaledAt: null, lastScaleReason: null },
    });
  });

  it('answers one pool the same way, and 404 POOL_NOT_FOUND when neither service knows it', async () => {
    expect((await request('GET', '/v1/pools/gpu')).body).toMatchObject({ name: 'gpu', capacity: 4, inference: { mode: 'static', replicas: 2 } });
    expect((await request('GET', '/v1/pools/comfyui')).body).toMatchObject({ name: 'comfyui', capacity: 1, inference: null });
    expect((await request('GET', '/v1/pools/sdxl')).body).toMatchObject({ name: 'sdxl', capacity: null, inference: { mode: 'deployment', target: 'gpu-sdxl' } });
    const missing = await request('GET', '/v1/pools/nope');
    expect(missing.status).toBe(404);
    expect(missing.type).toContain('application/problem+json');
    expect(missing.body).toMatchObject({ code: 'POOL_NOT_FOUND', status: 404 });
  });

  it('scales a GPU pool with config:change, validating the body, and answers the pool as mcp-gateway now sees it', async () => {
    const forbidden = await request('POST', '/v1/pools/sdxl/scale', { token: L1, json: { replicas: 2 } });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body).toMatchObject({ code: 'AUTH_FORBIDDEN' });

    for (const json of [{}, { replicas: -1 }, { replicas: 1.5 }, { replicas: '2' }, { replicas: 1, extra: true }, { maxReplicas: 1001 }]) {
      const bad = await request('POST', '/v1/pools/sdxl/scale', { json });
      expect([JSON.stringify(json), bad.status, bad.body?.code]).toEqual([JSON.stringify(json), 400, 'VALIDATION_FAILED']);
    }
    // Against the pool's bounds: only mcp-gateway knows them.
    const outside = await request('POST', '/v1/pools/sdxl/scale', { json: { replicas: 9 } });
    expect([outside.status, outside.body.code, outside.body.detail]).toEqual([400, 'POOL_SCALE_INVALID', 'replicas 9 is outside [0, 4]']);
    const crossed = await request('POST', '/v1/pools/sdxl/scale', { json: { minReplicas: 3, maxReplicas: 2 } });
    expect([crossed.status, crossed.body.code]).toEqual([400, 'POOL_SCALE_INVALID']);

    expect(kube.deployment('ziggie', 'gpu-sdxl')?.replicas).toBe(1);
    const scaled = await request('POST', '/v1/pools/sdxl/scale', { json: { replicas: 2, maxReplicas: 3 } });
    expect(scaled.status).toBe(200);
    expect(scaled.body).toMatchObject({ name: 'sdxl', mode: 'deployment', target: 'gpu-sdxl', replicas: 2, minReplicas: 0, maxReplicas: 3, lastScaleReason: 'api' });
    expect(Date.parse(scaled.body.lastScaledAt)).not.toBeNaN();
    expect(kube.deployment('ziggie', 'gpu-sdxl')?.replicas).toBe(2);
    await waitFor(async () => (await request('GET', '/v1/pools/sdxl')).body.inference.readyReplicas === 2, { what: 'two ready replicas through the gateway' });

    const fixed = await request('POST', '/v1/pools/gpu/scale', { json: { replicas: 3 } });
    expect([fixed.status, fixed.body.code]).toEqual([409, 'POOL_NOT_SCALABLE']);
    const capacityOnly = await request('POST', '/v1/pools/comfyui/scale', { json: { replicas: 1 } });
    expect([capacityOnly.status, capacityOnly.body.code]).toEqual([404, 'POOL_NOT_FOUND']);
  });

  it('audits every scale call like the other mutating routes: who, outcome, status and code', async () => {
    await gateway.app.get(AuditService).flush();
    const res = await request('GET', `/v1/audit?action=${encodeURIComponent('POST /v1/pools/:name/scale')}&limit=100`);
    expect(res.status).toBe(200);
    const records = res.body.items as Array<{ actor: string; outcome: string; status: number; errorCode: string | null; resource: string; resourceId: string }>;
    const summary = records.map((r) => `${r.actor} ${r.resource} ${r.status} ${r.outcome} ${r.errorCode ?? '-'}`);
    expect(summary).toEqual(
      expect.arrayContaining([
        'lin /v1/pools/sdxl/scale 403 denied AUTH_FORBIDDEN',
        'ada /v1/pools/sdxl/scale 400 failure VALIDATION_FAILED',
        'ada /v1/pools/sdxl/scale 400 failure POOL_SCALE_INVALID',
        'ada /v1/pools/sdxl/scale 200 success -',
        'ada /v1/pools/gpu/scale 409 failure POOL_NOT_SCALABLE',
        'ada /v1/pools/comfyui/scale 404 failure POOL_NOT_FOUND',
      ]),
    );
    expect(records.find((r) => r.status === 200)?.resourceId).toBe('sdxl');
  });

  it('still answers from workspace-coord, without `inference`, when mcp-gateway is down', async () => {
    await mcp!.stop();
    mcp = undefined;
    const list = await request('GET', '/v1/pools');
    expect(list.status).toBe(200);
    expect(list.body.items.map((p: { name: string }) => p.name)).toEqual(['comfyui', 'gpu']);
    for (const p of list.body.items) expect(p).not.toHaveProperty('inference');
    const gpu = await request('GET', '/v1/pools/gpu');
    expect(gpu.status).toBe(200);
    expect(gpu.body).toMatchObject({ name: 'gpu', capacity: 4 });
    expect(gpu.body).not.toHaveProperty('inference');
    // Only mcp-gateway knew it.
    expect((await request('GET', '/v1/pools/sdxl')).status).toBe(404);
    const scale = await request('POST', '/v1/pools/sdxl/scale', { json: { replicas: 1 } });
    expect(scale.status).toBe(503);
    expect(scale.type).toContain('application/problem+json');
  }, 30_000);
});
