import { ZiggieError } from '@ziggie/contracts';
import { computeWaves } from './plan';

const step = (id: string, dependsOn: string[] = []) => ({ id, dependsOn });

function errorOf(fn: () => unknown): ZiggieError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ZiggieError) return err;
    throw err;
  }
  throw new Error('expected a ZiggieError');
}

describe('computeWaves', () => {
  it('puts independent steps in wave 1 and dependants one wave after their deepest dependency', () => {
    const waves = computeWaves([step('a'), step('b'), step('c', ['a']), step('d', ['b', 'c'])]);
    expect(Object.fromEntries(waves)).toEqual({ a: 1, b: 1, c: 2, d: 3 });
  });

  it('refuses a cycle and reports its path', () => {
    const err = errorOf(() => computeWaves([step('a', ['c']), step('b', ['a']), step('c', ['b']), step('d')]));
    expect(err.code).toBe('TASK_CYCLE');
    const cycle = err.extras.cycle as string[];
    expect(cycle[0]).toBe(cycle[cycle.length - 1]);
    expect(new Set(cycle)).toEqual(new Set(['a', 'b', 'c']));
    expect(err.message).toMatch(/a -> c -> b -> a|b -> a -> c -> b|c -> b -> a -> c/);
  });

  it('refuses a self-dependency as a cycle', () => {
    expect(errorOf(() => computeWaves([step('a', ['a'])])).code).toBe('TASK_CYCLE');
  });

  it('refuses unknown dependencies and duplicate ids', () => {
    expect(errorOf(() => computeWaves([step('a', ['ghost'])])).code).toBe('TASK_UNKNOWN_DEPENDENCY');
    expect(errorOf(() => computeWaves([step('a'), step('a')])).code).toBe('TASK_DUPLICATE_STEP');
  });

  it('handles a 10,000-step chain without recursion limits', () => {
    const steps = Array.from({ length: 10_000 }, (_, i) => step(`s${i}`, i ? [`s${i - 1}`] : []));
    expect(computeWaves(steps).get('s9999')).toBe(10_000);
  });
});
