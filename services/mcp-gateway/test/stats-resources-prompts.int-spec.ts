import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pb } from '@ziggie/contracts';
import { bootstrapService, callStream, callUnary, createGrpcClient, RunningService } from '@ziggie/platform';
import { definition } from '../src/service';
import { startNats, waitFor, type NatsServerHandle } from '../../../test/support';

const everything = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist/index.js');

const agent: pb.Principal = { subject: 'agent@test', roles: ['l2l3'], workspaces: ['ziggie'] };
const elsewhere: pb.Principal = { subject: 'other@test', roles: ['l2l3'], workspaces: ['other'] };
const admin: pb.Principal = { subject: 'admin@test', roles: ['admin'], workspaces: ['*'] };
const SLOW = 'everything.trigger-long-running-operation';
const SUM = 'everything.get-sum';

async function call(client: pb.McpGatewayClient, name: string, args: Record<string, unknown>, timeoutMs = 10_000): Promise<'ok' | 'error'> {
  try {
    for await (const e of callStream(client.callTool.bind(client), { name, arguments: args, principal: agent, workspace: 'ziggie', correlationId: 'stats', timeoutMs })) {
      if (e.event?.$case === 'result') return e.event.value.isError ? 'error' : 'ok';
    }
    throw new Error('no result');
  } catch (err) {
    if ((err as { code?: unknown }).code === 'UPSTREAM_TIMEOUT') return 'error';
    throw err;
  }
}

