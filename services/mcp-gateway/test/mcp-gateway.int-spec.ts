import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pb, ZiggieError } from '@ziggie/contracts';
import { bootstrapService, callStream, callUnary, createGrpcClient, RunningService } from '@ziggie/platform';
import { definition } from '../src/service';
import { waitFor } from '../../../test/support';

const everything = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist/index.js');
/** The stdio upstreams this test process spawned (children of this process only). */
function upstreamChildren(): string[] {
  return execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)])
    .toString()
    .split('\n')
    .filter((l) => l.includes(everything))
    .map((l) => l.trim().split(/\s+/)[0]!);
}

const caller: pb.Principal = { subject: 'agent@test', roles: ['l2l3'], workspaces: ['ziggie'] };

describe('mcp-gateway with the real server-everything over stdio', () => {
  let dir: string;
  let svc: RunningService;
  let client: pb.McpGatewayClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ziggie-mcp-'));
    const serversFile = join(dir, 'servers.json');
    writeFileSync(serversFile, JSON.stringify({ servers: [{ name: 'everything', transport: 'stdio', command: process.execPath, args: [everything, 'stdio'] }] }));
    svc = await bootstrapService(definition, {
      ZIGGIE_JWT_SECRET: 'integration-secret-0123',
      HTTP_PORT: '0',
      GRPC_PORT: '0',
      LOG_LEVEL: 'warn',
      MCP_SERVERS_FILE: serversFile,
      DATA_DIR: dir,
    });
    client = createGrpcClient(pb.McpGatewayClient, `127.0.0.1:${svc.grpcPort}`);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${svc.httpPort}/readyz`)).status === 200, { timeoutMs: 20_000, what: 'upstream ready' });
  }, 40_000);

  afterAll(async () => {
    client?.close();
    await svc?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 20_000);

  it('lists the upstream tools namespaced server.tool, paginated', async () => {
    const first = await callUnary(client.listTools.bind(client), { principal: caller, page: { limit: 3, cursor: '' }, server: '' });
    expect(first.items).toHaveLength(3);
    expect(first.total).toBeGreaterThan(5);
    expect(first.nextCursor).not.toBe('');
    const all = await callUnary(client.listTools.bind(client), { principal: caller, page: { limit: 500, cursor: '' }, server: '' });
    const names = all.items.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['everything.echo', 'everything.get-sum', 'everything.trigger-long-running-operation']));
    expect(names.every((n) => n.startsWith('everything.') && n.length <= 64)).toBe(true);
  });

  it('calls a tool and returns its MCP result', async () => {
    const events: pb.CallToolEvent[] = [];
    for await (const e of callStream(client.callTool.bind(client), { name: 'everything.get-sum', arguments: { a: 2, b: 40 }, principal: caller, workspace: 'ziggie', correlationId: 'c1', timeoutMs: 5000 })) events.push(e);
    expect(events).toHaveLength(1);
    const result = events[0]!.event;
    expect(result?.$case).toBe('result');
    expect(JSON.stringify(result?.value)).toContain('42');
  });

  it('relays progress notifications before the result', async () => {
    const cases: string[] = [];
    for await (const e of callStream(client.callTool.bind(client), { name: 'everything.trigger-long-running-operation', arguments: { duration: 1, steps: 3 }, principal: caller, workspace: 'ziggie', correlationId: 'c2', timeoutMs: 10_000 })) {
      cases.push(e.event?.$case ?? 'none');
    }
    expect(cases[cases.length - 1]).toBe('result');
    expect(cases.filter((c) => c === 'progress').length).toBeGreaterThanOrEqual(2);
  });

  it('answers unknown tools and callers without mcp:call with stable codes', async () => {
    const unknown = callStream(client.callTool.bind(client), { name: 'everything.nope', arguments: {}, principal: caller, workspace: 'ziggie', correlationId: '', timeoutMs: 1000 });
    await expect(unknown.next()).rejects.toMatchObject({ code: 'TOOL_NOT_FOUND' });
    const denied = callUnary(client.listTools.bind(client), { principal: { subject: 'x', roles: [], workspaces: ['*'] }, page: undefined, server: '' });
    await expect(denied).rejects.toBeInstanceOf(ZiggieError);
    await expect(denied).rejects.toMatchObject({ code: 'AUTH_FORBIDDEN' });
  });

  it('reports the upstream in ListServers and restarts a killed stdio server', async () => {
    const servers = await callUnary(client.listServers.bind(client), { principal: caller });
    expect(servers.items).toEqual([expect.objectContaining({ name: 'everything', transport: 'stdio', status: 'ready' })]);
    const pids = upstreamChildren();
    expect(pids.length).toBe(1);
    process.kill(Number(pids[0]), 'SIGKILL');
    await waitFor(async () => (await callUnary(client.listServers.bind(client), { principal: caller })).items[0]!.status !== 'ready', { timeoutMs: 5000, what: 'upstream to drop' });
    await waitFor(async () => (await callUnary(client.listServers.bind(client), { principal: caller })).items[0]!.status === 'ready', { timeoutMs: 15_000, what: 'upstream to come back' });
    const after = upstreamChildren();
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(pids[0]);
  }, 30_000);
});
