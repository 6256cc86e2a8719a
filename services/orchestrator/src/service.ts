import { Module } from '@nestjs/common';
import { Consumers, pb, Streams } from '@ziggie/contracts';
import { GrpcBinding, ServiceDefinition, unary } from '@ziggie/platform';
import { BlueprintsService } from './blueprints.service';
import { orchestratorEnv } from './config';
import { EngineService } from './engine.service';
import { migrations } from './migrations';
import { PoliciesService } from './policies.service';
import { PoolLeases } from './pool-leases';
import { TasksService } from './tasks.service';

@Module({ providers: [PoliciesService, BlueprintsService, PoolLeases, EngineService, TasksService] })
export class OrchestratorModule {}

function grpcBindings(tasks: TasksService, blueprints: BlueprintsService, policies: PoliciesService): GrpcBinding[] {
  const implementation: pb.OrchestratorServer = {
    submitTask: unary((req) => tasks.submit(req)),
    getTask: unary((req) => tasks.get(req.id, req.principal)),
    listTasks: unary((req) => tasks.list(req)),
    getWorkspaceStats: unary((req) => tasks.stats(req)),
    cancelTask: unary((req) => tasks.cancel(req)),
    approveStep: unary((req) => tasks.approve(req)),
    createBlueprint: unary((req) => blueprints.create(req)),
    getBlueprint: unary((req) => blueprints.get(req)),
    listBlueprints: unary((req) => blueprints.list(req)),
    deleteBlueprint: unary((req) => blueprints.remove(req)),
    createPolicy: unary((req) => policies.create(req)),
    getPolicy: unary((req) => policies.get(req.id)),
    listPolicies: unary((req) => policies.list(req)),
    updatePolicy: unary((req) => policies.update(req)),
    deletePolicy: unary((req) => policies.remove(req)),
    listDecisions: unary((req) => policies.decisions(req)),
  };
  return [{ definition: pb.OrchestratorService, implementation }];
}

export const definition: ServiceDefinition<typeof orchestratorEnv> = {
  service: 'orchestrator',
  extraConfig: orchestratorEnv,
  migrations,
  nats: {
    streams: [Streams.steps, Streams.results, Streams.events],
    consumers: [Consumers.resultRecorder, Consumers.deadLetters],
  },
  module: () => OrchestratorModule,
  grpc: (app) => grpcBindings(app.get(TasksService), app.get(BlueprintsService), app.get(PoliciesService)),
};
