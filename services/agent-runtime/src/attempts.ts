import { PayloadOf, Subject } from '@ziggie/contracts';
import { StepAborted } from './abort';
import { Dispatch } from './actions/types';

export type FinalResult = Pick<PayloadOf<Subject.StepResult>, 'status' | 'output' | 'error' | 'startedAt' | 'finishedAt'>;

/** A Map that forgets its oldest entries past a size (a tiny LRU: reads move an entry to the end). */
export class BoundedMap<K, V> {
  private readonly map = new Map<K, V>();

  constructor(private readonly max: number) {}

  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value as K);
  }

  get size(): number {
    return this.map.size;
  }
}

export interface InFlightAttempt {
  readonly dispatch: Dispatch;
  readonly signal: AbortSignal;
  abort(reason: StepAborted): void;
  /** Resolves when the attempt's handling is over. */
  readonly done: Promise<void>;
}

/** Finished attempts remembered, so a redelivery republishes the result instead of running the work again. */
const FINISHED = 500;
/** Cancelled tasks and attempts remembered, so a dispatch that arrives after its cancel does not start. */
const CANCELLED = 10_000;

/**
 * This process's attempts: the ones in flight (each with its AbortController), the ones it
 * finished (their results), and the cancels it has heard of.
 */
export class Attempts {
  private readonly inflight = new Map<string, InFlightAttempt & { finish: () => void }>();
  private readonly finishedResults = new BoundedMap<string, FinalResult>(FINISHED);
  private readonly cancelledTasks = new BoundedMap<string, string>(CANCELLED);
  private readonly cancelledAttempts = new BoundedMap<string, string>(CANCELLED);

  get size(): number {
    return this.inflight.size;
  }

  /** Registers an attempt; call the returned `end` when its handling is over. */
  begin(dispatch: Dispatch): InFlightAttempt & { end: () => void } {
    const controller = new AbortController();
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const entry = {
      dispatch,
      signal: controller.signal,
      abort: (reason: StepAborted) => {
        if (!controller.signal.aborted) controller.abort(reason);
      },
      done,
      finish,
    };
    this.inflight.set(dispatch.attemptId, entry);
    return {
      ...entry,
      end: () => {
        if (this.inflight.get(dispatch.attemptId) === entry) this.inflight.delete(dispatch.attemptId);
        finish();
      },
    };
  }

  running(attemptId: string): InFlightAttempt | undefined {
    return this.inflight.get(attemptId);
  }

  recordFinished(attemptId: string, result: FinalResult): void {
    this.finishedResults.set(attemptId, result);
  }

  finished(attemptId: string): FinalResult | undefined {
    return this.finishedResults.get(attemptId);
  }

  /** Aborts the named attempts of the task (all of them when none are named); returns how many were in flight. */
  cancel(cancel: PayloadOf<Subject.StepCancel>): number {
    const reason = cancel.reason || 'cancelled';
    if (cancel.attemptIds.length === 0) this.cancelledTasks.set(cancel.taskId, reason);
    else for (const id of cancel.attemptIds) this.cancelledAttempts.set(id, reason);
    let aborted = 0;
    for (const attempt of this.inflight.values()) {
      const { taskId, attemptId } = attempt.dispatch;
      if (taskId !== cancel.taskId || (cancel.attemptIds.length > 0 && !cancel.attemptIds.includes(attemptId))) continue;
      attempt.abort(new StepAborted('cancelled', `step ${attempt.dispatch.stepId} cancelled: ${reason}`));
      aborted++;
    }
    return aborted;
  }

  /** The reason of a cancel this dispatch arrived after, if any. */
  cancelledReason(dispatch: Dispatch): string | undefined {
    return this.cancelledAttempts.get(dispatch.attemptId) ?? this.cancelledTasks.get(dispatch.taskId);
  }

  abortAll(reason: StepAborted): void {
    for (const attempt of this.inflight.values()) attempt.abort(reason);
  }

  /** Resolves when every attempt in flight now has been handled. */
  async settled(): Promise<void> {
    await Promise.all([...this.inflight.values()].map((a) => a.done));
  }
}
