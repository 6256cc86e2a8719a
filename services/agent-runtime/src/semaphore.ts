/**
 * Counts slots; waiters are served in arrival order and leave the queue when their signal aborts.
 * (A dozen lines: the workspace has no semaphore package, and this one needs abortable waits.)
 */
export class Semaphore {
  private active = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly slots: number) {}

  get inUse(): number {
    return this.active;
  }

  /** Resolves with a release function once a slot is free; rejects with the signal's reason on abort. */
  acquire(signal: AbortSignal): Promise<() => void> {
    const release = (): (() => void) => {
      let released = false;
      return () => {
        if (released) return;
        released = true;
        this.active--;
        this.waiters.shift()?.();
      };
    };
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    if (this.active < this.slots) {
      this.active++;
      return Promise.resolve(release());
    }
    return new Promise((resolve, reject) => {
      const grant = (): void => {
        signal.removeEventListener('abort', onAbort);
        this.active++;
        resolve(release());
      };
      const onAbort = (): void => {
        const i = this.waiters.indexOf(grant);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal.reason as Error);
      };
      this.waiters.push(grant);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
