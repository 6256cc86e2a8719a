import { Metadata, status } from '@grpc/grpc-js';
import { Logger } from '@nestjs/common';
import { pb, ZiggieError } from '@ziggie/contracts';
import { MetricsService, PeerClients } from '@ziggie/platform';
import { leaseTtlSeconds, PoolLeases, RefusalMemory, refusalReason, unavailableReason, UNREACHABLE_REASON } from './pool-leases';

type Callback<T> = (err: unknown, res?: T) => void;

/** A workspace-coord client whose answers the test decides. */
class FakeCoord {
  acquired: pb.AcquireLeasesRequest[] = [];
  released: pb.ReleaseLeasesRequest[] = [];
  acquireAnswer: (req: pb.AcquireLeasesRequest) => pb.AcquireLeasesResponse | { code: number; details: string } = (req) => ({
    outcomes: req.requests.map((r) => granted(r.holder)),
  });
  releaseFails = false;

  acquireLeases(req: pb.AcquireLeasesRequest, _md: Metadata, _opts: unknown, cb: Callback<pb.AcquireLeasesResponse>): void {
    this.acquired.push(req);
    const answer = this.acquireAnswer(req);
    setImmediate(() => ('outcomes' in answer ? cb(null, answer) : cb({ ...answer, metadata: new Metadata() })));
  }

  releaseLeases(req: pb.ReleaseLeasesRequest, _md: Metadata, _opts: unknown, cb: Callback<pb.ReleaseResponse>): void {
    this.released.push(req);
    setImmediate(() => (this.releaseFails ? cb({ code: status.UNAVAILABLE, details: 'down', metadata: new Metadata() }) : cb(null, { released: req.holders.length })));
  }
}

function granted(holder: string): pb.LeaseOutcome {
  return { granted: true, code: '', reason: '', lease: { id: `lease-${holder}`, holder, workspace: 'ziggie', resource: 'gpu', units: 1, expiresAt: '', priority: 'P1', createdAt: '' } };
}

const refused = (code: string, reason: string): pb.LeaseOutcome => ({ granted: false, code, reason, lease: undefined });

function leasesWith(coord: FakeCoord): PoolLeases {
  const peers = { get: () => Promise.resolve(coord) } as unknown as PeerClients;
  return new PoolLeases(peers, new MetricsService('orchestrator'));
}

const claim = (holder: string, pool = 'gpu', priority = 'P1', timeoutMs = 120_000) => ({ holder, pool, workspace: 'ziggie', priority, timeoutMs });

describe('pool lease helpers', () => {
  it('keeps a lease a minute past the step timeout, rounding the timeout up to seconds, within the coordinator limit of a day', () => {
    expect(leaseTtlSeconds(120_000)).toBe(180);
    expect(leaseTtlSeconds(1_500)).toBe(62);
    expect(leaseTtlSeconds(86_400_000)).toBe(86_400);
  });

  it('explains a refusal: an exhausted pool with the coordinator reason, an unknown pool plainly', () => {
    expect(refusalReason('gpu', 'POOL_EXHAUSTED', '2 of 2 units in use')).toBe('waiting for pool gpu (POOL_EXHAUSTED: 2 of 2 units in use)');
    expect(refusalReason('tpu', 'POOL_NOT_FOUND', 'pool tpu not found')).toBe('pool tpu is not defined');
    expect(refusalReason('gpu', '', '')).toBe('waiting for pool gpu (POOL_EXHAUSTED: no free capacity)');
  });

  it('tells an unreachable coordinator from one that answered with an error', () => {
    expect(unavailableReason(new ZiggieError('SERVICE_UNAVAILABLE', 'connect ECONNREFUSED'))).toBe(UNREACHABLE_REASON);
    expect(unavailableReason(new ZiggieError('UPSTREAM_TIMEOUT', 'deadline exceeded'))).toBe(UNREACHABLE_REASON);
    expect(unavailableReason(new Error('discovery failed'))).toBe(UNREACHABLE_REASON);
    expect(unavailableReason(new ZiggieError('UNIMPLEMENTED', 'not yet'))).toBe('pool leases unavailable (workspace-coord answered UNIMPLEMENTED: not yet)');
  });
});

describe('RefusalMemory', () => {
  it('skips a refused priority and every lower one, widening as higher priorities are refused', () => {
    const memory = new RefusalMemory();
    expect(memory.skips()).toEqual({ allPools: false, pools: [] });
    memory.refusedAt('gpu', 'P2');
    expect(memory.skips().pools).toEqual([{ pool: 'gpu', priorities: ['P2'] }]);
    memory.refusedAt('gpu', 'P1');
    memory.refusedAt('gpu', 'P2');
    expect(memory.skips().pools).toEqual([{ pool: 'gpu', priorities: ['P1', 'P2'] }]);
    memory.undefinedPool('tpu');
    expect(memory.skips().pools).toContainEqual({ pool: 'tpu', priorities: ['P0', 'P1', 'P2'] });
  });

  it('forgets a pool whose lease was released, and everything on reconcile', () => {
    const memory = new RefusalMemory();
    memory.refusedAt('gpu', 'P0');
    memory.refusedAt('comfyui', 'P1');
    memory.forgetPools(['gpu']);
    expect(memory.skips().pools.map((p) => p.pool)).toEqual(['comfyui']);
    memory.markUnreachable();
    expect(memory.skips().allPools).toBe(true);
    memory.forgetAll();
    expect(memory.skips()).toEqual({ allPools: false, pools: [] });
  });
});

