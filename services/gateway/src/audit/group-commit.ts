interface Waiting<T> {
  item: T;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class QueueFullError extends Error {
  constructor(limit: number) {
    super(`more than ${limit} writes are waiting`);
    this.name = 'QueueFullError';
  }
}

/**
 * Group commit: writes that arrive while a batch is being committed are committed together in
 * the next one, so N concurrent requests cost one round trip instead of N, and each caller's
 * promise settles when its own batch is durable (or failed).
 * Hand-written: the gateway has no batching dependency, and this class is the whole mechanism.
 */
export class GroupCommitWriter<T> {
  private queue: Array<Waiting<T>> = [];
  private draining?: Promise<void>;

  constructor(
    private readonly commit: (items: T[]) => Promise<void>,
    private readonly options: { maxBatch: number; maxQueued: number },
  ) {}

  /** Resolves once the item is committed; rejects with the batch's error, or at once when the queue is full. */
  write(item: T): Promise<void> {
    if (this.queue.length >= this.options.maxQueued) return Promise.reject(new QueueFullError(this.options.maxQueued));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.startDraining();
    });
  }

  /** Number of writes not yet committed or failed. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Resolves when everything written so far has been committed or has failed. */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private startDraining(): void {
    if (this.draining) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      // A write that arrived after the loop's last look must not wait for the next write.
      if (this.queue.length > 0) this.startDraining();
    });
  }

  private async drain(): Promise<void> {
    // One turn of the event loop lets the requests that arrived together share the first batch.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      try {
        await this.commit(batch.map((w) => w.item));
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
  }
}
