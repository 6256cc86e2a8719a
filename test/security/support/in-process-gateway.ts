import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootstrapService, GrpcPeers, type GrpcPeer, type RunningService } from '@ziggie/platform';
import type { StackHandle } from '../../../cli/src/stack';
import { definition } from '../../../services/gateway/src/service';
import { startPostgres } from '../../support/postgres';

export interface InProcessGateway {
  service: RunningService;
  url: string;
  stop(): Promise<void>;
}

/**
 * A second gateway in this process, wired to a running stack's NATS and gRPC peers the way
 * cli/src/stack.ts wires its own, with its own data directory and audit database (a fresh one on the run's PostgreSQL).
 */
export async function startInProcessGateway(stack: StackHandle, env: Record<string, string>): Promise<InProcessGateway> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ziggie-inproc-gateway-'));
  const pg = await startPostgres();
  const peers: Record<string, string> = {};
  for (const peer of Object.keys(GrpcPeers) as GrpcPeer[]) peers[GrpcPeers[peer]] = `127.0.0.1:${stack.ports.services[peer].grpc}`;
  const service = await bootstrapService(definition, {
    NODE_ENV: 'development',
    LOG_LEVEL: 'silent',
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    GRPC_HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    DATABASE_URL: pg.url,
    NATS_URL: `nats://127.0.0.1:${stack.ports.nats}`,
    ZIGGIE_JWT_SECRET: stack.jwtSecret,
    JWT_ISSUER: 'ziggie-local',
    JWT_AUDIENCE: 'ziggie-api',
    SHUTDOWN_GRACE_MS: '1000',
    ...peers,
    ...env,
  });
  return {
    service,
    url: `http://127.0.0.1:${service.httpPort}`,
    stop: async () => {
      await service.stop();
      await pg.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
