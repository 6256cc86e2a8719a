// The real orchestrator service (a fresh database on the run's PostgreSQL) against a nats-server
// and gRPC doubles, with a client for its gRPC API.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pb } from '@ziggie/contracts';
import { bootstrapService, callUnary, createGrpcClient, DatabaseService, Kysely, RunningService } from '@ziggie/platform';
import { startPostgres, waitFor } from '../../../../test/support';
import { OrchestratorDb } from '../../src/migrations';
import { definition } from '../../src/service';

export const OPERATOR: pb.Principal = { subject: 'ops@test', roles: ['admin'], workspaces: ['*'] };

export interface OrchestratorUnderTest {
  service: RunningService;
  client: pb.OrchestratorClient;
  db: Kysely<OrchestratorDb>;
  submit(fields: Partial<pb.SubmitTaskRequest> & { steps: Array<Partial<pb.PlanStep> & { id: string }> }): Promise<pb.Task>;
  getTask(id: string): Promise<pb.Task>;
  stats(req: Partial<pb.GetWorkspaceStatsRequest>): Promise<pb.GetWorkspaceStatsResponse>;
  cancel(id: string, reason: string): Promise<pb.Task>;
  /** Polls the task view until `until` holds. */
  waitTask(id: string, until: (t: pb.Task) => boolean, what: string, timeoutMs?: number): Promise<pb.Task>;
  stop(): Promise<void>;
}

export const stepOf = (task: pb.Task, id: string): pb.Step | undefined => task.waves.flatMap((w) => w.steps).find((s) => s.id === id);
export const isTerminal = (t: pb.Task): boolean => ['succeeded', 'failed', 'cancelled'].includes(t.status);

export async function startOrchestrator(env: Record<string, string>): Promise<OrchestratorUnderTest> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ziggie-orchestrator-'));
  const pg = await startPostgres();
  const service = await bootstrapService(definition, {
    ZIGGIE_JWT_SECRET: 'integration-secret-0123456789',
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    LOG_LEVEL: 'error',
    DATA_DIR: dataDir,
    DATABASE_URL: pg.url,
    SHUTDOWN_GRACE_MS: '1000',
    ...env,
  });
  const client = createGrpcClient(pb.OrchestratorClient, `127.0.0.1:${service.grpcPort}`);
  const getTask = (id: string) => callUnary(client.getTask.bind(client), { id, principal: OPERATOR });
  return {
    service,
    client,
    db: service.app.get(DatabaseService).db<OrchestratorDb>(),
    submit: ({ steps, ...fields }) =>
      callUnary(
        client.submitTask.bind(client),
        pb.SubmitTaskRequest.fromPartial({ workspace: 'ziggie', priority: 'P1', principal: OPERATOR, ...fields, plan: { steps: steps.map((s) => pb.PlanStep.fromPartial(s)) } }),
      ),
    getTask,
    stats: (req) => callUnary(client.getWorkspaceStats.bind(client), pb.GetWorkspaceStatsRequest.fromPartial(req)),
    cancel: (id, reason) => callUnary(client.cancelTask.bind(client), { id, reason, principal: OPERATOR }),
    async waitTask(id, until, what, timeoutMs = 20_000) {
      let last: pb.Task | undefined;
      try {
        await waitFor(async () => until((last = await getTask(id))), { timeoutMs, intervalMs: 100, what });
      } catch (err) {
        const steps = last?.waves.flatMap((w) => w.steps.map((s) => `${s.id}: ${s.status} ${s.waitingReason}`));
        throw new Error(`${(err as Error).message}; task ${last?.status}, steps ${JSON.stringify(steps)}`, { cause: err });
      }
      return last!;
    },
    async stop() {
      client.close();
      await service.stop();
      await pg.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
