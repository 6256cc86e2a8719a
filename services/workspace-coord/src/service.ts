import { Module } from '@nestjs/common';
import { pb, ZiggieError } from '@ziggie/contracts';
import { GrpcBinding, ServiceDefinition, unary } from '@ziggie/platform';
import { workspaceEnv } from './config';
import { migrations } from './migrations';
import { WorkspacesService } from './workspaces.service';

@Module({ providers: [WorkspacesService] })
export class WorkspaceCoordModule {}

function grpcBindings(workspaces: WorkspacesService): GrpcBinding[] {
  const implementation: pb.WorkspaceCoordServer = {
    getWorkspace: unary((req) => workspaces.get(req.id)),
    listWorkspaces: unary((req) => workspaces.list(req.page?.limit ?? 0, req.page?.cursor ?? '')),
    allocatePort: unary(() => Promise.reject(new ZiggieError('UNIMPLEMENTED', 'port allocation is not available yet'))),
    acquireLease: unary(() => Promise.reject(new ZiggieError('UNIMPLEMENTED', 'resource leases are not available yet'))),
  };
  return [{ definition: pb.WorkspaceCoordService, implementation }];
}

export const definition: ServiceDefinition<typeof workspaceEnv> = {
  service: 'workspace-coord',
  extraConfig: workspaceEnv,
  migrations,
  module: () => WorkspaceCoordModule,
  grpc: (app) => grpcBindings(app.get(WorkspacesService)),
};
