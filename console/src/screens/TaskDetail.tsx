import { lazy, memo, Suspense, useEffect, useMemo, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useSearchParams } from 'wouter';
import type { LiveEventMap, StepView, TaskView } from '@ziggie/contracts';
import { api } from '../api';
import { deniedReason } from '../auth';
import { ago, Card, Denied, ErrorBox, Loading, Status } from '../components/common';
import { Output } from '../components/Output';
import { Timeline } from '../components/Timeline';
import { readEventStream } from '../live';
import { keyedThrottle } from '../throttle';
import { formatDuration } from '../timeline';
import { useSession } from '../session';

type TaskEvent = LiveEventMap['task'];

// React Flow is loaded with the first graph shown, not with the page.
const Graph = lazy(() => import('../components/Graph'));

/** The task's own event stream: replayed from the start, it ends after the terminal event. */
function useTaskEvents(id: string): { events: TaskEvent[]; error: unknown } {
  const client = useQueryClient();
  const [events, setEvents] = useState<TaskEvent[]>([]);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    const abort = new AbortController();
    // Refetching the task on every event of a burst would be one request per step transition.
    const throttle = keyedThrottle(500);
    setEvents([]);
    readEventStream(
      `/v1/tasks/${encodeURIComponent(id)}/events`,
      (e) => {
        try {
          const data = JSON.parse(e.data) as TaskEvent;
          setEvents((old) => [...old, data]);
          throttle.schedule('task', () => void client.invalidateQueries({ queryKey: ['task', id] }));
        } catch {
          // a keep-alive or a line that is not JSON: nothing to show
        }
      },
      abort.signal,
    ).catch((err: unknown) => {
      if (!abort.signal.aborted) setError(err);
    });
    return () => {
      abort.abort();
      throttle.cancelAll();
    };
  }, [id, client]);
  return { events, error };
}

