import { ZiggieError } from '@ziggie/contracts';
import { raceAbort, StepAborted } from './abort';
import { ActionContext, Dispatch, failed, StepFailure, StepOutcome } from './actions/types';

export interface Action {
  run(ctx: ActionContext): Promise<StepOutcome>;
}

export interface ActionSet {
  tool: Action;
  llm: Action;
  delegate: Action;
}

export interface Abortable {
  readonly signal: AbortSignal;
  abort(reason: StepAborted): void;
}

/** A thrown error as the step's outcome; shutdown is not an outcome (the message goes back to the stream). */
export function outcomeOf(err: unknown, dispatch: Dispatch): StepOutcome {
  if (err instanceof StepAborted) {
    if (err.kind === 'shutdown') throw err;
    return failed(err.code, err.message);
  }
  if (err instanceof StepFailure) return failed(err.code, err.message, err.output);
  if (err instanceof ZiggieError) {
    const outcome = failed(err.code, err.message);
    // A capacity refusal says when to come back (the orchestrator waits that long before the next
    // attempt) and which limit refused (its scheduler learns it, to stop asking in vain).
    const { retryAfterSeconds, limit, scope } = err.extras;
    if (outcome.status === 'failed') {
      if (typeof retryAfterSeconds === 'number' && Number.isFinite(retryAfterSeconds) && retryAfterSeconds >= 0) outcome.error.retryAfterSeconds = retryAfterSeconds;
      if (typeof limit === 'number' && Number.isInteger(limit) && limit > 0 && typeof scope === 'string') Object.assign(outcome.error, { limit, scope });
    }
    return outcome;
  }
  const message = err instanceof Error ? err.message : String(err);
  return failed(dispatch.action === 'delegate' ? 'INTERNAL' : 'TOOL_CALL_FAILED', message);
}

/**
 * Runs one attempt's action under the step's timeout. Cancellation and timeout abort the
 * attempt's signal, which ends the step at once (TASK_CANCELLED, STEP_TIMEOUT) and cancels
 * the work behind it (the gateway call, the child task).
 */
export class StepRunner {
  constructor(private readonly actions: ActionSet) {}

  async run(dispatch: Dispatch, attempt: Abortable, onProgress: () => void): Promise<StepOutcome> {
    const timer = setTimeout(
      () => attempt.abort(new StepAborted('timeout', `step ${dispatch.stepId} exceeded its timeout of ${dispatch.timeoutMs} ms`)),
      dispatch.timeoutMs,
    );
    try {
      return await raceAbort(this.start({ dispatch, signal: attempt.signal, onProgress }), attempt.signal);
    } catch (err) {
      return outcomeOf(err, dispatch);
    } finally {
      clearTimeout(timer);
    }
  }

  private start(ctx: ActionContext): Promise<StepOutcome> {
    switch (ctx.dispatch.action) {
      case 'tool':
        return this.actions.tool.run(ctx);
      case 'llm':
        return this.actions.llm.run(ctx);
      case 'delegate':
        return this.actions.delegate.run(ctx);
      case 'approval':
        return Promise.resolve(
          failed('VALIDATION_FAILED', `step ${ctx.dispatch.stepId} is an approval step: the orchestrator holds approval steps until they are approved and never dispatches them to an agent`),
        );
    }
  }
}
