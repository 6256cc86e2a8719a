/**
 * Group commit: calls that arrive while a batch is being written make up the next batch, so a
 * burst of N calls costs a few transactions instead of N, and a lone call waits for nothing (no
 * timer: the batch starts on the next turn of the event loop). At most one batch is in flight.
 * Written here because it is a dozen lines and the batch's outcome must map back to each caller.
 */
export class Batcher<I, O> {
  private readonly queue: Array<{ item: I; resolve: (o: O) => void; reject: (err: unknown) => void }> = [];
  private flushing?: Promise<void>;

  /** `run` answers for every item of a batch, in order; a batch that throws fails every item in it. */
  constructor(
    private readonly max: number,
    private readonly run: (items: I[]) => Promise<Array<PromiseSettledResult<O>>>,
  ) {}

  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.flushing ??= new Promise<void>((r) => setImmediate(r)).then(() => this.flush());
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.max);
        let outcomes: Array<PromiseSettledResult<O>>;
        try {
          outcomes = await this.run(batch.map((b) => b.item));
        } catch (err) {
          outcomes = batch.map(() => ({ status: 'rejected', reason: err }));
        }
        for (const [i, b] of batch.entries()) {
          const o = outcomes[i];
          if (o?.status === 'fulfilled') b.resolve(o.value);
          else b.reject(o ? o.reason : new Error('the batch gave no outcome for this item'));
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }
}

/** Every item of a batch fulfilled with the same value. */
export const allFulfilled = <O>(n: number, value: O): Array<PromiseSettledResult<O>> => Array.from({ length: n }, () => ({ status: 'fulfilled', value }));
