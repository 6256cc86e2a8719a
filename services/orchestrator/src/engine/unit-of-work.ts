import { Logger } from '@nestjs/common';
import { PayloadOf, Subject } from '@ziggie/contracts';
import { Kysely, NatsService, sql } from '@ziggie/platform';
import { Counter } from 'prom-client';
import { clearOutbox, EventBatch, EventPublisher, WrittenEvents } from '../events';
import { OrchestratorDb } from '../migrations';
import { HeldLease, PoolLeases } from '../pool-leases';
import { Trx } from './steps';

/** What a transaction asks to happen once it has committed. */
export class Effects {
  readonly events = new EventBatch();
  readonly cancels: Array<PayloadOf<Subject.StepCancel>> = [];
  /** Tasks whose child tasks must be cancelled. */
  readonly cancelChildrenOf: string[] = [];
  readonly advance = new Set<string>();
  /** Leases of attempts that ended, given back to workspace-coord. */
  readonly releases: HeldLease[] = [];
  pump = false;
}

/** What the engine's other parts do for a committed transaction's effects. */
export interface AfterCommit {
  advance(taskId: string): Promise<void>;
  pump(): void;
  cancelChildren(parentIds: string[]): Promise<void>;
}

/** Housekeeping the next transaction writes (see UnitOfWork.carried). */
interface Carried {
  outbox: Array<{ taskId: string; seq: number }>;
  /** Dispatches JetStream confirmed, with the stream sequence it stored each at. */
  published: Array<{ taskId: string; stepId: string; seq: number }>;
}

/**
 * Every engine transaction goes through commit(): the work runs in one transaction with the
 * task events it adds, and what it asks for afterwards (events published, runtimes told to stop,
 * leases given back, tasks advanced, a scheduling round) happens only once it has committed.
 */
export class UnitOfWork {
  private readonly logger = new Logger('engine');
  /**
   * Housekeeping after a publish, written by the next transaction instead of one of its own (a
   * commit each): events to clear from the outbox, dispatches JetStream confirmed. A crash loses
   * only this, and the loss means publishing again under the same message id.
   */
  private carried: Carried = { outbox: [], published: [] };
  private then?: AfterCommit;

  constructor(
    private readonly db: () => Kysely<OrchestratorDb>,
    private readonly nats: NatsService,
    private readonly publisher: EventPublisher,
    private readonly leases: Pick<PoolLeases, 'release'>,
    private readonly transitions?: Counter<'kind' | 'status'>,
  ) {}

  /** Set once by the engine, which owns the parts these effects call back into. */
  wire(then: AfterCommit): void {
    this.then = then;
  }

  async commit<T>(work: (trx: Trx, fx: Effects) => Promise<T>): Promise<T> {
    const fx = new Effects();
    const carried = this.takeCarried();
    let result: T;
    let written: WrittenEvents = { events: [], earlier: [] };
    try {
      result = await this.db()
        .transaction()
        .execute(async (trx) => {
          const r = await work(trx, fx);
          // Housekeeping first: events this process saw confirmed leave the outbox before the
          // batch looks there for a task's earlier events still unpublished.
          await this.writeCarried(trx, carried);
          written = await fx.events.write(trx);
          return r;
        });
    } catch (err) {
      this.putBack(carried);
      throw err;
    }
    await this.afterCommit(fx, written);
    return result;
  }

  /** Dispatches JetStream confirmed: their `published_at` and `dispatch_seq` are set by the next transaction. */
  confirmPublished(list: ReadonlyArray<{ taskId: string; stepId: string; seq: number }>): void {
    for (const d of list) this.carried.published.push({ taskId: d.taskId, stepId: d.stepId, seq: d.seq });
  }

  /** When no transaction comes by to carry the housekeeping, a small one does. */
  async flushCarried(): Promise<void> {
    if (this.carried.outbox.length === 0 && this.carried.published.length === 0) return;
    const carried = this.takeCarried();
    try {
      await this.db()
        .transaction()
        .execute((trx) => this.writeCarried(trx, carried));
    } catch (err) {
      this.putBack(carried);
      this.logger.warn(`outbox cleanup and dispatch confirmations: ${String(err)}`);
    }
  }

  /** How much housekeeping waits for a transaction (for tests and diagnostics). */
  get pendingHousekeeping(): { outbox: number; published: number } {
    return { outbox: this.carried.outbox.length, published: this.carried.published.length };
  }

  private takeCarried(): Carried {
    const taken = this.carried;
    this.carried = { outbox: [], published: [] };
    return taken;
  }

  private putBack(c: Carried): void {
    this.carried.outbox.push(...c.outbox);
    this.carried.published.push(...c.published);
  }

  /** After the transaction's own work and locks: the marks skip rows others hold, so they never wait. */
  private async writeCarried(trx: Trx, c: Carried): Promise<void> {
    await clearOutbox(trx, c.outbox);
    for (let i = 0; i < c.published.length; i += 1000) {
      const chunk = c.published.slice(i, i + 1000);
      // Rows a result transaction holds are skipped: a result means the dispatch arrived, and the
      // step has left `dispatched` or is about to.
      await sql`
        update steps s set published_at = now(), dispatch_seq = v.seq
        from (values ${sql.join(chunk.map((d) => sql`(${d.taskId}, ${d.stepId}, ${d.seq}::bigint)`))}) as v(task_id, id, seq)
        where s.task_id = v.task_id and s.id = v.id and (s.task_id, s.id) in (
          select task_id, id from steps
          where (task_id, id) in (${sql.join(chunk.map((d) => sql`(${d.taskId}, ${d.stepId})`))})
            and status in ('dispatched', 'running') and published_at is null
          for update skip locked)`.execute(trx);
    }
  }

  private async afterCommit(fx: Effects, written: WrittenEvents): Promise<void> {
    for (const e of written.events) this.transitions?.inc({ kind: e.type.split('.')[0]!, status: e.status });
    const sent = await this.publisher.publish([...written.earlier, ...written.events]).catch((err: unknown) => {
      this.logger.warn(`events: ${String(err)}`);
      return [];
    });
    for (const e of sent) this.carried.outbox.push({ taskId: e.taskId, seq: e.seq });
    for (const c of fx.cancels) {
      try {
        this.nats.publishCore(Subject.StepCancel, c.taskId, c);
      } catch (err) {
        this.logger.warn(`cancel notice for ${c.taskId} not sent: ${String(err)}`);
      }
    }
    this.leases.release(fx.releases);
    const then = this.then;
    if (!then) return;
    if (fx.cancelChildrenOf.length > 0) {
      void then.cancelChildren(fx.cancelChildrenOf).catch((err: unknown) => this.logger.warn(`cancel children of ${fx.cancelChildrenOf.join(', ')}: ${String(err)}`));
    }
    for (const taskId of fx.advance) void then.advance(taskId).catch((err: unknown) => this.logger.error(`advance ${taskId}: ${String(err)}`));
    if (fx.pump) then.pump();
  }
}
