import type { StepView, TaskView } from '@ziggie/contracts';
import { formatDuration, layoutTimeline, MIN_BAR } from './timeline';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();

function step(id: string, wave: number, status: string, times: { dispatched?: number; started?: number; finished?: number } = {}): StepView {
  return {
    id, capability: 'qa', action: 'tool', workspace: 'ziggie', status, agentId: null, attempt: 1, wave, dependsOn: [], input: {}, output: null, error: null,
    dispatchedAt: times.dispatched === undefined ? null : at(times.dispatched),
    startedAt: times.started === undefined ? null : at(times.started),
    finishedAt: times.finished === undefined ? null : at(times.finished),
    retries: 0, timeoutMs: 1000, pool: null, gpu: false, waitingReason: null, approvedBy: null, childTaskId: null, attempts: [],
  };
}

function task(status: string, waves: StepView[][], finished?: number): TaskView {
  return {
    id: 'tsk_1', title: '', workspace: 'ziggie', priority: 'P1', status, createdBy: 'me', createdAt: at(0), updatedAt: at(0),
    finishedAt: finished === undefined ? null : at(finished), errorCode: null, errorMessage: null, correlationId: '', output: null, notBefore: null,
    blueprint: null, parentTaskId: null, parentStepId: null, depth: 0, currentWave: 1, waveCount: waves.length, failedStepId: null,
    waves: waves.map((steps, i) => ({ index: i + 1, status: 'succeeded', steps })),
  };
}

describe('layoutTimeline', () => {
  it('places each wave\'s steps on one axis from creation to the end, later waves to the right', () => {
    const t = task('succeeded', [
      [step('a', 1, 'succeeded', { dispatched: 0, started: 0, finished: 200 }), step('b', 1, 'succeeded', { started: 100, finished: 400 })],
      [step('c', 2, 'succeeded', { started: 400, finished: 1000 })],
    ], 1000);
    const layout = layoutTimeline(t, T0 + 99_999);
    expect(layout.to - layout.from).toBe(1000);
    const [a, b] = layout.waves[0]!.bars;
    const [c] = layout.waves[1]!.bars;
    expect([a!.left, a!.width]).toEqual([0, 0.2]);
    expect(b!.left).toBeCloseTo(0.1);
    expect(b!.width).toBeCloseTo(0.3);
    expect(c!.left).toBeCloseTo(0.4);
    expect(c!.left + c!.width).toBeCloseTo(1);
    // A finished task does not stretch with the clock.
    expect(layoutTimeline(t, T0 + 5_000_000)).toEqual(layout);
  });

  it('runs open bars up to now while the task runs, and marks steps not started at their wave\'s start', () => {
    const t = task('running', [
      [step('a', 1, 'succeeded', { started: 0, finished: 500 })],
      [step('b', 2, 'running', { dispatched: 500, started: 600 }), step('c', 2, 'dispatched', { dispatched: 500 })],
      [step('d', 3, 'pending')],
    ]);
    const layout = layoutTimeline(t, T0 + 1000);
    expect(layout.to).toBe(T0 + 1000);
    const [b, c] = layout.waves[1]!.bars;
    expect(b!.left + b!.width).toBeCloseTo(1);
    expect(b!.waiting).toBe(false);
    // Dispatched but not started: a bar from dispatch to now.
    expect(c!.left).toBeCloseTo(0.5);
    const [d] = layout.waves[2]!.bars;
    expect(d).toMatchObject({ waiting: true, width: 0, left: 0 });
  });

  it('keeps very short steps visible and every bar inside the axis', () => {
    const t = task('succeeded', [[step('fast', 1, 'succeeded', { started: 999, finished: 1000 }), step('slow', 1, 'succeeded', { started: 0, finished: 100_000 })]], 100_000);
    const bars = layoutTimeline(t, T0).waves[0]!.bars;
    for (const bar of bars) {
      expect(bar.width).toBeGreaterThanOrEqual(MIN_BAR);
      expect(bar.left).toBeGreaterThanOrEqual(0);
      expect(bar.left + bar.width).toBeLessThanOrEqual(1 + 1e-9);
    }
  });

  it('survives a task with no times at all', () => {
    const layout = layoutTimeline({ ...task('queued', [[step('a', 1, 'pending')]]), createdAt: 'not a date' }, T0);
    expect(layout.waves[0]!.bars[0]).toMatchObject({ waiting: true, left: 0 });
    expect(layout.to).toBeGreaterThan(layout.from);
  });
});

describe('formatDuration', () => {
  it.each([
    [340, '340 ms'],
    [1234, '1.2 s'],
    [42_000, '42 s'],
    [125_000, '2 min 5 s'],
  ])('%d → %s', (ms, text) => expect(formatDuration(ms)).toBe(text));
});
