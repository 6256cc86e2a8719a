import type * as grpc from '@grpc/grpc-js';
import { pb, ZiggieError } from '@ziggie/contracts';
import { MetricsService } from '../health/metrics';
import { callStream, callUnary, createGrpcClient, serverStream, startGrpcServer, stopGrpcServer, unary } from './grpc';
import { grpcClientMetrics, grpcMethodName } from './metrics';

const workspace = (id: string): pb.Workspace => ({
  id,
  name: id,
  priority: 'P1',
  owner: 'ops',
  health: 'on-track',
  healthReasons: [],
  dependsOn: [],
  portRange: { start: 20000, end: 20099 },
  description: '',
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
});

/** The value of one labelled series (`_count` of a histogram too), 0 when it is absent. */
async function valueOf(metrics: MetricsService, series: string, labels: Record<string, string>): Promise<number> {
  const metric = metrics.registry.getSingleMetric(series.replace(/_count$/, '')) ?? metrics.registry.getSingleMetric(series);
  if (!metric) return 0;
  const { values } = await metric.get();
  const match = values.find(
    (v) => ((v as { metricName?: string }).metricName ?? series) === series && Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
  );
  return match?.value ?? 0;
}

describe('gRPC RED metrics', () => {
  const serverMetrics = new MetricsService('workspace-coord');
  const clientMetrics = new MetricsService('gateway');
  let server: grpc.Server;
  let coord: pb.WorkspaceCoordClient;
  let mcp: pb.McpGatewayClient;

  beforeAll(async () => {
    const refuse = unary(() => Promise.reject(new ZiggieError('UNIMPLEMENTED', 'not here'))) as grpc.UntypedHandleCall;
    const coordImpl: grpc.UntypedServiceImplementation = Object.fromEntries(Object.keys(pb.WorkspaceCoordService).map((m) => [m, refuse]));
    coordImpl.getWorkspace = unary((req: pb.GetWorkspaceRequest) => {
      if (req.id === 'missing') throw new ZiggieError('WORKSPACE_NOT_FOUND', 'no such workspace');
      if (req.id === 'boom') throw new Error('unexpected');
      return workspace(req.id);
    }) as grpc.UntypedHandleCall;
    const mcpImpl: grpc.UntypedServiceImplementation = Object.fromEntries(Object.keys(pb.McpGatewayService).map((m) => [m, refuse]));
    mcpImpl.callTool = serverStream(async (_req: pb.CallToolRequest, call: grpc.ServerWritableStream<pb.CallToolRequest, pb.CallToolEvent>) => {
      // Streams until the client goes away.
      while (!call.cancelled) {
        call.write({ event: { $case: 'progress', value: { progress: 1, total: 0, message: 'working' } } });
        await new Promise((r) => setTimeout(r, 10));
      }
    }) as grpc.UntypedHandleCall;
    const started = await startGrpcServer(
      { host: '127.0.0.1', port: 0 },
      [
        { definition: pb.WorkspaceCoordService, implementation: coordImpl },
        { definition: pb.McpGatewayService, implementation: mcpImpl },
      ],
      undefined,
      serverMetrics,
    );
    server = started.server;
    coord = createGrpcClient(pb.WorkspaceCoordClient, `127.0.0.1:${started.port}`, undefined, [grpcClientMetrics(clientMetrics, 'workspace-coord')]);
    mcp = createGrpcClient(pb.McpGatewayClient, `127.0.0.1:${started.port}`, undefined, [grpcClientMetrics(clientMetrics, 'mcp-gateway')]);
  });

  afterAll(async () => {
    coord?.close();
    mcp?.close();
    if (server) await stopGrpcServer(server, 1000);
  });

  it('names methods by their proto name', () => {
    expect(grpcMethodName('/ziggie.v1.Orchestrator/SubmitTask')).toBe('SubmitTask');
  });

  it('starts every served method at zero, so the first call counts in rate()', async () => {
    const text = await serverMetrics.registry.metrics();
    for (const method of ['GetWorkspace', 'AllocatePort', 'CallTool', 'ListTools']) {
      expect(text).toContain(`ziggie_grpc_server_requests_total{method="${method}",code="OK",service="workspace-coord"}`);
    }
  });

  it('counts each call on both ends by method and status code, and times it', async () => {
    const call = (id: string) => callUnary(coord.getWorkspace.bind(coord), { id }, { peer: 'workspace-coord' }).catch(() => undefined);
    await call('ziggie');
    await call('ziggie');
    await call('missing');
    await call('boom');
    const server = (code: string) => valueOf(serverMetrics, 'ziggie_grpc_server_requests_total', { method: 'GetWorkspace', code });
    const client = (code: string) => valueOf(clientMetrics, 'ziggie_grpc_client_requests_total', { target: 'workspace-coord', method: 'GetWorkspace', code });
    expect([await server('OK'), await server('NOT_FOUND'), await server('INTERNAL')]).toEqual([2, 1, 1]);
    expect([await client('OK'), await client('NOT_FOUND'), await client('INTERNAL')]).toEqual([2, 1, 1]);
    expect(await valueOf(clientMetrics, 'ziggie_grpc_client_request_duration_seconds_count', { target: 'workspace-coord', method: 'GetWorkspace' })).toBe(4);
    expect(await valueOf(serverMetrics, 'ziggie_grpc_server_request_duration_seconds_count', { method: 'GetWorkspace' })).toBe(4);
  });

  it('records a stream the client abandons as CANCELLED on both ends', async () => {
    for await (const event of callStream(mcp.callTool.bind(mcp), { name: 'x.y', arguments: {}, principal: undefined, workspace: '', correlationId: '', timeoutMs: 0 }, { peer: 'mcp-gateway' })) {
      expect(event).toBeDefined();
      break;
    }
    const cancelled = () => valueOf(serverMetrics, 'ziggie_grpc_server_requests_total', { method: 'CallTool', code: 'CANCELLED' });
    for (let i = 0; i < 100 && (await cancelled()) === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await cancelled()).toBe(1);
    expect(await valueOf(clientMetrics, 'ziggie_grpc_client_requests_total', { target: 'mcp-gateway', method: 'CallTool', code: 'CANCELLED' })).toBe(1);
  });
});
