import type { TaskEvent } from './api';
import { restStep, restTask } from '../../test/support/rest-views';
import {
  applyStackEvent,
  applyTaskEvent,
  describeStackEvent,
  describeTransitions,
  formatDuration,
  pendingView,
  renderStackBlock,
  renderStackSummary,
  renderTaskBlock,
  stackViewInit,
  taskViewFromTask,
  type TaskProgress,
} from './progress';
import { defaultPorts } from './stack';

const T0 = Date.parse('2026-01-01T10:00:00.000Z');
const at = (ms: number): string => new Date(T0 + ms).toISOString();

function step(id: string, capability: string, wave: number, dependsOn: string[] = []) {
  return restStep({ id, capability, action: 'tool', workspace: 'ziggie', status: 'pending', wave, dependsOn, attempt: 0 });
}

const submitted = restTask({
  id: 'task-1',
  title: 'Demo: brief, sum, long operation, summary',
  workspace: 'ziggie',
  priority: 'P1',
  status: 'queued',
  createdAt: at(0),
  waves: [
    { index: 1, status: 'pending', steps: [step('brief', 'research', 1), step('numbers', 'data', 1)] },
    { index: 2, status: 'pending', steps: [step('render', 'art', 2, ['brief'])] },
    { index: 3, status: 'pending', steps: [step('summary', 'qa', 3, ['numbers', 'render'])] },
  ],
});

let seq = 0;
function ev(type: TaskEvent['type'], ms: number, extra: Partial<TaskEvent> = {}): TaskEvent {
  seq += 1;
  return { taskId: 'task-1', seq, type, at: at(ms), status: type.split('.')[1], ...extra };
}

const firstWave: TaskEvent[] = [
  ev('task.running', 10),
  ev('wave.started', 20, { wave: 1 }),
  ev('step.dispatched', 30, { wave: 1, stepId: 'brief', agentId: 'l1-research-01' }),
  ev('step.dispatched', 30, { wave: 1, stepId: 'numbers', agentId: 'l1-data-02' }),
  ev('step.running', 50, { wave: 1, stepId: 'brief', agentId: 'l1-research-01' }),
  ev('step.succeeded', 150, { wave: 1, stepId: 'brief', agentId: 'l1-research-01' }),
  ev('step.running', 60, { wave: 1, stepId: 'numbers', agentId: 'l1-data-02' }),
];

function fold(view: TaskProgress, events: TaskEvent[]): TaskProgress {
  return events.reduce(applyTaskEvent, view);
}

