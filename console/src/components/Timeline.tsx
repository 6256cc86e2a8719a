import { useEffect, useState } from 'react';
import type { TaskView } from '@ziggie/contracts';
import { formatDuration, layoutTimeline } from '../timeline';
import { Status } from './common';

/** Bars narrower than this (of the axis) carry their label beside them. */
const NARROW = 0.12;

/** Redraws a running task's open bars this often; a finished task's timeline does not move. */
const TICK_MS = 1_000;

export function Timeline({ task, selected, onSelect }: { task: TaskView; selected: string | null; onSelect(stepId: string): void }) {
  const running = task.status === 'queued' || task.status === 'running';
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => setNow(Date.now()), TICK_MS);
    return () => clearInterval(t);
  }, [running]);
  const layout = layoutTimeline(task, now);
  return (
    <div className="timeline" data-testid="timeline">
      <div className="timeline-axis muted">
        <span>0</span>
        <span>{formatDuration(layout.to - layout.from)}</span>
      </div>
      {layout.waves.map((w) => (
        <div className="wave" key={w.index} data-wave={w.index} data-status={w.status}>
          <div className="wave-label">
            Wave {w.index} <Status value={w.status} />
          </div>
          <div className="wave-track">
            {w.bars.map((b) => (
              <button
                key={b.step.id}
                type="button"
                className={`bar status-${b.step.status}${b.waiting ? ' bar-waiting' : ''}${!b.waiting && b.width < NARROW ? ` bar-narrow${b.left > 1 - NARROW * 2 ? ' bar-end' : ''}` : ''}${selected === b.step.id ? ' bar-selected' : ''}`}
                style={{ left: `${(b.left * 100).toFixed(2)}%`, width: b.waiting ? undefined : `${(b.width * 100).toFixed(2)}%` }}
                title={`${b.step.id}: ${b.step.status}${b.step.waitingReason ? ` (${b.step.waitingReason})` : ''}`}
                data-step={b.step.id}
                data-status={b.step.status}
                onClick={() => onSelect(b.step.id)}
              >
                <span className="bar-label">{b.step.id}</span>
              </button>
            ))}
          </div>
        </div>
      ))}
    </div>
  );
}
