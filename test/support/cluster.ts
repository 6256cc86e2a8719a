// A cluster of real processes for fault tests: nats-server (JetStream, file storage), one
// PostgreSQL server with a database per service, and the compiled services. Every instance can be
// started, signalled (SIGKILL, SIGSTOP, ...) and restarted on its own, on the same ports; a
// service may run as several instances. Loopback only, every wait bounded, and only processes
// this cluster started are ever signalled (by pid or by the process group it created).
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AckPolicy, connect, DeliverPolicy, nanos, type JsMsg, type NatsConnection } from 'nats';
import { Client, Pool } from 'pg';
import { pb, Streams, TERMINAL_TASK_STATUSES } from '@ziggie/contracts';
import {
  callUnary,
  createGrpcClient,
  DefaultPorts,
  GrpcPeers,
  signDevToken,
  type GrpcPeer,
  type ServiceName,
} from '@ziggie/platform';
import { JWT_AUDIENCE, JWT_ISSUER } from '../../cli/src/secret';
import { resolveEverythingServer } from '../../cli/src/stack';
import { findNatsServer } from './nats';
import { startPostgres, type PostgresHandle } from './postgres';
import { sleep, spawnTracked, waitFor, type TrackedProcess } from './processes';
import { launchServer } from './servers';

const REPO_ROOT = resolve(__dirname, '..', '..');

/** Dependencies first: peers are more often already listening when a service starts. */
const START_ORDER: readonly ServiceName[] = ['workspace-coord', 'agent-registry', 'mcp-gateway', 'orchestrator', 'agent-runtime', 'gateway'];

/** The principal every task of the cluster is submitted as. */
export const CLUSTER_PRINCIPAL: pb.Principal = { subject: 'chaos@test', roles: ['admin'], workspaces: ['*'] };

/**
 * Variables that keep fault tests short without changing what is tested: lost dispatches are
 * found sooner, stops are quicker, and the MCP gateway's per-tool limits do not refuse a test's
 * burst of calls (those limits have their own tests).
 */
const CHAOS_ENV: Partial<Record<ServiceName, Record<string, string>>> = {
  orchestrator: { RECONCILE_INTERVAL_MS: '2000' },
  'mcp-gateway': { MCP_TOOL_CONCURRENCY: '1000', MCP_TOOL_PER_MINUTE: '100000' },
};

export interface ClusterOptions {
  /** Instances started by startCluster (default: one of each service, no gateway). */
  instances?: Partial<Record<ServiceName, number>>;
  /** Added to every service's environment. */
  env?: Record<string, string>;
  /** Added to one service's environment (every instance), after `env`. */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Services' LOG_LEVEL (default warn). */
  logLevel?: string;
  /** Bound of each service's wait for /readyz (default 60 s). */
  readyTimeoutMs?: number;
  /**
   * A PostgreSQL server of the cluster's own instead of the run's shared one, so a test can kill
   * it (killPostgres / restartPostgres) without touching other suites.
   */
  privatePostgres?: boolean;
}

export interface InstanceInfo {
  name: ServiceName;
  instance: number;
  http: number;
  grpc?: number;
  pid?: number;
  running: boolean;
  logFile: string;
}

export interface TaskRowSummary {
  id: string;
  status: string;
  error_code: string | null;
  error_message: string | null;
}

export interface StepRowSummary {
  task_id: string;
  id: string;
  status: string;
  attempt: number;
  wave: number;
  error: string | null;
}

/** A plan step as a test writes it; omitted fields take the proto defaults. */
export type StepSpec = Partial<pb.PlanStep> & { id: string };

export interface TaskSpec {
  workspace: string;
  title?: string;
  priority?: string;
  steps: StepSpec[];
}

interface Instance {
  name: ServiceName;
  index: number;
  http: number;
  grpc?: number;
  dataDir: string;
  logFile: string;
  proc?: TrackedProcess;
}

