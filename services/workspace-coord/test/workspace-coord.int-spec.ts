import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cursors, DEFAULT_WORKSPACES, pb } from '@ziggie/contracts';
import { sleep, startNats, startPostgres, waitFor, type NatsServerHandle, type PostgresHandle } from '../../../test/support';
import { ADMIN, CoordApi, freshDatabase, Instance, InstanceOptions, rejection, serveWorkspaceStats, startInstance, StatsOrchestrator, whenDisconnected } from './harness';

const OPS: pb.Principal = { subject: 'ops@test', roles: ['l1'], workspaces: ['*'] };
const secondsFromNow = (iso: string) => (Date.parse(iso) - Date.now()) / 1000;

describe('workspace-coord on a PostgreSQL server, with an orchestrator serving only GetWorkspaceStats', () => {
  let dir: string;
  let nats: NatsServerHandle;
  let pg: PostgresHandle | undefined;
  let orchestrator: StatsOrchestrator;
  let options: InstanceOptions;
  let coord: Instance;
  let api: CoordApi;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ziggie-wc-'));
    nats = await startNats();
    pg = await startPostgres();
    orchestrator = await serveWorkspaceStats();
    options = {
      natsUrl: nats.url,
      databaseUrl: await freshDatabase(pg),
      dataDir: dir,
      orchestrator: orchestrator.address,
      env: { HEALTH_INTERVAL_SECONDS: '1', LEASE_SWEEP_INTERVAL_SECONDS: '1' },
    };
    coord = await startInstance(options);
    api = coord.api;
  }, 120_000);

  afterAll(async () => {
    await coord?.stop();
    await orchestrator?.stop();
    if (pg) await whenDisconnected(pg, [options?.databaseUrl]);
    await pg?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('seeds the default workspaces with port blocks in their listed order, and the pools', async () => {
    const list = await api.listWorkspaces({ page: { limit: 100, cursor: '' } });
    expect(list.total).toBe(5);
    const byId = new Map(list.items.map((w) => [w.id, w]));
    expect(DEFAULT_WORKSPACES.map((w) => byId.get(w.id)!.portRange)).toEqual([
      { start: 20_000, end: 20_099 },
      { start: 20_100, end: 20_199 },
      { start: 20_200, end: 20_299 },
      { start: 20_300, end: 20_399 },
      { start: 20_400, end: 20_499 },
    ]);
    const meow = byId.get('meowping-nft')!;
    expect(meow).toMatchObject({ name: 'MeowPing NFT', priority: 'P1', owner: 'meowping', health: 'on-track', healthReasons: ['all clear'], dependsOn: ['ziggie', 'ai-game-dev'], description: '' });
    expect(Date.parse(meow.createdAt)).toBeGreaterThan(Date.now() - 120_000);
    expect(Date.parse(meow.updatedAt)).toBeGreaterThan(Date.now() - 120_000);
    expect((await api.listPools()).items).toEqual([
      { name: 'comfyui', kind: 'comfyui', capacity: 1, reservedP0: 0, inUse: 0, leases: 0, description: '', updatedAt: expect.any(String) },
      { name: 'gpu', kind: 'gpu', capacity: 4, reservedP0: 0, inUse: 0, leases: 0, description: '', updatedAt: expect.any(String) },
    ]);
  });

  it('creates workspaces with the next free block or a given range, and refuses bad ones', async () => {
    expect(await api.createWorkspace({ id: 'render-farm', name: 'Render farm', priority: 'P2', description: 'GPU renders', dependsOn: ['ziggie'] })).toMatchObject({
      id: 'render-farm',
      name: 'Render farm',
      priority: 'P2',
      owner: 'admin@test',
      description: 'GPU renders',
      dependsOn: ['ziggie'],
      portRange: { start: 20_500, end: 20_599 },
      health: 'on-track',
      healthReasons: ['all clear'],
    });
    expect(await api.createWorkspace({ id: 'edge', name: 'Edge', owner: 'netops', portRange: { start: 30_000, end: 30_009 } })).toMatchObject({
      priority: 'P1',
      owner: 'netops',
      portRange: { start: 30_000, end: 30_009 },
    });
    // The next automatic block skips nothing it does not have to.
    expect((await api.createWorkspace({ id: 'chain-a', name: 'Chain A' })).portRange).toEqual({ start: 20_600, end: 20_699 });

    const refusals = await Promise.all([
      rejection(api.createWorkspace({ id: 'edge', name: 'Edge again' })),
      rejection(api.createWorkspace({ id: 'overlap', name: 'Overlap', portRange: { start: 30_005, end: 30_020 } })),
      rejection(api.createWorkspace({ id: 'Bad_Id', name: 'Bad' })),
      rejection(api.createWorkspace({ id: 'no-name', name: '  ' })),
      rejection(api.createWorkspace({ id: 'bad-priority', name: 'x', priority: 'P9' })),
      rejection(api.createWorkspace({ id: 'lonely', name: 'x', dependsOn: ['ghost', 'phantom'] })),
      rejection(api.createWorkspace({ id: 'narcissus', name: 'x', dependsOn: ['narcissus'] })),
      rejection(api.createWorkspace({ id: 'upside-down', name: 'x', portRange: { start: 100, end: 50 } })),
      rejection(api.createWorkspace({ id: 'anonymous', name: 'x' }, null)),
      rejection(api.createWorkspace({ id: 'not-allowed', name: 'x' }, OPS)),
      rejection(api.createWorkspace({ id: 'elsewhere', name: 'x' }, { ...ADMIN, workspaces: ['fitflow'] })),
    ]);
    expect(refusals.map((e) => [e.code, e.message])).toEqual([
      ['WORKSPACE_EXISTS', 'workspace edge already exists'],
      ['PORT_RANGE_OVERLAP', 'port range 30005-30020 overlaps 30000-30009 of workspace edge'],
      ['VALIDATION_FAILED', 'id: must match ^[a-z][a-z0-9-]{1,62}$'],
      ['VALIDATION_FAILED', 'name: required'],
      ['VALIDATION_FAILED', expect.stringContaining('priority:')],
      ['WORKSPACE_NOT_FOUND', 'unknown dependencies: ghost, phantom'],
      ['WORKSPACE_CYCLE', 'dependencies would form a cycle: narcissus → narcissus'],
      ['VALIDATION_FAILED', 'portRange.end: end must not be below start'],
      ['AUTH_FORBIDDEN', 'permission workspace:manage required'],
      ['AUTH_FORBIDDEN', 'permission workspace:manage required'],
      ['AUTH_WORKSPACE_FORBIDDEN', 'workspace elsewhere not allowed for this token'],
    ]);
    expect((await api.listWorkspaces()).total).toBe(8);
  });

  it('updates only the fields it is given, replaces dependencies when told, and names the cycle it refuses', async () => {
    const before = await api.getWorkspace('edge');
    await sleep(5);
    const renamed = await api.updateWorkspace({ id: 'edge', name: 'Edge nodes' });
    expect(renamed).toMatchObject({ name: 'Edge nodes', priority: 'P1', owner: 'netops', description: '', dependsOn: [], portRange: { start: 30_000, end: 30_009 } });
    expect(Date.parse(renamed.updatedAt)).toBeGreaterThan(Date.parse(before.updatedAt));
    expect(renamed.createdAt).toBe(before.createdAt);
    expect(await api.updateWorkspace({ id: 'edge', description: 'CDN', priority: 'P0' })).toMatchObject({ name: 'Edge nodes', description: 'CDN', priority: 'P0', owner: 'netops' });
    expect((await api.updateWorkspace({ id: 'edge', setDependsOn: true, dependsOn: ['ziggie', 'fitflow'] })).dependsOn).toEqual(['ziggie', 'fitflow']);
    // Without set_depends_on the list is ignored.
    expect((await api.updateWorkspace({ id: 'edge', dependsOn: ['simstudio'] })).dependsOn).toEqual(['ziggie', 'fitflow']);
    expect((await api.updateWorkspace({ id: 'edge', setDependsOn: true, dependsOn: [] })).dependsOn).toEqual([]);
    expect((await api.updateWorkspace({ id: 'edge', portRange: { start: 30_000, end: 30_019 } })).portRange).toEqual({ start: 30_000, end: 30_019 });

    await api.createWorkspace({ id: 'chain-b', name: 'Chain B', dependsOn: ['chain-a'] });
    await api.createWorkspace({ id: 'chain-c', name: 'Chain C', dependsOn: ['chain-b'] });
    const refusals = await Promise.all([
      rejection(api.updateWorkspace({ id: 'chain-a', setDependsOn: true, dependsOn: ['chain-c'] })),
      rejection(api.updateWorkspace({ id: 'ziggie', setDependsOn: true, dependsOn: ['fitflow', 'meowping-nft'] })),
      rejection(api.updateWorkspace({ id: 'edge', setDependsOn: true, dependsOn: ['ghost'] })),
      rejection(api.updateWorkspace({ id: 'ghost', name: 'Ghost' })),
      rejection(api.updateWorkspace({ id: 'edge', name: '' })),
      rejection(api.updateWorkspace({ id: 'edge', portRange: { start: 20_050, end: 20_060 } })),
      rejection(api.updateWorkspace({ id: 'edge', name: 'x' }, null)),
    ]);
    expect(refusals.map((e) => [e.code, e.message])).toEqual([
      ['WORKSPACE_CYCLE', 'dependencies would form a cycle: chain-a → chain-c → chain-b → chain-a'],
      ['WORKSPACE_CYCLE', 'dependencies would form a cycle: ziggie → meowping-nft → ziggie'],
      ['WORKSPACE_NOT_FOUND', 'unknown dependencies: ghost'],
      ['WORKSPACE_NOT_FOUND', 'workspace ghost not found'],
      ['VALIDATION_FAILED', 'name: required'],
      ['PORT_RANGE_OVERLAP', 'port range 20050-20060 overlaps 20000-20099 of workspace ziggie'],
      ['AUTH_FORBIDDEN', 'permission workspace:manage required'],
    ]);
    expect(refusals[0]!.extras).toEqual({ cycle: ['chain-a', 'chain-c', 'chain-b', 'chain-a'] });
    expect((await api.getWorkspace('ziggie')).dependsOn).toEqual([]);
    expect((await api.getWorkspace('chain-a')).dependsOn).toEqual([]);
  });

  it('lists in keyset pages, filtered by ids and by health', async () => {
    const all = (await api.listWorkspaces({ page: { limit: 500, cursor: '' } })).items.map((w) => w.id);
    expect(all).toEqual([...all].sort());
    expect(all).toHaveLength(10);
    const paged: string[] = [];
    let cursor = '';
    do {
      const page = await api.listWorkspaces({ page: { limit: 3, cursor } });
      expect(page.total).toBe(10);
      expect(page.items.length).toBeLessThanOrEqual(3);
      paged.push(...page.items.map((w) => w.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(paged).toEqual(all);
    const afterFitflow = Cursors.workspaces.encode({ id: 'fitflow' });
    expect((await api.listWorkspaces({ page: { limit: 2, cursor: afterFitflow } })).items.map((w) => w.id)).toEqual(all.filter((id) => id > 'fitflow').slice(0, 2));
    // A bare id, another list's cursor or garbage is not a cursor this list issued.
    for (const cursor of ['fitflow', '99999999999999999999', '-5', Cursors.tasks.encode({ offset: 1 })]) {
      await expect(api.listWorkspaces({ page: { limit: 2, cursor } })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/cursor/) });
    }

    const some = await api.listWorkspaces({ ids: ['ziggie', 'fitflow', 'nope'] });
    expect({ ids: some.items.map((w) => w.id), total: some.total, next: some.nextCursor }).toEqual({ ids: ['fitflow', 'ziggie'], total: 2, next: '' });
    expect((await api.listWorkspaces({ ids: ['*'] })).total).toBe(10);
    expect((await api.listWorkspaces({ health: 'on-track' })).total).toBe(10);
    expect((await api.listWorkspaces({ health: 'blocked' })).items).toEqual([]);
    expect((await rejection(api.listWorkspaces({ health: 'sunny' }))).code).toBe('VALIDATION_FAILED');
  });

  it('answers the workspaces affected by a change, transitively', async () => {
    expect(await api.affectedWorkspaces(['chain-a'])).toEqual({ workspaces: ['chain-a', 'chain-b', 'chain-c'], reasons: ['chain-b depends on chain-a', 'chain-c depends on chain-b'] });
    expect(await api.affectedWorkspaces(['fitflow', 'ai-game-dev'])).toEqual({ workspaces: ['fitflow', 'ai-game-dev', 'meowping-nft'], reasons: ['meowping-nft depends on ai-game-dev'] });
    expect(await api.affectedWorkspaces(['ziggie'])).toEqual({
      workspaces: ['ziggie', 'ai-game-dev', 'meowping-nft', 'render-farm', 'simstudio'],
      reasons: ['ai-game-dev depends on ziggie', 'meowping-nft depends on ziggie', 'render-farm depends on ziggie', 'simstudio depends on ziggie'],
    });
    expect(await rejection(api.affectedWorkspaces(['ziggie', 'ghost']))).toMatchObject({ code: 'WORKSPACE_NOT_FOUND', message: 'unknown workspaces: ghost' });
  });

  it('allocates, renews, releases and lists ports, and reclaims expired leases', async () => {
    const first = await api.allocatePort({ workspace: 'edge', service: 'api' });
    expect(first).toMatchObject({ workspace: 'edge', service: 'api', port: 30_000, holder: 'system' });
    expect(secondsFromNow(first.expiresAt)).toBeGreaterThan(290);
    expect(secondsFromNow(first.expiresAt)).toBeLessThanOrEqual(301);
    expect(await api.allocatePort({ workspace: 'edge', service: 'web', principal: ADMIN })).toMatchObject({ port: 30_001, holder: 'admin@test' });
    const db = await api.allocatePort({ workspace: 'edge', service: 'db', port: 30_010, ttlSeconds: 60 });
    expect(db.port).toBe(30_010);
    expect(secondsFromNow(db.expiresAt)).toBeLessThanOrEqual(61);

    const refusals = await Promise.all([
      rejection(api.allocatePort({ workspace: 'edge', service: 'db2', port: 30_010 })),
      rejection(api.allocatePort({ workspace: 'edge', service: 'x', port: 20_000 })),
      rejection(api.allocatePort({ workspace: 'edge', service: 'x', ttlSeconds: 86_401 })),
      rejection(api.allocatePort({ workspace: 'edge', service: '' })),
      rejection(api.allocatePort({ workspace: 'ghost', service: 'x' })),
      rejection(api.allocatePort({ workspace: 'edge', service: 'x', principal: { ...OPS, workspaces: ['fitflow'] } })),
      rejection(api.renewPort({ workspace: 'edge', port: 30_005 })),
    ]);
    expect(refusals.map((e) => [e.code, e.message])).toEqual([
      ['PORT_UNAVAILABLE', 'port 30010 is leased to edge/db'],
      ['PORT_UNAVAILABLE', 'port 20000 is outside the range 30000-30019 of workspace edge'],
      ['VALIDATION_FAILED', expect.stringContaining('ttlSeconds:')],
      ['VALIDATION_FAILED', expect.stringContaining('service:')],
      ['WORKSPACE_NOT_FOUND', 'workspace ghost not found'],
      ['AUTH_WORKSPACE_FORBIDDEN', 'workspace edge not allowed for this token'],
      ['PORT_LEASE_NOT_FOUND', 'no live lease of port 30005 in workspace edge'],
    ]);

    expect(await api.releasePort('edge', 30_000)).toEqual({ released: 1 });
    expect(await api.releasePort('edge', 30_000)).toEqual({ released: 0 });
    expect((await api.allocatePort({ workspace: 'edge', service: 'api' })).port).toBe(30_000);
    const renewed = await api.renewPort({ workspace: 'edge', port: 30_010, ttlSeconds: 600 });
    expect(secondsFromNow(renewed.expiresAt)).toBeGreaterThan(590);
    expect(renewed.createdAt).toBe(db.createdAt);
    expect(await api.listPorts('edge')).toEqual({
      items: [expect.objectContaining({ port: 30_000, service: 'api' }), expect.objectContaining({ port: 30_001, service: 'web' }), expect.objectContaining({ port: 30_010, service: 'db' })],
      range: { start: 30_000, end: 30_019 },
    });

    // A one-second lease is gone after it expires, and its port can be leased again.
    await api.allocatePort({ workspace: 'edge', service: 'tmp', port: 30_015, ttlSeconds: 1 });
    expect((await rejection(api.allocatePort({ workspace: 'edge', service: 'tmp2', port: 30_015 }))).code).toBe('PORT_UNAVAILABLE');
    await sleep(1_300);
    expect((await api.listPorts('edge')).items.map((p) => p.port)).toEqual([30_000, 30_001, 30_010]);
    expect((await rejection(api.renewPort({ workspace: 'edge', port: 30_015 }))).code).toBe('PORT_LEASE_NOT_FOUND');
    expect((await api.allocatePort({ workspace: 'edge', service: 'tmp2', port: 30_015 })).service).toBe('tmp2');
  });

  it('answers PORT_EXHAUSTED on a full range, and keeps a range from shrinking under its leases', async () => {
    await api.createWorkspace({ id: 'tiny', name: 'Tiny', portRange: { start: 31_000, end: 31_002 } });
    const ports = await Promise.all([1, 2, 3].map(() => api.allocatePort({ workspace: 'tiny', service: 'svc' })));
    expect(ports.map((p) => p.port).sort()).toEqual([31_000, 31_001, 31_002]);
    expect(await rejection(api.allocatePort({ workspace: 'tiny', service: 'svc' }))).toMatchObject({
      code: 'PORT_EXHAUSTED',
      message: 'all 3 ports of workspace tiny (31000-31002) are leased',
    });
    expect(await rejection(api.updateWorkspace({ id: 'tiny', portRange: { start: 31_000, end: 31_000 } }))).toMatchObject({
      code: 'WORKSPACE_IN_USE',
      message: 'ports 31001, 31002 are leased outside the new range 31000-31000',
    });
    expect(await rejection(api.deleteWorkspace('tiny'))).toMatchObject({ code: 'WORKSPACE_IN_USE', message: 'workspace tiny holds 3 port leases and 0 resource leases' });
    for (const p of ports) await api.releasePort('tiny', p.port);
    expect(await api.deleteWorkspace('tiny')).toEqual({ deleted: true });
    expect((await rejection(api.getWorkspace('tiny'))).code).toBe('WORKSPACE_NOT_FOUND');
  });

  it('refuses to delete a workspace others depend on, and deletes it once they are gone', async () => {
    const refusals = await Promise.all([rejection(api.deleteWorkspace('ziggie')), rejection(api.deleteWorkspace('chain-a')), rejection(api.deleteWorkspace('ghost')), rejection(api.deleteWorkspace('chain-c', null))]);
    expect(refusals.map((e) => [e.code, e.message])).toEqual([
      ['WORKSPACE_IN_USE', 'ai-game-dev, meowping-nft, render-farm, simstudio depend on workspace ziggie'],
      ['WORKSPACE_IN_USE', 'chain-b depends on workspace chain-a'],
      ['WORKSPACE_NOT_FOUND', 'workspace ghost not found'],
      ['AUTH_FORBIDDEN', 'permission workspace:manage required'],
    ]);
    for (const id of ['chain-c', 'chain-b', 'chain-a']) expect(await api.deleteWorkspace(id)).toEqual({ deleted: true });
    expect((await api.listWorkspaces()).total).toBe(7);
    // Its block is free again and goes to the next workspace without a range.
    expect((await api.createWorkspace({ id: 'chain-z', name: 'Chain Z' })).portRange).toEqual({ start: 20_600, end: 20_699 });
  });

  it('manages pools and grants leases by capacity, P0 reserve and holder', async () => {
    expect(await api.putPool({ name: 'gpu', capacity: 4, reservedP0: 1, description: 'A100s' })).toMatchObject({ name: 'gpu', kind: 'gpu', capacity: 4, reservedP0: 1, description: 'A100s', inUse: 0 });
    expect(await api.putPool({ name: 'llm', kind: 'inference', capacity: 2 })).toMatchObject({ name: 'llm', kind: 'inference', capacity: 2, reservedP0: 0 });
    expect((await api.putPool({ name: 'scratch', capacity: 1 })).kind).toBe('other');
    const poolRefusals = await Promise.all([
      rejection(api.putPool({ name: 'gpu', capacity: 2, reservedP0: 3 })),
      rejection(api.putPool({ name: 'gpu', capacity: 8 }, OPS)),
      rejection(api.putPool({ name: 'GPU!', capacity: 8 })),
      rejection(api.getPool('tpu')),
    ]);
    expect(poolRefusals.map((e) => [e.code, e.message])).toEqual([
      ['VALIDATION_FAILED', 'reservedP0: must not exceed capacity'],
      ['AUTH_FORBIDDEN', 'permission config:change required'],
      ['VALIDATION_FAILED', expect.stringContaining('name: must match')],
      ['POOL_NOT_FOUND', 'pool tpu not found'],
    ]);

    const { outcomes } = await api.acquireLeases([
      { workspace: 'simstudio', resource: 'gpu', units: 2, holder: 'att-1' },
      { workspace: 'fitflow', resource: 'gpu', units: 1, priority: 'P1', holder: 'att-2' },
      { workspace: 'fitflow', resource: 'gpu', units: 1, priority: 'P1', holder: 'att-3' },
      { workspace: 'ziggie', resource: 'gpu', holder: 'att-4' },
      { workspace: 'ziggie', resource: 'gpu', priority: 'P0', holder: 'att-5' },
      { workspace: 'fitflow', resource: 'tpu', holder: 'att-6' },
      { workspace: 'ghost', resource: 'gpu', holder: 'att-7' },
      { workspace: 'fitflow', resource: 'gpu', holder: '' },
      { workspace: 'simstudio', resource: 'gpu', units: 2, holder: 'att-1' },
      { workspace: 'fitflow', resource: 'llm', units: 2, priority: 'P2', holder: 'att-8', principal: { ...OPS, workspaces: ['ziggie'] } },
    ]);
    expect(outcomes.map((o) => [o.granted, o.code])).toEqual([
      [true, ''],
      [true, ''],
      [false, 'POOL_EXHAUSTED'],
      [true, ''],
      [false, 'POOL_EXHAUSTED'],
      [false, 'POOL_NOT_FOUND'],
      [false, 'WORKSPACE_NOT_FOUND'],
      [false, 'VALIDATION_FAILED'],
      [true, ''],
      [false, 'AUTH_WORKSPACE_FORBIDDEN'],
    ]);
    // An empty priority takes the workspace's; units default to one.
    expect(outcomes[0]!.lease).toMatchObject({ workspace: 'simstudio', resource: 'gpu', units: 2, priority: 'P2', holder: 'att-1' });
    expect(outcomes[3]!.lease).toMatchObject({ workspace: 'ziggie', units: 1, priority: 'P0' });
    expect(outcomes[8]!.lease!.id).toBe(outcomes[0]!.lease!.id);
    expect(outcomes[2]!.reason).toBe('asks for 1 units at P1, pool gpu has 0 free outside the 1 reserved for P0');
    expect(outcomes[4]!.reason).toBe('asks for 1 units, pool gpu has 0 of 4 free');
    expect(outcomes[7]!.reason).toContain('holder: required');
    expect(await api.getPool('gpu')).toMatchObject({ inUse: 4, leases: 3 });

    expect(await rejection(api.acquireLease({ workspace: 'fitflow', resource: 'gpu', holder: 'att-9' }))).toMatchObject({ code: 'POOL_EXHAUSTED', message: 'asks for 1 units, pool gpu has 0 of 4 free' });
    expect((await rejection(api.acquireLease({ workspace: 'fitflow', resource: 'tpu', holder: 'att-9' }))).code).toBe('POOL_NOT_FOUND');
    expect((await rejection(api.acquireLease({ workspace: 'fitflow', resource: 'gpu', holder: 'att-9', units: -1 }))).code).toBe('VALIDATION_FAILED');
    // The same holder again is the same lease, held longer.
    const again = await api.acquireLease({ workspace: 'fitflow', resource: 'gpu', priority: 'P1', holder: 'att-2', ttlSeconds: 900 });
    expect(again.id).toBe(outcomes[1]!.lease!.id);
    expect(secondsFromNow(again.expiresAt)).toBeGreaterThan(890);

    const renewed = await api.renewLease(outcomes[0]!.lease!.id, 1200);
    expect(secondsFromNow(renewed.expiresAt)).toBeGreaterThan(1190);
    expect((await rejection(api.renewLease('lease_nope'))).code).toBe('LEASE_NOT_FOUND');
    expect((await api.listLeases({ resource: 'gpu' })).items.map((l) => l.holder)).toEqual(['att-1', 'att-2', 'att-4']);
    expect((await api.listLeases({ workspace: 'ziggie' })).items.map((l) => l.holder)).toEqual(['att-4']);
    expect((await rejection(api.deleteWorkspace('simstudio'))).code).toBe('WORKSPACE_IN_USE');

    expect(await api.releaseLeases({ holders: ['att-1'] })).toEqual({ released: 1 });
    expect(await api.releaseLeases({ ids: [outcomes[3]!.lease!.id], holders: ['att-2', 'att-unknown'] })).toEqual({ released: 2 });
    expect((await rejection(api.releaseLeases({}))).message).toBe('give lease ids or holders');
    expect(await api.getPool('gpu')).toMatchObject({ inUse: 0, leases: 0 });

    // Leases end on expiry without a release.
    await api.acquireLease({ workspace: 'fitflow', resource: 'comfyui', holder: 'short', ttlSeconds: 1 });
    expect((await rejection(api.acquireLease({ workspace: 'ziggie', resource: 'comfyui', holder: 'waiting' }))).code).toBe('POOL_EXHAUSTED');
    await sleep(1_300);
    expect((await api.listLeases({ resource: 'comfyui' })).items).toEqual([]);
    expect((await api.acquireLease({ workspace: 'ziggie', resource: 'comfyui', holder: 'waiting' })).holder).toBe('waiting');
    await api.releaseLeases({ holders: ['waiting'] });
  });

  it('computes health from task stats, dependencies and reports, and keeps it when the orchestrator is away', async () => {
    await api.createWorkspace({ id: 'health-a', name: 'Health A' });
    await api.createWorkspace({ id: 'health-b', name: 'Health B', dependsOn: ['health-a'] });
    orchestrator.set({ 'health-a': { failed: 2, running: 3, succeeded: 10, lastFailure: 'step render failed: GPU out of memory' } });
    await waitFor(async () => (await api.getWorkspace('health-a')).health === 'at-risk', { what: 'health-a at-risk in the stored health', timeoutMs: 10_000 });
    expect(await api.getHealth('health-a')).toEqual({
      workspace: 'health-a',
      status: 'at-risk',
      reasons: ['2 tasks failed in the last 60 min (last: step render failed: GPU out of memory)'],
      tasksRunning: 3,
      tasksFailed: 2,
      tasksSucceeded: 10,
      reports: [],
      computedAt: expect.any(String),
    });
    const asked = orchestrator.requests[orchestrator.requests.length - 1]!;
    expect(asked.windowSeconds).toBe(3600);
    expect(asked.workspaces).toEqual(expect.arrayContaining(['health-a', 'health-b', 'ziggie']));
    expect((await api.getHealth('health-b')).status).toBe('on-track');

    orchestrator.set({ 'health-a': { failed: 5, lastFailure: 'step upscale failed: TOOL_TIMEOUT' } });
    expect(await api.getHealth('health-a')).toMatchObject({ status: 'blocked', reasons: ['5 tasks failed in the last 60 min (last: step upscale failed: TOOL_TIMEOUT)'] });
    expect(await api.getHealth('health-b')).toMatchObject({ status: 'at-risk', reasons: ['depends on health-a, which is blocked'] });
    expect(await api.getWorkspace('health-b')).toMatchObject({ health: 'at-risk', healthReasons: ['depends on health-a, which is blocked'] });
    expect((await api.listWorkspaces({ health: 'blocked' })).items.map((w) => w.id)).toEqual(['health-a']);

    const reported = await api.reportHealth({ principal: OPS, workspace: 'health-b', status: 'blocked', reason: 'vendor API down', ttlSeconds: 60 });
    expect(reported).toMatchObject({ status: 'blocked', reasons: ['reported by ops@test: vendor API down', 'depends on health-a, which is blocked'] });
    expect(reported.reports).toEqual([expect.objectContaining({ status: 'blocked', reason: 'vendor API down', reportedBy: 'ops@test' })]);
    expect(secondsFromNow(reported.reports[0]!.expiresAt)).toBeGreaterThan(50);
    // The same reporter saying on-track withdraws its report.
    const withdrawn = await api.reportHealth({ principal: OPS, workspace: 'health-b', status: 'on-track', reason: 'vendor back' });
    expect(withdrawn).toMatchObject({ status: 'at-risk', reasons: ['depends on health-a, which is blocked'] });
    expect(withdrawn.reports.map((r) => [r.status, r.reportedBy])).toEqual([['on-track', 'ops@test']]);

    // Orchestrator away: the task-derived status stays, and says why.
    await orchestrator.stop();
    expect(await api.getHealth('health-a')).toMatchObject({ status: 'blocked', reasons: ['task stats unavailable', '5 tasks failed in the last 60 min (last: step upscale failed: TOOL_TIMEOUT)'], tasksFailed: 0 });
    expect(await api.getHealth('fitflow')).toMatchObject({ status: 'on-track', reasons: ['task stats unavailable'] });
    orchestrator.set({});
    await orchestrator.restart();
    await waitFor(async () => (await api.getHealth('health-a')).status === 'on-track', { what: 'health-a back on track', timeoutMs: 20_000 });
    expect(await api.getHealth('health-a')).toMatchObject({ reasons: ['all clear'] });
    expect(await api.getHealth('health-b')).toMatchObject({ status: 'on-track', reasons: ['all clear'] });

    // A report expires on its own.
    await api.reportHealth({ workspace: 'health-a', status: 'at-risk', reason: 'flaky disk', ttlSeconds: 1 });
    expect(await api.getWorkspace('health-a')).toMatchObject({ health: 'at-risk', healthReasons: ['reported by system: flaky disk'] });
    await waitFor(async () => (await api.getWorkspace('health-a')).health === 'on-track', { what: 'the report to expire', timeoutMs: 10_000 });

    const refusals = await Promise.all([
      rejection(api.reportHealth({ workspace: 'health-a', status: 'sunny', reason: 'x' })),
      rejection(api.reportHealth({ workspace: 'health-a', status: 'blocked', reason: '' })),
      rejection(api.reportHealth({ workspace: 'ghost', status: 'blocked', reason: 'x' })),
      rejection(api.reportHealth({ workspace: 'health-a', status: 'blocked', reason: 'x', principal: { ...OPS, workspaces: ['fitflow'] } })),
      rejection(api.getHealth('ghost')),
    ]);
    expect(refusals.map((e) => e.code)).toEqual(['VALIDATION_FAILED', 'VALIDATION_FAILED', 'WORKSPACE_NOT_FOUND', 'AUTH_WORKSPACE_FORBIDDEN', 'WORKSPACE_NOT_FOUND']);
  }, 60_000);

  it('answers malformed requests with VALIDATION_FAILED and keeps serving', async () => {
    const tooMany = Array.from({ length: 1001 }, (_, i) => ({ workspace: 'fitflow', resource: 'gpu', holder: `h${i}` }));
    const refusals = await Promise.all([
      rejection(api.getWorkspace('')),
      rejection(api.getHealth('')),
      rejection(api.listPorts('')),
      rejection(api.renewPort({ workspace: 'edge', port: 0 })),
      rejection(api.releasePort('edge', 70_000)),
      rejection(api.renewLease('')),
      rejection(api.renewLease('lease_x', -5)),
      rejection(api.acquireLeases(tooMany)),
      rejection(api.listWorkspaces({ page: { limit: -1, cursor: '' } })),
      rejection(api.affectedWorkspaces([''])),
      rejection(api.allocatePort({ workspace: 'edge', service: 'x', port: -1 })),
    ]);
    expect(refusals.map((e) => e.code)).toEqual(Array(refusals.length).fill('VALIDATION_FAILED'));
    expect((await api.getWorkspace('ziggie')).id).toBe('ziggie');
  });

  it('keeps leases, ranges and health across a restart', async () => {
    const lease = await api.allocatePort({ workspace: 'fitflow', service: 'grafana' });
    const gpu = await api.acquireLease({ workspace: 'fitflow', resource: 'gpu', holder: 'restart-test', ttlSeconds: 600 });
    await api.reportHealth({ workspace: 'fitflow', status: 'blocked', reason: 'migration running', ttlSeconds: 600 });
    await coord.stop();
    coord = await startInstance(options);
    api = coord.api;
    expect((await api.listPorts('fitflow')).items).toEqual([lease]);
    expect((await api.allocatePort({ workspace: 'fitflow', service: 'loki' })).port).toBe(lease.port + 1);
    expect((await api.listLeases({ resource: 'gpu' })).items.map((l) => l.id)).toEqual([gpu.id]);
    expect(await api.getWorkspace('fitflow')).toMatchObject({ health: 'blocked', portRange: { start: 20_100, end: 20_199 } });
    expect((await api.listWorkspaces()).total).toBe(10);
  }, 60_000);
});
