import { ALL_CLEAR, assessAll, combine, formatWindow, fromDependencies, fromReports, fromTasks, TASK_STATS_UNAVAILABLE, tasksUnavailable, WorkspaceSignals, worst } from './health-rules';

const rules = { windowSeconds: 3600, failedBlocked: 5 };
const quiet = (id: string, dependsOn: string[] = []): WorkspaceSignals => ({ id, dependsOn, reports: [], tasks: { failed: 0, lastFailure: '' } });

describe('health rules', () => {
  it('orders statuses on-track < at-risk < blocked', () => {
    expect(worst()).toBe('on-track');
    expect(worst('at-risk', 'on-track')).toBe('at-risk');
    expect(worst('at-risk', 'blocked', 'on-track')).toBe('blocked');
  });

  it('takes the worst report and names every reporter of a problem; on-track reports add no reason', () => {
    expect(
      fromReports([
        { status: 'at-risk', reason: 'disk filling up', reportedBy: 'ops@corp' },
        { status: 'on-track', reason: 'fine here', reportedBy: 'agent-7' },
        { status: 'blocked', reason: 'render farm down', reportedBy: 'system' },
      ]),
    ).toEqual({ status: 'blocked', reasons: ['reported by ops@corp: disk filling up', 'reported by system: render farm down'] });
    expect(fromReports([{ status: 'on-track', reason: 'fine', reportedBy: 'x' }])).toEqual({ status: 'on-track', reasons: [] });
  });

  it('turns failed tasks into at-risk from one and blocked from the threshold, with counts and the last error', () => {
    expect(fromTasks({ failed: 0, lastFailure: '' }, rules)).toEqual({ status: 'on-track', reasons: [] });
    expect(fromTasks({ failed: 1, lastFailure: 'step a failed: TOOL_NOT_FOUND' }, rules)).toEqual({
      status: 'at-risk',
      reasons: ['1 task failed in the last 60 min (last: step a failed: TOOL_NOT_FOUND)'],
    });
    expect(fromTasks({ failed: 4, lastFailure: 'x' }, rules).status).toBe('at-risk');
    expect(fromTasks({ failed: 5, lastFailure: '' }, rules)).toEqual({ status: 'blocked', reasons: ['5 tasks failed in the last 60 min (last: no error recorded)'] });
    expect(fromTasks({ failed: 2, lastFailure: 'boom' }, { windowSeconds: 90, failedBlocked: 2 })).toEqual({ status: 'blocked', reasons: ['2 tasks failed in the last 90 s (last: boom)'] });
  });

  it('formats the window the way people say it', () => {
    expect([formatWindow(60), formatWindow(119), formatWindow(3600), formatWindow(5400), formatWindow(7200), formatWindow(86_400)]).toEqual(['60 s', '119 s', '60 min', '90 min', '2 h', '24 h']);
  });

  it('keeps the last known task status when the counts are unavailable, and says so', () => {
    expect(tasksUnavailable(undefined)).toEqual({ status: 'on-track', reasons: [TASK_STATS_UNAVAILABLE] });
    const atRisk = { status: 'at-risk' as const, reasons: ['2 tasks failed in the last 60 min (last: x)'] };
    expect(tasksUnavailable(atRisk)).toEqual({ status: 'at-risk', reasons: [TASK_STATS_UNAVAILABLE, '2 tasks failed in the last 60 min (last: x)'] });
    // A second outage round does not stack the note.
    expect(tasksUnavailable(tasksUnavailable(atRisk))).toEqual(tasksUnavailable(atRisk));
  });

  it('makes a workspace at-risk for each blocked dependency only', () => {
    expect(
      fromDependencies([
        { id: 'ziggie', status: 'blocked' },
        { id: 'fitflow', status: 'at-risk' },
      ]),
    ).toEqual({ status: 'at-risk', reasons: ['depends on ziggie, which is blocked'] });
    expect(fromDependencies([{ id: 'fitflow', status: 'at-risk' }])).toEqual({ status: 'on-track', reasons: [] });
  });

  it('says all clear, and only that, when nothing is wrong', () => {
    expect(combine({ status: 'on-track', reasons: [] }, { status: 'on-track', reasons: [] })).toEqual({ status: 'on-track', reasons: [ALL_CLEAR] });
  });

  it('assesses workspaces together: reports, tasks and blocked dependencies, not spreading further', () => {
    const result = assessAll(
      [
        { ...quiet('ziggie'), tasks: { failed: 6, lastFailure: 'GPU out of memory' } },
        quiet('ai-game-dev', ['ziggie']),
        quiet('meowping-nft', ['ai-game-dev']),
        { ...quiet('fitflow'), reports: [{ status: 'at-risk', reason: 'release slipping', reportedBy: 'pm@fitflow' }] },
        quiet('simstudio', ['fitflow']),
      ],
      rules,
    );
    expect(Object.fromEntries([...result].map(([id, a]) => [id, { status: a.status, reasons: a.reasons }]))).toEqual({
      ziggie: { status: 'blocked', reasons: ['6 tasks failed in the last 60 min (last: GPU out of memory)'] },
      'ai-game-dev': { status: 'at-risk', reasons: ['depends on ziggie, which is blocked'] },
      'meowping-nft': { status: 'on-track', reasons: [ALL_CLEAR] },
      fitflow: { status: 'at-risk', reasons: ['reported by pm@fitflow: release slipping'] },
      simstudio: { status: 'on-track', reasons: [ALL_CLEAR] },
    });
    expect(result.get('ai-game-dev')).toMatchObject({ own: 'on-track', tasks: { status: 'on-track', reasons: [] } });
    expect(result.get('ziggie')).toMatchObject({ own: 'blocked', tasks: { status: 'blocked' } });
  });

  it('lists reasons in signal order (reports, tasks, dependencies) and stays at the worst status', () => {
    const result = assessAll(
      [
        { ...quiet('a'), reports: [{ status: 'blocked', reason: 'down', reportedBy: 'ops' }] },
        { id: 'b', dependsOn: ['a'], reports: [{ status: 'at-risk', reason: 'slow', reportedBy: 'qa' }], tasks: undefined, lastKnownTasks: { status: 'at-risk', reasons: ['1 task failed in the last 60 min (last: e)'] } },
      ],
      rules,
    );
    expect(result.get('b')).toEqual({
      status: 'at-risk',
      reasons: ['reported by qa: slow', TASK_STATS_UNAVAILABLE, '1 task failed in the last 60 min (last: e)', 'depends on a, which is blocked'],
      tasks: { status: 'at-risk', reasons: [TASK_STATS_UNAVAILABLE, '1 task failed in the last 60 min (last: e)'] },
      own: 'at-risk',
    });
  });
});