const key = (name: ServiceName, index: number): string => `${name}#${index}`;

/**
 * Listening ports are taken below Linux's ephemeral range (32768 and up): a port handed out by
 * listen(0) can be picked again by the kernel for anyone's outgoing connection or listen(0)
 * before the service binds it, and here an instance must also come back on the same port.
 */
const PORT_RANGE = { from: 20_000, to: 32_000 };

function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const srv = createServer();
    srv.once('error', () => done(false));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => srv.close(() => done(true)));
  });
}

function signalGroup(proc: TrackedProcess, signal: NodeJS.Signals): void {
  try {
    // Its own process group (detached spawn): this reaches what it started too (stdio MCP servers).
    process.kill(-proc.pid, signal);
  } catch {
    try {
      proc.child.kill(signal);
    } catch {
      // already gone
    }
  }
}

async function exitedWithin(proc: TrackedProcess, ms: number): Promise<boolean> {
  if (proc.exited) return true;
  let timer: NodeJS.Timeout | undefined;
  const done = await Promise.race([
    proc.exit.then(() => true),
    new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return done;
}

/** Sum of every sample of a Prometheus metric (all label sets) in a /metrics text. */
export function metricSum(text: string, metric: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === metric) sum += Number(m[3]);
  }
  return sum;
}

export class Cluster {
  readonly jwtSecret = randomBytes(32).toString('hex');
  /** An admin token for the gateway's REST API, when the gateway runs. */
  readonly adminToken: string;
  private readonly instances = new Map<string, Instance>();
  private readonly pools = new Map<ServiceName, Pool>();
  private readonly orchestratorClients = new Map<number, pb.OrchestratorClient>();
  private readonly databases = new Map<ServiceName, string>();
  private natsProc?: TrackedProcess;
  private natsPort = 0;
  private natsClient?: Promise<NatsConnection>;
  private readonly ports = new Set<number>();
  private mcpServersFile = '';
  private stopped = false;

  private constructor(
    readonly dir: string,
    readonly postgres: PostgresHandle,
    private readonly opts: ClusterOptions,
  ) {
    this.adminToken = signDevToken(
      { subject: 'admin@chaos', roles: ['admin'], workspaces: ['*'], ttlSeconds: 3600 },
      { secret: this.jwtSecret, issuer: JWT_ISSUER, audience: JWT_AUDIENCE },
    );
  }

