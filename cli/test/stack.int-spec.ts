/**
 * startStack against a real nats-server and six stand-in services (tiny HTTP servers that
 * behave like the real ones at the edges startStack cares about: /readyz, exit codes, SIGTERM).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { verify } from 'jsonwebtoken';
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
  'ORCHESTRATOR_GRPC_ADDR', 'AGENT_REGISTRY_GRPC_ADDR', 'WORKSPACE_COORD_GRPC_ADDR', 'MCP_GATEWAY_GRPC_ADDR', 'EXTRA'),
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
    expect(Object.keys(handle.pids).sort()).toEqual(['nats-server', ...StartOrder].sort());
    for (const name of ['nats-server', ...StartOrder]) {
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
      },
    });
    const gatewayBoot = (await readFile(join(dataDir, 'logs', 'gateway.log'), 'utf8')).split('\n').find((l) => l.startsWith('{"boot"'));
    expect(JSON.parse(gatewayBoot ?? '{}').env.GRPC_PORT).toBeUndefined();

    const health = await fetch(`http://127.0.0.1:${ports.natsMonitor}/healthz?js-enabled-only=true`);
    expect(health.status).toBe(200);
    expect(JSON.parse(await readFile(join(dataDir, 'stack.json'), 'utf8'))).toMatchObject({ pid: process.pid });

    const pids = Object.values(handle.pids);
    const stopEvents: string[] = [];
    events.length = 0;
    await handle.stop();
    for (const e of events) if (e.kind === 'stopped') stopEvents.push(e.name);
    expect(stopEvents).toEqual([...[...StartOrder].reverse(), 'nats-server']);
    await expect(handle.waitForExit()).resolves.toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    await expect(stat(join(dataDir, 'stack.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(join(dataDir, 'logs', 'gateway.log'), 'utf8')).toContain('SIGTERM, shutting down');

    // A second start on the same directory reuses its secret and NATS store.
    const secret = handle.jwtSecret;
    handle = await startStack({ dataDir, ports: await allocateFreePorts(), repoRoot: repo });
    expect(handle.jwtSecret).toBe(secret);
    expect((await stat(join(dataDir, 'nats', 'jetstream'))).isDirectory()).toBe(true);
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
      new RegExp(`processes of a previous stack from .* are still running: nats-server \\(pid ${handle.pids['nats-server']}\\), workspace-coord`),
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

  it('resolves paths from the repository root', () => {
    expect(resolve(REPO_ROOT, 'cli', 'src', 'stack.ts')).toBe(join(__dirname, '..', 'src', 'stack.ts'));
  });
});