describe('task progress', () => {
  it('starts from the submitted task: every wave and step pending', () => {
    const view = taskViewFromTask(submitted);
    expect(view.waves.map((w) => [w.index, w.stepIds])).toEqual([
      [1, ['brief', 'numbers']],
      [2, ['render']],
      [3, ['summary']],
    ]);
    expect(renderTaskBlock(view, T0 + 500, { color: false })).toBe(
      [
        'Demo: brief, sum, long operation, summary  queued  500 ms',
        'wave 1  ░░░░░░░░░░░░░░░░░░░░ 0/2  pending',
        '  · brief    research  —',
        '  · numbers  data      —',
        'wave 2  ░░░░░░░░░░░░░░░░░░░░ 0/1  pending',
        '  · render   art       —',
        'wave 3  ░░░░░░░░░░░░░░░░░░░░ 0/1  pending',
        '  · summary  qa        —',
      ].join('\n'),
    );
  });

  it('draws bars, symbols, agents and elapsed times mid-wave', () => {
    const view = fold(taskViewFromTask(submitted), firstWave);
    const text = renderTaskBlock(view, T0 + 1030, { color: false });
    expect(text.split('\n')).toEqual([
      'Demo: brief, sum, long operation, summary  running  1.0 s',
      'wave 1  ██████████░░░░░░░░░░ 1/2  running',
      '  ✔ brief    research  l1-research-01  120 ms',
      // The spinner frame is a function of the time: 1030 ms → frame 10 % 10 = 0.
      '  ⠋ numbers  data      l1-data-02      1.0 s',
      'wave 2  ░░░░░░░░░░░░░░░░░░░░ 0/1  pending',
      '  · render   art       —',
      'wave 3  ░░░░░░░░░░░░░░░░░░░░ 0/1  pending',
      '  · summary  qa        —',
    ]);
  });

  it('shows a failed task with the failing step and reason', () => {
    const view = fold(taskViewFromTask(submitted), [
      ...firstWave,
      ev('step.succeeded', 200, { wave: 1, stepId: 'numbers', agentId: 'l1-data-02' }),
      ev('wave.succeeded', 210, { wave: 1 }),
      ev('wave.started', 220, { wave: 2 }),
      ev('step.dispatched', 230, { wave: 2, stepId: 'render', agentId: 'l2-art-07' }),
      ev('step.failed', 2230, { wave: 2, stepId: 'render', agentId: 'l2-art-07', message: 'TOOL_TIMEOUT: no answer' }),
      ev('wave.failed', 2240, { wave: 2 }),
      ev('task.failed', 2250, { message: 'step render failed' }),
    ]);
    const text = renderTaskBlock(view, T0 + 99_999, { color: false });
    expect(text).toContain('Demo: brief, sum, long operation, summary  failed  2.3 s');
    expect(text).toContain('wave 1  ████████████████████ 2/2  succeeded');
    expect(text).toContain('wave 2  ████████████████████ 1/1  failed');
    expect(text).toContain('  ✖ render   art       l2-art-07       2.0 s  TOOL_TIMEOUT: no answer');
    expect(text.split('\n').at(-1)).toBe('step render failed');
  });

  it('keeps the input view unchanged (pure folding)', () => {
    const before = taskViewFromTask(submitted);
    const snapshot = JSON.stringify(before);
    fold(before, firstWave);
    expect(JSON.stringify(before)).toBe(snapshot);
  });

  it('adds steps and waves it did not know (fan-out, delegation)', () => {
    const view = applyTaskEvent(
      taskViewFromTask(submitted),
      ev('step.dispatched', 5, { wave: 4, stepId: 'extra', agentId: 'l3-x' }),
    );
    expect(view.waves.map((w) => w.index)).toEqual([1, 2, 3, 4]);
    expect(view.waves[3]).toEqual({ index: 4, status: 'running', stepIds: ['extra'] });
  });

  it('restarts a step clock on a retry', () => {
    const view = fold(taskViewFromTask(submitted), [
      ev('step.dispatched', 0, { wave: 1, stepId: 'brief' }),
      ev('step.failed', 100, { wave: 1, stepId: 'brief', message: 'boom' }),
      ev('step.dispatched', 500, { wave: 1, stepId: 'brief' }),
    ]);
    expect(view.steps.brief).toMatchObject({ status: 'dispatched', startedAt: T0 + 500, finishedAt: undefined });
    expect(view.steps.brief.message).toBeUndefined();
  });

  it('skips replayed history older than the view it started from', () => {
    const ahead = fold(taskViewFromTask(submitted), [
      ...firstWave,
      ev('step.succeeded', 200, { wave: 1, stepId: 'numbers', agentId: 'l1-data-02' }),
      ev('wave.succeeded', 210, { wave: 1 }),
    ]);
    const replayed = fold(ahead, [
      ev('task.queued', 0),
      ev('task.running', 10),
      ev('wave.started', 20, { wave: 1 }),
      ev('step.dispatched', 30, { wave: 1, stepId: 'brief', agentId: 'l1-research-01' }),
      ev('step.running', 50, { wave: 1, stepId: 'brief', agentId: 'l1-research-01' }),
    ]);
    expect(replayed).toEqual(ahead);
    expect(describeTransitions(ahead, replayed, { color: false })).toEqual([]);
  });

  it('describes each transition as one line when not drawing in place', () => {
    let view = taskViewFromTask(submitted);
    const lines: string[] = [];
    for (const e of [
      ...firstWave,
      ev('step.succeeded', 200, { wave: 1, stepId: 'numbers', agentId: 'l1-data-02' }),
      ev('wave.succeeded', 210, { wave: 1 }),
      ev('task.succeeded', 4200),
    ]) {
      const next = applyTaskEvent(view, e);
      lines.push(...describeTransitions(view, next, { color: false }));
      view = next;
    }
    expect(lines).toEqual([
      'task running',
      'wave 1 started: 2 steps',
      '  → brief dispatched agent l1-research-01',
      '  → numbers dispatched agent l1-data-02',
      '  ▶ brief running',
      '  ✔ brief succeeded 120 ms',
      '  ▶ numbers running',
      '  ✔ numbers succeeded 170 ms',
      'wave 1 succeeded (2/2)',
      'task succeeded in 4.2 s',
    ]);
  });

  it('tells the story so far from a task that is already under way', () => {
    const view = fold(taskViewFromTask(submitted), firstWave.slice(0, 4));
    expect(describeTransitions(pendingView(view), view, { color: false })).toEqual([
      'task running',
      'wave 1 started: 2 steps',
      '  → brief dispatched agent l1-research-01',
      '  → numbers dispatched agent l1-data-02',
    ]);
  });

  it('describes the jump between two polled snapshots', () => {
    const prev = taskViewFromTask(submitted);
    const next = taskViewFromTask({
      ...submitted,
      status: 'running',
      waves: [
        {
          index: 1,
          status: 'succeeded',
          steps: [
            { ...step('brief', 'research', 1), status: 'succeeded', agentId: 'a1', startedAt: at(0), finishedAt: at(40) },
            { ...step('numbers', 'data', 1), status: 'succeeded', agentId: 'a2', startedAt: at(0), finishedAt: at(30) },
          ],
        },
        { index: 2, status: 'running', steps: [{ ...step('render', 'art', 2), status: 'running', agentId: 'a3' }] },
        submitted.waves[2],
      ],
    });
    expect(describeTransitions(prev, next, { color: false })).toEqual([
      'task running',
      '  ✔ brief succeeded agent a1 40 ms',
      '  ✔ numbers succeeded agent a2 30 ms',
      'wave 1 succeeded (2/2)',
      'wave 2 started: 1 step',
      '  ▶ render running agent a3',
    ]);
  });

  it('cuts lines to the terminal width so redraws never wrap, colours included', () => {
    const view = fold(taskViewFromTask(submitted), firstWave);
    for (const color of [false, true]) {
      const text = renderTaskBlock(view, T0 + 1000, { color, width: 30 });
      for (const line of text.split('\n')) {
        // eslint-disable-next-line no-control-regex
        expect(line.replace(/\u001b\[[0-9;]*m/g, '').length).toBeLessThan(30);
      }
    }
  });
});

describe('stack progress', () => {
  const names = ['nats-server', 'workspace-coord', 'gateway'];

  it('renders one line per component with status and elapsed time', () => {
    let view = stackViewInit(names, T0);
    view = applyStackEvent(view, { kind: 'starting', name: 'nats-server' }, T0);
    view = applyStackEvent(view, { kind: 'ready', name: 'nats-server', ms: 180 }, T0 + 180);
    view = applyStackEvent(view, { kind: 'starting', name: 'workspace-coord' }, T0 + 200);
    view = applyStackEvent(view, { kind: 'failed', name: 'gateway', ms: 60_000, message: 'did not become ready\nmore' }, T0 + 300);
    expect(renderStackBlock(view, T0 + 1400, { color: false }).split('\n')).toEqual([
      '  ✔ nats-server      ready        180 ms',
      // 1400 ms into a whole second → spinner frame 4.
      '  ⠼ workspace-coord  starting      1.2 s',
      '  ✖ gateway          failed       1m 00s  did not become ready',
    ]);
  });

  it('lists waiting components and the installer step', () => {
    let view = stackViewInit(names, T0);
    view = applyStackEvent(view, { kind: 'installing', name: 'nats-server', message: 'apt-get' }, T0);
    expect(renderStackBlock(view, T0 + 2500, { color: false }).split('\n')).toEqual([
      '  ⠴ nats-server      installing    2.5 s  apt-get',
      '  · workspace-coord  waiting',
      '  · gateway          waiting',
    ]);
  });

  it('has a plain line per event for logs', () => {
    expect(describeStackEvent({ kind: 'ready', name: 'gateway', ms: 1234 })).toBe('gateway ready (1.2 s)');
    expect(describeStackEvent({ kind: 'failed', name: 'gateway', message: 'exited\ntail' })).toBe('gateway failed: exited');
  });

  it('prints URLs, metrics, data dir and the token export', () => {
    const text = renderStackSummary(
      {
        gatewayUrl: 'http://127.0.0.1:4000',
        mcpUrl: 'http://127.0.0.1:4100/mcp',
        ports: defaultPorts(),
        dataDir: '/d',
        logsDir: '/d/logs',
        adminToken: 'tok',
      },
      { color: false, elapsedMs: 4321 },
    );
    expect(text).toContain('Ziggie Command Center is up in 4.3 s');
    expect(text).toContain('Console         http://127.0.0.1:4000/console/#token=tok');
    expect(text).toContain('Gateway (REST)  http://127.0.0.1:4000  (API docs http://127.0.0.1:4000/docs)');
    expect(text).toContain('MCP tools       http://127.0.0.1:4000/v1/mcp/tools');
    expect(text).toContain('MCP endpoint    http://127.0.0.1:4100/mcp');
    expect(text).toContain('NATS            nats://127.0.0.1:4222  monitor http://127.0.0.1:8222');
    expect(text).toContain('orchestrator     http://127.0.0.1:4010/metrics');
    expect(text).toContain('workspace-coord  http://127.0.0.1:4030/metrics');
    expect(text).toContain('export ZIGGIE_TOKEN=tok');
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0 ms'],
    [999, '999 ms'],
    [1000, '1.0 s'],
    [59_949, '59.9 s'],
    [61_000, '1m 01s'],
  ])('%d → %s', (ms, text) => expect(formatDuration(ms)).toBe(text));
});
