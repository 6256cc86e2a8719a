import { PlanStep, ZiggieError } from '@ziggie/contracts';

/**
 * Checks that a plan is a DAG and computes its waves (topological levels, 1-based): a step's
 * wave is one more than the deepest of its dependencies. Throws a ZiggieError with a stable
 * code: a duplicate id, an unknown dependency, or a cycle (with the cycle's path).
 */
export function computeWaves(steps: ReadonlyArray<Pick<PlanStep, 'id' | 'dependsOn'>>): Map<string, number> {
  const byId = new Map<string, Pick<PlanStep, 'id' | 'dependsOn'>>();
  for (const s of steps) {
    if (byId.has(s.id)) throw new ZiggieError('TASK_DUPLICATE_STEP', `step id ${s.id} appears more than once`, { stepId: s.id });
    byId.set(s.id, s);
  }
  for (const s of steps) {
    for (const dep of s.dependsOn) {
      if (!byId.has(dep)) {
        throw new ZiggieError('TASK_UNKNOWN_DEPENDENCY', `step ${s.id} depends on unknown step ${dep}`, { stepId: s.id, dependency: dep });
      }
      if (dep === s.id) throw new ZiggieError('TASK_CYCLE', `step ${s.id} depends on itself`, { cycle: [s.id, s.id] });
    }
  }

  // Iterative DFS (plans may hold 10,000 steps: no recursion depth limits).
  const wave = new Map<string, number>();
  const state = new Map<string, 'visiting' | 'done'>();
  for (const root of steps) {
    if (state.get(root.id) === 'done') continue;
    const stack: Array<{ id: string; next: number }> = [{ id: root.id, next: 0 }];
    const path: string[] = [root.id];
    state.set(root.id, 'visiting');
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const deps = byId.get(frame.id)!.dependsOn;
      if (frame.next < deps.length) {
        const dep = deps[frame.next++]!;
        const s = state.get(dep);
        if (s === 'visiting') {
          const cycle = [...path.slice(path.indexOf(dep)), dep];
          throw new ZiggieError('TASK_CYCLE', `plan has a cycle: ${cycle.join(' -> ')}`, { cycle });
        }
        if (s !== 'done') {
          state.set(dep, 'visiting');
          stack.push({ id: dep, next: 0 });
          path.push(dep);
        }
        continue;
      }
      wave.set(frame.id, 1 + Math.max(0, ...deps.map((d) => wave.get(d)!)));
      state.set(frame.id, 'done');
      stack.pop();
      path.pop();
    }
  }
  return wave;
}
