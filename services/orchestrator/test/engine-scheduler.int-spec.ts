// The engine's Scheduler and Reconciler on a real PostgreSQL (a fresh database) and a real
// nats-server with JetStream, choosing agents through the agent-registry double over gRPC.
import { Consumers, Streams, Subject, subjectFor } from '@ziggie/contracts';
import {
  createDiscovery,
  createKysely,
  HealthRegistry,
  json,
  Kysely,
  loadConfig,
  MetricsService,
  migrate,
  NatsService,
  PeerClients,
  sql,
  TraceContexts,
} from '@ziggie/platform';
import type { Subscription } from 'nats';
// The modules themselves, not the index: this spec needs nothing else of the support code.
import { startNats, type NatsServerHandle } from '../../../test/support/nats';
import { startPostgres, type PostgresHandle } from '../../../test/support/postgres';
import { waitFor } from '../../../test/support/processes';
import { DispatchPublisher } from '../src/engine/dispatches';
import { TaskLifecycle } from '../src/engine/lifecycle';
import { Reconciler } from '../src/engine/reconciler';
import { ResultRecorder } from '../src/engine/results';
import { dispatchedCounts, inFlightPerWorkspace, markDispatched, PUMP_LOCK_KEY, Scheduler, SchedulerSettings } from '../src/engine/scheduler';
import { Dispatch } from '../src/engine/steps';
import { AfterCommit, UnitOfWork } from '../src/engine/unit-of-work';
import { EventPublisher } from '../src/events';
import { PolicyRule } from '../src/governance';
import { migrations, OrchestratorDb } from '../src/migrations';
import { PoolLeases } from '../src/pool-leases';
import { ToolCapacity } from '../src/tool-capacity';
import { ServedDouble } from './support/coord-double';
import { serveRegistry } from './support/registry-double';

jest.setTimeout(30_000);

const OPS = { subject: 'ops@test', roles: ['admin'], workspaces: ['*'] };
const SETTINGS: SchedulerSettings = { DISPATCH_BATCH: 100, PRIORITY_AGING_SECONDS: 60, WORKSPACE_LIMITS: {}, WORKSPACE_MAX_IN_FLIGHT: 50 };
const TIMEOUT_GRACE_MS = 500;
const secondsAgo = (s: number) => new Date(Date.now() - s * 1000);

/** The engine's callbacks after a commit, recorded instead of run (each test drives the parts itself). */
class RecordedAfterCommit implements AfterCommit {
  readonly advanced: string[] = [];
  readonly childrenCancelledOf: string[] = [];
  pumps = 0;

  advance(taskId: string): Promise<void> {
    this.advanced.push(taskId);
    return Promise.resolve();
  }

  pump(): void {
    this.pumps++;
  }

  cancelChildren(parentIds: string[]): Promise<void> {
    this.childrenCancelledOf.push(...parentIds);
    return Promise.resolve();
  }
}

interface TaskSeed {
  id: string;
  priority?: 'P0' | 'P1' | 'P2';
  status?: string;
  currentWave?: number;
  waveCount?: number;
  workspace?: string;
  createdAt?: Date;
  principal?: typeof OPS;
}

interface StepSeed {
  id: string;
  ordinal?: number;
  wave?: number;
  action?: string;
  capability?: string | null;
  workspace?: string;
  input?: Record<string, unknown>;
  status?: string;
  attempt?: number;
  agentId?: string | null;
  retries?: number;
  timeoutMs?: number;
  gpu?: boolean;
  nextAttemptAt?: Date | null;
  waitingReason?: string | null;
  errorCode?: string | null;
  dispatchedAt?: Date | null;
  publishedAt?: Date | null;
  startedAt?: Date | null;
}

