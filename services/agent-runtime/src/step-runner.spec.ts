import { ZiggieError } from '@ziggie/contracts';
import { dispatchOf, McpGatewayDouble, untilAborted } from '../test/doubles';
import { StepAborted } from './abort';
import { ToolAction } from './actions/tool';
import { StepFailure, StepOutcome } from './actions/types';
import { Attempts } from './attempts';
import { ToolCatalog } from './catalog';
import { Semaphore } from './semaphore';
import { Action, StepRunner } from './step-runner';

const unexpected: Action = {
  run: () => Promise.reject(new Error('this action was not set up for the test')),
};

function runnerWith(tool: Action): StepRunner {
  return new StepRunner({ tool, llm: unexpected, delegate: unexpected });
}

describe('StepRunner', () => {
  it('times a step out with STEP_TIMEOUT and cancels the tool call behind it', async () => {
    const gateway = new McpGatewayDouble().on('slow.wait', (_args, { signal }) => untilAborted(signal));
    const attempts = new Attempts();
    const dispatch = dispatchOf({ timeoutMs: 20, input: { tool: 'slow.wait', arguments: {} } });
    const attempt = attempts.begin(dispatch);
    const out = await runnerWith(new ToolAction(gateway, new ToolCatalog(gateway))).run(dispatch, attempt, () => undefined);
    expect(out).toEqual({ status: 'failed', error: { code: 'STEP_TIMEOUT', message: expect.stringContaining('timeout of 20 ms') } });
    expect(gateway.cancelled).toEqual(['slow.wait']);
  });

  it('ends a cancelled step with TASK_CANCELLED at once, even when the work ignores the signal', async () => {
    let finishWork!: (o: StepOutcome) => void;
    const stubborn: Action = { run: () => new Promise((resolve) => (finishWork = resolve)) };
    const attempts = new Attempts();
    const dispatch = dispatchOf();
    const attempt = attempts.begin(dispatch);
    const running = runnerWith(stubborn).run(dispatch, attempt, () => undefined);
    expect(attempts.cancel({ taskId: dispatch.taskId, attemptIds: [], reason: 'operator' })).toBe(1);
    await expect(running).resolves.toEqual({ status: 'failed', error: { code: 'TASK_CANCELLED', message: expect.stringContaining('operator') } });
    finishWork({ status: 'succeeded', output: {} });
  });

  it('rethrows a shutdown abort: the message goes back to the stream instead of failing the step', async () => {
    const gateway = new McpGatewayDouble().on('slow.wait', (_args, { signal }) => untilAborted(signal));
    const attempts = new Attempts();
    const dispatch = dispatchOf({ input: { tool: 'slow.wait' } });
    const attempt = attempts.begin(dispatch);
    const running = runnerWith(new ToolAction(gateway, new ToolCatalog(gateway))).run(dispatch, attempt, () => undefined);
    attempts.abortAll(new StepAborted('shutdown', 'stopping'));
    await expect(running).rejects.toMatchObject({ kind: 'shutdown' });
  });

  it('fails approval steps with VALIDATION_FAILED: the orchestrator holds them', async () => {
    const dispatch = dispatchOf({ action: 'approval' });
    const out = await runnerWith(unexpected).run(dispatch, new Attempts().begin(dispatch), () => undefined);
    expect(out).toMatchObject({ status: 'failed', error: { code: 'VALIDATION_FAILED', message: expect.stringContaining('approval') } });
  });

  it('turns thrown errors into failures with their code, keeping a failure output', async () => {
    const dispatch = dispatchOf();
    const run = (err: unknown) => runnerWith({ run: () => Promise.reject(err) }).run(dispatch, new Attempts().begin(dispatch), () => undefined);
    await expect(run(new ZiggieError('TOOL_RATE_LIMITED', 'slow down'))).resolves.toEqual({ status: 'failed', error: { code: 'TOOL_RATE_LIMITED', message: 'slow down' } });
    await expect(run(new StepFailure('TOOL_NOT_FOUND', 'none', { tried: 2 }))).resolves.toEqual({ status: 'failed', output: { tried: 2 }, error: { code: 'TOOL_NOT_FOUND', message: 'none' } });
    await expect(run(new Error('socket hang up'))).resolves.toEqual({ status: 'failed', error: { code: 'TOOL_CALL_FAILED', message: 'socket hang up' } });
  });

  it('passes on when a refused call may be tried again and the limit that refused it, and nothing else of the extras', async () => {
    const dispatch = dispatchOf();
    const run = (err: unknown) => runnerWith({ run: () => Promise.reject(err) }).run(dispatch, new Attempts().begin(dispatch), () => undefined);
    await expect(run(new ZiggieError('TOOL_CONCURRENCY_LIMITED', 'full', { retryAfterSeconds: 1, limit: 10, scope: 'tool' }))).resolves.toEqual({
      status: 'failed',
      error: { code: 'TOOL_CONCURRENCY_LIMITED', message: 'full', retryAfterSeconds: 1, limit: 10, scope: 'tool' },
    });
    for (const bad of [-1, Number.NaN, '3', Number.POSITIVE_INFINITY]) {
      await expect(run(new ZiggieError('TOOL_RATE_LIMITED', 'slow down', { retryAfterSeconds: bad, limit: bad, scope: 'tool', token: 'x' }))).resolves.toEqual({
        status: 'failed',
        error: { code: 'TOOL_RATE_LIMITED', message: 'slow down' },
      });
    }
  });
});

