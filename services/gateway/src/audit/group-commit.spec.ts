import { GroupCommitWriter, QueueFullError } from './group-commit';

/** A commit function whose batches the test finishes by hand. */
function controlledCommit() {
  const batches: Array<{ items: number[]; finish: (err?: Error) => void }> = [];
  const commit = (items: number[]) =>
    new Promise<void>((resolve, reject) => {
      batches.push({ items, finish: (err) => (err ? reject(err) : resolve()) });
    });
  return { batches, commit };
}

const settled = async (p: Promise<unknown>): Promise<'resolved' | 'rejected' | 'waiting'> => {
  let state: 'resolved' | 'rejected' | 'waiting' = 'waiting';
  p.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  await new Promise((r) => setImmediate(r));
  return state;
};

const turn = () => new Promise((r) => setImmediate(r));

describe('GroupCommitWriter', () => {
  it('commits writes made together in one batch, and resolves each only when that batch is committed', async () => {
    const { batches, commit } = controlledCommit();
    const writer = new GroupCommitWriter(commit, { maxBatch: 100, maxQueued: 1000 });
    const writes = [1, 2, 3].map((n) => writer.write(n));
    await turn();
    expect(batches.map((b) => b.items)).toEqual([[1, 2, 3]]);
    expect(await settled(writes[0]!)).toBe('waiting');
    batches[0]!.finish();
    await expect(Promise.all(writes)).resolves.toEqual([undefined, undefined, undefined]);
  });

  it('groups the writes that arrive during a commit into the next one', async () => {
    const { batches, commit } = controlledCommit();
    const writer = new GroupCommitWriter(commit, { maxBatch: 100, maxQueued: 1000 });
    const first = writer.write(1);
    await turn();
    const later = [2, 3, 4].map((n) => writer.write(n));
    await turn();
    expect(batches.map((b) => b.items)).toEqual([[1]]);
    batches[0]!.finish();
    await first;
    await turn();
    expect(batches.map((b) => b.items)).toEqual([[1], [2, 3, 4]]);
    batches[1]!.finish();
    await Promise.all(later);
    expect(writer.waiting).toBe(0);
  });

  it('rejects exactly the writes of a failed batch and goes on with the next', async () => {
    const { batches, commit } = controlledCommit();
    const writer = new GroupCommitWriter(commit, { maxBatch: 100, maxQueued: 1000 });
    const failed = [writer.write(1), writer.write(2)];
    await turn();
    const next = writer.write(3);
    batches[0]!.finish(new Error('disk full'));
    await expect(failed[0]).rejects.toThrow('disk full');
    await expect(failed[1]).rejects.toThrow('disk full');
    await turn();
    expect(batches[1]!.items).toEqual([3]);
    batches[1]!.finish();
    await expect(next).resolves.toBeUndefined();
  });

  it('splits a backlog into batches of maxBatch', async () => {
    const committed: number[][] = [];
    const writer = new GroupCommitWriter(async (items: number[]) => void committed.push(items), { maxBatch: 4, maxQueued: 1000 });
    await Promise.all(Array.from({ length: 10 }, (_, i) => writer.write(i)));
    expect(committed).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  });

  it('refuses a write at once when maxQueued writes are waiting', async () => {
    const { batches, commit } = controlledCommit();
    const writer = new GroupCommitWriter(commit, { maxBatch: 100, maxQueued: 2 });
    const accepted = [writer.write(1), writer.write(2)];
    await expect(writer.write(3)).rejects.toBeInstanceOf(QueueFullError);
    await turn();
    batches[0]!.finish();
    await Promise.all(accepted);
  });

  it('flush waits for everything written before it, including writes queued during the last commit', async () => {
    const committed: number[] = [];
    const writer = new GroupCommitWriter(
      async (items: number[]) => {
        await new Promise((r) => setTimeout(r, 5));
        committed.push(...items);
      },
      { maxBatch: 100, maxQueued: 1000 },
    );
    void writer.write(1);
    await turn();
    void writer.write(2);
    await writer.flush();
    expect(committed).toEqual([1, 2]);
  });
});
