/**
 * A binary min-heap that knows where each item sits, so an item whose key changed moves in
 * O(log n) and any item leaves in O(log n). No npm heap keeps a position index that lets one
 * object live in several heaps at once (an agent is in one heap per capability).
 */
export class IndexedHeap<T> {
  private readonly items: T[] = [];
  private readonly positions = new Map<T, number>();

  /** `before(a, b)`: a comes out first. */
  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  has(item: T): boolean {
    return this.positions.has(item);
  }

  /** Adds the item, or moves it if it is already in (its key changed). */
  push(item: T): void {
    const at = this.positions.get(item);
    if (at !== undefined) {
      this.fix(at);
      return;
    }
    this.items.push(item);
    this.positions.set(item, this.items.length - 1);
    this.up(this.items.length - 1);
  }

  /** Restores the order after the item's key changed; a no-op for an item not in the heap. */
  update(item: T): void {
    const at = this.positions.get(item);
    if (at !== undefined) this.fix(at);
  }

  remove(item: T): boolean {
    const at = this.positions.get(item);
    if (at === undefined) return false;
    const last = this.items.pop()!;
    this.positions.delete(item);
    if (at < this.items.length) {
      this.items[at] = last;
      this.positions.set(last, at);
      this.fix(at);
    }
    return true;
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  private fix(at: number): void {
    if (at > 0 && this.before(this.items[at]!, this.items[(at - 1) >> 1]!)) this.up(at);
    else this.down(at);
  }

  private up(at: number): void {
    const item = this.items[at]!;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      const p = this.items[parent]!;
      if (!this.before(item, p)) break;
      this.items[at] = p;
      this.positions.set(p, at);
      at = parent;
    }
    this.items[at] = item;
    this.positions.set(item, at);
  }

  private down(at: number): void {
    const n = this.items.length;
    const item = this.items[at]!;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.before(this.items[right]!, this.items[left]!) ? right : left;
      const c = this.items[child]!;
      if (!this.before(c, item)) break;
      this.items[at] = c;
      this.positions.set(c, at);
      at = child;
    }
    this.items[at] = item;
    this.positions.set(item, at);
  }
}
