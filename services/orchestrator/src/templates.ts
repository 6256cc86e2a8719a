/**
 * Step inputs may reference earlier outputs as `{{steps.<id>.output.<path>}}` inside strings.
 * A string that is exactly one reference takes the referenced value as is (object, number);
 * otherwise references are interpolated as text. Unknown references are an error, so a step
 * never runs with a silently empty input.
 */
const REF = /\{\{\s*steps\.([a-z0-9_-]+)\.output((?:\.[A-Za-z0-9_-]+)*)\s*\}\}/g;
/** `{{task.id}}`: the id of the task the step belongs to (e.g. to name its artifacts). */
const TASK_ID = /\{\{\s*task\.id\s*\}\}/g;

export interface ResolveContext {
  taskId?: string;
}

/** Keys a reference may not walk through: they reach the prototype chain, not the output. */
const PROTOTYPE_KEYS = new Set(['__proto__', 'prototype', 'constructor']);

export interface OutputReference {
  /** The reference as written, e.g. `{{steps.a.output.text}}`. */
  text: string;
  step: string;
  path: string[];
}

export function outputReferences(input: unknown): OutputReference[] {
  const found: OutputReference[] = [];
  walkStrings(input, (s) => {
    for (const m of s.matchAll(REF)) found.push({ text: m[0], step: m[1]!, path: (m[2] ?? '').split('.').filter(Boolean) });
  });
  return found;
}

/** Why a reference can never resolve to output data, or undefined. */
export function referenceProblem(ref: OutputReference): string | undefined {
  const key = ref.path.find((k) => PROTOTYPE_KEYS.has(k));
  return key === undefined ? undefined : `${ref.text} walks through ${key}, which is not output data`;
}

function walkStrings(value: unknown, fn: (s: string) => void): void {
  if (typeof value === 'string') fn(value);
  else if (Array.isArray(value)) value.forEach((v) => walkStrings(v, fn));
  else if (value && typeof value === 'object') Object.values(value).forEach((v) => walkStrings(v, fn));
}

function lookup(outputs: ReadonlyMap<string, unknown>, stepId: string, path: string): unknown {
  if (!outputs.has(stepId)) throw new Error(`input references step ${stepId}, which has no output`);
  let current: unknown = outputs.get(stepId);
  for (const key of path.split('.').filter(Boolean)) {
    // Own properties only: `__proto__` or `constructor` must never reach the prototype chain.
    if (current === null || typeof current !== 'object' || PROTOTYPE_KEYS.has(key) || !Object.hasOwn(current, key)) {
      throw new Error(`input references steps.${stepId}.output${path}, which does not exist`);
    }
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

export function resolveInput<T>(input: T, outputs: ReadonlyMap<string, unknown>, ctx: ResolveContext = {}): T {
  if (typeof input === 'string') {
    const text = ctx.taskId ? input.replace(TASK_ID, ctx.taskId) : input;
    const whole = [...text.matchAll(REF)];
    if (whole.length === 1 && whole[0]![0] === text.trim()) return lookup(outputs, whole[0]![1]!, whole[0]![2] ?? '') as T;
    return text.replace(REF, (_, id: string, path: string) => {
      const v = lookup(outputs, id, path ?? '');
      return typeof v === 'string' ? v : JSON.stringify(v);
    }) as T;
  }
  if (Array.isArray(input)) return input.map((v: unknown) => resolveInput(v, outputs, ctx)) as T;
  if (input && typeof input === 'object') {
    return Object.fromEntries(Object.entries(input).map(([k, v]) => [k, resolveInput(v, outputs, ctx)])) as T;
  }
  return input;
}

/** True when a value holds a reference that must be resolved at dispatch time. */
export function hasReferences(input: unknown): boolean {
  return JSON.stringify(input).includes('{{');
}
