import { pb, ZiggieError } from '@ziggie/contracts';
import { Kysely, sql } from '@ziggie/platform';
import { OrchestratorDb } from './migrations';
import { iso } from './views';

export const DEFAULT_STATS_WINDOW_SECONDS = 3_600;
export const MAX_STATS_WINDOW_SECONDS = 7 * 24 * 3_600;
const MAX_STATS_WORKSPACES = 10_000;

/**
 * The window finished tasks are counted over: 0 means the default, and a longer one is cut to
 * 7 days (callers such as workspace-coord's health window may be configured longer).
 */
export function statsWindowSeconds(requested: number): number {
  if (!requested) return DEFAULT_STATS_WINDOW_SECONDS;
  if (!Number.isInteger(requested) || requested < 0) throw new ZiggieError('VALIDATION_FAILED', `windowSeconds must be a positive number of seconds, got ${requested}`);
  return Math.min(requested, MAX_STATS_WINDOW_SECONDS);
}

function emptyStats(workspace: string): pb.WorkspaceTaskStats {
  return { workspace, queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0, stepsWaiting: 0, lastFailure: '', lastFailureAt: '' };
}

type TaskCountsRow = {
  workspace: string;
  queued: string;
  running: string;
  succeeded: string;
  failed: string;
  cancelled: string;
  last_failure: string | null;
  last_failure_at: Date | null;
};

/**
 * The two grouped queries behind the stats: tasks through tasks_status_finished (live statuses,
 * then terminal statuses from the window start), waiting steps through the partial index
 * steps_waiting plus the steps of delayed tasks.
 */
export function statsQueries(windowSeconds: number, workspaces: string[]) {
  const since = sql`now() - ${windowSeconds} * interval '1 second'`;
  const inWorkspaces = (column: string) => (workspaces.length ? sql`and ${sql.ref(column)} in (${sql.join(workspaces)})` : sql``);
  const tasks = sql<TaskCountsRow>`
    select workspace,
      count(*) filter (where status = 'queued') as queued,
      count(*) filter (where status = 'running') as running,
      count(*) filter (where status = 'succeeded') as succeeded,
      count(*) filter (where status = 'failed') as failed,
      count(*) filter (where status = 'cancelled') as cancelled,
      (array_agg(coalesce(error_message, error_code, 'unknown error') order by finished_at desc) filter (where status = 'failed'))[1] as last_failure,
      max(finished_at) filter (where status = 'failed') as last_failure_at
    from tasks
    where (status in ('queued', 'running') or (status in ('succeeded', 'failed', 'cancelled') and finished_at >= ${since}))
      ${inWorkspaces('workspace')}
    group by workspace`;
  // A pool wait is a pending pool step with a reason and no retry time: the scheduling round
  // clears next_attempt_at when it records why a lease was refused, while a retry in backoff
  // keeps its time. Open steps only exist in queued or running tasks (a task's end closes them).
  const waiting = sql<{ workspace: string; n: string }>`
    select workspace, count(*) as n from steps
    where waiting_reason is not null
      and (status = 'waiting_approval' or (status = 'pending' and pool is not null and next_attempt_at is null))
      ${inWorkspaces('workspace')}
    group by workspace
    union all
    select s.workspace, count(*) as n from tasks t join steps s on s.task_id = t.id
    where t.status = 'queued' and t.not_before > now() and s.status = 'pending'
      ${inWorkspaces('s.workspace')}
    group by s.workspace`;
  return { tasks, waiting };
}

/**
 * Task counts per workspace: live tasks (queued, running) now, finished ones (by status) over
 * the window, the latest failure in the window, and the steps waiting for an approval, a pool
 * lease or their task's notBefore time (counted in the step's own workspace). Asked for
 * workspaces without tasks answer zeros.
 */
export async function workspaceStats(db: Kysely<OrchestratorDb>, req: pb.GetWorkspaceStatsRequest): Promise<pb.GetWorkspaceStatsResponse> {
  const window = statsWindowSeconds(req.windowSeconds);
  const wanted = [...new Set(req.workspaces.filter((w) => w !== ''))];
  if (wanted.length > MAX_STATS_WORKSPACES) throw new ZiggieError('VALIDATION_FAILED', `at most ${MAX_STATS_WORKSPACES} workspaces per request, got ${wanted.length}`);
  const queries = statsQueries(window, wanted);
  const tasks = await queries.tasks.execute(db);
  const waiting = await queries.waiting.execute(db);

  const byWorkspace = new Map<string, pb.WorkspaceTaskStats>(wanted.map((w) => [w, emptyStats(w)]));
  const statsOf = (workspace: string): pb.WorkspaceTaskStats => {
    let stats = byWorkspace.get(workspace);
    if (!stats) byWorkspace.set(workspace, (stats = emptyStats(workspace)));
    return stats;
  };
  for (const r of tasks.rows) {
    Object.assign(statsOf(r.workspace), {
      queued: Number(r.queued),
      running: Number(r.running),
      succeeded: Number(r.succeeded),
      failed: Number(r.failed),
      cancelled: Number(r.cancelled),
      lastFailure: r.last_failure ?? '',
      lastFailureAt: iso(r.last_failure_at),
    });
  }
  for (const r of waiting.rows) statsOf(r.workspace).stepsWaiting += Number(r.n);
  return { items: [...byWorkspace.values()].sort((a, b) => a.workspace.localeCompare(b.workspace)) };
}