describe('PoolLeases', () => {
  beforeAll(() => jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined));
  afterAll(() => jest.restoreAllMocks());

  it('asks once for the whole round, in order: one unit per step, the task priority, timeout + 60 s, the attempt as holder', async () => {
    const coord = new FakeCoord();
    const leases = leasesWith(coord);
    const decisions = await leases.acquire([claim('t1.a.1', 'gpu', 'P0', 30_000), claim('t1.b.1', 'comfyui', 'P2')]);
    expect(coord.acquired).toHaveLength(1);
    expect(coord.acquired[0]!.requests).toEqual([
      { workspace: 'ziggie', resource: 'gpu', units: 1, priority: 'P0', ttlSeconds: 90, holder: 't1.a.1', principal: undefined },
      { workspace: 'ziggie', resource: 'comfyui', units: 1, priority: 'P2', ttlSeconds: 180, holder: 't1.b.1', principal: undefined },
    ]);
    expect(decisions.get('t1.a.1')).toEqual({ granted: true, leaseId: 'lease-t1.a.1' });
    expect(decisions.get('t1.b.1')).toEqual({ granted: true, leaseId: 'lease-t1.b.1' });
  });

  it('makes no call for a round without pool steps', async () => {
    const coord = new FakeCoord();
    expect((await leasesWith(coord).acquire([])).size).toBe(0);
    expect(coord.acquired).toHaveLength(0);
  });

  it('turns refusals into waiting reasons and skips the refused pools until a release or a reset', async () => {
    const coord = new FakeCoord();
    coord.acquireAnswer = () => ({ outcomes: [granted('t.a.1'), refused('POOL_EXHAUSTED', '2 of 2 in use'), refused('POOL_NOT_FOUND', 'no pool tpu')] });
    const leases = leasesWith(coord);
    const decisions = await leases.acquire([claim('t.a.1', 'gpu', 'P1'), claim('t.b.1', 'gpu', 'P2'), claim('t.c.1', 'tpu')]);
    expect(decisions.get('t.b.1')).toEqual({ granted: false, waitingReason: 'waiting for pool gpu (POOL_EXHAUSTED: 2 of 2 in use)' });
    expect(decisions.get('t.c.1')).toEqual({ granted: false, waitingReason: 'pool tpu is not defined' });
    expect(leases.skips().pools).toEqual([
      { pool: 'gpu', priorities: ['P2'] },
      { pool: 'tpu', priorities: ['P0', 'P1', 'P2'] },
    ]);
    await leases.releaseNow([{ holder: 't.a.1', pool: 'gpu' }]);
    expect(leases.skips().pools.map((p) => p.pool)).toEqual(['tpu']);
    leases.forgetRefusals();
    expect(leases.skips().pools).toEqual([]);
  });

  it('lets every pool step wait when workspace-coord cannot be reached, and asks again once reset', async () => {
    const coord = new FakeCoord();
    coord.acquireAnswer = () => ({ code: status.UNAVAILABLE, details: 'connect ECONNREFUSED 127.0.0.1:50053' });
    const leases = leasesWith(coord);
    const decisions = await leases.acquire([claim('t.a.1'), claim('t.b.1', 'comfyui')]);
    expect([...decisions.values()]).toEqual([
      { granted: false, waitingReason: UNREACHABLE_REASON },
      { granted: false, waitingReason: UNREACHABLE_REASON },
    ]);
    expect(leases.skips().allPools).toBe(true);
    leases.forgetRefusals();
    coord.acquireAnswer = (req) => ({ outcomes: req.requests.map((r) => granted(r.holder)) });
    expect((await leases.acquire([claim('t.a.1')])).get('t.a.1')).toEqual({ granted: true, leaseId: 'lease-t.a.1' });
    expect(leases.skips().allPools).toBe(false);
  });

  it('batches releases asked for in the same turn into one call by holder, then tells the listeners', async () => {
    const coord = new FakeCoord();
    const leases = leasesWith(coord);
    const listener = jest.fn();
    leases.onReleased(listener);
    leases.release([{ holder: 't.a.1', pool: 'gpu' }]);
    leases.release([
      { holder: 't.b.1', pool: 'gpu' },
      { holder: 't.a.1', pool: 'gpu' },
    ]);
    leases.release([]);
    await leases.settled();
    expect(coord.released).toEqual([{ ids: [], holders: ['t.a.1', 't.b.1'] }]);
    expect(listener).toHaveBeenCalledTimes(1);
  });

  it('only logs a failed release: the lease TTL is the safety net', async () => {
    const coord = new FakeCoord();
    coord.releaseFails = true;
    const leases = leasesWith(coord);
    await expect(leases.releaseNow([{ holder: 't.a.1', pool: 'gpu' }])).resolves.toBeUndefined();
    expect(coord.released).toHaveLength(1);
  });
});
