import { Logger } from '@nestjs/common';
import { PayloadOf, Subject } from '@ziggie/contracts';
import { json, Kysely, NatsService, sql, TraceContexts, Transaction } from '@ziggie/platform';
import { OrchestratorDb } from './migrations';

export type TaskEvent = PayloadOf<Subject.TaskEvent>;
export type TaskEventType = TaskEvent['type'];
export type EventFields = Partial<Pick<TaskEvent, 'wave' | 'stepId' | 'agentId' | 'message'>> & { status: string };

/**
 * Task events of one transaction. They are numbered per task (tasks.event_seq) and written to
 * the outbox inside the transaction, then published after it commits and removed from the
 * outbox; whatever a crash leaves in the outbox is published by reconcile. Subscribers never
 * see a transition that was rolled back, and none is lost.
 *
 * A task's events are published in their order: a transaction that adds events to a task also
 * takes the task's earlier events still in the outbox, published before its own. Those are
 * events whose publish did not happen or was not confirmed (a commit whose outcome the process
 * never learnt when PostgreSQL went down, a process frozen or killed between its commit and its
 * publish, nats-server down), or events another replica published and has not yet cleared, which
 * JetStream drops as duplicates (same message id within its 2-minute window).
 */
export class EventBatch {
  private readonly items: Array<{ taskId: string; type: TaskEventType; fields: EventFields }> = [];

  add(taskId: string, type: TaskEventType, fields: EventFields): void {
    this.items.push({ taskId, type, fields });
  }

  get size(): number {
    return this.items.length;
  }

  /**
   * Numbers the events and writes them to the outbox; call inside the transaction, once. Returns
   * them, and in `earlier` the tasks' events still in the outbox, to publish first.
   */
  async write(trx: Transaction<OrchestratorDb>): Promise<WrittenEvents> {
    if (this.items.length === 0) return { events: [], earlier: [] };
    const byTask = new Map<string, number>();
    for (const e of this.items) byTask.set(e.taskId, (byTask.get(e.taskId) ?? 0) + 1);
    const nextSeq = new Map<string, number>();
    const earlier: TaskEvent[] = [];
    const ids = [...byTask.keys()].sort();
    for (let i = 0; i < ids.length; i += 5000) {
      const chunk = ids.slice(i, i + 5000);
      // Locked in id order first (a no-op where the transaction holds them already), so the
      // multi-row update below, whose row order the planner picks, can never deadlock. The same
      // statement brings the tasks' events still in the outbox.
      const left = await sql<{ id: string; payload: TaskEvent | null }>`
        select t.id, o.payload from tasks t left join event_outbox o on o.task_id = t.id
        where t.id in (${sql.join(chunk)}) order by t.id, o.seq for update of t`.execute(trx);
      for (const r of left.rows) if (r.payload) earlier.push(r.payload);
      const rows = await sql<{ id: string; event_seq: number }>`
        update tasks t set event_seq = t.event_seq + v.n
        from (values ${sql.join(chunk.map((id) => sql`(${id}, ${byTask.get(id)!}::int)`))}) as v(id, n)
        where t.id = v.id
        returning t.id, t.event_seq`.execute(trx);
      for (const r of rows.rows) nextSeq.set(r.id, r.event_seq - byTask.get(r.id)! + 1);
    }
    const at = new Date().toISOString();
    const events: TaskEvent[] = [];
    for (const e of this.items) {
      const seq = nextSeq.get(e.taskId);
      if (seq === undefined) continue;
      nextSeq.set(e.taskId, seq + 1);
      events.push({ taskId: e.taskId, seq, type: e.type, at, ...e.fields });
    }
    for (let i = 0; i < events.length; i += 1000) {
      await trx
        .insertInto('event_outbox')
        .values(events.slice(i, i + 1000).map((e) => ({ task_id: e.taskId, seq: e.seq, payload: json<Record<string, unknown>>(e) })))
        .execute();
    }
    this.items.length = 0;
    return { events, earlier };
  }
}

export interface WrittenEvents {
  /** The batch's events, numbered. */
  events: TaskEvent[];
  /** Earlier events of the same tasks still in the outbox, in order: published before `events`. */
  earlier: TaskEvent[];
}

/**
 * Removes published events from the outbox, in statements of up to 1,000. Rows another
 * transaction is removing are skipped, never waited for: this runs inside the engine's
 * transactions, which must not wait (or deadlock) on housekeeping.
 */
export async function clearOutbox(db: Kysely<OrchestratorDb> | Transaction<OrchestratorDb>, sent: ReadonlyArray<{ taskId: string; seq: number }>): Promise<void> {
  for (let i = 0; i < sent.length; i += 1000) {
    const chunk = sent.slice(i, i + 1000);
    await sql`
      delete from event_outbox where (task_id, seq) in (
        select task_id, seq from event_outbox
        where (task_id, seq) in (${sql.join(chunk.map((e) => sql`(${e.taskId}, ${e.seq}::int)`))})
        for update skip locked)`.execute(db);
  }
}

/**
 * Publishes committed events in order. What was published leaves the outbox with the engine's
 * next transaction (publish returns it); reconcile's leftovers leave it at once.
 */
export class EventPublisher {
  private readonly logger = new Logger('events');

  constructor(
    private readonly nats: NatsService,
    private readonly db: () => Kysely<OrchestratorDb>,
    /** Each event goes out in its task's trace: one batch holds events of many tasks. */
    private readonly traces?: TraceContexts,
  ) {}

  /** Publishes in order; the events JetStream confirmed. */
  async publish(events: readonly TaskEvent[]): Promise<TaskEvent[]> {
    if (events.length === 0) return [];
    // Issued in sequence order on one connection, so JetStream stores them in that order.
    const send = (e: TaskEvent) => this.nats.publish(Subject.TaskEvent, e.taskId, e, { msgId: `${e.taskId}:${e.seq}` });
    const results = await Promise.allSettled(events.map((e) => (this.traces ? this.traces.run(e.taskId, () => send(e)) : send(e))));
    const sent = events.filter((_, i) => results[i]!.status === 'fulfilled');
    if (sent.length < events.length) this.logger.warn(`${events.length - sent.length} task events not published yet; reconcile retries them`);
    return sent;
  }

  /** Publishes what earlier runs left in the outbox (a crash between commit and publish). */
  async flushLeftovers(olderThanMs: number): Promise<number> {
    const rows = await this.db()
      .selectFrom('event_outbox')
      .select(['payload'])
      .where('created_at', '<', new Date(Date.now() - olderThanMs))
      .orderBy('task_id')
      .orderBy('seq')
      .limit(5000)
      .execute();
    const sent = await this.publish(rows.map((r) => r.payload as unknown as TaskEvent));
    await clearOutbox(this.db(), sent).catch((err: unknown) => this.logger.warn(`outbox cleanup: ${String(err)}`));
    return rows.length;
  }
}