describe('Attempts', () => {
  it('aborts only the named attempts of the task, or all of the task when none are named', () => {
    const attempts = new Attempts();
    const a1 = attempts.begin(dispatchOf({ taskId: 't1', attemptId: 't1.a.1' }));
    const b1 = attempts.begin(dispatchOf({ taskId: 't1', stepId: 'b', attemptId: 't1.b.1' }));
    const other = attempts.begin(dispatchOf({ taskId: 't2', attemptId: 't2.a.1' }));
    expect(attempts.cancel({ taskId: 't1', attemptIds: ['t1.b.1'], reason: 'r' })).toBe(1);
    expect([a1.signal.aborted, b1.signal.aborted, other.signal.aborted]).toEqual([false, true, false]);
    expect(attempts.cancel({ taskId: 't1', attemptIds: [], reason: 'r' })).toBe(2);
    expect([a1.signal.aborted, other.signal.aborted]).toEqual([true, false]);
    expect((a1.signal.reason as StepAborted).code).toBe('TASK_CANCELLED');
  });

  it('remembers cancels for dispatches that arrive after them', () => {
    const attempts = new Attempts();
    attempts.cancel({ taskId: 't1', attemptIds: [], reason: 'whole task' });
    attempts.cancel({ taskId: 't2', attemptIds: ['t2.a.1'], reason: 'one attempt' });
    expect(attempts.cancelledReason(dispatchOf({ taskId: 't1', attemptId: 't1.z.3' }))).toBe('whole task');
    expect(attempts.cancelledReason(dispatchOf({ taskId: 't2', attemptId: 't2.a.1' }))).toBe('one attempt');
    expect(attempts.cancelledReason(dispatchOf({ taskId: 't2', attemptId: 't2.a.2' }))).toBeUndefined();
  });

  it('keeps a bounded number of finished results, forgetting the oldest', () => {
    const attempts = new Attempts();
    const result = { status: 'succeeded' as const, startedAt: 'x' };
    for (let i = 0; i < 600; i++) attempts.recordFinished(`a${i}`, result);
    expect(attempts.finished('a0')).toBeUndefined();
    expect(attempts.finished('a599')).toEqual(result);
  });
});

describe('Semaphore', () => {
  it('serves waiters in order and drops a waiter whose signal aborts', async () => {
    const slots = new Semaphore(1);
    const release = await slots.acquire(new AbortController().signal);
    const leaving = new AbortController();
    const order: string[] = [];
    const first = slots.acquire(leaving.signal).then(
      () => order.push('aborted one got a slot'),
      () => order.push('aborted'),
    );
    const second = slots.acquire(new AbortController().signal).then((r) => {
      order.push('second');
      r();
    });
    leaving.abort(new StepAborted('cancelled', 'x'));
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(['aborted', 'second']);
    expect(slots.inUse).toBe(0);
  });
});
