import { useState } from 'react';
import { useMutation, useQuery } from '@tanstack/react-query';
import { Link, useLocation } from 'wouter';
import type { OverviewView, PageView, pb, TaskSummaryView, TaskView } from '@ziggie/contracts';
import { api, ApiError, query } from '../api';
import { deniedReason } from '../auth';
import { ago, Card, Denied, ErrorBox, Loading, Pager, Status, TextFilter } from '../components/common';
import { SchemaForm } from '../components/SchemaForm';
import { lineOfStep } from '../plan-text';
import { useUrlFilters } from '../use-url-filters';
import { useSession } from '../session';

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const PRIORITIES = ['P0', 'P1', 'P2'];
const PAGE_SIZE = 25;
/** The list's filters, all kept in the address so a filtered page can be shared. */
const FILTERS = ['status', 'workspace', 'priority', 'blueprint'] as const;

export function Tasks() {
  const { filters, cursor, set, page } = useUrlFilters(FILTERS);
  const q = useQuery({
    queryKey: ['tasks', 'list', filters, cursor],
    queryFn: ({ signal }) => api<PageView<TaskSummaryView>>(`/v1/tasks${query({ ...filters, cursor, limit: PAGE_SIZE })}`, { signal }),
    placeholderData: (prev) => prev,
  });
  return (
    <div className="tasks">
      <h1>Tasks</h1>
      <SubmitTask />
      <SubmitPlan />
      <Card title="All tasks" testId="task-list">
        <div className="filters">
          <Select label="Status" value={filters.status} options={STATUSES} onChange={(v) => set({ status: v })} />
          <Select label="Priority" value={filters.priority} options={PRIORITIES} onChange={(v) => set({ priority: v })} />
          <TextFilter label="Workspace" value={filters.workspace} onChange={(v) => set({ workspace: v })} />
          <TextFilter label="Blueprint" value={filters.blueprint} onChange={(v) => set({ blueprint: v })} />
        </div>
        {q.isError ? <ErrorBox error={q.error} /> : null}
        {q.isPending ? (
          <Loading what="tasks" />
        ) : q.data ? (
          <>
            <table className="list">
              <thead>
                <tr>
                  <th>Task</th>
                  <th>Status</th>
                  <th>Workspace</th>
                  <th>Priority</th>
                  <th>Blueprint</th>
                  <th>Waves</th>
                  <th>Age</th>
                </tr>
              </thead>
              <tbody>
                {q.data.items.map((t) => (
                  <tr key={t.id} data-task={t.id}>
                    <td>
                      <Link href={`/tasks/${t.id}`}>{t.title || t.id}</Link>
                    </td>
                    <td>
                      <Status value={t.status} />
                    </td>
                    <td>{t.workspace}</td>
                    <td>{t.priority}</td>
                    <td>{t.blueprint ?? '—'}</td>
                    <td className="num">
                      {t.currentWave}/{t.waveCount}
                    </td>
                    <td className="muted">{ago(t.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {q.data.items.length === 0 ? <p className="muted">No tasks match.</p> : null}
            <Pager cursor={cursor} next={q.data.nextCursor} onPage={page}>
              <span className="muted" data-testid="task-total">
                {q.data.total.toLocaleString('en')} {q.data.total === 1 ? 'task' : 'tasks'}
              </span>
            </Pager>
          </>
        ) : null}
      </Card>
    </div>
  );
}

function Select({ label, value, options, onChange }: { label: string; value: string; options: string[]; onChange(v: string): void }) {
  return (
    <label>
      {label}{' '}
      <select value={value} onChange={(e) => onChange(e.target.value)} name={label.toLowerCase()}>
        <option value="">any</option>
        {options.map((o) => (
          <option key={o}>{o}</option>
        ))}
      </select>
    </label>
  );
}

function SubmitTask() {
  const session = useSession();
  const [, navigate] = useLocation();
  const denied = deniedReason(session, 'agent:dispatch');
  const blueprints = useQuery({ queryKey: ['blueprints'], queryFn: ({ signal }) => api<PageView<pb.Blueprint>>('/v1/blueprints?limit=100', { signal }), staleTime: 300_000 });
  const workspaces = useWorkspaces();
  const workspaceIds = (workspaces.data?.workspaces ?? []).map((w) => w.id);
  const [name, setName] = useState('');
  const [workspace, setWorkspace] = useState('');
  const [priority, setPriority] = useState('P1');
  const chosen = blueprints.data?.items.find((b) => b.name === name) ?? blueprints.data?.items[0];
  const ws = workspace || workspaces.data?.workspaces[0]?.id || '';
  const submit = useMutation({
    mutationFn: (inputs: Record<string, unknown>) =>
      api<TaskView>('/v1/tasks', { method: 'POST', body: { workspace: ws, priority, blueprint: `${chosen!.name}@${chosen!.version}`, inputs } }),
    onSuccess: (task) => navigate(`/tasks/${task.id}`),
  });
  return (
    <Card title="Submit a task from a blueprint" testId="submit-task">
      {blueprints.isError ? <ErrorBox error={blueprints.error} /> : null}
      {!chosen ? (
        blueprints.isPending ? <Loading what="blueprints" /> : <p className="muted">No blueprints.</p>
      ) : (
        <>
          <p className="muted">{chosen.description}</p>
          <SchemaForm
            key={`${chosen.name}@${chosen.version}`}
            idPrefix="bp"
            schema={chosen.inputSchema}
            submitLabel="Submit task"
            disabled={denied}
            busy={submit.isPending}
            onSubmit={(inputs) => submit.mutate(inputs)}
            extra={
              <div className="row">
                <label>
                  Blueprint{' '}
                  <select name="blueprint" value={chosen.name} onChange={(e) => setName(e.target.value)}>
                    {blueprints.data!.items.map((b) => (
                      <option key={b.name} value={b.name}>
                        {b.name}@{b.version}
                      </option>
                    ))}
                  </select>
                </label>
                <WorkspaceSelect name="workspace" ids={workspaceIds} value={ws} onChange={setWorkspace} />
                <label>
                  Priority{' '}
                  <select name="priority" value={priority} onChange={(e) => setPriority(e.target.value)}>
                    {PRIORITIES.map((p) => (
                      <option key={p}>{p}</option>
                    ))}
                  </select>
                </label>
              </div>
            }
          />
          <Denied reason={denied} />
          <ErrorBox error={submit.error} />
        </>
      )}
    </Card>
  );
}

const EXAMPLE_PLAN = JSON.stringify(
  {
    steps: [
      { id: 'greet', capability: 'research', input: { tool: 'everything.echo', arguments: { message: 'hello' } } },
      { id: 'sum', capability: 'data', input: { tool: 'everything.get-sum', arguments: { a: 2, b: 3 } } },
      { id: 'report', capability: 'qa', dependsOn: ['greet', 'sum'], input: { tool: 'everything.echo', arguments: { message: '{{steps.greet.output.text}} / {{steps.sum.output.text}}' } } },
    ],
  },
  null,
  2,
);

function SubmitPlan() {
  const session = useSession();
  const [, navigate] = useLocation();
  const denied = deniedReason(session, 'agent:dispatch');
  const workspaces = useWorkspaces();
  const workspaceIds = (workspaces.data?.workspaces ?? []).map((w) => w.id);
  const [open, setOpen] = useState(false);
  const [text, setText] = useState(EXAMPLE_PLAN);
  const [workspace, setWorkspace] = useState('');
  const [parseError, setParseError] = useState<string | null>(null);
  const ws = workspace || workspaces.data?.workspaces.find((w) => w.id === 'ziggie')?.id || workspaces.data?.workspaces[0]?.id || '';
  const submit = useMutation({
    mutationFn: (plan: unknown) => api<TaskView>('/v1/tasks', { method: 'POST', body: { workspace: ws, plan } }),
    onSuccess: (task) => navigate(`/tasks/${task.id}`),
  });
  const problem = submit.error instanceof ApiError ? submit.error.problem : null;
  const line = problem && typeof problem.stepId === 'string' ? lineOfStep(text, problem.stepId) : null;
  return (
    <Card title="Submit a plan" testId="submit-plan">
      {!open ? (
        <button className="link" onClick={() => setOpen(true)}>
          Write a plan as JSON…
        </button>
      ) : (
        <form
          className="schema-form"
          onSubmit={(e) => {
            e.preventDefault();
            try {
              const plan = JSON.parse(text) as unknown;
              setParseError(null);
              submit.mutate(plan);
            } catch (err) {
              setParseError(err instanceof Error ? err.message : String(err));
            }
          }}
        >
          <WorkspaceSelect name="plan-workspace" ids={workspaceIds} value={ws} onChange={setWorkspace} />
          <textarea name="plan" rows={14} value={text} onChange={(e) => setText(e.target.value)} spellCheck={false} />
          {parseError ? <small className="field-error">not valid JSON: {parseError}</small> : null}
          {line ? <small className="field-error" data-testid="plan-error-line">line {line}: step {String(problem!.stepId)}</small> : null}
          <ErrorBox error={submit.error} />
          <button type="submit" disabled={Boolean(denied) || submit.isPending} title={denied ?? undefined}>
            Submit plan
          </button>
          <Denied reason={denied} />
        </form>
      )}
    </Card>
  );
}

function WorkspaceSelect({ name, ids, value, onChange }: { name: string; ids: string[]; value: string; onChange(v: string): void }) {
  return (
    <label>
      Workspace{' '}
      <select name={name} value={value} onChange={(e) => onChange(e.target.value)}>
        {ids.map((id) => (
          <option key={id} value={id}>
            {id}
          </option>
        ))}
      </select>
    </label>
  );
}

/** The workspaces a task can be submitted to, from the overview (one request for both forms). */
function useWorkspaces() {
  return useQuery({ queryKey: ['tasks', 'overview'], queryFn: ({ signal }) => api<OverviewView>('/v1/overview', { signal }) });
}
