// Shared by the workspace-coord integration specs: starting the real service (on a Postgres
// database), a typed gRPC client, a fresh database per run, and an orchestrator that
// serves only GetWorkspaceStats through the real generated service definition.
import type { Server, UntypedServiceImplementation } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { pb, ZiggieError } from '@ziggie/contracts';
import { bootstrapService, callUnary, createGrpcClient, RunningService, startGrpcServer, stopGrpcServer, unary } from '@ziggie/platform';
import { definition } from '../src/service';
import { waitFor, type PostgresHandle } from '../../../test/support';

export const ADMIN: pb.Principal = { subject: 'admin@test', roles: ['admin'], workspaces: ['*'] };

/** A closed port: the orchestrator is unreachable unless a test serves one. */
export const NO_ORCHESTRATOR = '127.0.0.1:1';

export interface InstanceOptions {
  natsUrl: string;
  /** The service's Postgres database (DATABASE_URL). */
  databaseUrl: string;
  dataDir: string;
  orchestrator?: string;
  env?: Record<string, string>;
}

export interface Instance {
  svc: RunningService;
  client: pb.WorkspaceCoordClient;
  api: CoordApi;
  stop(): Promise<void>;
}

export async function startInstance(o: InstanceOptions): Promise<Instance> {
  const svc = await bootstrapService(definition, {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    DATA_DIR: o.dataDir,
    NATS_URL: o.natsUrl,
    DATABASE_URL: o.databaseUrl,
    ORCHESTRATOR_GRPC_ADDR: o.orchestrator ?? NO_ORCHESTRATOR,
    ZIGGIE_JWT_SECRET: 'integration-secret-0123456789',
    ZIGGIE_SEED: 'default',
    ...o.env,
  });
  const client = createGrpcClient(pb.WorkspaceCoordClient, `127.0.0.1:${svc.grpcPort}`);
  let stopped = false;
  return {
    svc,
    client,
    api: coordApi(client),
    async stop() {
      if (stopped) return;
      stopped = true;
      client.close();
      await svc.stop();
    },
  };
}

