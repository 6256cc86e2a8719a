/**
 * How a workspace's health is decided. Every signal gives a status and the reasons for it; the
 * workspace takes the worst status of all signals and lists every reason, in signal order:
 *
 * 1. Reports: each unexpired report counts with its own status; at-risk and blocked ones add
 *    `reported by <who>: <reason>`. A new report from the same reporter replaces that
 *    reporter's earlier ones, so reporting on-track withdraws an earlier at-risk or blocked.
 * 2. Tasks (the orchestrator's counts over the health window): HEALTH_FAILED_BLOCKED or more
 *    failed tasks → blocked, at least one → at-risk, with
 *    `<n> tasks failed in the last <window> (last: <error>)`. When the counts cannot be had,
 *    the last known task status is kept (never flipped to on-track by an outage) and the
 *    reason `task stats unavailable` is added in front of the last known task reasons.
 * 3. Dependencies: a direct dependency that is blocked by its own signals makes the workspace
 *    at-risk (`depends on <dep>, which is blocked`). Dependencies never make a workspace
 *    blocked, and at-risk does not spread, so one blocked workspace marks only its direct
 *    dependents (AffectedWorkspaces gives the whole transitive set).
 *
 * Reasons are never empty: with nothing to report they are exactly `["all clear"]`. A
 * workspace can be on-track with reasons other than that (`task stats unavailable`).
 */
export const HEALTH_STATUSES = ['on-track', 'at-risk', 'blocked'] as const;
export type HealthStatus = (typeof HEALTH_STATUSES)[number];

export const ALL_CLEAR = 'all clear';
export const TASK_STATS_UNAVAILABLE = 'task stats unavailable';

const SEVERITY: Record<HealthStatus, number> = { 'on-track': 0, 'at-risk': 1, blocked: 2 };

export function isHealthStatus(value: string): value is HealthStatus {
  return (HEALTH_STATUSES as readonly string[]).includes(value);
}

export function worst(...statuses: HealthStatus[]): HealthStatus {
  return statuses.reduce<HealthStatus>((a, b) => (SEVERITY[b] > SEVERITY[a] ? b : a), 'on-track');
}

/** One signal's verdict. */
export interface Finding {
  status: HealthStatus;
  reasons: string[];
}

export interface ReportSignal {
  status: HealthStatus;
  reason: string;
  reportedBy: string;
}

export function fromReports(reports: readonly ReportSignal[]): Finding {
  const bad = reports.filter((r) => r.status !== 'on-track');
  return {
    status: worst(...bad.map((r) => r.status)),
    reasons: bad.map((r) => `reported by ${r.reportedBy}: ${r.reason}`),
  };
}

export interface TaskRules {
  windowSeconds: number;
  failedBlocked: number;
}

export interface TaskCounts {
  failed: number;
  lastFailure: string;
}

/** `90 s` for 90, `60 min` for 3600, `24 h` for 86400: the window as people say it. */
export function formatWindow(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds >= 7200 && seconds % 3600 === 0) return `${seconds / 3600} h`;
  return `${Math.round(seconds / 60)} min`;
}

export function fromTasks(counts: TaskCounts, rules: TaskRules): Finding {
  const n = counts.failed;
  if (n <= 0) return { status: 'on-track', reasons: [] };
  const last = counts.lastFailure.trim() || 'no error recorded';
  return {
    status: n >= rules.failedBlocked ? 'blocked' : 'at-risk',
    reasons: [`${n} ${n === 1 ? 'task' : 'tasks'} failed in the last ${formatWindow(rules.windowSeconds)} (last: ${last})`],
  };
}

/** The task signal when the orchestrator could not be asked: the last known one, flagged. */
export function tasksUnavailable(lastKnown: Finding | undefined): Finding {
  return {
    status: lastKnown?.status ?? 'on-track',
    reasons: [TASK_STATS_UNAVAILABLE, ...(lastKnown?.reasons ?? []).filter((r) => r !== TASK_STATS_UNAVAILABLE)],
  };
}

export function fromDependencies(dependencies: ReadonlyArray<{ id: string; status: HealthStatus }>): Finding {
  const blocked = dependencies.filter((d) => d.status === 'blocked');
  return {
    status: blocked.length > 0 ? 'at-risk' : 'on-track',
    reasons: blocked.map((d) => `depends on ${d.id}, which is blocked`),
  };
}

/** The worst status of the findings, with all their reasons (or `all clear`). */
export function combine(...findings: Finding[]): Finding {
  const reasons = findings.flatMap((f) => f.reasons);
  return { status: worst(...findings.map((f) => f.status)), reasons: reasons.length > 0 ? reasons : [ALL_CLEAR] };
}

export interface WorkspaceSignals {
  id: string;
  dependsOn: readonly string[];
  reports: readonly ReportSignal[];
  /** Undefined when the orchestrator's counts could not be had. */
  tasks: TaskCounts | undefined;
  /** The task finding of the previous computation, kept while counts are unavailable. */
  lastKnownTasks?: Finding;
}

export interface Assessment extends Finding {
  /** The task signal alone, stored so an outage can keep it. */
  tasks: Finding;
  /** Reports and tasks only, before dependencies: what dependents look at. */
  own: HealthStatus;
}

/** Assesses every workspace at once (dependencies need each other's own status). */
export function assessAll(workspaces: readonly WorkspaceSignals[], rules: TaskRules): Map<string, Assessment> {
  const own = new Map<string, { reports: Finding; tasks: Finding; status: HealthStatus }>();
  for (const w of workspaces) {
    const reports = fromReports(w.reports);
    const tasks = w.tasks ? fromTasks(w.tasks, rules) : tasksUnavailable(w.lastKnownTasks);
    own.set(w.id, { reports, tasks, status: worst(reports.status, tasks.status) });
  }
  const result = new Map<string, Assessment>();
  for (const w of workspaces) {
    const mine = own.get(w.id)!;
    const deps = [...new Set(w.dependsOn)].flatMap((id) => {
      const dep = own.get(id);
      return dep ? [{ id, status: dep.status }] : [];
    });
    const total = combine(mine.reports, mine.tasks, fromDependencies(deps));
    result.set(w.id, { ...total, tasks: mine.tasks, own: mine.status });
  }
  return result;
}