export function TaskDetail({ id }: { id: string }) {
  const session = useSession();
  const client = useQueryClient();
  const q = useQuery({ queryKey: ['task', id], queryFn: ({ signal }) => api<TaskView>(`/v1/tasks/${encodeURIComponent(id)}`, { signal }) });
  const { events, error: streamError } = useTaskEvents(id);
  const [selected, setSelected] = useState<string | null>(null);
  // The view is in the address, so a link can open a task on its DAG.
  const [params, setParams] = useSearchParams();
  const view = params.get('view') === 'dag' ? 'dag' : 'timeline';
  const setView = (v: 'timeline' | 'dag') =>
    setParams((prev) => {
      const next = new URLSearchParams(prev);
      if (v === 'dag') next.set('view', 'dag');
      else next.delete('view');
      return next;
    });
  const onTask = (task: TaskView) => client.setQueryData(['task', id], task);
  const cancel = useMutation({ mutationFn: () => api<TaskView>(`/v1/tasks/${encodeURIComponent(id)}/cancel`, { method: 'POST', body: {} }), onSuccess: onTask });
  const decide = useMutation({
    mutationFn: (v: { stepId: string; decision: 'approve' | 'reject' }) =>
      api<TaskView>(`/v1/tasks/${encodeURIComponent(id)}/steps/${encodeURIComponent(v.stepId)}/approve`, { method: 'POST', body: { decision: v.decision } }),
    onSuccess: onTask,
  });
  if (q.isPending) return <Loading what={`task ${id}`} />;
  if (q.isError) return <ErrorBox error={q.error} />;
  const t = q.data;
  const dispatchDenied = deniedReason(session, 'agent:dispatch');
  const active = t.status === 'queued' || t.status === 'running';
  const steps = t.waves.flatMap((w) => w.steps);
  const step = steps.find((s) => s.id === selected) ?? null;
  return (
    <div className="task-detail" data-testid="task-detail" data-status={t.status}>
      <p className="crumbs">
        <Link href="/tasks">Tasks</Link> / {t.id}
      </p>
      <h1>
        {t.title || t.blueprint || t.id} <Status value={t.status} />
      </h1>
      <dl className="facts">
        <dt>Workspace</dt>
        <dd>{t.workspace}</dd>
        <dt>Priority</dt>
        <dd>{t.priority}</dd>
        <dt>Blueprint</dt>
        <dd>{t.blueprint ?? '—'}</dd>
        <dt>Waves</dt>
        <dd data-testid="wave-progress">
          {t.currentWave}/{t.waveCount}
        </dd>
        <dt>Created</dt>
        <dd title={t.createdAt}>
          {ago(t.createdAt)} by {t.createdBy}
        </dd>
        {t.finishedAt ? (
          <>
            <dt>Took</dt>
            <dd>{formatDuration(Date.parse(t.finishedAt) - Date.parse(t.createdAt))}</dd>
          </>
        ) : null}
        {t.parentTaskId ? (
          <>
            <dt>Parent</dt>
            <dd>
              <Link href={`/tasks/${t.parentTaskId}`}>{t.parentTaskId}</Link>
            </dd>
          </>
        ) : null}
      </dl>
      {t.errorCode ? (
        <div className="error" role="alert" data-code={t.errorCode}>
          <strong className="error-code">{t.errorCode}</strong> <span>{t.errorMessage}</span>
          {t.failedStepId ? <span className="muted"> · step {t.failedStepId}</span> : null}
        </div>
      ) : null}
      {active ? (
        <p>
          <button className="danger" disabled={Boolean(dispatchDenied) || cancel.isPending} onClick={() => cancel.mutate()} title={dispatchDenied ?? undefined}>
            Cancel task
          </button>{' '}
          <Denied reason={dispatchDenied} />
        </p>
      ) : null}
      <ErrorBox error={cancel.error ?? decide.error} />
      <Card title="Waves" testId="waves">
        <div className="tabs" role="group" aria-label="View">
          <button type="button" aria-pressed={view === 'timeline'} onClick={() => setView('timeline')} data-view="timeline">
            Timeline
          </button>
          <button type="button" aria-pressed={view === 'dag'} onClick={() => setView('dag')} data-view="dag">
            DAG
          </button>
        </div>
        {view === 'dag' ? <TaskDag task={t} selected={selected} onSelect={setSelected} /> : <Timeline task={t} selected={selected} onSelect={setSelected} />}
      </Card>
      {step ? (
        <StepCard step={step} onClose={() => setSelected(null)} />
      ) : null}
      <Card title="Steps">
        <table className="list steps">
          <thead>
            <tr>
              <th>Step</th>
              <th>Wave</th>
              <th>Depends on</th>
              <th>Status</th>
              <th>Agent</th>
              <th className="num">Attempt</th>
              <th>Waiting for</th>
              <th>Took</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {steps.map((s) => (
              <StepRow key={s.id} step={s} selected={selected === s.id} onSelect={setSelected} dispatchDenied={dispatchDenied} deciding={decide.isPending} onDecide={decide.mutate} />
            ))}
          </tbody>
        </table>
      </Card>
      {t.output ? (
        <Card title="Task output">
          <Output value={t.output} />
        </Card>
      ) : null}
      <Card title="Events" testId="events">
        <ErrorBox error={streamError} />
        <ol className="events">
          {events.map((e) => (
            <li key={e.seq}>
              <span className="muted">{new Date(e.at).toLocaleTimeString('en')}</span> <code>{e.type}</code>
              {e.stepId ? ` ${e.stepId}` : ''}
              {e.wave ? ` (wave ${e.wave})` : ''}
              {e.agentId ? ` → ${e.agentId}` : ''}
              {e.message ? <span className="muted"> {e.message}</span> : null}
            </li>
          ))}
        </ol>
      </Card>
    </div>
  );
}

/**
 * One row of the steps table. Memoised: selecting a step re-renders two rows, not every row of a
 * wave of 1,625 steps.
 */
