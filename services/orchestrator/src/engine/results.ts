import { sql } from '@ziggie/platform';
import { checkQualityGate } from '../quality';
import { nextMove } from '../retry-policy';
import { ToolCapacity } from '../tool-capacity';
import { allFulfilled, Batcher } from './batcher';
import { TaskLifecycle } from './lifecycle';
import { attemptNumber, formatStepError, isInFlight, lockTasks, StepError, StepResult, Trx } from './steps';
import { Effects, UnitOfWork } from './unit-of-work';

/** What a result changes: its step's row and its attempt's row, written for a whole batch at once. */
interface AttemptEnding {
  step: {
    task_id: string;
    id: string;
    status: string;
    /** JSON text, or null. */
    output: string | null;
    error: StepError | null;
    started_at: Date | null;
    /** When this attempt started, by its result: kept only when no running notice recorded it. */
    attempt_started_at: Date;
    finished_at: Date | null;
    next_attempt_at: Date | null;
    waiting_reason: string | null;
    capacity_waits: number;
    child_task_id: string | null;
  };
  attempt: { attempt: number; status: string; finished_at: Date; holder: string; pool: string };
}

/**
 * Step results from the runtimes: recorded in batches (one transaction for many), once per
 * attempt (`step_ledger`), with quality gates checked, retries and capacity waits scheduled
 * (retry-policy) and the tasks moved on in the same transaction. Owns the writes to
 * `step_ledger`, and to `steps` and `step_attempts` when an attempt runs or ends.
 */
export class ResultRecorder {
  /** Results that arrive while a batch is being recorded make up the next one. */
  private readonly batches: Batcher<StepResult, void>;

  constructor(
    private readonly uow: UnitOfWork,
    private readonly lifecycle: Pick<TaskLifecycle, 'advanceLocked'>,
    private readonly toolCapacity: ToolCapacity,
    batchMax: number,
    private readonly remember: (taskId: string) => void = () => undefined,
  ) {
    this.batches = new Batcher<StepResult, void>(batchMax, async (results) => {
      await this.record(results);
      return allFulfilled<void>(results.length, undefined);
    });
  }

  /** Queues a result for the next batch; resolves once its batch commits (the message is acked then). */
  enqueue(result: StepResult): Promise<void> {
    // The next wave continues the trace from this result (the consumer's span).
    this.remember(result.taskId);
    return this.batches.add(result);
  }

