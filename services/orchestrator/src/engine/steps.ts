import { PayloadOf, Subject } from '@ziggie/contracts';
import { Transaction } from '@ziggie/platform';
import { OrchestratorDb, StepRow, TaskRow } from '../migrations';

export type Trx = Transaction<OrchestratorDb>;
export type StepResult = PayloadOf<Subject.StepResult>;
export type Dispatch = PayloadOf<Subject.StepDispatch>;

export const TERMINAL_TASK = new Set(['succeeded', 'failed', 'cancelled']);
/** Step states that keep a wave open. */
export const OPEN_STEP = ['pending', 'dispatched', 'running', 'waiting_approval'] as const;
/** Step states with a dispatch out (a runtime has the step, or is about to). */
export const IN_FLIGHT = ['dispatched', 'running'] as const;

export const isInFlight = (status: string): boolean => (IN_FLIGHT as readonly string[]).includes(status);

/** Why a step or an attempt failed, or was refused: stored as two columns, never as one string. */
export interface StepError {
  code: string;
  message: string;
}

export const formatStepError = (e: StepError): string => `${e.code}: ${e.message}`;

/** A step row's error, or undefined. */
export function errorOf(row: { error_code: string | null; error_message: string | null }): StepError | undefined {
  return row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : undefined;
}

/** A pending step with what its task adds for scheduling and dispatch. */
export type Candidate = StepRow & { task_priority: string; principal: TaskRow['principal']; correlation_id: string; task_depth: number };

export const attemptIdOf = (taskId: string, stepId: string, attempt: number): string => `${taskId}.${stepId}.${attempt}`;
/** The attempt id a pending step is dispatched as (its lease holder). */
export const nextAttemptIdOf = (step: Pick<StepRow, 'task_id' | 'id' | 'attempt'>): string => attemptIdOf(step.task_id, step.id, step.attempt + 1);

export function attemptNumber(attemptId: string): number {
  return Number.parseInt(attemptId.slice(attemptId.lastIndexOf('.') + 1), 10);
}

/** Locks task rows in id order: every transaction takes tasks before steps, so replicas never deadlock. */
export async function lockTasks(trx: Trx, ids: Iterable<string>): Promise<Map<string, TaskRow>> {
  const list = [...new Set(ids)].sort();
  if (list.length === 0) return new Map();
  const rows = await trx.selectFrom('tasks').selectAll().where('id', 'in', list).orderBy('id').forUpdate().execute();
  return new Map(rows.map((r) => [r.id, r]));
}