const StepRow = memo(function StepRow({
  step: s,
  selected,
  onSelect,
  dispatchDenied,
  deciding,
  onDecide,
}: {
  step: StepView;
  selected: boolean;
  onSelect(stepId: string): void;
  dispatchDenied: string | null;
  deciding: boolean;
  onDecide(v: { stepId: string; decision: 'approve' | 'reject' }): void;
}) {
  return (
    <tr data-step-row={s.id} className={selected ? 'selected' : ''}>
      <td>
        <button className="link" onClick={() => onSelect(s.id)}>
          {s.id}
        </button>
      </td>
      <td className="num">{s.wave}</td>
      <td className="muted deps" title={s.dependsOn.join(', ')}>{s.dependsOn.join(', ') || '—'}</td>
      <td>
        <Status value={s.status} />
      </td>
      <td>{s.agentId ? <Link href={`/agents/${s.agentId}`}>{s.agentId}</Link> : '—'}</td>
      <td className="num">
        {s.attempt}/{s.retries + 1}
      </td>
      <td className="muted">{s.waitingReason ?? ''}</td>
      <td className="muted">{s.startedAt && s.finishedAt ? formatDuration(Date.parse(s.finishedAt) - Date.parse(s.startedAt)) : ''}</td>
      <td>
        {s.status === 'waiting_approval' ? (
          <span className="actions">
            <button disabled={Boolean(dispatchDenied) || deciding} onClick={() => onDecide({ stepId: s.id, decision: 'approve' })} data-approve={s.id}>
              Approve
            </button>
            <button className="danger" disabled={Boolean(dispatchDenied) || deciding} onClick={() => onDecide({ stepId: s.id, decision: 'reject' })} data-reject={s.id}>
              Reject
            </button>
            <Denied reason={dispatchDenied} />
          </span>
        ) : null}
      </td>
    </tr>
  );
});

/** The steps as a graph: one node per step (coloured by status), an arrow from each dependency to its dependent, in wave order. */
function TaskDag({ task, selected, onSelect }: { task: TaskView; selected: string | null; onSelect(stepId: string): void }) {
  const items = useMemo(
    () =>
      task.waves.flatMap((w) =>
        w.steps.map((s) => ({
          id: s.id,
          dependsOn: s.dependsOn,
          layer: s.wave,
          label: s.id,
          status: s.status,
          detail: [s.capability ?? s.action, s.agentId].filter(Boolean).join(' · '),
          title: `${s.id}: ${s.status} · ${s.capability ?? s.action}${s.agentId ? ` · ${s.agentId}` : ''}${s.waitingReason ? ` (${s.waitingReason})` : ''}`,
        })),
      ),
    [task],
  );
  return (
    <Suspense fallback={<Loading what="the graph" />}>
      <Graph items={items} selected={selected} onSelect={onSelect} testId="task-dag" />
    </Suspense>
  );
}

function StepCard({ step, onClose }: { step: StepView; onClose(): void }) {
  return (
    <Card title={`Step ${step.id}`} testId="step-card">
      <button className="link close" onClick={onClose}>
        close
      </button>
      <dl className="facts" data-step-id={step.id}>
        <dt>Status</dt>
        <dd>
          <Status value={step.status} />
        </dd>
        <dt>Action</dt>
        <dd>
          {step.action} {step.capability ? `· ${step.capability}` : ''}
        </dd>
        <dt>Agent</dt>
        <dd>{step.agentId ?? '—'}</dd>
        <dt>Depends on</dt>
        <dd>{step.dependsOn.join(', ') || '—'}</dd>
        {step.waitingReason ? (
          <>
            <dt>Waiting for</dt>
            <dd>{step.waitingReason}</dd>
          </>
        ) : null}
        {step.childTaskId ? (
          <>
            <dt>Child task</dt>
            <dd>
              <Link href={`/tasks/${step.childTaskId}`}>{step.childTaskId}</Link>
            </dd>
          </>
        ) : null}
      </dl>
      {step.error ? (
        <div className="error">
          <strong className="error-code">{step.error.code}</strong> <span>{step.error.message}</span>
        </div>
      ) : null}
      <h3>Attempts</h3>
      <ol>
        {step.attempts.map((a) => (
          <li key={a.number}>
            #{a.number} <Status value={a.status} /> {a.agentId ?? ''} {a.startedAt && a.finishedAt ? `· ${formatDuration(Date.parse(a.finishedAt) - Date.parse(a.startedAt))}` : ''}
            {a.error ? (
              <span className="error-inline">
                {' '}
                <strong>{a.error.code}</strong> {a.error.message}
              </span>
            ) : null}
          </li>
        ))}
      </ol>
      <h3>Output</h3>
      <Output value={step.output} />
      <h3>Input</h3>
      <pre className="output json">{JSON.stringify(step.input, null, 2)}</pre>
    </Card>
  );
}