  /** Records step results once per attempt; duplicates and late results change nothing. */
  async record(results: StepResult[]): Promise<void> {
    await this.uow.commit(async (trx, fx) => {
      const tasks = await lockTasks(trx, results.map((r) => r.taskId));
      const now = new Date();
      await recordRunning(trx, fx, results.filter((x) => x.status === 'running'));
      const terminal = results.filter((x) => x.status !== 'running');
      if (terminal.length === 0) return;
      const fresh = new Set(
        (
          await trx
            .insertInto('step_ledger')
            .values(terminal.map((r) => ({ attempt_id: r.attemptId, task_id: r.taskId, step_id: r.stepId, status: r.status })))
            .onConflict((oc) => oc.column('attempt_id').doNothing())
            .returning('attempt_id')
            .execute()
        ).map((r) => r.attempt_id),
      );
      if (fresh.size === 0) return;
      const steps = await trx
        .selectFrom('steps')
        .selectAll()
        .where(({ eb, refTuple, tuple }) => eb(refTuple('task_id', 'id'), 'in', terminal.map((r) => tuple(r.taskId, r.stepId))))
        .execute();
      const byKey = new Map(steps.map((s) => [`${s.task_id}/${s.id}`, s]));
      const ends: AttemptEnding[] = [];
      for (const r of terminal) {
        if (!fresh.has(r.attemptId)) continue;
        fresh.delete(r.attemptId);
        const step = byKey.get(`${r.taskId}/${r.stepId}`);
        const attempt = attemptNumber(r.attemptId);
        if (!step || !isInFlight(step.status) || step.attempt !== attempt) continue;
        let status: 'succeeded' | 'failed' = r.status === 'succeeded' ? 'succeeded' : 'failed';
        let error: StepError | null = r.error ? { code: r.error.code, message: r.error.message } : null;
        if (status === 'succeeded') {
          const gate = checkQualityGate(step.quality_gate, r.output ?? {});
          if (gate) {
            status = 'failed';
            error = { code: 'QUALITY_GATE_FAILED', message: gate };
          }
        }
        const move = nextMove(
          { attempt: step.attempt, retries: step.retries, capacityWaits: step.capacity_waits, retryBackoffMs: step.retry_backoff_ms },
          { status, code: r.error?.code, message: r.error?.message, retryAfterSeconds: r.error?.retryAfterSeconds },
          now,
        );
        const again = move.kind !== 'done';
        const childTaskId = typeof r.output?.childTaskId === 'string' ? r.output.childTaskId : step.child_task_id;
        ends.push({
          step: {
            task_id: step.task_id,
            id: step.id,
            status: again ? 'pending' : status,
            output: r.output ? JSON.stringify(r.output) : null,
            error,
            // Its running notice set it, else this result does; a refused attempt started nothing.
            started_at: move.kind === 'wait' ? step.started_at : (step.started_at ?? new Date(r.startedAt)),
            attempt_started_at: new Date(r.startedAt),
            finished_at: again ? null : new Date(r.finishedAt ?? now),
            next_attempt_at: again ? move.at : null,
            waiting_reason: again ? move.reason : null,
            capacity_waits: move.kind === 'wait' ? step.capacity_waits + 1 : step.capacity_waits,
            child_task_id: childTaskId,
          },
          attempt: {
            attempt,
            // A refused attempt did no work: it shows as refused, not failed.
            status: move.kind === 'wait' ? 'refused' : status,
            finished_at: new Date(r.finishedAt ?? now),
            holder: r.attemptId,
            pool: step.pool ?? '',
          },
        });
        const event = { wave: step.wave, stepId: step.id, agentId: r.agentId };
        if (move.kind === 'wait') {
          const scope = r.error?.scope;
          if (r.error?.limit !== undefined && (scope === 'tool' || scope === 'server') && r.error.code === 'TOOL_CONCURRENCY_LIMITED') {
            const subject = tasks.get(step.task_id)?.principal.subject;
            const tool = typeof step.input.tool === 'string' ? step.input.tool : undefined;
            if (subject && tool) this.toolCapacity.learn({ subject, tool, scope, limit: r.error.limit });
          }
          fx.events.add(step.task_id, 'step.waiting', { ...event, status: 'pending', message: move.reason });
        } else if (move.kind === 'retry') {
          fx.events.add(step.task_id, 'step.retrying', { ...event, status: 'pending', message: error ? formatStepError(error) : undefined });
        } else {
          fx.events.add(step.task_id, `step.${status}`, { ...event, status, message: error ? formatStepError(error) : undefined });
          fx.advance.add(step.task_id);
        }
      }
      await writeEndings(trx, fx, ends);
      // The tasks are locked already: moving them on here saves a transaction per result.
      await this.lifecycle.advanceLocked(trx, fx, [...fx.advance].flatMap((id) => tasks.get(id) ?? []));
      fx.advance.clear();
      fx.pump = true;
    });
  }
}

