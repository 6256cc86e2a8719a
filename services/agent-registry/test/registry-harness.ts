import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pb } from '@ziggie/contracts';
import { bootstrapService, createGrpcClient, RunningService } from '@ziggie/platform';
import { definition } from '../src/service';
import { startNats, startPostgres, type NatsServerHandle, type PostgresHandle } from '../../../test/support';

export interface RegistryUnderTest {
  svc: RunningService;
  nats: NatsServerHandle;
  registry: pb.AgentRegistryClient;
  stop(): Promise<void>;
}

/** agent-registry with the default seed on its own nats-server and PostgreSQL; `env` adds or overrides variables. */
export async function startRegistry(env: Record<string, string> = {}): Promise<RegistryUnderTest> {
  const dir = mkdtempSync(join(tmpdir(), 'ziggie-registry-'));
  let nats: NatsServerHandle | undefined;
  let pg: PostgresHandle | undefined;
  try {
    [nats, pg] = await Promise.all([startNats(), startPostgres()]);
    const svc = await bootstrapService(definition, {
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      DATA_DIR: dir,
      DATABASE_URL: pg.url,
      NATS_URL: nats.url,
      ZIGGIE_JWT_SECRET: 'integration-secret-0123456789',
      ZIGGIE_SEED: 'default',
      ...env,
    });
    const registry = createGrpcClient(pb.AgentRegistryClient, `127.0.0.1:${svc.grpcPort}`);
    const started = { nats, pg };
    return {
      svc,
      nats,
      registry,
      stop: async () => {
        registry.close();
        await svc.stop();
        await started.nats.stop();
        await started.pg.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await nats?.stop();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
