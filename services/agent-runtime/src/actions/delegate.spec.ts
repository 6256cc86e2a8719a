import { MAX_DELEGATION_DEPTH, PlanSchema, ZiggieError } from '@ziggie/contracts';
import { agentOf, dispatchOf, OrchestratorDouble, principal, RegistryDouble, stepOf, taskOf } from '../../test/doubles';
import { StepAborted } from '../abort';
import { assignChildren, childOutcome, DelegateAction } from './delegate';
import { ActionContext, Dispatch } from './types';

const plan = (steps: Record<string, unknown>[]) => PlanSchema.parse({ steps }).steps;

const children = [
  agentOf('l3-a', { parentId: 'l2-x', capabilities: ['code', 'qa'] }),
  agentOf('l3-b', { parentId: 'l2-x', capabilities: ['code'] }),
  agentOf('l3-c', { parentId: 'l2-x', capabilities: ['art'], status: 'idle' }),
  agentOf('l3-d', { parentId: 'l2-x', capabilities: ['code'], status: 'offline' }),
];

describe('assignChildren', () => {
  it('spreads steps round-robin over the live children with the capability', () => {
    const steps = plan([
      { id: 's1', capability: 'code' },
      { id: 's2', capability: 'code' },
      { id: 's3', capability: 'code' },
      { id: 's4', capability: 'art' },
      { id: 's5', capability: 'qa' },
    ]);
    expect(assignChildren(steps, children).map((s) => [s.id, s.agent])).toEqual([
      ['s1', 'l3-a'],
      ['s2', 'l3-b'],
      ['s3', 'l3-a'],
      ['s4', 'l3-c'],
      ['s5', 'l3-a'],
    ]);
  });

  it('keeps named agents and leaves a capability no child has to the registry', () => {
    const steps = plan([
      { id: 's1', agent: 'l3-z', capability: 'code' },
      { id: 's2', capability: 'data' },
    ]);
    const assigned = assignChildren(steps, children);
    expect(assigned[0]!.agent).toBe('l3-z');
    expect(assigned[1]!.agent).toBeUndefined();
    expect(assigned[1]!.capability).toBe('data');
  });
});

describe('childOutcome', () => {
  it('collects the child output and every step output on success', () => {
    const task = taskOf('tsk_child', { status: 'succeeded', output: { report: 'r' }, waves: [{ index: 0, status: 'succeeded', steps: [stepOf('s1', { text: 'a' }), stepOf('s2')] }] });
    expect(childOutcome(task)).toEqual({ status: 'succeeded', output: { childTaskId: 'tsk_child', output: { report: 'r' }, steps: { s1: { text: 'a' }, s2: {} } } });
  });

  it('carries the child error and id on failure or cancellation', () => {
    expect(childOutcome(taskOf('tsk_c', { status: 'failed', errorCode: 'QUALITY_GATE_FAILED', errorMessage: 'too short' }))).toEqual({
      status: 'failed',
      output: { childTaskId: 'tsk_c' },
      error: { code: 'QUALITY_GATE_FAILED', message: 'too short' },
    });
    expect(childOutcome(taskOf('tsk_c', { status: 'cancelled' }))).toMatchObject({ status: 'failed', error: { code: 'TASK_CANCELLED' } });
  });
});

