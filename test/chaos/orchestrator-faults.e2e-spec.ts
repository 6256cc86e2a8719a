import { Streams, Subject, subjectWildcard, type PayloadOf } from '@ziggie/contracts';
import { metricSum, sleep, startCluster, waitFor, type Cluster, type StepSpec, type TaskSpec } from '../support';

/**
 * Faults against real processes: nats-server with JetStream on disk, a PostgreSQL server, and the
 * compiled services, killed (SIGKILL), frozen (SIGSTOP) and restarted one by one mid-run. Whatever
 * is hit, every task must end, and the invariants of ADR 0009 hold, checked from what was stored:
 * - each step's effect is recorded once (the step_ledger, keyed by attempt, and step.succeeded);
 * - no event announces a transition that did not commit (the events stream against the tables);
 * - a task's events keep their order (numbered 1..n, stored in that order);
 * - workspace limits and priorities hold across three orchestrators.
 */

const WORKSPACE = 'ziggie';
/** A workspace with a concurrency limit of its own (WORKSPACE_LIMITS), used by test g only. */
const LIMITED_WORKSPACE = 'simstudio';
const LIMITED_IN_FLIGHT = 3;
const STEP_COUNT_METRIC = 'ziggie_step_duration_seconds_count';

type TaskEvent = PayloadOf<Subject.TaskEvent>;

const longOp = (seconds: number, steps = 2) => ({ tool: 'everything.trigger-long-running-operation', arguments: { duration: seconds, steps } });
const echo = (message: string) => ({ tool: 'everything.echo', arguments: { message } });

/** Three waves: two steps side by side, one that needs both, one that reads its output. */
function threeWaves(tag: string, seconds: number): StepSpec[] {
  return [
    { id: 'fetch', capability: 'research', input: longOp(seconds) },
    { id: 'count', capability: 'data', input: echo(`count ${tag}`) },
    { id: 'render', capability: 'art', dependsOn: ['fetch', 'count'], input: longOp(seconds) },
    { id: 'report', capability: 'qa', dependsOn: ['render'], input: echo(`report ${tag}: {{steps.render.output.text}}`) },
  ];
}