  /** Starts NATS, PostgreSQL and the requested service instances; on failure stops what started. */
  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const missing = START_ORDER.filter((n) => !existsSync(join(REPO_ROOT, 'services', n, 'dist', 'main.js')));
    if (missing.length > 0) throw new Error(`not built: ${missing.map((n) => `services/${n}/dist/main.js`).join(', ')}; run \`npm run build\``);
    const dir = await mkdtemp(join(tmpdir(), 'ziggie-cluster-'));
    let postgres: PostgresHandle | undefined;
    let cluster: Cluster | undefined;
    try {
      // Settings given means a private server (see startPostgres); these are its defaults.
      postgres = await startPostgres(opts.privatePostgres ? { settings: { max_connections: '300' } } : {});
      cluster = new Cluster(dir, postgres, opts);
      await cluster.setUp();
      return cluster;
    } catch (err) {
      if (cluster) await cluster.stop();
      else {
        await postgres?.stop();
        await rm(dir, { recursive: true, force: true });
      }
      throw err;
    }
  }

  private async setUp(): Promise<void> {
    await mkdir(join(this.dir, 'logs'), { recursive: true });
    await this.createDatabases();
    await this.startNats();
    this.mcpServersFile = join(this.dir, 'mcp-servers.json');
    // The bundled server-everything over stdio, as the local stack registers it.
    const servers = [
      {
        name: 'everything',
        transport: 'stdio',
        command: process.execPath,
        args: [resolveEverythingServer(REPO_ROOT), 'stdio'],
        env: {},
        limits: { concurrency: 1000, perMinute: 100_000 },
      },
    ];
    await writeFile(this.mcpServersFile, `${JSON.stringify({ servers }, null, 2)}\n`);
    const wanted: Record<ServiceName, number> = {
      'workspace-coord': 1,
      'agent-registry': 1,
      'mcp-gateway': 1,
      orchestrator: 1,
      'agent-runtime': 1,
      gateway: 0,
      ...this.opts.instances,
    };
    // Instance 0 of each service is what the others call: its ports are fixed before anything starts.
    for (const name of START_ORDER) await this.instance(name, 0);
    // Settled, not raced: a failure is reported only once no start is still spawning processes.
    const started = await Promise.allSettled(START_ORDER.flatMap((name) => Array.from({ length: wanted[name] }, (_, i) => this.start(name, { instance: i }))));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** One database per service, with names unique to this cluster (the server is shared). */
  private async createDatabases(): Promise<void> {
    // The server is shared by the suites of a run (or TEST_DATABASE_URL's): names of this cluster's own.
    const prefix = `chaos_${randomBytes(4).toString('hex')}_`;
    const admin = new Client({ connectionString: this.postgres.url, connectionTimeoutMillis: 5_000 });
    admin.on('error', () => undefined);
    await admin.connect();
    try {
      for (const name of START_ORDER) {
        const db = `${prefix}${name.replace(/-/g, '_')}`;
        await admin.query(`create database ${db}`);
        this.databases.set(name, db);
      }
    } finally {
      await admin.end().catch(() => undefined);
    }
  }

  private async dropDatabases(): Promise<void> {
    if (this.databases.size === 0) return;
    const admin = new Client({ connectionString: this.postgres.url, connectionTimeoutMillis: 5_000 });
    admin.on('error', () => undefined);
    try {
      await admin.connect();
      for (const db of this.databases.values()) await admin.query(`drop database if exists ${db} with (force)`);
    } catch {
      // Best effort: the run's server is thrown away at the end of the run anyway.
    } finally {
      await admin.end().catch(() => undefined);
    }
  }

  databaseUrl(service: ServiceName): string {
    const db = this.databases.get(service);
    if (!db) throw new Error(`no database for ${service}`);
    const url = new URL(this.postgres.url);
    url.pathname = `/${db}`;
    return url.toString();
  }

  // -------------------------------------------------------------------------------------------
  // NATS

  get natsUrl(): string {
    return `nats://127.0.0.1:${this.natsPort}`;
  }

  get natsStoreDir(): string {
    return join(this.dir, 'nats');
  }

  get natsPid(): number | undefined {
    return this.natsProc && !this.natsProc.exited ? this.natsProc.pid : undefined;
  }

  /** Starts nats-server; after the first start always on the same port and store directory. */
  async startNats(): Promise<void> {
    if (this.natsPid !== undefined) return;
    await mkdir(this.natsStoreDir, { recursive: true });
    const bin = findNatsServer();
    const first = this.natsPort === 0;
    for (let attempt = 1; ; attempt++) {
      if (first) this.natsPort = await this.port();
      const args = ['-a', '127.0.0.1', '-p', String(this.natsPort), '-js', '-sd', this.natsStoreDir, '-n', 'ziggie-chaos'];
      try {
        this.natsProc = await launchServer('nats-server', bin, args, { cwd: this.natsStoreDir, port: this.natsPort, ready: /Server is ready/, timeoutMs: 20_000 });
        return;
      } catch (err) {
        if (!first || attempt >= 3 || !/address already in use/i.test(String(err))) throw err;
      }
    }
  }

  /** Signals nats-server; SIGKILL and SIGTERM wait (bounded) for it to be gone. */
  async killNats(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.natsProc;
    if (!proc || proc.exited) throw new Error('nats-server is not running');
    if (signal === 'SIGTERM') proc.child.kill('SIGCONT');
    proc.child.kill(signal);
    if (signal !== 'SIGKILL' && signal !== 'SIGTERM') return;
    if (!(await exitedWithin(proc, 15_000))) {
      proc.child.kill('SIGKILL');
      await exitedWithin(proc, 5_000);
    }
  }

  /** Stops nats-server (SIGTERM, or `signal`), keeps it down for `downMs`, starts it on the same port and store. */
  async restartNats(opts: { signal?: 'SIGTERM' | 'SIGKILL'; downMs?: number } = {}): Promise<void> {
    if (this.natsPid !== undefined) await this.killNats(opts.signal ?? 'SIGTERM');
    if (opts.downMs) await sleep(opts.downMs);
    await this.startNats();
  }

  // -------------------------------------------------------------------------------------------
  // PostgreSQL (a cluster started with privatePostgres)

  private get privateServer() {
    const server = this.postgres.server;
    if (!server) throw new Error('the cluster shares the run\'s PostgreSQL: start it with privatePostgres to kill it');
    return server;
  }

  /** Signals the postmaster (SIGKILL: a crash of the database server) and waits until it is gone. */
  async killPostgres(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.privateServer.kill(signal);
  }

  /** Starts PostgreSQL again on the same data directory and port. */
  async restartPostgres(): Promise<void> {
    await this.privateServer.restart();
  }

  /** The test's own NATS connection (reconnects across nats-server restarts). */
  nats(): Promise<NatsConnection> {
    if (!this.natsClient) {
      const pending = connect({ servers: this.natsUrl, name: 'ziggie-chaos-test', maxReconnectAttempts: -1, reconnectTimeWait: 250 });
      // A failed first connection is not kept: the next call tries again.
      pending.catch(() => {
        if (this.natsClient === pending) this.natsClient = undefined;
      });
      this.natsClient = pending;
    }
    return this.natsClient;
  }

  /** Every message of a stream (optionally one subject filter), decoded as JSON, in order. */
  async readStream<T = unknown>(stream: string, filterSubject?: string): Promise<T[]> {
    const nc = await this.nats();
    const jsm = await nc.jetstreamManager();
    // An ephemeral pull consumer without acks (single filter_subject: nats-server 2.9 has no filter_subjects).
    const info = await jsm.consumers.add(stream, {
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
      inactive_threshold: nanos(60_000),
      ...(filterSubject ? { filter_subject: filterSubject } : {}),
    });
    const consumer = await nc.jetstream().consumers.get(stream, info.name);
    const out: T[] = [];
    // Batch by batch; a batch that comes back empty, or ends with nothing pending, ends the read.
    for (let batches = 0; batches < 10_000; batches++) {
      const batch = await consumer.fetch({ max_messages: 1000, expires: 2_000 });
      let n = 0;
      let pending = 0;
      for await (const m of batch as AsyncIterable<JsMsg>) {
        out.push(m.json<T>());
        n++;
        pending = m.info.pending;
      }
      if (n === 0 || pending === 0) break;
    }
    await consumer.delete().catch(() => undefined);
    return out;
  }

  async streamMessages(stream: string): Promise<number> {
    const jsm = await (await this.nats()).jetstreamManager();
    return (await jsm.streams.info(stream)).state.messages;
  }

  /**
   * Waits until no work is left in flight on JetStream: the dispatch stream is empty (every
   * dispatch acknowledged) and every consumer of the results stream has nothing pending or
   * unacknowledged. Assertions about "never twice" are only meaningful after this.
   */
  async quiesce(timeoutMs = 60_000): Promise<void> {
    let last = '';
    await waitFor(
      async () => {
        const jsm = await (await this.nats()).jetstreamManager();
        const steps = (await jsm.streams.info(Streams.steps.name)).state.messages;
        const consumers = await jsm.consumers.list(Streams.results.name).next();
        const busy = consumers.filter((c) => c.num_pending > 0 || c.num_ack_pending > 0);
        last = `${steps} dispatches in ${Streams.steps.name}; ${busy.map((c) => `${c.name}: ${c.num_pending} pending, ${c.num_ack_pending} unacked`).join('; ') || 'results drained'}`;
        return steps === 0 && busy.length === 0;
      },
      { timeoutMs, intervalMs: 250, what: 'JetStream to drain' },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last state: ${last}`);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Service instances

  private async instance(name: ServiceName, index: number): Promise<Instance> {
    let inst = this.instances.get(key(name, index));
    if (!inst) {
      const http = await this.port();
      const grpc = DefaultPorts[name].grpc === undefined ? undefined : await this.port();
      inst = {
        name,
        index,
        http,
        grpc,
        dataDir: join(this.dir, 'data', `${name}-${index}`),
        logFile: join(this.dir, 'logs', `${name}-${index}.log`),
      };
      this.instances.set(key(name, index), inst);
    }
    return inst;
  }

  /** A free loopback port no other part of this cluster was given. */
  private async port(): Promise<number> {
    for (let tries = 0; tries < 200; tries++) {
      const port = PORT_RANGE.from + Math.floor(Math.random() * (PORT_RANGE.to - PORT_RANGE.from));
      if (this.ports.has(port) || !(await portFree(port))) continue;
      this.ports.add(port);
      return port;
    }
    throw new Error(`no free port on 127.0.0.1 in ${PORT_RANGE.from}-${PORT_RANGE.to}`);
  }

  private peerAddress(peer: GrpcPeer): string {
    const grpc = this.instances.get(key(peer, 0))?.grpc;
    if (grpc === undefined) throw new Error(`no gRPC port for ${peer}`);
    return `127.0.0.1:${grpc}`;
  }

  private envFor(inst: Instance, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NODE_ENV: 'development',
      LOG_LEVEL: this.opts.logLevel ?? 'warn',
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: String(inst.http),
      GRPC_HOST: '127.0.0.1',
      DATA_DIR: inst.dataDir,
      NATS_URL: this.natsUrl,
      DATABASE_URL: this.databaseUrl(inst.name),
      ZIGGIE_JWT_SECRET: this.jwtSecret,
      JWT_ISSUER,
      JWT_AUDIENCE,
      ZIGGIE_SEED: 'default',
      MCP_SERVERS_FILE: this.mcpServersFile,
      SHUTDOWN_GRACE_MS: '3000',
      ...Object.fromEntries((Object.keys(GrpcPeers) as GrpcPeer[]).map((p) => [GrpcPeers[p], this.peerAddress(p)])),
      ...CHAOS_ENV[inst.name],
      ...this.opts.env,
      ...this.opts.serviceEnv?.[inst.name],
      ...extra,
    };
    delete env.PRETTY_LOGS;
    // An inherited GRPC_PORT would make a service without gRPC collide with one that has it.
    if (inst.grpc === undefined) delete env.GRPC_PORT;
    else env.GRPC_PORT = String(inst.grpc);
    return env;
  }

  /** Starts one instance (same ports as its previous run) and waits for /readyz. No-op if running. */
  async start(name: ServiceName, opts: { instance?: number; env?: Record<string, string> } = {}): Promise<InstanceInfo> {
    if (this.stopped) throw new Error('cluster is stopped');
    const inst = await this.instance(name, opts.instance ?? 0);
    if (inst.proc && !inst.proc.exited) return this.info(name, inst.index);
    await mkdir(inst.dataDir, { recursive: true });
    const fd = openSync(inst.logFile, 'a', 0o600);
    let proc: TrackedProcess;
    try {
      writeSync(fd, `\n===== start ${new Date().toISOString()} =====\n`);
      proc = await spawnTracked(process.execPath, [join(REPO_ROOT, 'services', name, 'dist', 'main.js')], {
        cwd: REPO_ROOT,
        env: this.envFor(inst, opts.env),
        stdio: ['ignore', fd, fd],
        detached: true,
      });
    } finally {
      closeSync(fd);
    }
    inst.proc = proc;
    const readyz = `http://127.0.0.1:${inst.http}/readyz`;
    try {
      await waitFor(
        async () => {
          // An exit ends the wait at once (a throwing predicate would only count as "not yet").
          if (proc.exited) return true;
          const res = await fetch(readyz, { signal: AbortSignal.timeout(2_000) });
          await res.text();
          return res.status === 200;
        },
        { timeoutMs: this.opts.readyTimeoutMs ?? 60_000, intervalMs: 150, what: `${key(name, inst.index)} at ${readyz}` },
      );
      if (proc.exited) {
        const { code, signal } = await proc.exit;
        throw new Error(`${key(name, inst.index)} exited before it was ready (code ${code}, signal ${signal})`);
      }
    } catch (err) {
      await this.stopInstance(inst, 2_000);
      throw new Error(`${(err as Error).message}\n--- ${inst.logFile} ---\n${await this.logTail(name, inst.index)}`);
    }
    return this.info(name, inst.index);
  }

  /**
   * Sends `signal` to one instance (and whatever it started). SIGKILL waits until it is gone;
   * SIGSTOP freezes it until `kill(name, 'SIGCONT')`.
   */
  async kill(name: ServiceName, signal: NodeJS.Signals = 'SIGKILL', opts: { instance?: number } = {}): Promise<void> {
    const inst = this.instances.get(key(name, opts.instance ?? 0));
    if (!inst?.proc || inst.proc.exited) throw new Error(`${key(name, opts.instance ?? 0)} is not running`);
    signalGroup(inst.proc, signal);
    if (signal === 'SIGKILL' && !(await exitedWithin(inst.proc, 10_000))) {
      throw new Error(`${key(name, inst.index)} (pid ${inst.proc.pid}) did not exit after SIGKILL`);
    }
  }

  /** Graceful stop (SIGTERM, SIGKILL of the group after `graceMs`). No-op when not running. */
  async stopService(name: ServiceName, opts: { instance?: number; graceMs?: number } = {}): Promise<void> {
    const inst = this.instances.get(key(name, opts.instance ?? 0));
    if (inst) await this.stopInstance(inst, opts.graceMs ?? 10_000);
  }

  private async stopInstance(inst: Instance, graceMs: number): Promise<void> {
    const proc = inst.proc;
    if (!proc) return;
    if (!proc.exited) {
      signalGroup(proc, 'SIGCONT');
      proc.child.kill('SIGTERM');
      if (!(await exitedWithin(proc, graceMs))) signalGroup(proc, 'SIGKILL');
      await exitedWithin(proc, 5_000);
    }
    // Whatever it started and left behind in its group.
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // nothing left
    }
  }

  /** Stops one instance (gracefully, or with `signal`) and starts it again on the same ports. */
  async restart(name: ServiceName, opts: { instance?: number; signal?: NodeJS.Signals; env?: Record<string, string> } = {}): Promise<InstanceInfo> {
    const inst = this.instances.get(key(name, opts.instance ?? 0));
    if (inst?.proc && !inst.proc.exited) {
      if (opts.signal) await this.kill(name, opts.signal, opts);
      if (!inst.proc.exited) await this.stopInstance(inst, 10_000);
    }
    return this.start(name, opts);
  }

  /** Makes exactly instances 0..count-1 of a service run (starting or gracefully stopping). */
  async scale(name: ServiceName, count: number): Promise<void> {
    const extra = [...this.instances.values()].filter((i) => i.name === name && i.index >= count);
    await Promise.all(extra.map((i) => this.stopInstance(i, 10_000)));
    await Promise.all(Array.from({ length: count }, (_, i) => this.start(name, { instance: i })));
  }

  info(name: ServiceName, instance = 0): InstanceInfo {
    const inst = this.instances.get(key(name, instance));
    if (!inst) throw new Error(`${key(name, instance)} was never started`);
    const running = !!inst.proc && !inst.proc.exited;
    return { name, instance, http: inst.http, grpc: inst.grpc, pid: running ? inst.proc!.pid : undefined, running, logFile: inst.logFile };
  }

  /** The last lines of an instance's log (all its runs). */
  async logTail(name: ServiceName, instance = 0, lines = 40): Promise<string> {
    const inst = this.instances.get(key(name, instance));
    if (!inst) return '(never started)';
    try {
      const fh = await open(inst.logFile, 'r');
      try {
        const { size } = await fh.stat();
        const length = Math.min(size, 256 * 1024);
        const buf = Buffer.alloc(length);
        await fh.read(buf, 0, length, size - length);
        return buf.toString('utf8').split('\n').slice(-lines).join('\n');
      } finally {
        await fh.close();
      }
    } catch {
      return '(no log output)';
    }
  }

  /** Log tails of every instance of the given services, for failure messages. */
  async logs(names: ServiceName[], lines = 30): Promise<string> {
    const parts: string[] = [];
    for (const inst of this.instances.values()) {
      if (!names.includes(inst.name)) continue;
      parts.push(`--- ${key(inst.name, inst.index)} (${inst.logFile}) ---\n${await this.logTail(inst.name, inst.index, lines)}`);
    }
    return parts.join('\n');
  }

  async metrics(name: ServiceName, instance = 0): Promise<string> {
    const inst = this.info(name, instance);
    const res = await fetch(`http://127.0.0.1:${inst.http}/metrics`, { signal: AbortSignal.timeout(5_000) });
    if (res.status !== 200) throw new Error(`GET /metrics of ${key(name, instance)}: ${res.status}`);
    return res.text();
  }

  async ready(name: ServiceName, instance = 0): Promise<boolean> {
    const inst = this.info(name, instance);
    try {
      const res = await fetch(`http://127.0.0.1:${inst.http}/readyz`, { signal: AbortSignal.timeout(2_000) });
      await res.text();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  get gatewayUrl(): string {
    return `http://127.0.0.1:${this.info('gateway').http}`;
  }

  // -------------------------------------------------------------------------------------------
  // Orchestrator: gRPC and SQL

  private orchestratorClient(instance: number): pb.OrchestratorClient {
    let client = this.orchestratorClients.get(instance);
    if (!client) {
      const inst = this.info('orchestrator', instance);
      client = createGrpcClient(pb.OrchestratorClient, `127.0.0.1:${inst.grpc}`);
      this.orchestratorClients.set(instance, client);
    }
    return client;
  }

  /** SubmitTask over gRPC to one orchestrator instance, as CLUSTER_PRINCIPAL. */
  async submitTask(task: TaskSpec, opts: { instance?: number } = {}): Promise<pb.Task> {
    const client = this.orchestratorClient(opts.instance ?? 0);
    const request = pb.SubmitTaskRequest.fromPartial({
      title: task.title ?? '',
      workspace: task.workspace,
      priority: task.priority ?? 'P1',
      plan: { steps: task.steps.map((s) => pb.PlanStep.fromPartial({ action: 'tool', ...s })) },
      principal: CLUSTER_PRINCIPAL,
    });
    return callUnary(client.submitTask.bind(client), request, { timeoutMs: 15_000, peer: 'orchestrator' });
  }

  async getTask(id: string, opts: { instance?: number } = {}): Promise<pb.Task> {
    const client = this.orchestratorClient(opts.instance ?? 0);
    return callUnary(client.getTask.bind(client), pb.GetTaskRequest.fromPartial({ id, principal: CLUSTER_PRINCIPAL }), { timeoutMs: 10_000, peer: 'orchestrator' });
  }

  /** A query against one service's database (the orchestrator's by default). */
  async sql<R extends object = Record<string, unknown>>(text: string, params: unknown[] = [], service: ServiceName = 'orchestrator'): Promise<R[]> {
    let pool = this.pools.get(service);
    if (!pool) {
      pool = new Pool({ connectionString: this.databaseUrl(service), max: 2, connectionTimeoutMillis: 5_000, idleTimeoutMillis: 5_000 });
      pool.on('error', () => undefined);
      this.pools.set(service, pool);
    }
    return (await pool.query(text, params)).rows as R[];
  }

  /**
   * Waits (bounded) until every task is in the orchestrator's database and terminal; read from
   * the database, so it works whichever orchestrator is alive. The timeout error lists what is
   * still open, step by step, with the orchestrators' log tails.
   */
  async waitForTasksTerminal(ids: readonly string[], opts: { timeoutMs?: number } = {}): Promise<Map<string, TaskRowSummary>> {
    const timeoutMs = opts.timeoutMs ?? 120_000;
    let rows: TaskRowSummary[] = [];
    try {
      await waitFor(
        async () => {
          rows = await this.sql<TaskRowSummary>('select id, status, error_code, error_message from tasks where id = any($1)', [ids]);
          return rows.length === ids.length && rows.every((r) => (TERMINAL_TASK_STATUSES as readonly string[]).includes(r.status));
        },
        { timeoutMs, intervalMs: 250, what: `${ids.length} tasks to reach a terminal state` },
      );
    } catch (err) {
      const found = new Set(rows.map((r) => r.id));
      const open = rows.filter((r) => !(TERMINAL_TASK_STATUSES as readonly string[]).includes(r.status)).map((r) => r.id);
      const steps = open.length
        ? await this.sql<StepRowSummary>(`select task_id, id, status, attempt, wave, error_code || ': ' || error_message as error from steps where task_id = any($1) and status not in ($2, $3) order by task_id, wave, id`, [open.slice(0, 10), 'succeeded', 'cancelled']).catch(() => [])
        : [];
      const detail = [
        `missing: ${ids.filter((id) => !found.has(id)).join(', ') || 'none'}`,
        `not terminal (${open.length}): ${open.slice(0, 10).join(', ')}${open.length > 10 ? ', ...' : ''}`,
        ...steps.map((s) => `  ${s.task_id} ${s.id} wave ${s.wave} ${s.status} attempt ${s.attempt}${s.error ? ` (${s.error})` : ''}`),
        await this.logs(['orchestrator', 'agent-runtime']),
      ].join('\n');
      throw new Error(`${(err as Error).message}\n${detail}`);
    }
    return new Map(rows.map((r) => [r.id, r]));
  }

  // -------------------------------------------------------------------------------------------

  /** Stops every instance, nats-server and PostgreSQL, and removes the temp directory. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const c of this.orchestratorClients.values()) c.close();
    this.orchestratorClients.clear();
    const nc = this.natsClient;
    this.natsClient = undefined;
    if (nc) await nc.then((c) => c.close()).catch(() => undefined);
    await Promise.all([...this.pools.values()].map((p) => p.end().catch(() => undefined)));
    this.pools.clear();
    for (const name of [...START_ORDER].reverse()) {
      await Promise.all([...this.instances.values()].filter((i) => i.name === name).map((i) => this.stopInstance(i, 5_000)));
    }
    if (this.natsPid !== undefined) await this.killNats('SIGTERM').catch(() => undefined);
    await this.dropDatabases();
    await this.postgres.stop();
    if (process.env.ZIGGIE_KEEP_CLUSTER_DIR) process.stderr.write(`cluster directory kept: ${this.dir}\n`);
    else await rm(this.dir, { recursive: true, force: true });
  }
}

export function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  return Cluster.start(opts);
}
