import { startNats, waitFor, type NatsServerHandle } from '../../../test/support';
import { UNREACHABLE_REASON } from '../src/pool-leases';
import { serveCoord, ServedDouble, WorkspaceCoordDouble } from './support/coord-double';
import { FakeRuntime } from './support/fake-runtime';
import { isTerminal, OrchestratorUnderTest, startOrchestrator, stepOf } from './support/orchestrator';
import { serveRegistry } from './support/registry-double';

jest.setTimeout(60_000);

/** Step timeout of the test plans: leases are asked for with a TTL of 30 + 60 s. */
const STEP_TIMEOUT_MS = 30_000;
const gpuStep = (id: string, pool = 'gpu') => ({ id, capability: 'render', pool, gpu: true, timeoutMs: STEP_TIMEOUT_MS, input: { tool: 'comfyui.render', arguments: { id } } });
const plainStep = (id: string) => ({ id, capability: 'qa', timeoutMs: STEP_TIMEOUT_MS, input: { tool: 'everything.echo', arguments: { message: id } } });

describe('orchestrator pool capacity through workspace-coord leases (workspace-coord double)', () => {
  let nats: NatsServerHandle;
  let registry: ServedDouble;
  let coordServer: ServedDouble | undefined;
  let orchestrator: OrchestratorUnderTest;
  let runtime: FakeRuntime;
  const coord = new WorkspaceCoordDouble(['ziggie'], { gpu: 2, comfyui: 1 });
  const leaseCalls = () => coord.acquireCalls.length + coord.releaseCalls.length;

  beforeAll(async () => {
    nats = await startNats();
    registry = await serveRegistry(['render', 'qa']);
    coordServer = await serveCoord(coord);
    orchestrator = await startOrchestrator({
      NATS_URL: nats.url,
      AGENT_REGISTRY_GRPC_ADDR: registry.address,
      WORKSPACE_COORD_GRPC_ADDR: coordServer.address,
      // Refused pools are asked again on every reconcile, which also fails timed-out steps.
      RECONCILE_INTERVAL_MS: '500',
      STEP_TIMEOUT_GRACE_MS: '0',
    });
    runtime = await FakeRuntime.start(nats.url, 400);
  }, 60_000);

  afterAll(async () => {
    await runtime?.stop();
    await orchestrator?.stop();
    await coordServer?.stop();
    await registry?.stop();
    await nats?.stop();
  }, 30_000);

  it('runs six GPU steps on a pool of two: never more than two in flight, all finish, every lease released', async () => {
    const task = await orchestrator.submit({ steps: ['a', 'b', 'c', 'd', 'e', 'f'].map((x) => gpuStep(`render-${x}`)) });
    const done = await orchestrator.waitTask(task.id, isTerminal, 'the GPU task to end', 30_000);
    expect(done.status).toBe('succeeded');
    expect(runtime.peak.get('gpu')).toBe(2);
    expect(coord.peakInUse.get('gpu')).toBe(2);

    // One AcquireLeases call for the first round: all six, in plan order, one unit each, the
    // task's priority, the step timeout + 60 s, the attempt as holder.
    const first = coord.acquireCalls.find((c) => c.requests.some((r) => r.holder.startsWith(task.id)))!;
    expect(first.requests.map((r) => r.holder)).toEqual(['a', 'b', 'c', 'd', 'e', 'f'].map((x) => `${task.id}.render-${x}.1`));
    expect(first.requests[0]).toEqual({ workspace: 'ziggie', resource: 'gpu', units: 1, priority: 'P1', ttlSeconds: 90, holder: `${task.id}.render-a.1`, principal: undefined });

    // Every attempt recorded the lease it was granted; each was released by its holder, long before any TTL.
    const attempts = await orchestrator.db.selectFrom('step_attempts').select(['step_id', 'attempt', 'lease_id']).where('task_id', '=', task.id).execute();
    expect(attempts).toHaveLength(6);
    const holders = attempts.map((a) => `${task.id}.${a.step_id}.${a.attempt}`);
    for (const [i, a] of attempts.entries()) expect(a.lease_id).toBe(coord.grantedTo.get(holders[i]!));
    await waitFor(() => coord.inUse('gpu') === 0, { timeoutMs: 5_000, what: 'every GPU lease to be released' });
    expect(coord.releaseCalls.flatMap((c) => c.holders)).toEqual(expect.arrayContaining(holders));
  });

  it('shows why a pool step waits (pool exhausted, pool not defined) and runs it once capacity is back', async () => {
    // Someone else holds the whole GPU pool.
    for (const holder of ['other.render.1', 'other.render.2']) expect(coord.acquire({ workspace: 'ziggie', resource: 'gpu', units: 1, priority: 'P0', ttlSeconds: 600, holder, principal: undefined }).granted).toBe(true);
    const task = await orchestrator.submit({ steps: [gpuStep('paint'), gpuStep('upscale', 'tpu'), plainStep('caption')] });

    const waiting = await orchestrator.waitTask(
      task.id,
      (t) => !!stepOf(t, 'paint')?.waitingReason && !!stepOf(t, 'upscale')?.waitingReason && stepOf(t, 'caption')?.status === 'succeeded',
      'the pool steps to show why they wait while the plain step runs',
    );
    expect(stepOf(waiting, 'paint')).toMatchObject({ status: 'pending', waitingReason: 'waiting for pool gpu (POOL_EXHAUSTED: asks for 1 units, pool gpu has 0 of 2 free)' });
    expect(stepOf(waiting, 'upscale')).toMatchObject({ status: 'pending', waitingReason: 'pool tpu is not defined' });
    const stats = await orchestrator.stats({ workspaces: ['ziggie'] });
    expect(stats.items).toEqual([expect.objectContaining({ workspace: 'ziggie', running: 1, stepsWaiting: 2 })]);

    // Capacity comes back outside this orchestrator: its reconcile timer has the steps ask again.
    coord.release({ ids: [], holders: ['other.render.1', 'other.render.2'] });
    coord.putPool('tpu', 1);
    const done = await orchestrator.waitTask(task.id, isTerminal, 'the task to end once the pools have room');
    expect(done.status).toBe('succeeded');
    expect(stepOf(done, 'paint')!.waitingReason).toBe('');
    await waitFor(() => coord.active().length === 0, { timeoutMs: 5_000, what: 'the leases to be released' });
  });

  it('gives a lease back as soon as its attempt is cancelled or times out, while the runtime still holds the step', async () => {
    runtime.holdMs = 8_000;
    try {
      const cancelled = await orchestrator.submit({ steps: [gpuStep('long-render')] });
      await orchestrator.waitTask(cancelled.id, (t) => stepOf(t, 'long-render')?.status === 'running', 'the long GPU step to run');
      expect(coord.inUse('gpu')).toBe(1);
      await orchestrator.cancel(cancelled.id, 'no longer needed');
      await waitFor(() => coord.inUse('gpu') === 0, { timeoutMs: 3_000, what: 'the cancelled attempt lease to be released' });
      expect(coord.releaseCalls.flatMap((c) => c.holders)).toContain(`${cancelled.id}.long-render.1`);

      const timedOut = await orchestrator.submit({ steps: [{ ...gpuStep('slow-render'), timeoutMs: 1_000 }] });
      const failed = await orchestrator.waitTask(timedOut.id, isTerminal, 'the slow GPU step to time out');
      expect(failed).toMatchObject({ status: 'failed', failedStepId: 'slow-render' });
      expect(stepOf(failed, 'slow-render')!.error?.code).toBe('STEP_TIMEOUT');
      await waitFor(() => coord.inUse('gpu') === 0, { timeoutMs: 3_000, what: 'the timed-out attempt lease to be released' });
      expect(runtime.inFlight('gpu')).toBeGreaterThan(0);
    } finally {
      runtime.holdMs = 400;
    }
  });

  it('keeps pool steps waiting while workspace-coord is down, runs everything else, and resumes when it is back', async () => {
    // A step without a pool never asks workspace-coord for a lease (this also has the workspace checked, for the next submission).
    const before = leaseCalls();
    const plain = await orchestrator.submit({ steps: [plainStep('warm-up')] });
    expect((await orchestrator.waitTask(plain.id, isTerminal, 'the plain task to end')).status).toBe('succeeded');
    expect(leaseCalls()).toBe(before);

    const port = coordServer!.port;
    await coordServer!.stop();
    coordServer = undefined;
    const task = await orchestrator.submit({ steps: [gpuStep('draw'), gpuStep('ink', 'comfyui'), plainStep('outline')] });
    const waiting = await orchestrator.waitTask(
      task.id,
      (t) => stepOf(t, 'outline')?.status === 'succeeded' && [stepOf(t, 'draw'), stepOf(t, 'ink')].every((s) => s?.waitingReason === UNREACHABLE_REASON),
      'the pool steps to wait for the coordinator while the plain step runs',
    );
    expect(stepOf(waiting, 'draw')!.status).toBe('pending');
    expect(stepOf(waiting, 'ink')!.status).toBe('pending');

    coordServer = await serveCoord(coord, port);
    const done = await orchestrator.waitTask(task.id, isTerminal, 'the pool steps to run once the coordinator is back', 30_000);
    expect(done.status).toBe('succeeded');
    await waitFor(() => coord.active().length === 0, { timeoutMs: 5_000, what: 'the leases to be released' });
  });
});
