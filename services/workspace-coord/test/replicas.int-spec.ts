import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ZiggieError } from '@ziggie/contracts';
import { sleep, startNats, startPostgres, type NatsServerHandle, type PostgresHandle } from '../../../test/support';
import { CoordApi, freshDatabase, Instance, rejection, startInstance, whenDisconnected } from './harness';

/** Settles every promise; fails on anything but a ZiggieError. */
async function outcomes<T>(calls: Array<Promise<T>>): Promise<{ granted: T[]; refused: ZiggieError[] }> {
  const settled = await Promise.allSettled(calls);
  const granted: T[] = [];
  const refused: ZiggieError[] = [];
  for (const s of settled) {
    if (s.status === 'fulfilled') granted.push(s.value);
    else if (s.reason instanceof ZiggieError) refused.push(s.reason);
    else throw s.reason;
  }
  return { granted, refused };
}

describe('two workspace-coord replicas on one PostgreSQL server', () => {
  let dir: string;
  let nats: NatsServerHandle;
  let pg: PostgresHandle;
  let databaseUrl: string;
  let one: Instance;
  let two: Instance;
  /** The replica that serves the i-th of many concurrent calls. */
  const replica = (i: number): CoordApi => (i % 2 === 0 ? one.api : two.api);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ziggie-wc-replicas-'));
    [nats, pg] = await Promise.all([startNats(), startPostgres()]);
    databaseUrl = await freshDatabase(pg);
    // Two Nest applications, two connection pools, one database.
    one = await startInstance({ natsUrl: nats.url, databaseUrl, dataDir: join(dir, 'one') });
    two = await startInstance({ natsUrl: nats.url, databaseUrl, dataDir: join(dir, 'two') });
  }, 120_000);

  afterAll(async () => {
    await Promise.all([one?.stop(), two?.stop()]);
    if (pg) await whenDisconnected(pg, [databaseUrl]);
    await pg?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('seeds once although both started on the same database', async () => {
    expect((await one.api.listWorkspaces()).total).toBe(5);
    expect((await two.api.listWorkspaces()).items.map((w) => w.portRange!.start)).toEqual([20_200, 20_100, 20_400, 20_300, 20_000]);
  });

  it('grants each of 50 ports exactly once among 200 concurrent allocations, then reclaims them on release and on expiry', async () => {
    await one.api.createWorkspace({ id: 'crowded', name: 'Crowded', portRange: { start: 40_000, end: 40_049 } });
    const first = await outcomes(Array.from({ length: 200 }, (_, i) => replica(i).allocatePort({ workspace: 'crowded', service: `svc-${i}`, ttlSeconds: 60 })));
    expect(first.granted).toHaveLength(50);
    expect(first.granted.map((l) => l.port).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => 40_000 + i));
    expect(first.refused).toHaveLength(150);
    expect(new Set(first.refused.map((e) => e.code))).toEqual(new Set(['PORT_EXHAUSTED']));
    expect((await two.api.listPorts('crowded')).items).toHaveLength(50);

    // Releasing ten on one replica frees exactly those ten, for whichever replica asks next.
    const released = first.granted.slice(0, 10).map((l) => l.port);
    for (const port of released) expect(await one.api.releasePort('crowded', port)).toEqual({ released: 1 });
    const second = await outcomes(Array.from({ length: 40 }, (_, i) => replica(i + 1).allocatePort({ workspace: 'crowded', service: `second-${i}`, ttlSeconds: 60 })));
    expect(second.granted.map((l) => l.port).sort((a, b) => a - b)).toEqual([...released].sort((a, b) => a - b));
    expect(second.refused).toHaveLength(30);

    // Every lease down to one second: once they expire the whole range is free again, with no release.
    const live = (await one.api.listPorts('crowded')).items;
    expect(new Set(live.map((l) => l.port)).size).toBe(50);
    await Promise.all(live.map((l, i) => replica(i).renewPort({ workspace: 'crowded', port: l.port, ttlSeconds: 1 })));
    await sleep(1_200);
    expect((await one.api.listPorts('crowded')).items).toEqual([]);
    const third = await outcomes(Array.from({ length: 120 }, (_, i) => replica(i).allocatePort({ workspace: 'crowded', service: `third-${i}`, ttlSeconds: 600 })));
    expect(third.granted).toHaveLength(50);
    expect(new Set(third.granted.map((l) => l.port)).size).toBe(50);
    expect(third.refused.every((e) => e.code === 'PORT_EXHAUSTED')).toBe(true);
  }, 60_000);

  it('never leases more than a pool holds under concurrent batches from both replicas, and keeps the P0 reserve', async () => {
    await one.api.putPool({ name: 'render', capacity: 10, reservedP0: 2 });
    // 40 batches of 3 P1 requests: exactly capacity minus reserve is granted.
    const p1 = await Promise.all(
      Array.from({ length: 40 }, (_, b) =>
        replica(b).acquireLeases([0, 1, 2].map((k) => ({ workspace: 'fitflow', resource: 'render', priority: 'P1', holder: `p1-${b}-${k}`, ttlSeconds: 60 }))),
      ),
    );
    const p1Outcomes = p1.flatMap((r) => r.outcomes);
    expect(p1Outcomes.filter((o) => o.granted)).toHaveLength(8);
    expect(p1Outcomes.filter((o) => !o.granted).every((o) => o.code === 'POOL_EXHAUSTED' && o.reason.includes('reserved for P0'))).toBe(true);
    // P0 takes the reserve, and not one unit more.
    const p0 = await Promise.all(Array.from({ length: 20 }, (_, i) => replica(i).acquireLeases([{ workspace: 'ziggie', resource: 'render', holder: `p0-${i}`, ttlSeconds: 60 }])));
    expect(p0.flatMap((r) => r.outcomes).filter((o) => o.granted)).toHaveLength(2);
    expect(await two.api.getPool('render')).toMatchObject({ inUse: 10, leases: 10 });

    // Expiry frees the pool; then mixed sizes and priorities still never overshoot.
    const held = (await one.api.listLeases({ resource: 'render' })).items;
    await Promise.all(held.map((l, i) => replica(i).renewLease(l.id, 1)));
    await sleep(1_200);
    expect(await one.api.getPool('render')).toMatchObject({ inUse: 0, leases: 0 });
    const priorities = ['P0', 'P1', 'P2'];
    const mixed = await Promise.all(
      Array.from({ length: 30 }, (_, b) =>
        replica(b).acquireLeases(
          [0, 1].map((k) => ({ workspace: 'simstudio', resource: 'render', units: 1 + ((b + k) % 3), priority: priorities[(b * 2 + k) % 3], holder: `mixed-${b}-${k}`, ttlSeconds: 600 })),
        ),
      ),
    );
    const granted = mixed.flatMap((r) => r.outcomes).filter((o) => o.granted).map((o) => o.lease!);
    const units = granted.reduce((n, l) => n + l.units, 0);
    // Ten of the requests are one-unit P0 ones, which fit until the pool is full: it ends full, not over.
    expect(units).toBe(10);
    expect(granted.filter((l) => l.priority !== 'P0').reduce((n, l) => n + l.units, 0)).toBeLessThanOrEqual(8);
    expect(await one.api.getPool('render')).toMatchObject({ inUse: units, leases: granted.length });
    expect(await two.api.releaseLeases({ holders: granted.map((l) => l.holder) })).toEqual({ released: granted.length });
  }, 60_000);

  it('hands one holder one lease, whichever replica each retry reaches', async () => {
    const tries = await Promise.all(Array.from({ length: 20 }, (_, i) => replica(i).acquireLease({ workspace: 'fitflow', resource: 'render', units: 3, holder: 'attempt-42' })));
    expect(new Set(tries.map((l) => l.id)).size).toBe(1);
    expect(await one.api.getPool('render')).toMatchObject({ inUse: 3, leases: 1 });
    expect(await two.api.releaseLeases({ ids: [tries[0]!.id] })).toEqual({ released: 1 });
  });

  it('refuses one of two concurrent updates that together would close a cycle', async () => {
    for (let round = 0; round < 8; round++) {
      const [a, b] = [`loop-${round}-a`, `loop-${round}-b`];
      await one.api.createWorkspace({ id: a, name: a });
      await one.api.createWorkspace({ id: b, name: b });
      const results = await Promise.allSettled([
        one.api.updateWorkspace({ id: a, setDependsOn: true, dependsOn: [b] }),
        two.api.updateWorkspace({ id: b, setDependsOn: true, dependsOn: [a] }),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(refused.reason).toMatchObject({ code: 'WORKSPACE_CYCLE' });
      const [wa, wb] = await Promise.all([two.api.getWorkspace(a), one.api.getWorkspace(b)]);
      expect(wa.dependsOn.length + wb.dependsOn.length).toBe(1);
    }
  }, 60_000);

  it('gives concurrently created workspaces distinct port blocks, and refuses overlapping explicit ranges', async () => {
    const created = await Promise.all(Array.from({ length: 10 }, (_, i) => replica(i).createWorkspace({ id: `burst-${i}`, name: `Burst ${i}` })));
    const starts = created.map((w) => w.portRange!.start);
    expect(new Set(starts).size).toBe(10);
    const ranged = await outcomes(
      Array.from({ length: 6 }, (_, i) => replica(i).createWorkspace({ id: `ranged-${i}`, name: 'Ranged', portRange: { start: 50_000 + i * 5, end: 50_000 + i * 5 + 19 } })),
    );
    // Each range overlaps its neighbours: whichever commits first, no two granted ranges overlap.
    const granted = ranged.granted.map((w) => w.portRange!).sort((x, y) => x.start - y.start);
    for (let i = 1; i < granted.length; i++) expect(granted[i]!.start).toBeGreaterThan(granted[i - 1]!.end);
    expect(ranged.granted.length).toBeGreaterThanOrEqual(1);
    expect(ranged.refused.every((e) => e.code === 'PORT_RANGE_OVERLAP')).toBe(true);
  });

  it('refuses to delete a workspace while a lease on another replica holds it', async () => {
    await one.api.createWorkspace({ id: 'busy', name: 'Busy' });
    const lease = await two.api.acquireLease({ workspace: 'busy', resource: 'render', holder: 'busy-1' });
    expect((await rejection(one.api.deleteWorkspace('busy'))).code).toBe('WORKSPACE_IN_USE');
    await two.api.releaseLeases({ ids: [lease.id] });
    expect(await one.api.deleteWorkspace('busy')).toEqual({ deleted: true });
    expect((await rejection(two.api.acquireLease({ workspace: 'busy', resource: 'render', holder: 'busy-2' }))).code).toBe('WORKSPACE_NOT_FOUND');
  });
});