describe('engine Scheduler and Reconciler on PostgreSQL and JetStream (agent-registry double)', () => {
  let pg: PostgresHandle | undefined;
  let db: Kysely<OrchestratorDb>;
  /** A second replica's own connection pool. */
  let replicaDb: Kysely<OrchestratorDb>;
  let server: NatsServerHandle | undefined;
  let nats: NatsService;
  /** A second replica's own NATS connection. */
  let replicaNats: NatsService;
  let registry: ServedDouble | undefined;
  let peers: PeerClients;
  /** Peers PoolLeases asked for: none, as no step here has a pool (workspace-coord is not served). */
  const leasePeersAsked: string[] = [];
  let rules: PolicyRule[] = [];

  beforeAll(async () => {
    pg = await startPostgres();
    db = createKysely<OrchestratorDb>(pg.url);
    replicaDb = createKysely<OrchestratorDb>(pg.url);
    await migrate(db as Kysely<unknown>, 'orchestrator', migrations);
    server = await startNats();
    registry = await serveRegistry(['qa', 'render']);
    const config = loadConfig('orchestrator', undefined, {
      ZIGGIE_JWT_SECRET: 'integration-secret-0123456789',
      NATS_URL: server.url,
      AGENT_REGISTRY_GRPC_ADDR: registry.address,
      LOG_LEVEL: 'error',
    });
    // The result recorder's durable consumer (never consumed here): the Reconciler asks it whether results wait to be recorded.
    const streams = { streams: [Streams.steps, Streams.results, Streams.events], consumers: [Consumers.resultRecorder, Consumers.deadLetters] };
    nats = new NatsService(config, streams, new HealthRegistry());
    await nats.start();
    replicaNats = new NatsService(config, streams, new HealthRegistry());
    await replicaNats.start();
    peers = new PeerClients(config, createDiscovery(config));
  }, 60_000);

  afterAll(async () => {
    await peers?.onApplicationShutdown();
    await replicaNats?.onApplicationShutdown();
    await nats?.onApplicationShutdown();
    await registry?.stop();
    await server?.stop();
    await replicaDb?.destroy();
    await db?.destroy();
    await pg?.stop();
  }, 30_000);

  beforeEach(async () => {
    rules = [];
    await sql`truncate tasks, steps, step_attempts, step_ledger, event_outbox, policy_decisions`.execute(db);
    await nats.manager.streams.purge(Streams.steps.name);
    await nats.manager.streams.purge(Streams.events.name);
    await nats.manager.streams.purge(Streams.results.name);
  });

  afterEach(() => {
    expect(leasePeersAsked).toEqual([]);
  });

  /** The engine's parts as EngineService wires them, on one replica's database and NATS connection. */
  function engine(settings: Partial<SchedulerSettings> = {}, replica: { db: Kysely<OrchestratorDb>; nats: NatsService } = { db, nats }) {
    const dbOf = () => replica.db;
    const leasePeers = {
      get: (name: string) => {
        leasePeersAsked.push(name);
        return Promise.reject(new Error(`PoolLeases asked for ${name}, which this spec does not serve`));
      },
    } as unknown as PeerClients;
    const leases = new PoolLeases(leasePeers, new MetricsService('orchestrator'));
    const events = new EventPublisher(replica.nats, dbOf);
    const uow = new UnitOfWork(dbOf, replica.nats, events, leases, undefined);
    const after = new RecordedAfterCommit();
    uow.wire(after);
    const toolCapacity = new ToolCapacity();
    const dispatches = new DispatchPublisher(replica.nats, new TraceContexts(), uow);
    const scheduler = new Scheduler(uow, peers, { rules: () => Promise.resolve(rules) }, leases, toolCapacity, dispatches, { ...SETTINGS, ...settings });
    const lifecycle = new TaskLifecycle(uow, dbOf, () => undefined);
    const results = new ResultRecorder(uow, lifecycle, toolCapacity, 100);
    const pumpsAsked = { n: 0 };
    const reconciler = new Reconciler(
      dbOf,
      replica.nats,
      events,
      dispatches,
      leases,
      lifecycle,
      { schedulePump: () => void pumpsAsked.n++ },
      results,
      TIMEOUT_GRACE_MS,
    );
    return { uow, after, toolCapacity, scheduler, lifecycle, reconciler, pumpsAsked };
  }

  async function seedTask(t: TaskSeed): Promise<void> {
    const status = t.status ?? 'running';
    await db
      .insertInto('tasks')
      .values({
        id: t.id,
        title: t.id,
        workspace: t.workspace ?? 'alpha',
        priority: t.priority ?? 'P1',
        status,
        current_wave: t.currentWave ?? (status === 'queued' ? 0 : 1),
        wave_count: t.waveCount ?? 1,
        principal: json(t.principal ?? OPS),
        correlation_id: `corr-${t.id}`,
        ...(t.createdAt ? { created_at: t.createdAt } : {}),
      })
      .execute();
  }

  async function seedSteps(taskId: string, steps: StepSeed[]): Promise<void> {
    await db
      .insertInto('steps')
      .values(
        steps.map((s, i) => ({
          task_id: taskId,
          id: s.id,
          ordinal: s.ordinal ?? i,
          wave: s.wave ?? 1,
          capability: s.capability === undefined ? 'qa' : s.capability,
          agent: null,
          action: s.action ?? 'tool',
          workspace: s.workspace ?? 'alpha',
          input: json(s.input ?? { tool: 'everything.echo', arguments: { message: s.id } }),
          depends_on: json([]),
          retries: s.retries ?? 0,
          timeout_ms: s.timeoutMs ?? 60_000,
          status: s.status ?? 'pending',
          attempt: s.attempt ?? 0,
          agent_id: s.agentId ?? null,
          gpu: s.gpu ?? false,
          next_attempt_at: s.nextAttemptAt ?? null,
          waiting_reason: s.waitingReason ?? null,
          error_code: s.errorCode ?? null,
          error_message: s.errorCode ? 'earlier failure' : null,
          dispatched_at: s.dispatchedAt ?? null,
          published_at: s.publishedAt ?? null,
          started_at: s.startedAt ?? null,
        })),
      )
      .execute();
  }

  const stepRow = (taskId: string, id: string) => db.selectFrom('steps').selectAll().where('task_id', '=', taskId).where('id', '=', id).executeTakeFirstOrThrow();

  /** `taskId/stepId` → status, for the given tasks. */
  async function statuses(...taskIds: string[]): Promise<Record<string, string>> {
    const rows = await db.selectFrom('steps').select(['task_id', 'id', 'status']).where('task_id', 'in', taskIds).orderBy('task_id').orderBy('ordinal').execute();
    return Object.fromEntries(rows.map((r) => [`${r.task_id}/${r.id}`, r.status]));
  }

  /** Every message a stream holds, in stream order, with its Nats-Msg-Id. */
  async function stored(stream: string): Promise<Array<{ subject: string; msgId: string | undefined; body: Record<string, unknown> }>> {
    const { state } = await nats.manager.streams.info(stream);
    const out: Array<{ subject: string; msgId: string | undefined; body: Record<string, unknown> }> = [];
    if (state.messages === 0) return out;
    for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
      const m = await nats.manager.streams.getMessage(stream, { seq }).catch(() => undefined);
      if (m) out.push({ subject: m.subject, msgId: m.header?.get('Nats-Msg-Id') || undefined, body: m.json<Record<string, unknown>>() });
    }
    return out;
  }

  const dispatchIds = async () => (await stored(Streams.steps.name)).map((m) => m.msgId);

  /** The task events JetStream holds for a task, as `type stepId status`. */
  async function eventsOf(taskId: string): Promise<string[]> {
    const subject = subjectFor(Subject.TaskEvent, taskId);
    return (await stored(Streams.events.name))
      .filter((m) => m.subject === subject)
      .map((m) => [m.body.type, m.body.stepId, m.body.status].filter((x) => x !== undefined).join(' '));
  }

  describe('Scheduler', () => {
    it('dispatches the ready steps of running tasks\' current waves only, as attempt 1 with an attempt row, a JetStream message per attempt and a step.dispatched event', async () => {
      const { scheduler, uow } = engine();
      await seedTask({ id: 'run', waveCount: 2 });
      await seedSteps('run', [
        { id: 'a' },
        { id: 'b', capability: 'render' },
        { id: 'due', nextAttemptAt: secondsAgo(5), waitingReason: 'retry 2 of 2 after …' },
        { id: 'later', nextAttemptAt: new Date(Date.now() + 3_600_000) },
        { id: 'done', status: 'succeeded', attempt: 1 },
        { id: 'next-wave', wave: 2 },
      ]);
      await seedTask({ id: 'queued', status: 'queued' });
      await seedSteps('queued', [{ id: 'a' }]);

      expect(await scheduler.pumpOnce()).toBe(3);

      expect(await statuses('run', 'queued')).toEqual({
        'queued/a': 'pending',
        'run/a': 'dispatched',
        'run/b': 'dispatched',
        'run/due': 'dispatched',
        'run/later': 'pending',
        'run/done': 'succeeded',
        'run/next-wave': 'pending',
      });
      for (const [id, agent] of [['a', 'agent-qa'], ['b', 'agent-render'], ['due', 'agent-qa']] as const) {
        const row = await stepRow('run', id);
        expect(row).toMatchObject({ attempt: 1, agent_id: agent, waiting_reason: null, next_attempt_at: null, published_at: null });
        expect(row.dispatched_at).toBeInstanceOf(Date);
      }
      expect((await stepRow('run', 'later')).attempt).toBe(0);
      const attempts = await db.selectFrom('step_attempts').select(['task_id', 'step_id', 'attempt', 'agent_id', 'status', 'lease_id']).orderBy('step_id').execute();
      expect(attempts).toEqual([
        { task_id: 'run', step_id: 'a', attempt: 1, agent_id: 'agent-qa', status: 'dispatched', lease_id: null },
        { task_id: 'run', step_id: 'b', attempt: 1, agent_id: 'agent-render', status: 'dispatched', lease_id: null },
        { task_id: 'run', step_id: 'due', attempt: 1, agent_id: 'agent-qa', status: 'dispatched', lease_id: null },
      ]);

      const messages = await stored(Streams.steps.name);
      expect(messages.map((m) => [m.subject, m.msgId])).toEqual([
        [subjectFor(Subject.StepDispatch, 'qa'), 'run.a.1'],
        [subjectFor(Subject.StepDispatch, 'render'), 'run.b.1'],
        [subjectFor(Subject.StepDispatch, 'qa'), 'run.due.1'],
      ]);
      expect(messages[1]!.body).toEqual({
        taskId: 'run',
        stepId: 'b',
        attemptId: 'run.b.1',
        attempt: 1,
        capability: 'render',
        action: 'tool',
        workspace: 'alpha',
        agentId: 'agent-render',
        input: { tool: 'everything.echo', arguments: { message: 'b' } },
        timeoutMs: 60_000,
        correlationId: 'corr-run',
        principal: OPS,
        depth: 0,
        priority: 'P1',
      } satisfies Dispatch);
      expect(await eventsOf('run')).toEqual(['step.dispatched a dispatched', 'step.dispatched b dispatched', 'step.dispatched due dispatched']);
      expect(await eventsOf('queued')).toEqual([]);

      // What JetStream confirmed is written by the next transaction (here the small one that carries it).
      expect(uow.pendingHousekeeping.published).toBe(3);
      await uow.flushCarried();
      const published = await db.selectFrom('steps').select('id').where('task_id', '=', 'run').where('published_at', 'is not', null).orderBy('id').execute();
      expect(published.map((r) => r.id)).toEqual(['a', 'b', 'due']);

      // Nothing is ready any more: the next round dispatches nothing again.
      expect(await scheduler.pumpOnce()).toBe(0);
      expect(await dispatchIds()).toHaveLength(3);
    });

    it('orders rounds P0, P1, P2 with aging (a P2 task waiting 2 × PRIORITY_AGING_SECONDS ranks with P0, first come first served), DISPATCH_BATCH steps per round', async () => {
      const { scheduler } = engine({ DISPATCH_BATCH: 2 });
      await seedTask({ id: 'p2', priority: 'P2' });
      await seedTask({ id: 'p1', priority: 'P1' });
      await seedTask({ id: 'p0', priority: 'P0' });
      await seedTask({ id: 'p2-aged', priority: 'P2', createdAt: secondsAgo(2 * SETTINGS.PRIORITY_AGING_SECONDS + 5) });
      for (const id of ['p2', 'p1', 'p0', 'p2-aged']) await seedSteps(id, [{ id: 'first' }, { id: 'second' }]);

      const rounds: string[][] = [];
      for (let i = 0; i < 4; i++) {
        const before = (await dispatchIds()).length;
        expect(await scheduler.pumpOnce()).toBe(2);
        rounds.push((await dispatchIds()).slice(before) as string[]);
      }
      expect(rounds).toEqual([
        ['p2-aged.first.1', 'p2-aged.second.1'],
        ['p0.first.1', 'p0.second.1'],
        ['p1.first.1', 'p1.second.1'],
        ['p2.first.1', 'p2.second.1'],
      ]);
      expect(await scheduler.pumpOnce()).toBe(0);
    });

    it('keeps a workspace within its WORKSPACE_LIMITS entry, counting the steps already in flight, while other workspaces go on', async () => {
      const { scheduler } = engine({ WORKSPACE_LIMITS: { w: 2 } });
      await seedTask({ id: 'busy', workspace: 'w' });
      await seedSteps('busy', [{ id: 'running', workspace: 'w', status: 'running', attempt: 1, agentId: 'agent-qa' }]);
      await seedTask({ id: 'wide', workspace: 'w' });
      await seedSteps('wide', ['s0', 's1', 's2', 's3', 's4'].map((id) => ({ id, workspace: 'w' })));
      await seedTask({ id: 'elsewhere', workspace: 'x' });
      await seedSteps('elsewhere', [{ id: 's', workspace: 'x' }]);

      await scheduler.pumpOnce();
      expect(await statuses('wide', 'elsewhere')).toEqual({
        'elsewhere/s': 'dispatched',
        'wide/s0': 'dispatched',
        'wide/s1': 'pending',
        'wide/s2': 'pending',
        'wide/s3': 'pending',
        'wide/s4': 'pending',
      });
      expect([...(await db.transaction().execute((trx) => inFlightPerWorkspace(trx)))].sort()).toEqual([
        ['w', 2],
        ['x', 1],
      ]);

      // Full: the workspace's steps are not even looked at.
      expect(await scheduler.pumpOnce()).toBe(0);
      expect(await dispatchIds()).toEqual(['wide.s0.1', 'elsewhere.s.1']);

      // One finishes: one more goes.
      await db.updateTable('steps').set({ status: 'succeeded' }).where('task_id', '=', 'busy').execute();
      await scheduler.pumpOnce();
      expect(await dispatchIds()).toEqual(['wide.s0.1', 'elsewhere.s.1', 'wide.s1.1']);
      expect((await stepRow('wide', 's2')).status).toBe('pending');
    });

    it('holds an approval step for a decision even while its workspace is full (approval steps take no capacity)', async () => {
      const { scheduler } = engine({ WORKSPACE_LIMITS: { w: 1 } });
      await seedTask({ id: 'busy', workspace: 'w' });
      await seedSteps('busy', [{ id: 'running', workspace: 'w', status: 'running', attempt: 1, agentId: 'agent-qa' }]);
      await seedTask({ id: 'gated', workspace: 'w' });
      await seedSteps('gated', [
        { id: 'gate', action: 'approval', capability: null, input: {}, workspace: 'w' },
        { id: 'work', workspace: 'w' },
      ]);

      expect(await scheduler.pumpOnce()).toBe(1);

      expect(await stepRow('gated', 'gate')).toMatchObject({ status: 'waiting_approval', waiting_reason: 'waiting for approval', attempt: 0 });
      // The workspace is still full for the step that takes capacity.
      expect(await stepRow('gated', 'work')).toMatchObject({ status: 'pending', attempt: 0 });
      expect(await eventsOf('gated')).toEqual(['step.waiting gate waiting_approval']);
      expect(await dispatchIds()).toEqual([]);
    });

    it('holds approval steps and steps a policy asks approval for in waiting_approval, and fails a step a deny policy matches with POLICY_DENIED', async () => {
      const match = { capabilities: [], tools: [], workspaces: [], roles: [], actions: [], pools: [] };
      rules = [
        { id: 'no-shell', name: 'no shell', effect: 'deny', match: { ...match, tools: ['shell.*'] }, budget: null, priority: 1, enabled: true },
        { id: 'deploys', name: 'deploys need approval', effect: 'require_approval', match: { ...match, capabilities: ['render'] }, budget: null, priority: 2, enabled: true },
        { id: 'off', name: 'disabled deny-all', effect: 'deny', match, budget: null, priority: 0, enabled: false },
      ];
      const { scheduler, after } = engine();
      await seedTask({ id: 'gov' });
      await seedSteps('gov', [
        { id: 'gate', action: 'approval', capability: null, input: {} },
        { id: 'shell', input: { tool: 'shell.exec', arguments: { cmd: 'rm -rf /' } } },
        { id: 'render', capability: 'render' },
        { id: 'echo' },
      ]);

      expect(await scheduler.pumpOnce()).toBe(4);

      expect(await stepRow('gov', 'gate')).toMatchObject({ status: 'waiting_approval', waiting_reason: 'waiting for approval', attempt: 0 });
      const shell = await stepRow('gov', 'shell');
      expect(shell).toMatchObject({ status: 'failed', error_code: 'POLICY_DENIED', error_message: 'policy no shell: matched tools shell.*', attempt: 0, agent_id: null });
      expect(shell.finished_at).toBeInstanceOf(Date);
      expect(await stepRow('gov', 'render')).toMatchObject({
        status: 'waiting_approval',
        waiting_reason: 'waiting for approval: policy deploys need approval: matched capabilities render',
        attempt: 0,
      });
      expect((await stepRow('gov', 'echo')).status).toBe('dispatched');
      expect(await dispatchIds()).toEqual(['gov.echo.1']);
      expect(await db.selectFrom('step_attempts').select('step_id').execute()).toEqual([{ step_id: 'echo' }]);

      const decisions = await db.selectFrom('policy_decisions').select(['id', 'policy_id', 'effect', 'subject', 'workspace']).orderBy('id').execute();
      expect(decisions).toEqual([
        { id: 'gov.render.1.require_approval', policy_id: 'deploys', effect: 'require_approval', subject: 'ops@test', workspace: 'alpha' },
        { id: 'gov.shell.1.deny', policy_id: 'no-shell', effect: 'deny', subject: 'ops@test', workspace: 'alpha' },
      ]);
      expect(await eventsOf('gov')).toEqual([
        'step.waiting gate waiting_approval',
        'policy.decision shell deny',
        'step.failed shell failed',
        'policy.decision render require_approval',
        'step.waiting render waiting_approval',
        'step.dispatched echo dispatched',
      ]);
      // The denied step's task is handed on to be advanced (it fails there).
      expect(after.advanced).toEqual(['gov']);

      // Waiting steps are not looked at again until decided.
      expect(await scheduler.pumpOnce()).toBe(0);
      expect(await eventsOf('gov')).toHaveLength(6);
    });

    it('holds the ready calls of a tool whose learned limit is reached for the caller pending with the reason (one step.waiting each), while other tools and callers go', async () => {
      const { scheduler, toolCapacity } = engine();
      toolCapacity.learn({ subject: OPS.subject, tool: 'everything.echo', scope: 'tool', limit: 2 });
      const reason = 'waiting for capacity: tool everything.echo for caller ops@test admits 2 calls at once';
      await seedTask({ id: 'calls' });
      await seedSteps('calls', [
        { id: 'r1', status: 'running', attempt: 1, agentId: 'agent-qa' },
        { id: 'r2', status: 'dispatched', attempt: 1, agentId: 'agent-qa' },
      ]);
      await seedTask({ id: 'more' });
      await seedSteps('more', [{ id: 'e1' }, { id: 'e2' }, { id: 'add', input: { tool: 'everything.add', arguments: { a: 1, b: 2 } } }]);
      const other = { ...OPS, subject: 'someone@test' };
      await seedTask({ id: 'theirs', principal: other });
      await seedSteps('theirs', [{ id: 'e' }]);

      await scheduler.pumpOnce();
      expect(await statuses('more', 'theirs')).toEqual({ 'more/e1': 'pending', 'more/e2': 'pending', 'more/add': 'dispatched', 'theirs/e': 'dispatched' });
      expect(await stepRow('more', 'e1')).toMatchObject({ waiting_reason: reason, attempt: 0, next_attempt_at: null });
      expect(await stepRow('more', 'e2')).toMatchObject({ waiting_reason: reason, attempt: 0 });
      expect(await dispatchIds()).toEqual(['more.add.1', 'theirs.e.1']);
      expect(await eventsOf('more')).toEqual(['step.waiting e1 pending', 'step.waiting e2 pending', 'step.dispatched add dispatched']);

      // Still full: nothing more, and the reason is not told again.
      await scheduler.pumpOnce();
      expect(await eventsOf('more')).toHaveLength(3);
      expect(await dispatchIds()).toHaveLength(2);

      // One call ends: one more is admitted, the other keeps waiting.
      await db.updateTable('steps').set({ status: 'succeeded' }).where('task_id', '=', 'calls').where('id', '=', 'r1').execute();
      await scheduler.pumpOnce();
      expect(await stepRow('more', 'e1')).toMatchObject({ status: 'dispatched', waiting_reason: null, attempt: 1 });
      expect(await stepRow('more', 'e2')).toMatchObject({ status: 'pending', waiting_reason: reason });
      expect(await eventsOf('more')).toEqual(['step.waiting e1 pending', 'step.waiting e2 pending', 'step.dispatched add dispatched', 'step.dispatched e1 dispatched']);
    });

    it('admits calls of a limited tool within one round only up to the limit', async () => {
      const { scheduler, toolCapacity } = engine();
      toolCapacity.learn({ subject: OPS.subject, tool: 'fetch.get', scope: 'tool', limit: 2 });
      await seedTask({ id: 'fetches' });
      await seedSteps('fetches', ['f1', 'f2', 'f3'].map((id) => ({ id, input: { tool: 'fetch.get', arguments: { url: `https://example.test/${id}` } } })));

      await scheduler.pumpOnce();
      expect(await statuses('fetches')).toEqual({ 'fetches/f1': 'dispatched', 'fetches/f2': 'dispatched', 'fetches/f3': 'pending' });
      expect((await stepRow('fetches', 'f3')).waiting_reason).toBe('waiting for capacity: tool fetch.get for caller ops@test admits 2 calls at once');
      // The round's waits are written before its dispatches.
      expect(await eventsOf('fetches')).toEqual(['step.waiting f3 pending', 'step.dispatched f1 dispatched', 'step.dispatched f2 dispatched']);
      expect(await dispatchIds()).toEqual(['fetches.f1.1', 'fetches.f2.1']);
    });

    it('never dispatches a step twice when a second replica schedules on the same database at the same time (advisory lock)', async () => {
      const first = engine({ DISPATCH_BATCH: 4 });
      const second = engine({ DISPATCH_BATCH: 4 }, { db: replicaDb, nats: replicaNats });
      for (const t of ['r1', 'r2', 'r3']) {
        await seedTask({ id: t });
        await seedSteps(t, Array.from({ length: 10 }, (_, i) => ({ id: `s${i}` })));
      }

      // While another session holds the lock, neither replica schedules.
      await db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(${PUMP_LOCK_KEY})`.execute(trx);
        expect(await Promise.all([first.scheduler.pumpOnce(), second.scheduler.pumpOnce()])).toEqual([0, 0]);
      });
      expect(await dispatchIds()).toEqual([]);

      const pending = async () => Number((await db.selectFrom('steps').select((eb) => eb.fn.countAll<string>().as('n')).where('status', '=', 'pending').executeTakeFirstOrThrow()).n);
      for (let i = 0; i < 20 && (await pending()) > 0; i++) await Promise.all([first.scheduler.pumpOnce(), second.scheduler.pumpOnce()]);
      expect(await pending()).toBe(0);

      const attempts = await db.selectFrom('steps').select('attempt').distinct().execute();
      expect(attempts).toEqual([{ attempt: 1 }]);
      const attemptRows = await db.selectFrom('step_attempts').select(['task_id', 'step_id', 'attempt']).execute();
      expect(attemptRows).toHaveLength(30);
      expect(new Set(attemptRows.map((a) => a.attempt))).toEqual(new Set([1]));
      const ids = await dispatchIds();
      expect(ids).toHaveLength(30);
      expect(new Set(ids).size).toBe(30);
      for (const t of ['r1', 'r2', 'r3']) expect((await eventsOf(t)).filter((e) => e.startsWith('step.dispatched'))).toHaveLength(10);
    });
  });

  describe('markDispatched, dispatchedCounts', () => {
    it('marks only pending steps dispatched, with the next attempt, its attempt row and lease, clearing what the last attempt left', async () => {
      await seedTask({ id: 'mark' });
      await seedSteps('mark', [
        { id: 'retry', attempt: 2, errorCode: 'UPSTREAM_TIMEOUT', waitingReason: 'retry 3 of 3 after …', nextAttemptAt: secondsAgo(1), gpu: true },
        { id: 'busy', status: 'running', attempt: 1, agentId: 'agent-old' },
        { id: 'gate', action: 'approval', status: 'waiting_approval' },
      ]);
      const mark = (stepIds: string[]) =>
        db.transaction().execute((trx) => markDispatched(trx, stepIds.map((stepId) => ({ taskId: 'mark', stepId, agentId: 'agent-new', leaseId: stepId === 'retry' ? 'lease-9' : null }))));

      expect([...(await mark(['retry', 'busy', 'gate']))]).toEqual([['mark/retry', 3]]);
      const retry = await stepRow('mark', 'retry');
      expect(retry).toMatchObject({
        status: 'dispatched',
        attempt: 3,
        agent_id: 'agent-new',
        error_code: null,
        error_message: null,
        waiting_reason: null,
        next_attempt_at: null,
        published_at: null,
      });
      expect(retry.dispatched_at).toBeInstanceOf(Date);
      expect(await stepRow('mark', 'busy')).toMatchObject({ status: 'running', attempt: 1, agent_id: 'agent-old' });
      expect(await stepRow('mark', 'gate')).toMatchObject({ status: 'waiting_approval', attempt: 0 });
      const attemptRows = () => db.selectFrom('step_attempts').select(['step_id', 'attempt', 'agent_id', 'status', 'lease_id', 'dispatched_at']).execute();
      expect(await attemptRows()).toEqual([{ step_id: 'retry', attempt: 3, agent_id: 'agent-new', status: 'dispatched', lease_id: 'lease-9', dispatched_at: retry.dispatched_at }]);

      // Dispatched now: a second mark changes nothing.
      expect((await mark(['retry'])).size).toBe(0);
      expect((await stepRow('mark', 'retry')).attempt).toBe(3);
      expect(await attemptRows()).toHaveLength(1);

      const counts = await db.transaction().execute((trx) => dispatchedCounts(trx, ['mark', 'no-such-task']));
      expect([...counts]).toEqual([['mark', { steps: 2, gpu: 1 }]]);
      expect((await db.transaction().execute((trx) => dispatchedCounts(trx, []))).size).toBe(0);
    });
  });

  describe('Reconciler.run', () => {
    it('publishes again, under the same message id, dispatches JetStream never confirmed once they are 2 s old: one stored message per attempt', async () => {
      const { reconciler, uow, pumpsAsked } = engine();
      await seedTask({ id: 'lost' });
      await seedSteps('lost', [
        { id: 'stored', status: 'dispatched', attempt: 1, agentId: 'agent-qa', dispatchedAt: secondsAgo(10) },
        { id: 'never', status: 'dispatched', attempt: 2, agentId: 'agent-qa', dispatchedAt: secondsAgo(10) },
        { id: 'recent', status: 'dispatched', attempt: 1, agentId: 'agent-qa', dispatchedAt: new Date() },
        { id: 'confirmed', status: 'dispatched', attempt: 1, agentId: 'agent-qa', dispatchedAt: secondsAgo(10), publishedAt: secondsAgo(9) },
      ]);
      // JetStream stored this one; the crash came before its confirmation was written.
      const dispatch: Dispatch = {
        taskId: 'lost',
        stepId: 'stored',
        attemptId: 'lost.stored.1',
        attempt: 1,
        capability: 'qa',
        action: 'tool',
        workspace: 'alpha',
        agentId: 'agent-qa',
        input: { tool: 'everything.echo', arguments: { message: 'stored' } },
        timeoutMs: 60_000,
        correlationId: 'corr-lost',
        principal: OPS,
        depth: 0,
        priority: 'P1',
      };
      await nats.publish(Subject.StepDispatch, 'qa', dispatch, { msgId: dispatch.attemptId });

      await reconciler.run();

      const messages = await stored(Streams.steps.name);
      expect(messages.map((m) => m.msgId)).toEqual(['lost.stored.1', 'lost.never.2']);
      expect(messages[0]!.body).toEqual(dispatch);
      expect(messages[1]!.body).toMatchObject({ stepId: 'never', attemptId: 'lost.never.2', attempt: 2, agentId: 'agent-qa' });
      expect(pumpsAsked.n).toBe(1);

      await uow.flushCarried();
      const published = await db.selectFrom('steps').select(['id', 'published_at']).where('task_id', '=', 'lost').orderBy('id').execute();
      expect(Object.fromEntries(published.map((r) => [r.id, r.published_at !== null]))).toEqual({ confirmed: true, never: true, recent: false, stored: true });
    });

    it('fails a running step past its timeout plus grace with STEP_TIMEOUT, tells its runtime to stop, and fails its task', async () => {
      const { reconciler, after } = engine();
      await seedTask({ id: 'slow' });
      await seedSteps('slow', [
        { id: 'late', status: 'running', attempt: 1, agentId: 'agent-qa', timeoutMs: 1_000, dispatchedAt: secondsAgo(11), startedAt: secondsAgo(10) },
        { id: 'fine', status: 'running', attempt: 1, agentId: 'agent-qa', timeoutMs: 600_000, dispatchedAt: secondsAgo(11), startedAt: secondsAgo(10) },
      ]);
      await db
        .insertInto('step_attempts')
        .values(['late', 'fine'].map((id) => ({ task_id: 'slow', step_id: id, attempt: 1, agent_id: 'agent-qa', status: 'running', dispatched_at: secondsAgo(11), started_at: secondsAgo(10) })))
        .execute();
      const cancels: Array<{ attemptIds: string[]; reason: string }> = [];
      const sub: Subscription = nats.connection.subscribe(subjectFor(Subject.StepCancel, 'slow'), {
        callback: (_err, msg) => cancels.push(msg.json<{ attemptIds: string[]; reason: string }>()),
      });
      try {
        await nats.connection.flush();
        await reconciler.run();
        await waitFor(() => cancels.length >= 2, { timeoutMs: 5_000, what: 'the stop notices of both attempts' });
      } finally {
        sub.unsubscribe();
      }

      const late = await stepRow('slow', 'late');
      expect(late).toMatchObject({ status: 'failed', error_code: 'STEP_TIMEOUT', error_message: `no result within 1000 ms (+${TIMEOUT_GRACE_MS} ms grace)` });
      expect(late.finished_at).toBeInstanceOf(Date);
      const attempt = await db.selectFrom('step_attempts').selectAll().where('step_id', '=', 'late').executeTakeFirstOrThrow();
      expect(attempt).toMatchObject({ status: 'failed', error_code: 'STEP_TIMEOUT' });
      expect(await db.selectFrom('step_ledger').select(['attempt_id', 'status']).execute()).toEqual([{ attempt_id: 'slow.late.1', status: 'failed' }]);
      // The task fails on it; its other running step is cancelled.
      expect(await db.selectFrom('tasks').select(['status', 'error_code', 'failed_step_id']).where('id', '=', 'slow').executeTakeFirstOrThrow()).toEqual({
        status: 'failed',
        error_code: 'TASK_STEP_FAILED',
        failed_step_id: 'late',
      });
      expect((await stepRow('slow', 'fine')).status).toBe('cancelled');
      expect(cancels).toEqual(
        expect.arrayContaining([
          { taskId: 'slow', attemptIds: ['slow.late.1'], reason: 'step timed out' },
          expect.objectContaining({ taskId: 'slow', attemptIds: ['slow.fine.1'] }),
        ]),
      );
      expect(await eventsOf('slow')).toEqual(['step.failed late failed', 'step.cancelled fine cancelled', 'wave.failed failed', 'task.failed failed']);
      expect(after.childrenCancelledOf).toEqual(['slow']);
    });

    it('moves a running task whose current wave has nothing open to its next wave, and starts a queued task that is due; leaves a wave with open steps alone', async () => {
      const { reconciler, after, pumpsAsked } = engine();
      await seedTask({ id: 'stalled', waveCount: 2 });
      await seedSteps('stalled', [
        { id: 'a', status: 'succeeded', attempt: 1 },
        { id: 'b', status: 'succeeded', attempt: 1 },
        { id: 'c', wave: 2 },
      ]);
      await seedTask({ id: 'open', waveCount: 2 });
      await seedSteps('open', [
        { id: 'a', status: 'succeeded', attempt: 1 },
        { id: 'b', status: 'waiting_approval', action: 'approval' },
        { id: 'c', wave: 2 },
      ]);
      await seedTask({ id: 'due', status: 'queued' });
      await seedSteps('due', [{ id: 'a' }]);

      await reconciler.run();

      const tasks = await db.selectFrom('tasks').select(['id', 'status', 'current_wave']).orderBy('id').execute();
      expect(tasks).toEqual([
        { id: 'due', status: 'running', current_wave: 1 },
        { id: 'open', status: 'running', current_wave: 1 },
        { id: 'stalled', status: 'running', current_wave: 2 },
      ]);
      expect(await eventsOf('stalled')).toEqual(['wave.succeeded succeeded', 'wave.started running']);
      expect(await eventsOf('open')).toEqual([]);
      expect(await eventsOf('due')).toEqual(['task.running running', 'wave.started running']);
      // Each advance asks for a round, and so does the reconcile at its end.
      expect(after.pumps).toBe(2);
      expect(pumpsAsked.n).toBe(1);
    });

    describe('dispatches JetStream confirmed and then lost', () => {
      /**
       * Steps dispatched by a scheduler round as attempt 1 (with their attempt rows), their publish
       * confirmed and written (published_at, dispatch_seq); back-dated past 10 s unless `recent`.
       * Returns each step's dispatch_seq.
       */
      async function confirmedDispatches(e: ReturnType<typeof engine>, taskId: string, stepIds: string[], recent: string[] = []): Promise<Record<string, string>> {
        await seedTask({ id: taskId });
        await seedSteps(taskId, stepIds.map((id) => ({ id })));
        expect(await e.scheduler.pumpOnce()).toBe(stepIds.length);
        await e.uow.flushCarried();
        const seqs: Record<string, string> = {};
        for (const id of stepIds) {
          const row = await stepRow(taskId, id);
          expect(row).toMatchObject({ status: 'dispatched', attempt: 1 });
          expect(row.published_at).toBeInstanceOf(Date);
          expect(row.dispatch_seq).not.toBeNull();
          seqs[id] = String(row.dispatch_seq);
          if (recent.includes(id)) continue;
          await db.updateTable('steps').set({ dispatched_at: secondsAgo(30), published_at: secondsAgo(20) }).where('task_id', '=', taskId).where('id', '=', id).execute();
        }
        const byId = Object.fromEntries((await stored(Streams.steps.name)).map((m) => [m.msgId, m]));
        for (const id of stepIds) expect(byId[`${taskId}.${id}.1`]).toBeDefined();
        return seqs;
      }

      /**
       * A message JetStream confirmed and then lost, as a nats-server killed with SIGKILL loses it:
       * removed from the stream, and the server restarted. Deleting alone is not enough: the server
       * would still know the message id for its duplicate window (2 minutes) and drop the publish
       * again as a duplicate; a restart rebuilds that memory from the messages it holds.
       */
      async function loseMessage(seq: string): Promise<void> {
        await nats.manager.streams.deleteMessage(Streams.steps.name, Number(seq));
        await server!.restart();
        // Asked with a short timeout: a request the server gets before JetStream is back goes unanswered.
        for (const n of [nats, replicaNats]) {
          const jsm = await n.connection.jetstreamManager({ timeout: 500, checkAPI: false });
          await waitFor(() => jsm.streams.info(Streams.steps.name).then(() => true), { timeoutMs: 15_000, what: 'JetStream back after the restart' });
        }
      }

      const resultsWaiting = async () => {
        const c = await nats.manager.consumers.info(Streams.results.name, Consumers.resultRecorder.durable);
        return c.num_pending + c.num_ack_pending;
      };

      it('publishes again, under the same message id, a dispatch JetStream confirmed and then lost; the next transaction writes its new sequence', async () => {
        const e = engine();
        const { a: seq } = await confirmedDispatches(e, 'gone', ['a']);
        const sent = (await stored(Streams.steps.name))[0]!;
        await loseMessage(seq!);
        expect(await dispatchIds()).toEqual([]);
        expect(await resultsWaiting()).toBe(0);
        const before = await stepRow('gone', 'a');

        await e.reconciler.run();

        const messages = await stored(Streams.steps.name);
        expect(messages.map((m) => [m.subject, m.msgId])).toEqual([[subjectFor(Subject.StepDispatch, 'qa'), 'gone.a.1']]);
        expect(messages[0]!.body).toEqual(sent.body);
        const newSeq = (await nats.manager.streams.info(Streams.steps.name)).state.last_seq;
        expect(newSeq).toBeGreaterThan(Number(seq));
        // Same attempt, still dispatched; unconfirmed until the next transaction writes the confirmation.
        expect(await stepRow('gone', 'a')).toMatchObject({ status: 'dispatched', attempt: 1, agent_id: 'agent-qa', published_at: null, dispatch_seq: null });
        expect(await db.selectFrom('step_attempts').select(['step_id', 'attempt', 'status']).where('task_id', '=', 'gone').execute()).toEqual([
          { step_id: 'a', attempt: 1, status: 'dispatched' },
        ]);

        await e.uow.flushCarried();
        const after = await stepRow('gone', 'a');
        expect(after.published_at).toBeInstanceOf(Date);
        expect(after.published_at!.getTime()).toBeGreaterThan(before.published_at!.getTime());
        expect(String(after.dispatch_seq)).toBe(String(newSeq));
      });

      it('leaves alone a dispatch still in the stream (looked up: another step\'s message is gone, but confirmed less than 10 s ago)', async () => {
        const e = engine();
        const seqs = await confirmedDispatches(e, 'kept', ['a', 'b'], ['b']);
        // Two dispatched steps with a sequence and one message: the lookup runs.
        await nats.manager.streams.deleteMessage(Streams.steps.name, Number(seqs.b));
        const before = await db.selectFrom('steps').select(['id', 'published_at', 'dispatch_seq']).where('task_id', '=', 'kept').orderBy('id').execute();

        await e.reconciler.run();
        await e.uow.flushCarried();

        expect(await dispatchIds()).toEqual(['kept.a.1']);
        expect((await nats.manager.streams.info(Streams.steps.name)).state.last_seq).toBe(Number(seqs.b));
        expect(await db.selectFrom('steps').select(['id', 'published_at', 'dispatch_seq']).where('task_id', '=', 'kept').orderBy('id').execute()).toEqual(before);
        expect(await statuses('kept')).toEqual({ 'kept/a': 'dispatched', 'kept/b': 'dispatched' });
      });

      it('leaves a lost dispatch alone while results wait to be recorded (one may be its own), and publishes it again once they are', async () => {
        const e = engine();
        const { a: seq } = await confirmedDispatches(e, 'wait', ['a']);
        await loseMessage(seq!);
        await nats.publish(Subject.StepResult, undefined, {
          taskId: 'wait',
          stepId: 'a',
          attemptId: 'wait.a.1',
          agentId: 'agent-qa',
          status: 'succeeded',
          output: { message: 'a' },
          startedAt: secondsAgo(5).toISOString(),
          finishedAt: new Date().toISOString(),
        });
        expect(await resultsWaiting()).toBe(1);
        const before = await stepRow('wait', 'a');

        await e.reconciler.run();
        await e.uow.flushCarried();

        expect(await dispatchIds()).toEqual([]);
        expect(await stepRow('wait', 'a')).toMatchObject({ status: 'dispatched', attempt: 1, published_at: before.published_at, dispatch_seq: before.dispatch_seq });
        expect(await resultsWaiting()).toBe(1);

        // The result taken and acknowledged (as if recorded; here the step stays dispatched): nothing waits any more.
        const consumer = await nats.jetstream.consumers.get(Streams.results.name, Consumers.resultRecorder.durable);
        const taken = await consumer.next({ expires: 5_000 });
        expect(taken?.json<{ attemptId: string }>().attemptId).toBe('wait.a.1');
        await taken!.ackAck();
        expect(await resultsWaiting()).toBe(0);

        await e.reconciler.run();
        expect(await dispatchIds()).toEqual(['wait.a.1']);
        expect(await stepRow('wait', 'a')).toMatchObject({ status: 'dispatched', attempt: 1, published_at: null, dispatch_seq: null });
      });
    });
  });
});