/** A database of its own on the server, so specs sharing a server (TEST_DATABASE_URL) never meet. */
export async function freshDatabase(pg: PostgresHandle): Promise<string> {
  const name = `wc_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: pg.url });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(pg.url);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * Waits until the server has no sessions left on the given databases. The pg pool's end()
 * resolves before its sockets have closed, and a server shutting down meanwhile sends the
 * closing sessions an error that nothing in the pool listens for.
 */
export async function whenDisconnected(pg: PostgresHandle, databaseUrls: Array<string | undefined>): Promise<void> {
  const names = databaseUrls.flatMap((u) => (u ? [new URL(u).pathname.slice(1)] : []));
  if (names.length === 0) return;
  const admin = new Client({ connectionString: pg.url });
  await admin.connect();
  try {
    await waitFor(
      async () => {
        const res = await admin.query<{ n: string }>('select count(*) as n from pg_stat_activity where datname = any($1)', [names]);
        return Number(res.rows[0]!.n) === 0;
      },
      { what: `sessions on ${names.join(', ')} to close`, timeoutMs: 10_000, intervalMs: 20 },
    );
  } finally {
    await admin.end();
  }
}

const OPTS = { peer: 'workspace-coord', timeoutMs: 30_000 };

/** Every RPC, taking partial requests (proto defaults for the rest). */
export function coordApi(c: pb.WorkspaceCoordClient) {
  return {
    getWorkspace: (id: string) => callUnary(c.getWorkspace.bind(c), { id }, OPTS),
    listWorkspaces: (r: Partial<pb.ListWorkspacesRequest> = {}) => callUnary(c.listWorkspaces.bind(c), pb.ListWorkspacesRequest.fromPartial(r), OPTS),
    createWorkspace: (w: Partial<pb.Workspace>, principal: pb.Principal | null = ADMIN) =>
      callUnary(c.createWorkspace.bind(c), pb.CreateWorkspaceRequest.fromPartial({ principal: principal ?? undefined, workspace: w }), OPTS),
    updateWorkspace: (r: Partial<pb.UpdateWorkspaceRequest>, principal: pb.Principal | null = ADMIN) =>
      callUnary(c.updateWorkspace.bind(c), pb.UpdateWorkspaceRequest.fromPartial({ ...r, principal: principal ?? undefined }), OPTS),
    deleteWorkspace: (id: string, principal: pb.Principal | null = ADMIN) => callUnary(c.deleteWorkspace.bind(c), { principal: principal ?? undefined, id }, OPTS),
    affectedWorkspaces: (workspaces: string[]) => callUnary(c.affectedWorkspaces.bind(c), { workspaces }, OPTS),
    getHealth: (id: string) => callUnary(c.getHealth.bind(c), { id }, OPTS),
    reportHealth: (r: Partial<pb.ReportHealthRequest>) => callUnary(c.reportHealth.bind(c), pb.ReportHealthRequest.fromPartial(r), OPTS),
    allocatePort: (r: Partial<pb.AllocatePortRequest>) => callUnary(c.allocatePort.bind(c), pb.AllocatePortRequest.fromPartial(r), OPTS),
    renewPort: (r: Partial<pb.RenewPortRequest>) => callUnary(c.renewPort.bind(c), pb.RenewPortRequest.fromPartial(r), OPTS),
    releasePort: (workspace: string, port: number) => callUnary(c.releasePort.bind(c), { workspace, port }, OPTS),
    listPorts: (workspace: string) => callUnary(c.listPorts.bind(c), { workspace }, OPTS),
    listPools: () => callUnary(c.listPools.bind(c), {}, OPTS),
    getPool: (name: string) => callUnary(c.getPool.bind(c), { name }, OPTS),
    putPool: (pool: Partial<pb.Pool>, principal: pb.Principal | null = ADMIN) =>
      callUnary(c.putPool.bind(c), pb.PutPoolRequest.fromPartial({ principal: principal ?? undefined, pool }), OPTS),
    acquireLease: (r: Partial<pb.AcquireLeaseRequest>) => callUnary(c.acquireLease.bind(c), pb.AcquireLeaseRequest.fromPartial(r), OPTS),
    acquireLeases: (requests: Array<Partial<pb.AcquireLeaseRequest>>) => callUnary(c.acquireLeases.bind(c), pb.AcquireLeasesRequest.fromPartial({ requests }), OPTS),
    renewLease: (id: string, ttlSeconds = 0) => callUnary(c.renewLease.bind(c), { id, ttlSeconds }, OPTS),
    releaseLeases: (r: Partial<pb.ReleaseLeasesRequest>) => callUnary(c.releaseLeases.bind(c), pb.ReleaseLeasesRequest.fromPartial(r), OPTS),
    listLeases: (r: Partial<pb.ListLeasesRequest> = {}) => callUnary(c.listLeases.bind(c), pb.ListLeasesRequest.fromPartial(r), OPTS),
  };
}
export type CoordApi = ReturnType<typeof coordApi>;

/** The error a promise rejects with (fails the test when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<ZiggieError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ZiggieError) return err;
    throw err;
  }
  throw new Error('expected the call to fail, it succeeded');
}

export interface StatsOrchestrator {
  address: string;
  /** Requests received, newest last. */
  readonly requests: pb.GetWorkspaceStatsRequest[];
  /** What the next calls answer, per workspace (missing workspaces: no tasks). */
  set(stats: Record<string, Partial<pb.WorkspaceTaskStats>>): void;
  /** Holds the next `n` requests until all `n` have arrived, then answers them together. */
  hold(n: number): void;
  /** Stops answering (the port refuses connections). */
  stop(): Promise<void>;
  /** Serves again on the same port. */
  restart(): Promise<void>;
}

/**
 * An orchestrator that implements GetWorkspaceStats only, served through the generated
 * pb.OrchestratorService definition and the platform's gRPC server; every other method
 * answers UNIMPLEMENTED.
 */
export async function serveWorkspaceStats(): Promise<StatsOrchestrator> {
  let current: Record<string, Partial<pb.WorkspaceTaskStats>> = {};
  const requests: pb.GetWorkspaceStatsRequest[] = [];
  let gate: { needed: number; waiting: Array<() => void> } | undefined;
  const passGate = (): Promise<void> =>
    new Promise((resolve) => {
      if (!gate) return resolve();
      gate.waiting.push(resolve);
      if (gate.waiting.length >= gate.needed) {
        const open = gate.waiting;
        gate = undefined;
        for (const release of open) release();
      }
    });
  const notServed = unary(() => Promise.reject(new ZiggieError('UNIMPLEMENTED', 'not served by this test orchestrator')));
  const implementation: UntypedServiceImplementation = Object.fromEntries(Object.keys(pb.OrchestratorService).map((name) => [name, notServed]));
  implementation.getWorkspaceStats = unary(async (req: pb.GetWorkspaceStatsRequest): Promise<pb.GetWorkspaceStatsResponse> => {
    requests.push(req);
    await passGate();
    const wanted = req.workspaces.length > 0 ? req.workspaces : Object.keys(current);
    return { items: wanted.filter((w) => current[w]).map((w) => pb.WorkspaceTaskStats.fromPartial({ ...current[w], workspace: w })) };
  });
  const bindings = [{ definition: pb.OrchestratorService, implementation }];
  let { server, port }: { server: Server | undefined; port: number } = await startGrpcServer({ host: '127.0.0.1', port: 0 }, bindings);
  return {
    address: `127.0.0.1:${port}`,
    requests,
    set(stats) {
      current = stats;
    },
    hold(n) {
      gate = { needed: n, waiting: [] };
    },
    async stop() {
      if (server) await stopGrpcServer(server, 0);
      server = undefined;
    },
    async restart() {
      if (server) return;
      ({ server, port } = await startGrpcServer({ host: '127.0.0.1', port }, bindings));
    },
  };
}
