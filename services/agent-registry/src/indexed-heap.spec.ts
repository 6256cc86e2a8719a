import { IndexedHeap } from './indexed-heap';

interface Item {
  id: number;
  key: number;
}

describe('IndexedHeap', () => {
  const byKey = (a: Item, b: Item) => a.key < b.key || (a.key === b.key && a.id < b.id);

  it('pops in order, and moves an item whose key changed', () => {
    const heap = new IndexedHeap<Item>(byKey);
    const items = [5, 3, 8, 1, 9, 2].map((key, id) => ({ id, key }));
    for (const i of items) heap.push(i);
    expect(heap.size).toBe(6);
    expect(heap.peek()).toBe(items[3]);
    items[3]!.key = 10;
    heap.update(items[3]!);
    items[2]!.key = 0;
    heap.update(items[2]!);
    const order: number[] = [];
    for (let i = heap.pop(); i; i = heap.pop()) order.push(i.key);
    expect(order).toEqual([0, 2, 3, 5, 9, 10]);
    expect(heap.size).toBe(0);
  });

  it('removes any item, and ignores updates and removals of items it does not hold', () => {
    const heap = new IndexedHeap<Item>(byKey);
    const a = { id: 1, key: 1 };
    const b = { id: 2, key: 2 };
    const c = { id: 3, key: 3 };
    heap.push(a);
    heap.push(b);
    heap.push(c);
    expect(heap.remove(a)).toBe(true);
    expect(heap.remove(a)).toBe(false);
    expect(heap.has(a)).toBe(false);
    heap.update(a);
    expect(heap.peek()).toBe(b);
    // Pushing an item already in moves it rather than adding it twice.
    b.key = 4;
    heap.push(b);
    expect([heap.size, heap.pop(), heap.pop(), heap.pop()]).toEqual([2, c, b, undefined]);
  });

  it('agrees with a sorted array through random pushes, updates and removals', () => {
    const heap = new IndexedHeap<Item>(byKey);
    const inHeap = new Set<Item>();
    let seed = 7;
    const random = () => ((seed = (Math.imul(seed, 48271) >>> 0) % 2147483647) / 2147483647);
    for (let step = 0; step < 5000; step++) {
      const r = random();
      const members = [...inHeap];
      if (r < 0.4 || members.length === 0) {
        const item = { id: step, key: Math.floor(random() * 50) };
        heap.push(item);
        inHeap.add(item);
      } else if (r < 0.75) {
        const item = members[Math.floor(random() * members.length)]!;
        item.key = Math.floor(random() * 50);
        heap.update(item);
      } else if (r < 0.9) {
        const item = members[Math.floor(random() * members.length)]!;
        heap.remove(item);
        inHeap.delete(item);
      } else {
        const popped = heap.pop();
        expect(popped).toBe([...inHeap].sort((x, y) => x.key - y.key || x.id - y.id)[0]);
        inHeap.delete(popped!);
      }
      expect(heap.size).toBe(inHeap.size);
      expect(heap.peek()).toBe([...inHeap].sort((x, y) => x.key - y.key || x.id - y.id)[0]);
    }
  });
});
