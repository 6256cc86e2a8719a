import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ConsumerMessages, type NatsConnection } from 'nats';
import { pb, PayloadOf, Streams, Subject, subjectWildcard, WorkspaceHealthPayload } from '@ziggie/contracts';
import { sleep, startNats, startPostgres, waitFor, type NatsServerHandle, type PostgresHandle } from '../../../test/support';
import { freshDatabase, Instance, InstanceOptions, serveWorkspaceStats, startInstance, StatsOrchestrator, whenDisconnected } from './harness';

type HealthEvent = PayloadOf<Subject.WorkspaceHealth>;

const OPS: pb.Principal = { subject: 'ops@test', roles: ['l1'], workspaces: ['*'] };
/** Long enough for several health rounds on each replica (HEALTH_INTERVAL_SECONDS=1). */
const SEVERAL_ROUNDS_MS = 3_000;

describe('workspace health events: two replicas, a real nats-server, and an orchestrator serving only GetWorkspaceStats', () => {
  let dir: string;
  let nats: NatsServerHandle;
  let pg: PostgresHandle;
  let orchestrator: StatsOrchestrator;
  let options: (name: string) => InstanceOptions;
  let one: Instance;
  let two: Instance;
  let reader: NatsConnection;
  let stream: ConsumerMessages;
  const events: Array<{ subject: string; msgId: string; payload: HealthEvent }> = [];
  const of = (workspace: string) => events.filter((e) => e.payload.workspace === workspace).map((e) => e.payload);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ziggie-wc-events-'));
    [nats, pg, orchestrator] = await Promise.all([startNats(), startPostgres(), serveWorkspaceStats()]);
    const databaseUrl = await freshDatabase(pg);
    options = (name) => ({
      natsUrl: nats.url,
      databaseUrl,
      dataDir: join(dir, name),
      orchestrator: orchestrator.address,
      env: { HEALTH_INTERVAL_SECONDS: '1', HEALTH_WINDOW_SECONDS: '1800', HEALTH_FAILED_BLOCKED: '3' },
    });
    one = await startInstance(options('one'));
    two = await startInstance(options('two'));
    // Everything on the stream, read back through JetStream (what consumers of the events see).
    reader = await connect({ servers: nats.url });
    const consumer = await reader.jetstream().consumers.get(Streams.events.name, { filterSubjects: subjectWildcard(Subject.WorkspaceHealth) });
    stream = await consumer.consume();
    void (async () => {
      for await (const m of stream) {
        events.push({ subject: m.subject, msgId: m.headers?.get('Nats-Msg-Id') ?? '', payload: WorkspaceHealthPayload.parse(m.json()) });
      }
    })();
  }, 120_000);

  afterAll(async () => {
    await stream?.close();
    await reader?.close();
    await Promise.all([one?.stop(), two?.stop()]);
    await orchestrator?.stop();
    if (pg) await whenDisconnected(pg, [options?.('x').databaseUrl]);
    await pg?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('publishes nothing while nothing changes', async () => {
    await sleep(SEVERAL_ROUNDS_MS);
    expect(events).toEqual([]);
  });

  it('publishes exactly one event when a report flips a workspace, and one when it is withdrawn', async () => {
    const reported = await one.api.reportHealth({ principal: OPS, workspace: 'fitflow', status: 'blocked', reason: 'database migration stuck', ttlSeconds: 600 });
    expect(reported).toMatchObject({ workspace: 'fitflow', status: 'blocked', reasons: ['reported by ops@test: database migration stuck'] });
    await waitFor(() => of('fitflow').length > 0, { what: 'the fitflow event', timeoutMs: 10_000 });
    await sleep(SEVERAL_ROUNDS_MS);
    expect(of('fitflow')).toEqual([{ workspace: 'fitflow', status: 'blocked', previous: 'on-track', reasons: ['reported by ops@test: database migration stuck'], at: expect.any(String) }]);
    expect(events[0]!.subject).toBe('ziggie.event.workspace.v1.fitflow');
    expect(await two.api.getWorkspace('fitflow')).toMatchObject({ health: 'blocked', healthReasons: ['reported by ops@test: database migration stuck'] });

    await two.api.reportHealth({ principal: OPS, workspace: 'fitflow', status: 'on-track', reason: 'migration done' });
    await waitFor(() => of('fitflow').length > 1, { what: 'the second fitflow event', timeoutMs: 10_000 });
    await sleep(SEVERAL_ROUNDS_MS);
    expect(of('fitflow').map((e) => [e.previous, e.status])).toEqual([
      ['on-track', 'blocked'],
      ['blocked', 'on-track'],
    ]);
    expect(of('fitflow')[1]!.reasons).toEqual(['all clear']);
  }, 30_000);

  it('tells the dependents of a blocked workspace, once each', async () => {
    await two.api.reportHealth({ workspace: 'ziggie', status: 'blocked', reason: 'control plane down', ttlSeconds: 600 });
    await waitFor(() => ['ziggie', 'ai-game-dev', 'simstudio', 'meowping-nft'].every((w) => of(w).length > 0), { what: 'events of ziggie and its dependents', timeoutMs: 10_000 });
    await sleep(SEVERAL_ROUNDS_MS);
    expect(of('ziggie')).toEqual([expect.objectContaining({ status: 'blocked', previous: 'on-track', reasons: ['reported by system: control plane down'] })]);
    for (const dependent of ['ai-game-dev', 'simstudio', 'meowping-nft']) {
      expect(of(dependent)).toEqual([expect.objectContaining({ status: 'at-risk', previous: 'on-track', reasons: ['depends on ziggie, which is blocked'] })]);
    }
    // Withdrawn: everyone back, once each.
    await one.api.reportHealth({ workspace: 'ziggie', status: 'on-track', reason: 'back' });
    await waitFor(() => ['ziggie', 'ai-game-dev', 'simstudio', 'meowping-nft'].every((w) => of(w).length > 1), { what: 'recovery events', timeoutMs: 10_000 });
    await sleep(SEVERAL_ROUNDS_MS);
    for (const w of ['ziggie', 'ai-game-dev', 'simstudio', 'meowping-nft']) expect(of(w).map((e) => e.status)).toEqual([w === 'ziggie' ? 'blocked' : 'at-risk', 'on-track']);
  }, 30_000);

  it('follows the task stats, and stays quiet through an orchestrator outage', async () => {
    // Both replicas get the new counts in the same instant and race to store them (a replica
    // runs one round at a time, so the two held requests are one from each).
    orchestrator.hold(2);
    orchestrator.set({ simstudio: { failed: 1, running: 2, lastFailure: 'step bake failed: UPSTREAM_TIMEOUT' } });
    await waitFor(() => of('simstudio').length > 2, { what: 'simstudio at-risk', timeoutMs: 10_000 });
    await sleep(SEVERAL_ROUNDS_MS);
    expect(of('simstudio')).toHaveLength(3);
    expect(of('simstudio')[2]).toMatchObject({ status: 'at-risk', previous: 'on-track', reasons: ['1 task failed in the last 30 min (last: step bake failed: UPSTREAM_TIMEOUT)'] });
    orchestrator.set({ simstudio: { failed: 3, lastFailure: 'step bake failed: GPU lost' } });
    await waitFor(() => of('simstudio').length > 3, { what: 'simstudio blocked', timeoutMs: 10_000 });
    expect(of('simstudio')[3]).toMatchObject({ status: 'blocked', previous: 'at-risk', reasons: ['3 tasks failed in the last 30 min (last: step bake failed: GPU lost)'] });

    await orchestrator.stop();
    await waitFor(async () => (await one.api.getWorkspace('simstudio')).healthReasons[0] === 'task stats unavailable', { what: 'the outage to be noted', timeoutMs: 10_000 });
    await sleep(SEVERAL_ROUNDS_MS);
    expect(await two.api.getWorkspace('simstudio')).toMatchObject({ health: 'blocked', healthReasons: ['task stats unavailable', '3 tasks failed in the last 30 min (last: step bake failed: GPU lost)'] });
    expect(of('simstudio')).toHaveLength(4);
    expect(await one.api.getWorkspace('fitflow')).toMatchObject({ health: 'on-track', healthReasons: ['task stats unavailable'] });

    orchestrator.set({});
    await orchestrator.restart();
    await waitFor(() => of('simstudio').length > 4, { what: 'simstudio back on track', timeoutMs: 30_000 });
    await sleep(SEVERAL_ROUNDS_MS);
    expect(of('simstudio').slice(4)).toEqual([expect.objectContaining({ status: 'on-track', previous: 'blocked', reasons: ['all clear'] })]);
  }, 60_000);

  it('publishes nothing again when a replica restarts, and reports health as a metric', async () => {
    const before = events.length;
    await two.stop();
    two = await startInstance(options('two'));
    await one.api.reportHealth({ workspace: 'meowping-nft', status: 'at-risk', reason: 'mint contract audit pending', ttlSeconds: 600 });
    await waitFor(() => events.length > before, { what: 'the meowping-nft event', timeoutMs: 10_000 });
    await sleep(SEVERAL_ROUNDS_MS);
    expect(events.slice(before).map((e) => [e.payload.workspace, e.payload.status])).toEqual([['meowping-nft', 'at-risk']]);
    // Message ids make a republished change a duplicate JetStream drops.
    expect(new Set(events.map((e) => e.msgId)).size).toBe(events.length);
    expect(events.every((e) => /^[a-z0-9-]+\.health\.\d+\.\d+$/.test(e.msgId))).toBe(true);

    const metrics = await (await fetch(`http://127.0.0.1:${two.svc.httpPort}/metrics`)).text();
    const sample = (workspace: string, status: string) =>
      metrics.split('\n').find((l) => l.startsWith('ziggie_workspace_health{') && l.includes(`workspace="${workspace}"`) && l.includes(`status="${status}"`));
    expect(sample('meowping-nft', 'at-risk')).toMatch(/ 1$/);
    expect(sample('meowping-nft', 'on-track')).toMatch(/ 0$/);
    expect(sample('ziggie', 'on-track')).toMatch(/ 1$/);
  }, 60_000);
});
