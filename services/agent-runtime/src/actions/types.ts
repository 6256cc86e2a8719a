import { ErrorCode, PayloadOf, Subject, ZiggieError } from '@ziggie/contracts';

export type Dispatch = PayloadOf<Subject.StepDispatch>;

export type StepOutcome =
  | { status: 'succeeded'; output: Record<string, unknown> }
  | { status: 'failed'; output?: Record<string, unknown>; error: { code: string; message: string; retryAfterSeconds?: number; limit?: number; scope?: string } };

/** What an action gets besides its dispatch. */
export interface ActionContext {
  dispatch: Dispatch;
  /** Aborts on cancellation, timeout or shutdown; the reason says which. */
  signal: AbortSignal;
  /** Tells JetStream the step is still being worked on. */
  onProgress: () => void;
}

export function failed(code: ErrorCode, message: string, output?: Record<string, unknown>): StepOutcome {
  return output ? { status: 'failed', output, error: { code, message } } : { status: 'failed', error: { code, message } };
}

/** A step failure thrown from deep inside an action, with output to keep. */
export class StepFailure extends ZiggieError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly output?: Record<string, unknown>,
  ) {
    super(code, message);
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