describe('DelegateAction', () => {
  const delegateDispatch = (fields: Partial<Dispatch> = {}) =>
    dispatchOf({
      action: 'delegate',
      taskId: 'tsk_parent',
      stepId: 'fan',
      agentId: 'l2-x',
      depth: 1,
      priority: 'P0',
      input: { plan: { steps: [{ id: 's1', capability: 'code', input: { tool: 'ziggie.noop' } }, { id: 's2', capability: 'code', dependsOn: ['s1'] }] } },
      ...fields,
    });
  const ctx = (dispatch: Dispatch, controller = new AbortController(), progress: string[] = []): ActionContext => ({
    dispatch,
    signal: controller.signal,
    onProgress: () => progress.push('p'),
  });

  it('submits a child task one level deeper for the children and waits for it, keeping the message alive', async () => {
    const registry = new RegistryDouble(children);
    const orchestrator = new OrchestratorDouble([
      taskOf('tsk_child', { status: 'queued' }),
      taskOf('tsk_child', { status: 'running' }),
      taskOf('tsk_child', { status: 'succeeded', output: { n: 2 }, waves: [{ index: 0, status: 'succeeded', steps: [stepOf('s1', { text: 'ok' })] }] }),
    ]);
    const progress: string[] = [];
    const out = await new DelegateAction(orchestrator, registry, () => [], 1).run(ctx(delegateDispatch(), undefined, progress));
    expect(out).toEqual({ status: 'succeeded', output: { childTaskId: 'tsk_child', output: { n: 2 }, steps: { s1: { text: 'ok' } } } });
    expect(registry.childrenAsked).toEqual(['l2-x']);
    expect(orchestrator.submitted).toHaveLength(1);
    const req = orchestrator.submitted[0]!;
    expect(req).toMatchObject({ title: 'Delegated by l2-x: fan', parentTaskId: 'tsk_parent', parentStepId: 'fan', depth: 2, workspace: 'ziggie', priority: 'P0', principal, correlationId: 'corr-1' });
    expect(req.plan!.steps.map((s) => [s.id, s.agent, s.capability, s.dependsOn])).toEqual([
      ['s1', 'l3-a', 'code', []],
      ['s2', 'l3-b', 'code', ['s1']],
    ]);
    expect(req.plan!.steps[0]!.input).toEqual({ tool: 'ziggie.noop' });
    expect(orchestrator.getTaskCalls).toBe(2);
    expect(progress.length).toBe(2);
  });

  it('fails with the child error and keeps the child id', async () => {
    const orchestrator = new OrchestratorDouble([taskOf('tsk_child', { status: 'running' }), taskOf('tsk_child', { status: 'failed', errorCode: 'TOOL_CALL_FAILED', errorMessage: 'boom' })]);
    await expect(new DelegateAction(orchestrator, new RegistryDouble(), () => [], 1).run(ctx(delegateDispatch()))).resolves.toEqual({
      status: 'failed',
      output: { childTaskId: 'tsk_child' },
      error: { code: 'TOOL_CALL_FAILED', message: 'boom' },
    });
  });

  it('refuses to delegate past the maximum depth without submitting anything', async () => {
    const orchestrator = new OrchestratorDouble();
    const out = await new DelegateAction(orchestrator, new RegistryDouble()).run(ctx(delegateDispatch({ depth: MAX_DELEGATION_DEPTH })));
    expect(out).toMatchObject({ status: 'failed', error: { code: 'TASK_DEPTH_EXCEEDED' } });
    expect(orchestrator.submitted).toHaveLength(0);
  });

  it('refuses a plan that does not parse', async () => {
    const orchestrator = new OrchestratorDouble();
    const out = await new DelegateAction(orchestrator, new RegistryDouble()).run(ctx(delegateDispatch({ input: { plan: { steps: [{ id: 'BAD ID' }] } } })));
    expect(out).toMatchObject({ status: 'failed', error: { code: 'VALIDATION_FAILED', message: expect.stringContaining('plan.steps.0') } });
    expect(orchestrator.submitted).toHaveLength(0);
  });

  it('assigns from the hosted agents when the registry cannot list children', async () => {
    const registry = new RegistryDouble();
    registry.childrenError = new ZiggieError('UNIMPLEMENTED');
    const orchestrator = new OrchestratorDouble([taskOf('tsk_child', { status: 'succeeded' })]);
    await new DelegateAction(orchestrator, registry, (id) => children.filter((c) => c.parentId === id), 1).run(ctx(delegateDispatch()));
    expect(orchestrator.submitted[0]!.plan!.steps.map((s) => s.agent)).toEqual(['l3-a', 'l3-b']);
  });

  it('keeps waiting through a transient GetTask error', async () => {
    const orchestrator = new OrchestratorDouble([taskOf('tsk_child', { status: 'running' }), taskOf('tsk_child', { status: 'succeeded' })]);
    const getTask = orchestrator.getTask.bind(orchestrator);
    let failures = 1;
    orchestrator.getTask = async (id) => {
      if (failures-- > 0) throw new ZiggieError('SERVICE_UNAVAILABLE', 'orchestrator restarting');
      return getTask(id);
    };
    await expect(new DelegateAction(orchestrator, new RegistryDouble(), () => [], 1).run(ctx(delegateDispatch()))).resolves.toMatchObject({ status: 'succeeded' });
  });

  it('cancels the child task when the step is cancelled or times out, but not on shutdown', async () => {
    for (const [kind, cancels] of [
      ['cancelled', 1],
      ['timeout', 1],
      ['shutdown', 0],
    ] as const) {
      const orchestrator = new OrchestratorDouble([taskOf('tsk_child', { status: 'running' })]);
      const controller = new AbortController();
      const running = new DelegateAction(orchestrator, new RegistryDouble(), () => [], 1).run(ctx(delegateDispatch(), controller));
      await new Promise((r) => setTimeout(r, 5));
      controller.abort(new StepAborted(kind, kind));
      await expect(running).rejects.toBeInstanceOf(StepAborted);
      expect(orchestrator.cancelled).toHaveLength(cancels);
      if (cancels) expect(orchestrator.cancelled[0]).toMatchObject({ id: 'tsk_child', reason: expect.stringContaining('fan') });
    }
  });
});
