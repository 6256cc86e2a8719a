import { Logger } from '@nestjs/common';
import { StepDispatchPayload, Subject } from '@ziggie/contracts';
import { Kysely, NatsService, TraceContexts } from '@ziggie/platform';
import { OrchestratorDb } from '../migrations';
import { hasReferences, resolveInput } from '../templates';
import { attemptIdOf, Candidate, Dispatch, Trx } from './steps';
import { UnitOfWork } from './unit-of-work';

/** Succeeded steps' outputs of the given tasks, for the `{{steps.x.output}}` references of later waves. */
export async function outputsFor(db: Trx | Kysely<OrchestratorDb>, taskIds: string[]): Promise<Map<string, Map<string, unknown>>> {
  const byTask = new Map<string, Map<string, unknown>>();
  const ids = [...new Set(taskIds)];
  if (ids.length === 0) return byTask;
  const rows = await db.selectFrom('steps').select(['task_id', 'id', 'output']).where('task_id', 'in', ids).where('status', '=', 'succeeded').execute();
  for (const r of rows) {
    const m = byTask.get(r.task_id) ?? new Map<string, unknown>();
    m.set(r.id, r.output);
    byTask.set(r.task_id, m);
  }
  return byTask;
}

/** A step's input with its references resolved against its task's outputs (throws when one cannot be). */
export function inputOf(step: Candidate, outputs: Map<string, Map<string, unknown>>): Record<string, unknown> {
  return hasReferences(step.input) ? resolveInput(step.input, outputs.get(step.task_id) ?? new Map(), { taskId: step.task_id }) : step.input;
}

/** What goes on JetStream for one attempt of a step. */
export function dispatchPayload(step: Candidate, agentId: string, attempt: number, input: Record<string, unknown>): Dispatch {
  return StepDispatchPayload.parse({
    taskId: step.task_id,
    stepId: step.id,
    attemptId: attemptIdOf(step.task_id, step.id, attempt),
    attempt,
    capability: step.capability ?? 'agent',
    action: step.action,
    workspace: step.workspace,
    agentId,
    input,
    timeoutMs: step.timeout_ms,
    correlationId: step.correlation_id,
    principal: step.principal,
    depth: step.task_depth,
    priority: step.task_priority,
    pool: step.pool ?? undefined,
  });
}

/**
 * Publishes committed dispatches (message id = attempt id, so a second publish of the same
 * attempt is dropped by JetStream) and hands what JetStream confirmed to the next transaction.
 */
export class DispatchPublisher {
  private readonly logger = new Logger('engine');

  constructor(
    private readonly nats: NatsService,
    private readonly traces: TraceContexts,
    private readonly uow: UnitOfWork,
  ) {}

  /** Publishes in order, concurrently; each in its task's trace. */
  async publish(list: Dispatch[]): Promise<void> {
    if (list.length === 0) return;
    const results = await Promise.allSettled(list.map((d) => this.traces.run(d.taskId, () => this.nats.publish(Subject.StepDispatch, d.capability, d, { msgId: d.attemptId }))));
    const confirmed = list.flatMap((d, i) => {
      const r = results[i]!;
      return r.status === 'fulfilled' ? [{ taskId: d.taskId, stepId: d.stepId, seq: r.value.seq }] : [];
    });
    if (confirmed.length < list.length) {
      // The steps stay dispatched in Postgres; reconcile publishes them again under the same id.
      this.logger.warn(`${list.length - confirmed.length} dispatches not confirmed by JetStream yet`);
    }
    this.uow.confirmPublished(confirmed);
  }
}
