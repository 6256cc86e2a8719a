import { keyedThrottle } from './throttle';

/** A clock the test moves by hand: no real time passes. */
function manualTimers() {
  let now = 0;
  const queue: Array<{ at: number; fn: () => void; id: number }> = [];
  let ids = 0;
  return {
    set: (fn: () => void, ms: number) => {
      const id = ++ids;
      queue.push({ at: now + ms, fn, id });
      return id;
    },
    clear: (id: unknown) => {
      const i = queue.findIndex((t) => t.id === id);
      if (i >= 0) queue.splice(i, 1);
    },
    advance(ms: number) {
      now += ms;
      for (const t of queue.filter((t) => t.at <= now)) {
        queue.splice(queue.indexOf(t), 1);
        t.fn();
      }
    },
  };
}

describe('keyedThrottle', () => {
  it('runs a burst once per key at the end of the window, with the last work given', () => {
    const timers = manualTimers();
    const t = keyedThrottle(1000, timers);
    const ran: string[] = [];
    for (let i = 0; i < 50; i++) t.schedule('task:1', () => ran.push(`1:${i}`));
    t.schedule('tasks', () => ran.push('list'));
    timers.advance(999);
    expect(ran).toEqual([]);
    timers.advance(1);
    expect(ran.sort()).toEqual(['1:49', 'list']);
    t.schedule('task:1', () => ran.push('again'));
    timers.advance(1000);
    expect(ran).toContain('again');
  });

  it('drops pending work on cancelAll', () => {
    const timers = manualTimers();
    const t = keyedThrottle(10, timers);
    let ran = 0;
    t.schedule('a', () => ran++);
    t.cancelAll();
    timers.advance(100);
    expect(ran).toBe(0);
  });
});
