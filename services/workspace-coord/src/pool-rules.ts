export const PRIORITIES = ['P0', 'P1', 'P2'] as const;
export type Priority = (typeof PRIORITIES)[number];

export interface PoolCapacity {
  name: string;
  capacity: number;
  /** Units only P0 work may take. */
  reservedP0: number;
}

export type LeaseDecision = { granted: true } | { granted: false; reason: string };

/**
 * Whether `units` more can be leased from a pool with `inUse` units leased already. Every
 * request must fit the capacity; requests other than P0 must also leave the P0 reserve free,
 * so P0 work always finds `reservedP0` units that lower priorities cannot take.
 */
export function decideLease(pool: PoolCapacity, inUse: number, units: number, priority: Priority): LeaseDecision {
  if (units > pool.capacity) {
    return { granted: false, reason: `asks for ${units} units, pool ${pool.name} has ${pool.capacity} in all` };
  }
  const free = Math.max(pool.capacity - inUse, 0);
  if (inUse + units > pool.capacity) {
    return { granted: false, reason: `asks for ${units} units, pool ${pool.name} has ${free} of ${pool.capacity} free` };
  }
  if (priority !== 'P0' && inUse + units > pool.capacity - pool.reservedP0) {
    const usable = Math.max(pool.capacity - pool.reservedP0 - inUse, 0);
    return {
      granted: false,
      reason: `asks for ${units} units at ${priority}, pool ${pool.name} has ${usable} free outside the ${pool.reservedP0} reserved for P0`,
    };
  }
  return { granted: true };
}