describe('mcp-gateway tool call figures (two replicas sharing JetStream KV), resources and prompts of server-everything', () => {
  let dir: string;
  let nats: NatsServerHandle;
  const replicas: { svc: RunningService; grpc: pb.McpGatewayClient }[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ziggie-mcp-stats-'));
    nats = await startNats();
    const serversFile = join(dir, 'servers.json');
    writeFileSync(
      serversFile,
      JSON.stringify({
        servers: [
          { name: 'everything', transport: 'stdio', command: process.execPath, args: [everything, 'stdio'] },
          { name: 'vault', transport: 'stdio', command: process.execPath, args: [everything, 'stdio'], acl: { roles: ['admin'] } },
        ],
      }),
    );
    for (let i = 0; i < 2; i++) {
      const svc = await bootstrapService(definition, {
        ZIGGIE_JWT_SECRET: 'integration-secret-0123456789',
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: '0',
        GRPC_HOST: '127.0.0.1',
        GRPC_PORT: '0',
        LOG_LEVEL: 'warn',
        NATS_URL: nats.url,
        MCP_SERVERS_FILE: serversFile,
        MCP_STATS_FLUSH_MS: '200',
        DATA_DIR: mkdtempSync(join(dir, 'data-')),
      });
      await waitFor(async () => (await fetch(`http://127.0.0.1:${svc.httpPort}/readyz`)).status === 200, { timeoutMs: 30_000, what: 'upstreams ready' });
      replicas.push({ svc, grpc: createGrpcClient(pb.McpGatewayClient, `127.0.0.1:${svc.grpcPort}`) });
    }
  }, 90_000);

  afterAll(async () => {
    for (const r of replicas) {
      r.grpc.close();
      await r.svc.stop();
    }
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('counts calls, failures and latency buckets per tool, and merges the windows of both replicas', async () => {
    const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    // Four calls of 300 ms on replica A, and one cut off by its 150 ms time limit (a failure).
    for (let i = 0; i < 4; i++) expect(await call(a.grpc, SLOW, { duration: 0.3, steps: 1 })).toBe('ok');
    expect(await call(a.grpc, SLOW, { duration: 2, steps: 1 }, 150)).toBe('error');
    // Two quick ones on replica B.
    for (let i = 0; i < 2; i++) expect(await call(b.grpc, SUM, { a: 1, b: 2 })).toBe('ok');

    const stats = (client: pb.McpGatewayClient, principal = agent, workspace = '') => callUnary(client.getToolStats.bind(client), { principal, workspace });
    // Each replica answers with its own live window plus the other's shared one (every 200 ms).
    for (const r of [a, b]) {
      await waitFor(async () => (await stats(r.grpc)).total5m?.calls === 7, { timeoutMs: 10_000, what: 'both windows merged' });
      const s = await stats(r.grpc);
      expect(s.replicas).toBe(2);
      expect(s.items.map((t) => t.tool)).toEqual([SLOW, SUM]);
      const slow = s.items[0]!;
      expect(slow.server).toBe('everything');
      expect(slow.last5m).toMatchObject({ minutes: 5, calls: 5, errors: 1 });
      expect(slow.last60m).toMatchObject({ minutes: 60, calls: 5, errors: 1 });
      // Four of five calls in the (250, 500] ms bucket: the p95 and the median fall inside it.
      expect(slow.last5m!.p95Ms).toBeGreaterThan(250);
      expect(slow.last5m!.p95Ms).toBeLessThanOrEqual(500);
      expect(slow.last5m!.p50Ms).toBeGreaterThan(250);
      expect(slow.last5m!.callsPerMinute).toBeGreaterThan(1);
      const sum = s.items[1]!;
      expect(sum.last5m).toMatchObject({ calls: 2, errors: 0 });
      expect(sum.last5m!.p95Ms).toBeLessThan(250);
      expect(s.total5m).toMatchObject({ calls: 7, errors: 1 });
      expect(s.bucketBoundsMs).toEqual([1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000]);
    }
    // Scoped to the token's workspaces: calls in "ziggie" are not another workspace's figures.
    const other = await stats(b.grpc, elsewhere);
    expect(other.items).toEqual([]);
    expect(other.total5m).toMatchObject({ calls: 0 });
    expect(other.total5m!.p95Ms).toBeUndefined();
    expect((await stats(b.grpc, admin, 'ziggie')).total5m?.calls).toBe(7);
    await expect(stats(b.grpc, agent, 'other')).rejects.toMatchObject({ code: 'AUTH_WORKSPACE_FORBIDDEN' });
    await expect(stats(b.grpc, { subject: 'nobody', roles: [], workspaces: ['ziggie'] })).rejects.toMatchObject({ code: 'AUTH_FORBIDDEN' });
  }, 60_000);

  it('lists, reads and gets server-everything\'s resources and prompts, with the tool call permissions', async () => {
    const { grpc } = replicas[0]!;
    const resources = await callUnary(grpc.listResources.bind(grpc), { principal: agent, page: { limit: 100, cursor: '' }, server: '', workspace: '' });
    expect(resources.total).toBeGreaterThan(0);
    // The server behind an admin-only ACL lists the same documents; the agent sees them once, from everything.
    expect(new Set(resources.items.map((r) => r.server))).toEqual(new Set(['everything']));
    const doc = resources.items.find((r) => r.uri.startsWith('demo://resource/static/document/'))!;
    expect(doc).toMatchObject({ server: 'everything', name: expect.any(String) as string });
    expect(resources.templates.map((t) => t.uriTemplate)).toContain('demo://resource/dynamic/text/{resourceId}');

    const read = await callUnary(grpc.readResource.bind(grpc), { principal: agent, workspace: 'ziggie', uri: doc.uri });
    const contents = (read.result as { contents: { uri: string; text?: string }[] }).contents;
    expect(contents[0]).toMatchObject({ uri: doc.uri });
    expect(contents[0]!.text!.length).toBeGreaterThan(0);
    const dynamic = await callUnary(grpc.readResource.bind(grpc), { principal: agent, workspace: 'ziggie', uri: 'demo://resource/dynamic/text/3' });
    expect(JSON.stringify(dynamic.result)).toContain('demo://resource/dynamic/text/3');
    await expect(callUnary(grpc.readResource.bind(grpc), { principal: agent, workspace: 'ziggie', uri: 'demo://nowhere/1' })).rejects.toMatchObject({ code: 'RESOURCE_NOT_FOUND' });
    await expect(callUnary(grpc.readResource.bind(grpc), { principal: agent, workspace: 'other', uri: doc.uri })).rejects.toMatchObject({ code: 'AUTH_WORKSPACE_FORBIDDEN' });
    // A server hidden by its ACL lists nothing, as an unknown one: its existence is not told.
    for (const server of ['vault', 'nope']) expect(await callUnary(grpc.listResources.bind(grpc), { principal: agent, page: { limit: 10, cursor: '' }, server, workspace: '' })).toMatchObject({ items: [], total: 0, templates: [] });
    const vault = await callUnary(grpc.listPrompts.bind(grpc), { principal: admin, page: { limit: 10, cursor: '' }, server: 'vault', workspace: '' });
    expect(vault.items.map((p) => p.name)).toContain('vault.args-prompt');

    const prompts = await callUnary(grpc.listPrompts.bind(grpc), { principal: agent, page: { limit: 100, cursor: '' }, server: 'everything', workspace: '' });
    const args = prompts.items.find((p) => p.name === 'everything.args-prompt');
    expect(args).toMatchObject({ server: 'everything', arguments: [expect.objectContaining({ name: 'city', required: true }), expect.objectContaining({ name: 'state', required: false })] });
    const got = await callUnary(grpc.getPrompt.bind(grpc), { principal: agent, workspace: 'ziggie', name: 'everything.args-prompt', arguments: { city: 'Lyon' } });
    expect((got.result as { messages: { role: string; content: { text: string } }[] }).messages[0]).toMatchObject({ role: 'user', content: { text: "What's weather in Lyon?" } });
    await expect(callUnary(grpc.getPrompt.bind(grpc), { principal: agent, workspace: 'ziggie', name: 'everything.args-prompt', arguments: {} })).rejects.toMatchObject({
      code: 'PROMPT_INVALID_ARGUMENTS',
      message: expect.stringContaining('city is required') as string,
    });
    await expect(callUnary(grpc.getPrompt.bind(grpc), { principal: agent, workspace: 'ziggie', name: 'everything.args-prompt', arguments: { city: 'Lyon', country: 'FR' } })).rejects.toMatchObject({ code: 'PROMPT_INVALID_ARGUMENTS' });
    await expect(callUnary(grpc.getPrompt.bind(grpc), { principal: agent, workspace: 'ziggie', name: 'everything.nope', arguments: {} })).rejects.toMatchObject({ code: 'PROMPT_NOT_FOUND' });
    await expect(callUnary(grpc.getPrompt.bind(grpc), { principal: agent, workspace: 'ziggie', name: 'vault.args-prompt', arguments: { city: 'Lyon' } })).rejects.toMatchObject({ code: 'PROMPT_NOT_FOUND' });
    await expect(callUnary(grpc.listPrompts.bind(grpc), { principal: { subject: 'nobody', roles: [], workspaces: ['ziggie'] }, page: { limit: 10, cursor: '' }, server: '', workspace: '' })).rejects.toMatchObject({ code: 'AUTH_FORBIDDEN' });
  }, 60_000);
});