/** `running` notices: dispatched → running for many steps in two statements, and their events. */
async function recordRunning(trx: Trx, fx: Effects, notices: StepResult[]): Promise<void> {
  for (let i = 0; i < notices.length; i += 1000) {
    const chunk = notices.slice(i, i + 1000);
    const agentOf = new Map(chunk.map((r) => [`${r.taskId}/${r.stepId}/${attemptNumber(r.attemptId)}`, r.agentId]));
    const values = sql.join(chunk.map((r) => sql`(${r.taskId}, ${r.stepId}, ${attemptNumber(r.attemptId)}::int, ${new Date(r.startedAt)}::timestamptz)`));
    const started = await sql<{ task_id: string; id: string; wave: number; attempt: number; started_at: Date }>`
      update steps s set status = 'running', started_at = v.started_at
      from (values ${values}) as v(task_id, id, attempt, started_at)
      where s.task_id = v.task_id and s.id = v.id and s.status = 'dispatched' and s.attempt = v.attempt
      returning s.task_id, s.id, s.wave, s.attempt, s.started_at`.execute(trx);
    if (started.rows.length === 0) continue;
    await sql`
      update step_attempts a set status = 'running', started_at = v.started_at
      from (values ${sql.join(started.rows.map((r) => sql`(${r.task_id}, ${r.id}, ${r.attempt}::int, ${r.started_at}::timestamptz)`))}) as v(task_id, step_id, attempt, started_at)
      where a.task_id = v.task_id and a.step_id = v.step_id and a.attempt = v.attempt`.execute(trx);
    for (const r of started.rows) {
      fx.events.add(r.task_id, 'step.running', { wave: r.wave, stepId: r.id, agentId: agentOf.get(`${r.task_id}/${r.id}/${r.attempt}`), status: 'running' });
    }
  }
}

/** The steps and attempts that results ended, each in one multi-row statement; leases of ended attempts go back. */
async function writeEndings(trx: Trx, fx: Effects, ends: AttemptEnding[]): Promise<void> {
  for (let i = 0; i < ends.length; i += 500) {
    const chunk = ends.slice(i, i + 500);
    const steps = sql.join(
      chunk.map(
        ({ step: s }) =>
          sql`(${s.task_id}, ${s.id}, ${s.status}, ${s.output}::jsonb, ${s.error?.code ?? null}::text, ${s.error?.message ?? null}::text,
               ${s.started_at}::timestamptz, ${s.finished_at}::timestamptz, ${s.next_attempt_at}::timestamptz, ${s.waiting_reason}::text,
               ${s.capacity_waits}::int, ${s.child_task_id}::text)`,
      ),
    );
    await sql`
      update steps s set status = v.status, output = v.output, error_code = v.error_code, error_message = v.error_message,
                         started_at = v.started_at, finished_at = v.finished_at, next_attempt_at = v.next_attempt_at,
                         waiting_reason = v.waiting_reason, capacity_waits = v.capacity_waits, child_task_id = v.child_task_id
      from (values ${steps}) as v(task_id, id, status, output, error_code, error_message, started_at, finished_at, next_attempt_at, waiting_reason, capacity_waits, child_task_id)
      where s.task_id = v.task_id and s.id = v.id`.execute(trx);
    const attempts = sql.join(
      chunk.map(
        ({ step: s, attempt: a }) =>
          sql`(${s.task_id}, ${s.id}, ${a.attempt}::int, ${a.status}, ${s.error?.code ?? null}::text, ${s.error?.message ?? null}::text,
               ${s.attempt_started_at}::timestamptz, ${a.finished_at}::timestamptz)`,
      ),
    );
    const ended = await sql<{ task_id: string; step_id: string; lease_id: string | null }>`
      update step_attempts a set status = v.status, error_code = v.error_code, error_message = v.error_message,
                                 started_at = coalesce(a.started_at, v.started_at), finished_at = v.finished_at
      from (values ${attempts}) as v(task_id, step_id, attempt, status, error_code, error_message, started_at, finished_at)
      where a.task_id = v.task_id and a.step_id = v.step_id and a.attempt = v.attempt
      returning a.task_id, a.step_id, a.lease_id`.execute(trx);
    const byStep = new Map(chunk.map((e) => [`${e.step.task_id}/${e.step.id}`, e.attempt]));
    for (const row of ended.rows) {
      const a = byStep.get(`${row.task_id}/${row.step_id}`);
      if (row.lease_id && a) fx.releases.push({ holder: a.holder, pool: a.pool });
    }
  }
}
