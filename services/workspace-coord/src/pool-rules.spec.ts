import fc from 'fast-check';
import { decideLease, PRIORITIES, Priority } from './pool-rules';

const gpu = { name: 'gpu', capacity: 4, reservedP0: 1 };

describe('pool grant rules', () => {
  it('grants within capacity and keeps the P0 reserve for P0', () => {
    expect(decideLease(gpu, 0, 3, 'P1')).toEqual({ granted: true });
    expect(decideLease(gpu, 2, 1, 'P2')).toEqual({ granted: true });
    expect(decideLease(gpu, 3, 1, 'P1')).toEqual({ granted: false, reason: 'asks for 1 units at P1, pool gpu has 0 free outside the 1 reserved for P0' });
    expect(decideLease(gpu, 3, 1, 'P0')).toEqual({ granted: true });
    expect(decideLease(gpu, 0, 4, 'P0')).toEqual({ granted: true });
  });

  it('never grants past the capacity, whatever the priority', () => {
    expect(decideLease(gpu, 4, 1, 'P0')).toEqual({ granted: false, reason: 'asks for 1 units, pool gpu has 0 of 4 free' });
    expect(decideLease(gpu, 2, 3, 'P0')).toEqual({ granted: false, reason: 'asks for 3 units, pool gpu has 2 of 4 free' });
    expect(decideLease(gpu, 0, 5, 'P0')).toEqual({ granted: false, reason: 'asks for 5 units, pool gpu has 4 in all' });
    // Capacity lowered below what is leased: nothing more until leases end.
    expect(decideLease({ name: 'gpu', capacity: 2, reservedP0: 0 }, 3, 1, 'P0').granted).toBe(false);
  });

  it('treats a pool without reserve the same for every priority', () => {
    const comfy = { name: 'comfyui', capacity: 1, reservedP0: 0 };
    for (const p of PRIORITIES) {
      expect(decideLease(comfy, 0, 1, p).granted).toBe(true);
      expect(decideLease(comfy, 1, 1, p).granted).toBe(false);
    }
  });

  it('keeps capacity and reserve under any sequence of requests', () => {
    const request = fc.record({ units: fc.integer({ min: 1, max: 5 }), priority: fc.constantFrom<Priority>(...PRIORITIES) });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 10 }), fc.array(request, { maxLength: 30 }), (capacity, reserve, requests) => {
        const pool = { name: 'p', capacity, reservedP0: Math.min(reserve, capacity) };
        let total = 0;
        let lowPriority = 0;
        for (const r of requests) {
          if (!decideLease(pool, total, r.units, r.priority).granted) continue;
          total += r.units;
          if (r.priority !== 'P0') lowPriority += r.units;
        }
        expect(total).toBeLessThanOrEqual(pool.capacity);
        expect(lowPriority).toBeLessThanOrEqual(pool.capacity - pool.reservedP0);
      }),
    );
  });
});
