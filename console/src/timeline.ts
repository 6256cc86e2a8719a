import type { StepView, TaskView } from '@ziggie/contracts';

export interface Bar {
  step: StepView;
  /** Fractions of the task's span, 0..1. */
  left: number;
  width: number;
  /** The step has not started: its bar marks where it waits. */
  waiting: boolean;
}

export interface WaveRow {
  index: number;
  status: string;
  bars: Bar[];
}

export interface TimelineLayout {
  from: number;
  to: number;
  waves: WaveRow[];
}

const time = (iso: string | null | undefined): number | undefined => {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : undefined;
};

/** The smallest width a bar is drawn with, so a step of a few milliseconds can still be seen and clicked. */
export const MIN_BAR = 0.01;

/**
 * Lays a task's waves out on one time axis: from the task's creation to its end (or `now` while it
 * runs); each step a bar from when it started (or was dispatched) to when it finished (or `now`).
 * A step that has not started sits as a marker at its wave's start, or at the axis start.
 */
export function layoutTimeline(task: TaskView, now: number): TimelineLayout {
  const from = time(task.createdAt) ?? now;
  const steps = task.waves.flatMap((w) => w.steps);
  const ends = steps.map((s) => time(s.finishedAt) ?? (time(s.startedAt) !== undefined ? now : undefined)).filter((t): t is number => t !== undefined);
  const to = Math.max(from + 1, time(task.finishedAt) ?? (task.status === 'queued' || task.status === 'running' ? now : from + 1), ...ends);
  const span = to - from;
  const frac = (t: number): number => Math.min(1, Math.max(0, (t - from) / span));
  const waves = task.waves.map((w) => {
    const starts = w.steps.map((s) => time(s.startedAt) ?? time(s.dispatchedAt)).filter((t): t is number => t !== undefined);
    const waveStart = starts.length > 0 ? Math.min(...starts) : from;
    return {
      index: w.index,
      status: w.status,
      bars: w.steps.map((step) => {
        const start = time(step.startedAt) ?? time(step.dispatchedAt);
        if (start === undefined) return { step, left: frac(waveStart), width: 0, waiting: true };
        const end = time(step.finishedAt) ?? now;
        const left = frac(start);
        return { step, left: Math.min(left, 1 - MIN_BAR), width: Math.max(MIN_BAR, frac(end) - left), waiting: false };
      }),
    };
  });
  return { from, to, waves };
}

/** `1.2 s`, `340 ms`, `2 min 5 s`: durations as people read them. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}
