import type * as grpc from '@grpc/grpc-js';
import { pb, ZiggieError } from '@ziggie/contracts';
import { loadConfig } from '../config/config';
import { runWithContext } from '../context';
import type { Discovery } from '../discovery/discovery';
import { startGrpcServer, stopGrpcServer, unary } from './grpc';
import { PeerClients } from './peers';

describe('PeerClients.api: a peer\'s unary methods by name, over a real gRPC server', () => {
  let server: grpc.Server;
  let peers: PeerClients;
  const seen: Array<{ id: string; correlationId: string | undefined }> = [];

  beforeAll(async () => {
    const impl: grpc.UntypedServiceImplementation = {
      getWorkspace: unary(async (req: pb.GetWorkspaceRequest, call: grpc.ServerUnaryCall<pb.GetWorkspaceRequest, pb.Workspace>) => {
        seen.push({ id: req.id, correlationId: call.metadata.get('x-correlation-id')[0] as string | undefined });
        if (req.id === 'missing') throw new ZiggieError('WORKSPACE_NOT_FOUND', 'no such workspace');
        if (req.id === 'slow') await new Promise((r) => setTimeout(r, 500));
        return pb.Workspace.fromPartial({ id: req.id, name: `workspace ${req.id}` });
      }) as grpc.UntypedHandleCall,
    };
    const started = await startGrpcServer({ host: '127.0.0.1', port: 0 }, [{ definition: pb.WorkspaceCoordService, implementation: impl }]);
    server = started.server;
    const config = loadConfig('gateway', undefined, { ZIGGIE_JWT_SECRET: 'peers-spec-secret-0123456789abcdef', LOG_LEVEL: 'silent' });
    peers = new PeerClients(config, { resolve: () => Promise.resolve(`127.0.0.1:${started.port}`) } as unknown as Discovery);
  });

  afterAll(async () => {
    await peers?.onApplicationShutdown();
    if (server) await stopGrpcServer(server, 1000);
  });

  it('answers with the method\'s response and carries the correlation id', async () => {
    const coord = peers.api('workspace-coord', pb.WorkspaceCoordClient);
    const ws = await runWithContext({ correlationId: 'corr-peers-1' }, () => coord.getWorkspace({ id: 'alpha' }));
    expect([ws.id, ws.name]).toEqual(['alpha', 'workspace alpha']);
    expect(seen.at(-1)).toEqual({ id: 'alpha', correlationId: 'corr-peers-1' });
    // One object per peer and deadline.
    expect(peers.api('workspace-coord', pb.WorkspaceCoordClient)).toBe(coord);
  });

  it('turns the peer\'s error back into its ZiggieError', async () => {
    const coord = peers.api('workspace-coord', pb.WorkspaceCoordClient);
    await expect(coord.getWorkspace({ id: 'missing' })).rejects.toMatchObject({ code: 'WORKSPACE_NOT_FOUND', message: 'no such workspace' });
  });

  it('gives each call the peer\'s deadline unless the call sets its own', async () => {
    const quick = peers.api('workspace-coord', pb.WorkspaceCoordClient, 100);
    await expect(quick.getWorkspace({ id: 'slow' })).rejects.toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
    await expect(quick.getWorkspace({ id: 'slow' }, { timeoutMs: 5_000 })).resolves.toMatchObject({ id: 'slow' });
  });

  it('holds the unary methods only: a streaming one goes through callStream', () => {
    const mcp = peers.api('mcp-gateway', pb.McpGatewayClient);
    expect(typeof mcp.listTools).toBe('function');
    expect('callTool' in mcp).toBe(false);
  });
});
