import { Module } from '@nestjs/common';
import { Consumers, pb, Streams, ZiggieError } from '@ziggie/contracts';
import { GrpcBinding, ServiceDefinition, unary } from '@ziggie/platform';
import { orchestratorEnv } from './config';
import { EngineService } from './engine.service';
import { migrations } from './migrations';
import { TasksService } from './tasks.service';

@Module({ providers: [EngineService, TasksService] })
export class OrchestratorModule {}

function grpcBindings(tasks: TasksService): GrpcBinding[] {
  const implementation: pb.OrchestratorServer = {
    submitTask: unary((req) => tasks.submit(req)),
    getTask: unary((req) => tasks.get(req.id, req.principal)),
    listTasks: unary((req) => tasks.list(req)),
    cancelTask: unary((req) => tasks.cancel(req)),
    approveStep: unary(() => Promise.reject(new ZiggieError('UNIMPLEMENTED', 'approval gates are not available yet'))),
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
  grpc: (app) => grpcBindings(app.get(TasksService)),
};
