import { ZiggieError } from '@ziggie/contracts';

/** Why a step's work was aborted. */
export type AbortKind = 'cancelled' | 'timeout' | 'shutdown';

/**
 * The reason an attempt's AbortController is aborted with. Cancellation and timeout end the
 * step (TASK_CANCELLED, STEP_TIMEOUT); shutdown hands the message back for another runtime.
 */
export class StepAborted extends ZiggieError {
  constructor(
    readonly kind: AbortKind,
    message: string,
  ) {
    super(kind === 'timeout' ? 'STEP_TIMEOUT' : kind === 'cancelled' ? 'TASK_CANCELLED' : 'SERVICE_UNAVAILABLE', message);
    this.name = 'StepAborted';
  }
}

export function abortKindOf(reason: unknown): AbortKind | undefined {
  return reason instanceof StepAborted ? reason.kind : undefined;
}

function reasonOf(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new StepAborted('cancelled', String(signal.reason ?? 'aborted'));
}

/** Sleeps, rejecting with the abort reason as soon as the signal aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(reasonOf(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(reasonOf(signal));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Settles with the work, or rejects with the abort reason the moment the signal aborts: a
 * cancelled step ends at once even when its work takes a moment to notice.
 */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(reasonOf(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      work.catch(() => undefined);
      reject(reasonOf(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