describe('orchestration under faults (real nats-server, PostgreSQL and services)', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster({
      // Its own PostgreSQL server, which test h kills.
      privatePostgres: true,
      serviceEnv: { 'agent-runtime': { RUNTIME_CONCURRENCY: '8' }, orchestrator: { WORKSPACE_LIMITS: JSON.stringify({ [LIMITED_WORKSPACE]: LIMITED_IN_FLIGHT }) } },
    });
  }, 180_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 90_000);

  async function submitMany(count: number, spec: (i: number) => TaskSpec, instance: (i: number) => number = () => 0): Promise<string[]> {
    const ids: string[] = [];
    for (let from = 0; from < count; from += 10) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(10, count - from) }, (_, k) => cluster.submitTask(spec(from + k), { instance: instance(from + k) })),
      );
      ids.push(...batch.map((t) => t.id));
    }
    expect(new Set(ids).size).toBe(count);
    return ids;
  }

  async function succeededSteps(ids: string[]): Promise<number> {
    const [row] = await cluster.sql<{ n: number }>(`select count(*)::int as n from steps where task_id = any($1) and status = 'succeeded'`, [ids]);
    return row!.n;
  }

  async function stepStatus(taskId: string, stepId: string): Promise<string | undefined> {
    const [row] = await cluster.sql<{ status: string }>('select status from steps where task_id = $1 and id = $2', [taskId, stepId]);
    return row?.status;
  }

  async function taskEvents(ids: string[]): Promise<TaskEvent[]> {
    const wanted = new Set(ids);
    const all = await cluster.readStream<TaskEvent>(Streams.events.name, subjectWildcard(Subject.TaskEvent));
    return all.filter((e) => wanted.has(e.taskId));
  }

  /**
   * After JetStream has drained: every task succeeded, every step succeeded, the ledger holds one
   * succeeded row per step and no more terminal rows than attempts, and the events stream holds
   * exactly one step.succeeded per step and one task.succeeded per task.
   */
  async function expectEachStepSucceededOnce(ids: string[], stepsPerTask: number): Promise<void> {
    await cluster.quiesce(90_000);
    const tasks = await cluster.sql<{ id: string; status: string }>('select id, status from tasks where id = any($1)', [ids]);
    expect(tasks).toHaveLength(ids.length);
    expect(tasks.filter((t) => t.status !== 'succeeded')).toEqual([]);

    const steps = await cluster.sql<{ task_id: string; id: string; status: string; attempt: number }>('select task_id, id, status, attempt from steps where task_id = any($1)', [ids]);
    expect(steps).toHaveLength(ids.length * stepsPerTask);
    expect(steps.filter((s) => s.status !== 'succeeded')).toEqual([]);

    const ledger = await cluster.sql<{ task_id: string; step_id: string; succeeded: number; terminal: number }>(
      `select task_id, step_id,
              count(*) filter (where status = 'succeeded')::int as succeeded,
              count(*) filter (where status in ('succeeded', 'failed'))::int as terminal
         from step_ledger where task_id = any($1) group by task_id, step_id`,
      [ids],
    );
    const byStep = new Map(ledger.map((r) => [`${r.task_id}/${r.step_id}`, r]));
    const ledgerProblems = steps.flatMap((s) => {
      const l = byStep.get(`${s.task_id}/${s.id}`);
      if (!l) return [`${s.task_id}/${s.id}: no ledger row`];
      if (l.succeeded !== 1) return [`${s.task_id}/${s.id}: ${l.succeeded} succeeded ledger rows`];
      if (l.terminal > s.attempt) return [`${s.task_id}/${s.id}: ${l.terminal} terminal ledger rows for ${s.attempt} attempts`];
      return [];
    });
    expect(ledgerProblems).toEqual([]);

    const evs = await taskEvents(ids);
    const succeededEvents = new Map<string, number>();
    const taskSucceeded = new Map<string, number>();
    for (const e of evs) {
      if (e.type === 'step.succeeded') succeededEvents.set(`${e.taskId}/${e.stepId}`, (succeededEvents.get(`${e.taskId}/${e.stepId}`) ?? 0) + 1);
      if (e.type === 'task.succeeded') taskSucceeded.set(e.taskId, (taskSucceeded.get(e.taskId) ?? 0) + 1);
    }
    const eventProblems = steps.flatMap((s) => {
      const n = succeededEvents.get(`${s.task_id}/${s.id}`) ?? 0;
      return n === 1 ? [] : [`${s.task_id}/${s.id}: ${n} step.succeeded events`];
    });
    for (const id of ids) {
      const n = taskSucceeded.get(id) ?? 0;
      if (n !== 1) eventProblems.push(`${id}: ${n} task.succeeded events`);
    }
    expect(eventProblems).toEqual([]);
  }

  /**
   * The events stream against the committed tables, per task: its events are numbered 1..n with
   * n = tasks.event_seq (an event published from a transaction that rolled back would take a
   * number a later commit reuses: a repeat, or a stored event the tables contradict), each step has
   * one step.dispatched per attempt row, and each step's and task's last event is its final status.
   */
  async function expectEventsMatchCommits(ids: string[]): Promise<void> {
    await cluster.quiesce(90_000);
    const evs = await taskEvents(ids);
    const tasks = await cluster.sql<{ id: string; status: string; event_seq: number }>('select id, status, event_seq from tasks where id = any($1)', [ids]);
    const attempts = await cluster.sql<{ task_id: string; step_id: string; n: number }>(
      'select task_id, step_id, count(*)::int as n from step_attempts where task_id = any($1) group by task_id, step_id',
      [ids],
    );
    const steps = await cluster.sql<{ task_id: string; id: string; status: string }>('select task_id, id, status from steps where task_id = any($1)', [ids]);
    const byTask = new Map<string, TaskEvent[]>();
    for (const e of evs) byTask.set(e.taskId, [...(byTask.get(e.taskId) ?? []), e]);
    const problems: string[] = [];
    for (const t of tasks) {
      const mine = byTask.get(t.id) ?? [];
      const seqs = mine.map((e) => e.seq);
      if (seqs.length !== t.event_seq || seqs.some((seq, i) => seq !== i + 1)) problems.push(`${t.id}: events ${seqs.join(',')} but event_seq ${t.event_seq}`);
      const last = mine.filter((e) => e.type.startsWith('task.')).at(-1);
      if (last?.type !== `task.${t.status}`) problems.push(`${t.id}: last task event ${last?.type} but status ${t.status}`);
    }
    const dispatched = new Map<string, number>();
    const lastOfStep = new Map<string, TaskEvent>();
    for (const e of evs) {
      if (!e.stepId || e.type === 'policy.decision') continue;
      const k = `${e.taskId}/${e.stepId}`;
      if (e.type === 'step.dispatched') dispatched.set(k, (dispatched.get(k) ?? 0) + 1);
      lastOfStep.set(k, e);
    }
    for (const a of attempts) {
      const k = `${a.task_id}/${a.step_id}`;
      if ((dispatched.get(k) ?? 0) !== a.n) problems.push(`${k}: ${dispatched.get(k) ?? 0} step.dispatched events for ${a.n} attempts`);
    }
    for (const s of steps) {
      const last = lastOfStep.get(`${s.task_id}/${s.id}`);
      if (last?.status !== s.status) problems.push(`${s.task_id}/${s.id}: last event ${last?.type} (${last?.status}) but status ${s.status}`);
    }
    expect(problems).toEqual([]);
  }

  /** At no instant more than `limit` attempts of `workspace` between their dispatch and their end; returns the peak. */
  async function peakInFlight(ids: string[], workspace: string): Promise<number> {
    const attempts = await cluster.sql<{ dispatched: Date; finished: Date }>(
      `select a.dispatched_at as dispatched, a.finished_at as finished
         from step_attempts a join steps s on s.task_id = a.task_id and s.id = a.step_id
        where a.task_id = any($1) and s.workspace = $2 and a.dispatched_at is not null and a.finished_at is not null`,
      [ids, workspace],
    );
    const edges = attempts.flatMap((a) => [[a.dispatched.getTime(), 1], [a.finished.getTime(), -1]] as const).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    let open = 0;
    let peak = 0;
    for (const [, d] of edges) peak = Math.max(peak, (open += d));
    return peak;
  }

  it('a: kill -9 of the orchestrator mid-wave, then a restart: all 30 tasks succeed, none lost, each step recorded once', async () => {
    await cluster.scale('orchestrator', 1);
    await cluster.scale('agent-runtime', 2);
    const ids = await submitMany(30, (i) => ({ workspace: WORKSPACE, title: `orchestrator kill ${i}`, steps: threeWaves(`a${i}`, 0.6) }));

    await waitFor(async () => (await succeededSteps(ids)) >= 10, { timeoutMs: 60_000, what: 'the first steps of wave 1 to succeed' });
    const killedPid = cluster.info('orchestrator').pid;
    await cluster.kill('orchestrator', 'SIGKILL');
    expect(cluster.info('orchestrator').running).toBe(false);
    const [open] = await cluster.sql<{ n: number }>(`select count(*)::int as n from tasks where id = any($1) and status not in ('succeeded', 'failed', 'cancelled')`, [ids]);
    // The kill landed in the middle of the run, not after it.
    expect(open!.n).toBeGreaterThan(0);

    // The runtimes go on finishing what was dispatched while no orchestrator records it.
    await sleep(1_500);
    const restarted = await cluster.restart('orchestrator');
    expect(restarted.pid).not.toBe(killedPid);

    const done = await cluster.waitForTasksTerminal(ids, { timeoutMs: 150_000 });
    expect([...done.values()].filter((t) => t.status !== 'succeeded')).toEqual([]);
    await expectEachStepSucceededOnce(ids, 4);

    // Outputs of earlier waves recorded before the kill still fed the later waves.
    for (const id of ids.slice(0, 5)) {
      const task = await cluster.getTask(id);
      const report = task.waves.flatMap((w) => w.steps).find((s) => s.id === 'report');
      expect(String(report?.output?.text)).toMatch(/^Echo: report a\d+: Long running operation completed/);
    }
  }, 300_000);

  it('b: kill -9 of the agent runtime running a step, a second runtime up: the step is redelivered to it (after the 30 s ack wait) and completes', async () => {
    await cluster.scale('orchestrator', 1);
    await cluster.scale('agent-runtime', 1);
    const task = await cluster.submitTask({ workspace: WORKSPACE, title: 'runtime kill', steps: [{ id: 'render', capability: 'art', input: longOp(15, 15) }] });
    await waitFor(async () => (await stepStatus(task.id, 'render')) === 'running', { timeoutMs: 30_000, what: 'the step to run on runtime #0' });

    await cluster.start('agent-runtime', { instance: 1 });
    const executedBefore = metricSum(await cluster.metrics('agent-runtime', 1), STEP_COUNT_METRIC);
    // Still in flight on runtime #0 when it dies.
    expect(await stepStatus(task.id, 'render')).toBe('running');
    await cluster.kill('agent-runtime', 'SIGKILL', { instance: 0 });

    const done = await cluster.waitForTasksTerminal([task.id], { timeoutMs: 120_000 });
    expect(done.get(task.id)?.status).toBe('succeeded');
    // Runtime #1 ran it: the only execution that finished.
    expect(metricSum(await cluster.metrics('agent-runtime', 1), STEP_COUNT_METRIC) - executedBefore).toBe(1);
    await expectEachStepSucceededOnce([task.id], 1);
    const render = (await cluster.getTask(task.id)).waves[0]!.steps[0]!;
    expect(String(render.output?.text)).toMatch(/Long running operation completed/);
  }, 240_000);

  it('c: nats-server restarted mid-run (file storage, same port and store): the services reconnect and every task succeeds', async () => {
    await cluster.scale('orchestrator', 1);
    await cluster.scale('agent-runtime', 2);
    const ids = await submitMany(12, (i) => ({ workspace: WORKSPACE, title: `nats restart ${i}`, steps: threeWaves(`c${i}`, 0.8) }));
    await waitFor(async () => (await succeededSteps(ids)) >= 6, { timeoutMs: 60_000, what: 'the first steps to succeed' });
    const queuedBefore = (await taskEvents(ids)).filter((e) => e.type === 'task.queued').length;
    expect(queuedBefore).toBe(ids.length);
    const pidBefore = cluster.natsPid;

    await cluster.restartNats({ downMs: 2_000 });
    expect(cluster.natsPid).toBeDefined();
    expect(cluster.natsPid).not.toBe(pidBefore);
    const [open] = await cluster.sql<{ n: number }>(`select count(*)::int as n from tasks where id = any($1) and status not in ('succeeded', 'failed', 'cancelled')`, [ids]);
    expect(open!.n).toBeGreaterThan(0);

    const done = await cluster.waitForTasksTerminal(ids, { timeoutMs: 150_000 });
    expect([...done.values()].filter((t) => t.status !== 'succeeded')).toEqual([]);
    // Events written before the restart were on disk and are still there.
    expect((await taskEvents(ids)).filter((e) => e.type === 'task.queued')).toHaveLength(ids.length);
    await expectEachStepSucceededOnce(ids, 4);
    for (const name of ['workspace-coord', 'agent-registry', 'mcp-gateway', 'orchestrator'] as const) {
      await waitFor(() => cluster.ready(name), { timeoutMs: 30_000, what: `${name} to be ready again` });
    }
    for (const i of [0, 1]) await waitFor(() => cluster.ready('agent-runtime', i), { timeoutMs: 30_000, what: `agent-runtime #${i} to be ready again` });
  }, 300_000);

  it('d: a step that fails for good fails the task naming the step and the reason, cancels its siblings in flight, leaves nothing open', async () => {
    await cluster.scale('orchestrator', 1);
    await cluster.scale('agent-runtime', 2);
    const task = await cluster.submitTask({
      workspace: WORKSPACE,
      title: 'fails for good',
      steps: [
        { id: 'slow-a', capability: 'art', input: longOp(10, 5) },
        { id: 'slow-b', capability: 'research', input: longOp(10, 5) },
        { id: 'broken', capability: 'qa', retries: 1, input: { tool: 'everything.no-such-tool', arguments: {} } },
        { id: 'after', capability: 'qa', dependsOn: ['slow-a', 'slow-b', 'broken'], input: echo('never') },
      ],
    });
    const done = await cluster.waitForTasksTerminal([task.id], { timeoutMs: 60_000 });
    expect(done.get(task.id)?.status).toBe('failed');

    const check = async (): Promise<void> => {
      const failed = await cluster.getTask(task.id);
      expect(failed).toMatchObject({ status: 'failed', errorCode: 'TASK_STEP_FAILED', failedStepId: 'broken' });
      expect(failed.errorMessage).toMatch(/\bbroken\b/);
      expect(failed.errorMessage).toMatch(/TOOL_NOT_FOUND/);
      const steps = Object.fromEntries(failed.waves.flatMap((w) => w.steps).map((s) => [s.id, s]));
      expect(steps.broken).toMatchObject({ status: 'failed', attempt: 2 });
      expect(steps['slow-a']!.status).toBe('cancelled');
      expect(steps['slow-b']!.status).toBe('cancelled');
      expect(steps.after!.status).toBe('cancelled');
      const open = await cluster.sql<{ id: string; status: string }>(`select id, status from steps where task_id = $1 and status not in ('succeeded', 'failed', 'cancelled')`, [task.id]);
      expect(open).toEqual([]);
    };
    await check();
    const ledger = await cluster.sql<{ status: string }>(`select status from step_ledger where task_id = $1 and step_id = 'broken'`, [task.id]);
    expect(ledger.map((r) => r.status)).toEqual(['failed', 'failed']);

    // Once the cancelled siblings' late results (if any) have been delivered, nothing has changed.
    await cluster.quiesce(60_000);
    await check();
    const events = await taskEvents([task.id]);
    const failedAt = events.findIndex((e) => e.type === 'task.failed');
    expect(failedAt).toBeGreaterThan(-1);
    const siblings = events.filter((e) => e.stepId === 'slow-a' || e.stepId === 'slow-b');
    expect(siblings.filter((e) => e.type === 'step.succeeded')).toEqual([]);
    expect(siblings.filter((e) => e.type === 'step.cancelled').map((e) => e.stepId).sort()).toEqual(['slow-a', 'slow-b']);
    expect(events.slice(failedAt + 1).filter((e) => e.type.startsWith('task.'))).toEqual([]);
  }, 180_000);

  it('e: two orchestrators on one NATS and Postgres complete 50 multi-wave tasks submitted alternately, each step recorded once', async () => {
    await cluster.scale('orchestrator', 2);
    await cluster.scale('agent-runtime', 2);
    const ids = await submitMany(50, (i) => ({ workspace: WORKSPACE, title: `two orchestrators ${i}`, steps: threeWaves(`e${i}`, 0.3) }), (i) => i % 2);
    const done = await cluster.waitForTasksTerminal(ids, { timeoutMs: 150_000 });
    expect([...done.values()].filter((t) => t.status !== 'succeeded')).toEqual([]);
    await expectEachStepSucceededOnce(ids, 4);
    // Each orchestrator serves the tasks the other one accepted.
    for (const instance of [0, 1]) expect((await cluster.getTask(ids[1 - instance]!, { instance })).status).toBe('succeeded');
  }, 240_000);

  it('f: two runtimes share the work and execute no step twice (their step counters add up to the number of steps)', async () => {
    await cluster.scale('orchestrator', 1);
    await cluster.scale('agent-runtime', 2);
    await cluster.quiesce(60_000);
    const before = await Promise.all([0, 1].map(async (i) => metricSum(await cluster.metrics('agent-runtime', i), STEP_COUNT_METRIC)));
    const ids = await submitMany(16, (i) => ({
      workspace: WORKSPACE,
      title: `two runtimes ${i}`,
      steps: [
        { id: 'one', capability: 'art', input: longOp(0.5) },
        { id: 'two', capability: 'research', input: longOp(0.5) },
        { id: 'three', capability: 'data', input: echo(`three f${i}`) },
      ],
    }));
    const done = await cluster.waitForTasksTerminal(ids, { timeoutMs: 120_000 });
    expect([...done.values()].filter((t) => t.status !== 'succeeded')).toEqual([]);
    await expectEachStepSucceededOnce(ids, 3);
    const after = await Promise.all([0, 1].map(async (i) => metricSum(await cluster.metrics('agent-runtime', i), STEP_COUNT_METRIC)));
    const executed = after.map((n, i) => n - before[i]!);
    expect(executed[0]! + executed[1]!).toBe(ids.length * 3);
    // 48 steps at once against 2 x 8 slots: both runtimes took some.
    expect(executed[0]).toBeGreaterThan(0);
    expect(executed[1]).toBeGreaterThan(0);
  }, 180_000);

  it('g: three orchestrators, one killed mid-run and restarted: the workspace limit holds throughout, each step runs once, events stay in order', async () => {
    await cluster.scale('orchestrator', 3);
    await cluster.scale('agent-runtime', 2);
    const ids = await submitMany(
      24,
      (i) => ({
        workspace: LIMITED_WORKSPACE,
        title: `three orchestrators ${i}`,
        steps: [
          { id: 'first', capability: 'art', input: longOp(0.4, 1) },
          { id: 'second', capability: 'qa', dependsOn: ['first'], input: longOp(0.2, 1) },
        ],
      }),
      (i) => i % 3,
    );
    await waitFor(async () => (await succeededSteps(ids)) >= 6, { timeoutMs: 60_000, what: 'the first steps to succeed' });
    // Whichever replica is scheduling at this moment, one of three is killed mid-run.
    await cluster.kill('orchestrator', 'SIGKILL', { instance: 1 });
    await sleep(1_000);
    await cluster.restart('orchestrator', { instance: 1 });
    const done = await cluster.waitForTasksTerminal(ids, { timeoutMs: 180_000 });
    expect([...done.values()].filter((t) => t.status !== 'succeeded')).toEqual([]);
    await expectEachStepSucceededOnce(ids, 2);

    // The limit, from what ran: at no instant were more than 3 attempts of the workspace between
    // their dispatch and their end (the scheduler counts a step until its result is recorded, later
    // still, so this can only undercount what it saw).
    const peak = await peakInFlight(ids, LIMITED_WORKSPACE);
    expect(peak).toBeLessThanOrEqual(LIMITED_IN_FLIGHT);
    // 48 steps of 0.2-0.4 s against 3 slots: the limit was reached, not merely respected by idleness.
    expect(peak).toBe(LIMITED_IN_FLIGHT);

    // Every task's events: numbered 1..n without a gap or a repeat, stored in that order, and matching the tables.
    await expectEventsMatchCommits(ids);
  }, 300_000);

  it('h: kill -9 of PostgreSQL mid-run under three orchestrators, then a restart: every task succeeds, each step once, no event of a transaction that did not commit', async () => {
    await cluster.scale('orchestrator', 3);
    await cluster.scale('agent-runtime', 2);
    const ids = await submitMany(24, (i) => ({ workspace: WORKSPACE, title: `postgres kill ${i}`, steps: threeWaves(`h${i}`, 0.5) }), (i) => i % 3);
    await waitFor(async () => (await succeededSteps(ids)) >= 12, { timeoutMs: 60_000, what: 'the first steps to succeed' });
    const pidBefore = cluster.postgres.pid;
    await cluster.killPostgres('SIGKILL');
    // Transactions in flight die with it; results keep arriving on JetStream meanwhile.
    await sleep(2_000);
    await cluster.restartPostgres();
    expect(cluster.postgres.pid).not.toBe(pidBefore);
    const [open] = await cluster.sql<{ n: number }>(`select count(*)::int as n from tasks where id = any($1) and status not in ('succeeded', 'failed', 'cancelled')`, [ids]);
    // The crash landed in the middle of the run.
    expect(open!.n).toBeGreaterThan(0);

    const done = await cluster.waitForTasksTerminal(ids, { timeoutMs: 180_000 });
    expect([...done.values()].filter((t) => t.status !== 'succeeded')).toEqual([]);
    await expectEachStepSucceededOnce(ids, 4);
    await expectEventsMatchCommits(ids);
  }, 300_000);

  it('i: kill -9 of nats-server mid-run under three orchestrators, then a restart on the same store: every task succeeds, each step once, events match the tables', async () => {
    await cluster.scale('orchestrator', 3);
    await cluster.scale('agent-runtime', 2);
    const ids = await submitMany(18, (i) => ({ workspace: WORKSPACE, title: `nats kill ${i}`, steps: threeWaves(`i${i}`, 0.6) }), (i) => i % 3);
    await waitFor(async () => (await succeededSteps(ids)) >= 8, { timeoutMs: 60_000, what: 'the first steps to succeed' });
    const pidBefore = cluster.natsPid;
    await cluster.restartNats({ signal: 'SIGKILL', downMs: 1_500 });
    expect(cluster.natsPid).not.toBe(pidBefore);
    const done = await cluster.waitForTasksTerminal(ids, { timeoutMs: 180_000 });
    expect([...done.values()].filter((t) => t.status !== 'succeeded')).toEqual([]);
    await expectEachStepSucceededOnce(ids, 4);
    await expectEventsMatchCommits(ids);
  }, 300_000);

  it('j: one of three orchestrators frozen (SIGSTOP) mid-run: the other two finish the work meanwhile; woken, it changes nothing already decided', async () => {
    await cluster.scale('orchestrator', 3);
    await cluster.scale('agent-runtime', 2);
    const ids = await submitMany(18, (i) => ({ workspace: WORKSPACE, title: `frozen orchestrator ${i}`, steps: threeWaves(`j${i}`, 0.3) }), (i) => i % 3);
    await waitFor(async () => (await succeededSteps(ids)) >= 6, { timeoutMs: 60_000, what: 'the first steps to succeed' });
    // Frozen wherever it is: maybe inside a scheduling round, holding its locks, or holding results
    // JetStream delivered to it.
    await cluster.kill('orchestrator', 'SIGSTOP', { instance: 0 });
    try {
      // Within the idle-in-transaction timeout (20 s) and the results' ack wait (2 s), the others go on.
      const done = await cluster.waitForTasksTerminal(ids, { timeoutMs: 150_000 });
      expect([...done.values()].filter((t) => t.status !== 'succeeded')).toEqual([]);
    } finally {
      await cluster.kill('orchestrator', 'SIGCONT', { instance: 0 });
    }
    await waitFor(() => cluster.ready('orchestrator', 0), { timeoutMs: 60_000, what: 'the woken orchestrator to be ready' });
    await expectEachStepSucceededOnce(ids, 4);
    await expectEventsMatchCommits(ids);
  }, 300_000);

  it('k: priorities hold across three orchestrators, one killed mid-run: P0 tasks submitted behind P2 ones go first', async () => {
    await cluster.scale('orchestrator', 3);
    await cluster.scale('agent-runtime', 2);
    // The limited workspace runs 3 steps at a time: fill it, queue P2 tasks, then P0 tasks behind them.
    const blockers = await submitMany(3, (i) => ({ workspace: LIMITED_WORKSPACE, priority: 'P1', title: `blocker ${i}`, steps: [{ id: 'hold', capability: 'art', input: longOp(3, 1) }] }));
    await waitFor(async () => (await cluster.sql<{ n: number }>(`select count(*)::int as n from steps where task_id = any($1) and status in ('dispatched', 'running')`, [blockers]))[0]!.n === 3, {
      timeoutMs: 30_000,
      what: 'the blockers to fill the workspace',
    });
    const low = await submitMany(9, (i) => ({ workspace: LIMITED_WORKSPACE, priority: 'P2', title: `low ${i}`, steps: [{ id: 'work', capability: 'qa', input: longOp(0.3, 1) }] }), (i) => i % 3);
    const high = await submitMany(6, (i) => ({ workspace: LIMITED_WORKSPACE, priority: 'P0', title: `high ${i}`, steps: [{ id: 'work', capability: 'qa', input: longOp(0.3, 1) }] }), (i) => (i + 1) % 3);
    await cluster.kill('orchestrator', 'SIGKILL', { instance: 1 });
    await cluster.restart('orchestrator', { instance: 1 });
    const all = [...blockers, ...low, ...high];
    const done = await cluster.waitForTasksTerminal(all, { timeoutMs: 180_000 });
    expect([...done.values()].filter((t) => t.status !== 'succeeded')).toEqual([]);

    // Aging (PRIORITY_AGING_SECONDS, 60 s by default) cannot lift a P2 task submitted seconds
    // earlier above P0: every P0 step was dispatched before any P2 step.
    const first = await cluster.sql<{ task_id: string; at: Date }>('select task_id, min(dispatched_at) as at from step_attempts where task_id = any($1) group by task_id', [[...low, ...high]]);
    const at = new Map(first.map((r) => [r.task_id, r.at.getTime()]));
    const lastHigh = Math.max(...high.map((id) => at.get(id)!));
    const firstLow = Math.min(...low.map((id) => at.get(id)!));
    expect(lastHigh).toBeLessThanOrEqual(firstLow);
    expect(await peakInFlight(all, LIMITED_WORKSPACE)).toBeLessThanOrEqual(LIMITED_IN_FLIGHT);
    await expectEventsMatchCommits(all);
  }, 300_000);
});
