import 'reflect-metadata';
import { Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { INestApplication, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { type OverviewView, pb } from '@ziggie/contracts';
import { AuthModule, ConfigModule, loadConfig, PeerClients, ProblemFilter, StrictInputModule, signDevToken, createHttpApplication } from '@ziggie/platform';
import { peersOver } from '../test/peer-doubles';
import { OverviewController } from './overview.controller';

const SECRET = 'overview-controller-test-secret-0123456789';
const config = loadConfig('gateway', undefined, { ZIGGIE_JWT_SECRET: SECRET, HTTP_PORT: '0', LOG_LEVEL: 'silent' });
const signer = { secret: SECRET, issuer: config.auth.issuer, audience: config.auth.audience };
const tokenFor = (roles: string[], workspaces: string[]): string => signDevToken({ subject: `user-${roles.join('+') || 'none'}`, roles, workspaces, ttlSeconds: 300 }, signer);

const requests: Array<{ method: string; request: unknown }> = [];
const failing = new Set<string>();

/** A unary method of a peer double: records the request, answers (or fails when told to). */
function unary<Req, Res>(method: string, answer: (req: Req) => Res) {
  return (request: Req, _metadata: Metadata, _options: unknown, callback: (err: ServiceError | null, res?: Res) => void) => {
    requests.push({ method, request });
    const err = Object.assign(new Error('14 UNAVAILABLE: connection refused'), { code: GrpcStatus.UNAVAILABLE, details: 'connection refused', metadata: new Metadata() });
    setImmediate(() => (failing.has(method) ? callback(err) : callback(null, answer(request))));
    return {};
  };
}

const stats = (workspace: string, succeeded: number, failed: number, cancelled: number): pb.WorkspaceTaskStats => ({
  workspace,
  queued: 0,
  running: 0,
  succeeded,
  failed,
  cancelled,
  stepsWaiting: 0,
  lastFailure: '',
  lastFailureAt: '',
});
const window = (minutes: number, calls: number, p95Ms?: number): pb.ToolStatsWindow => ({ minutes, calls, errors: 1, callsPerMinute: calls / minutes, errorsPerMinute: 1 / minutes, p50Ms: p95Ms, p95Ms });

const peers: Record<string, object> = {
  'agent-registry': { listAgents: unary<pb.ListAgentsRequest, pb.ListAgentsResponse>('listAgents', () => ({ items: [], total: 2, nextCursor: '' })) },
  orchestrator: {
    listTasks: unary<pb.ListTasksRequest, pb.ListTasksResponse>('listTasks', () => ({ items: [], total: 3, nextCursor: '' })),
    getWorkspaceStats: unary<pb.GetWorkspaceStatsRequest, pb.GetWorkspaceStatsResponse>('getWorkspaceStats', () => ({ items: [stats('alpha', 4, 1, 0), stats('beta', 2, 0, 1)] })),
  },
  'workspace-coord': { listWorkspaces: unary<pb.ListWorkspacesRequest, pb.ListWorkspacesResponse>('listWorkspaces', () => ({ items: [], total: 0, nextCursor: '' })) },
  'mcp-gateway': {
    getToolStats: unary<pb.GetToolStatsRequest, pb.GetToolStatsResponse>('getToolStats', () => ({
      items: Array.from({ length: 7 }, (_, i) => ({ tool: `demo.t${i}`, server: 'demo', last5m: window(5, 10 - i, 12), last60m: window(60, 70 - i, i === 0 ? 40 : undefined) })),
      total5m: window(5, 49, 30),
      total60m: window(60, 469, 35),
      replicas: 2,
      bucketBoundsMs: [],
      at: '',
    })),
  },
};


@Module({
  imports: [ConfigModule.forRoot(config), AuthModule, StrictInputModule],
  controllers: [OverviewController],
  providers: [
    { provide: PeerClients, useValue: peersOver(config, peers) },
    { provide: APP_FILTER, useClass: ProblemFilter },
  ],
})
class TestModule {}

describe('OverviewController (GET /v1/overview, against test doubles of the peers)', () => {
  let app: INestApplication;
  let base: string;

  beforeAll(async () => {
    app = await createHttpApplication(TestModule);
    await app.listen(0, '127.0.0.1');
    base = await app.getUrl();
  });

  afterAll(async () => {
    await app.close();
  });

  beforeEach(() => {
    requests.length = 0;
    failing.clear();
  });

  const overview = async (token: string): Promise<OverviewView> => {
    const res = await fetch(`${base}/v1/overview`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    return (await res.json()) as OverviewView;
  };
  const sent = (method: string) => requests.filter((r) => r.method === method).map((r) => r.request);

  it('adds up the tasks finished in the last hour over the token\'s workspaces', async () => {
    const o = await overview(tokenFor(['l1'], ['alpha', 'beta']));
    expect(o.tasksLastHour).toEqual({ succeeded: 6, failed: 1, cancelled: 1 });
    expect(sent('getWorkspaceStats')).toEqual([{ workspaces: ['alpha', 'beta'], windowSeconds: 3600 }]);
    // A "*" token asks for every workspace (an empty list).
    await overview(tokenFor(['admin'], ['*']));
    expect(sent('getWorkspaceStats')[1]).toEqual({ workspaces: [], windowSeconds: 3600 });
  });

  it('asks nothing for a token without workspaces: no tasks, no MCP figures', async () => {
    const o = await overview(tokenFor(['l1'], []));
    expect(o.tasksLastHour).toEqual({ succeeded: 0, failed: 0, cancelled: 0 });
    expect(o.mcp).toBeNull();
    expect(sent('getWorkspaceStats')).toEqual([]);
    expect(sent('getToolStats')).toEqual([]);
  });

  it('summarises MCP calls: per minute and p95 over 5 minutes, the five most called tools of the hour with their p95', async () => {
    const o = await overview(tokenFor(['l2l3'], ['alpha']));
    expect(sent('getToolStats')).toEqual([expect.objectContaining({ workspace: '', principal: expect.objectContaining({ workspaces: ['alpha'] }) as unknown })]);
    expect(o.mcp).toMatchObject({ callsPerMinute: 49 / 5, errorsPerMinute: 1 / 5, callsLastHour: 469, p95Ms: 30 });
    expect(o.mcp!.topTools.map((t) => t.tool)).toEqual(['demo.t0', 'demo.t1', 'demo.t2', 'demo.t3', 'demo.t4']);
    expect(o.mcp!.topTools[0]).toEqual({ tool: 'demo.t0', server: 'demo', callsPerMinute: 70 / 60, calls: 70, errors: 1, p95Ms: 40 });
    expect(o.mcp!.topTools[1]!.p95Ms).toBeNull();
  });

  it('answers without MCP figures when mcp-gateway does not answer', async () => {
    failing.add('getToolStats');
    const o = await overview(tokenFor(['l1'], ['alpha']));
    expect(o.mcp).toBeNull();
    expect(o.tasksLastHour.succeeded).toBe(6);
  });
});
