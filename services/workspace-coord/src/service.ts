import { Module } from '@nestjs/common';
import { pb, Streams } from '@ziggie/contracts';
import { GrpcBinding, ServiceDefinition, unary } from '@ziggie/platform';
import { workspaceEnv } from './config';
import { HealthService } from './health.service';
import { migrations } from './migrations';
import { PoolsService } from './pools.service';
import { PortsService } from './ports.service';
import { SweeperService } from './sweeper.service';
import { WorkspacesService } from './workspaces.service';

@Module({ providers: [HealthService, WorkspacesService, PortsService, PoolsService, SweeperService] })
export class WorkspaceCoordModule {}

interface Services {
  workspaces: WorkspacesService;
  health: HealthService;
  ports: PortsService;
  pools: PoolsService;
}

function grpcBindings({ workspaces, health, ports, pools }: Services): GrpcBinding[] {
  const implementation: pb.WorkspaceCoordServer = {
    getWorkspace: unary((req) => workspaces.get(req.id)),
    listWorkspaces: unary((req) => workspaces.list(req)),
    createWorkspace: unary((req) => workspaces.create(req)),
    updateWorkspace: unary((req) => workspaces.update(req)),
    deleteWorkspace: unary((req) => workspaces.remove(req)),
    affectedWorkspaces: unary((req) => workspaces.affected(req)),
    getHealth: unary((req) => health.get(req.id)),
    reportHealth: unary((req) => health.report(req)),
    allocatePort: unary((req) => ports.allocate(req)),
    renewPort: unary((req) => ports.renew(req)),
    releasePort: unary((req) => ports.release(req)),
    listPorts: unary((req) => ports.list(req)),
    listPools: unary(() => pools.list()),
    getPool: unary((req) => pools.get(req.name)),
    putPool: unary((req) => pools.put(req)),
    acquireLease: unary((req) => pools.acquire(req)),
    acquireLeases: unary(async (req) => ({ outcomes: await pools.acquireMany(req.requests) })),
    renewLease: unary((req) => pools.renew(req)),
    releaseLeases: unary((req) => pools.release(req)),
    listLeases: unary((req) => pools.listLeases(req)),
  };
  return [{ definition: pb.WorkspaceCoordService, implementation }];
}

export const definition: ServiceDefinition<typeof workspaceEnv> = {
  service: 'workspace-coord',
  extraConfig: workspaceEnv,
  migrations,
  // Publishes WorkspaceHealth events; consumes nothing.
  nats: { streams: [Streams.events], consumers: [] },
  module: () => WorkspaceCoordModule,
  grpc: (app) =>
    grpcBindings({ workspaces: app.get(WorkspacesService), health: app.get(HealthService), ports: app.get(PortsService), pools: app.get(PoolsService) }),
};
