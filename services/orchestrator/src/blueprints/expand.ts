/**
 * Blueprint expansion: a blueprint (a parameterised plan template) plus caller inputs becomes a
 * concrete plan. Three things happen here and nowhere else:
 *
 * - inputs are checked against the blueprint's input schema (schema defaults fill in);
 * - `{{inputs.<name>}}`, `{{fanOut.index}}` and `{{fanOut.item}}` parameters are substituted. A
 *   string that is exactly one parameter takes the value as is (a number stays a number);
 *   otherwise values are interpolated as text (non-strings as JSON), as templates.ts does for
 *   step references at dispatch time;
 * - `fanOut` steps become `<id>-1` … `<id>-N`. Dependencies on a fanned-out step become
 *   dependencies on every copy, and a reference to it, `{{steps.<id>.output…}}`, becomes the
 *   array of the copies' references when it is the whole string, and the copies' references
 *   joined by newlines inside larger text.
 *
 * `{{steps.<id>.output…}}` and `{{task.id}}` are left for the orchestrator to resolve at
 * dispatch time. Other `{{…}}` text (outside the inputs, fanOut, steps and task namespaces)
 * is not template syntax and passes through untouched.
 */
import {
  Blueprint,
  BlueprintSchema,
  BlueprintStep,
  MAX_FAN_OUT,
  MAX_PLAN_STEPS,
  Plan,
  PlanSchema,
  ZiggieError,
} from '@ziggie/contracts';
import { type ErrorObject, type ValidateFunction } from 'ajv';
import { checkSchema, inputSchemas, outputSchemas, SchemaCache } from '../json-schema';

export interface Expansion {
  plan: Plan;
  /** The blueprint's `outputs` with parameters substituted and fan-out references expanded. */
  outputs: Record<string, unknown>;
  /** The validated inputs, schema defaults included. */
  inputs: Record<string, unknown>;
}

export interface InputProblem {
  path: string;
  message: string;
}

// ---------------------------------------------------------------------------------------------
// JSON Schema

function describeErrors(errors: ErrorObject[] | null | undefined): InputProblem[] {
  return (errors ?? []).map((e) => {
    if (e.keyword === 'required') return { path: `${e.instancePath}/${String(e.params.missingProperty)}`, message: 'is required' };
    if (e.keyword === 'additionalProperties') {
      return { path: `${e.instancePath}/${String(e.params.additionalProperty)}`, message: 'is not allowed (unknown property)' };
    }
    return { path: e.instancePath || '/', message: e.message ?? e.keyword };
  });
}

function listProblems(problems: InputProblem[]): string {
  return problems.map((p) => `${p.path} ${p.message}`).join('; ');
}

function ref(b: Pick<Blueprint, 'name' | 'version'>): string {
  return `${b.name}@${b.version}`;
}

function compileOrInvalid(cache: SchemaCache, schema: Record<string, unknown>, which: string, b: Blueprint): ValidateFunction {
  try {
    return cache.get(schema);
  } catch (err) {
    throw new ZiggieError('BLUEPRINT_INVALID', `${ref(b)}: the ${which} schema does not compile: ${(err as Error).message}`);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Inputs that would smuggle dispatch-time references into the plan (an input is data, never template). */
const DISPATCH_SYNTAX = /\{\{\s*(?:steps|task)\./;

function findDispatchSyntax(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return DISPATCH_SYNTAX.test(value) ? path : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findDispatchSyntax(value[i], `${path}/${i}`);
      if (found) return found;
    }
  } else if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      const found = findDispatchSyntax(v, `${path}/${k}`);
      if (found) return found;
    }
  }
  return undefined;
}

function validateInputs(b: Blueprint, inputs: unknown): Record<string, unknown> {
  const validate = compileOrInvalid(inputSchemas, b.inputSchema, 'input', b);
  const given = inputs === undefined || inputs === null ? {} : inputs;
  if (!isPlainObject(given)) {
    const problems = [{ path: '/', message: 'inputs must be an object' }];
    throw new ZiggieError('BLUEPRINT_INPUT_INVALID', `inputs of ${ref(b)} are invalid: / inputs must be an object`, { errors: problems });
  }
  // useDefaults writes into the value: work on a copy, never on the caller's object.
  const data = structuredClone(given);
  if (!validate(data)) {
    const problems = describeErrors(validate.errors);
    throw new ZiggieError('BLUEPRINT_INPUT_INVALID', `inputs of ${ref(b)} are invalid: ${listProblems(problems)}`, { errors: problems });
  }
  const smuggled = findDispatchSyntax(data, '');
  if (smuggled) {
    const problems = [{ path: smuggled, message: 'contains {{steps.…}} or {{task.…}}, which only a blueprint template may use' }];
    throw new ZiggieError('BLUEPRINT_INPUT_INVALID', `inputs of ${ref(b)} are invalid: ${listProblems(problems)}`, { errors: problems });
  }
  return data;
}

/** Checks a task's output against the blueprint's output schema: undefined when it matches, else why not. */
export function checkOutput(blueprint: Blueprint, output: unknown): string | undefined {
  if (!blueprint.outputSchema) return undefined;
  const mismatch = checkSchema(blueprint.outputSchema, output);
  return mismatch && `output does not match the output schema of ${ref(blueprint)}: ${mismatch}`;
}

// ---------------------------------------------------------------------------------------------
// Placeholders

/** `{{ <namespace>… }}` for the four namespaces this module knows; other `{{…}}` text is left alone. */
const PLACEHOLDER = /\{\{\s*((?:inputs|fanOut|steps|task)(?:\.[^\s{}]*)?)\s*\}\}/g;
const INPUT_EXPR = /^inputs\.([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_-]+)*)$/;
const FAN_INDEX_EXPR = /^fanOut\.index$/;
const FAN_ITEM_EXPR = /^fanOut\.item((?:\.[A-Za-z0-9_-]+)*)$/;
const STEP_EXPR = /^steps\.([a-z0-9_-]+)\.output((?:\.[A-Za-z0-9_-]+)*)$/;
const TASK_ID_EXPR = /^task\.id$/;

type Placeholder =
  | { kind: 'input'; name: string; path: string[] }
  | { kind: 'fanIndex' }
  | { kind: 'fanItem'; path: string[] }
  | { kind: 'step'; id: string; path: string }
  | { kind: 'task' };

function pathOf(s: string | undefined): string[] {
  return (s ?? '').split('.').filter(Boolean);
}

function parsePlaceholder(expr: string, where: string): Placeholder {
  let m: RegExpExecArray | null;
  if ((m = INPUT_EXPR.exec(expr))) return { kind: 'input', name: m[1]!, path: pathOf(m[2]) };
  if (FAN_INDEX_EXPR.test(expr)) return { kind: 'fanIndex' };
  if ((m = FAN_ITEM_EXPR.exec(expr))) return { kind: 'fanItem', path: pathOf(m[1]) };
  if ((m = STEP_EXPR.exec(expr))) return { kind: 'step', id: m[1]!, path: m[2] ?? '' };
  if (TASK_ID_EXPR.test(expr)) return { kind: 'task' };
  throw new ZiggieError(
    'BLUEPRINT_INVALID',
    `${where}: {{${expr}}} is not a valid placeholder (use {{inputs.<name>}}, {{fanOut.index}}, {{fanOut.item}}, {{steps.<id>.output…}} or {{task.id}})`,
  );
}

function walkStrings(value: unknown, fn: (s: string) => void): void {
  if (typeof value === 'string') fn(value);
  else if (Array.isArray(value)) value.forEach((v) => walkStrings(v, fn));
  else if (isPlainObject(value)) Object.values(value).forEach((v) => walkStrings(v, fn));
}

function placeholdersIn(value: unknown, where: string): Placeholder[] {
  const found: Placeholder[] = [];
  walkStrings(value, (s) => {
    for (const m of s.matchAll(PLACEHOLDER)) found.push(parsePlaceholder(m[1]!, where));
  });
  return found;
}

// ---------------------------------------------------------------------------------------------
// Template analysis (independent of the inputs)

/**
 * Checks what does not depend on the inputs: unique ids, known dependencies, no cycle,
 * placeholders well formed, fanOut placeholders only in fanned-out steps, and references only
 * to steps that run earlier (by topological level, the orchestrator's waves).
 */
function analyse(b: Blueprint): void {
  const byId = new Map<string, BlueprintStep>();
  for (const s of b.template.steps) {
    if (byId.has(s.id)) throw new ZiggieError('BLUEPRINT_INVALID', `${ref(b)}: step id ${s.id} appears more than once`, { stepId: s.id });
    byId.set(s.id, s);
  }
  for (const s of b.template.steps) {
    for (const dep of s.dependsOn) {
      if (!byId.has(dep)) throw new ZiggieError('BLUEPRINT_INVALID', `${ref(b)}: step ${s.id} depends on unknown step ${dep}`, { stepId: s.id, dependency: dep });
      if (dep === s.id) throw new ZiggieError('BLUEPRINT_INVALID', `${ref(b)}: step ${s.id} depends on itself`, { stepId: s.id });
    }
  }
  // Iterative depth-first search: templates may be as large as plans.
  const level = new Map<string, number>();
  const visiting = new Set<string>();
  for (const root of b.template.steps) {
    if (level.has(root.id)) continue;
    const stack: Array<{ id: string; next: number }> = [{ id: root.id, next: 0 }];
    visiting.add(root.id);
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const deps = byId.get(frame.id)!.dependsOn;
      if (frame.next < deps.length) {
        const dep = deps[frame.next++]!;
        if (visiting.has(dep)) {
          const ids = stack.map((f) => f.id);
          const cycle = [...ids.slice(ids.indexOf(dep)), dep];
          throw new ZiggieError('BLUEPRINT_INVALID', `${ref(b)}: the template has a cycle: ${cycle.join(' -> ')}`, { cycle });
        }
        if (!level.has(dep)) {
          visiting.add(dep);
          stack.push({ id: dep, next: 0 });
        }
        continue;
      }
      level.set(frame.id, 1 + Math.max(0, ...deps.map((d) => level.get(d)!)));
      visiting.delete(frame.id);
      stack.pop();
    }
  }
  for (const s of b.template.steps) {
    const where = `${ref(b)}: step ${s.id}`;
    for (const p of placeholdersIn(templateFields(s), where)) {
      if ((p.kind === 'fanIndex' || p.kind === 'fanItem') && !s.fanOut) {
        throw new ZiggieError('BLUEPRINT_INVALID', `${where} uses {{fanOut.…}} but has no fanOut`, { stepId: s.id });
      }
      if (p.kind === 'step') checkReference(byId, level, s.id, p.id, where);
    }
    if (s.fanOut) placeholdersIn(s.fanOut, where);
  }
  for (const p of placeholdersIn(b.outputs, `${ref(b)}: outputs`)) {
    if (p.kind === 'fanIndex' || p.kind === 'fanItem') throw new ZiggieError('BLUEPRINT_INVALID', `${ref(b)}: outputs cannot use {{fanOut.…}}`);
    if (p.kind === 'step' && !byId.has(p.id)) {
      throw new ZiggieError('BLUEPRINT_INVALID', `${ref(b)}: outputs reference unknown step ${p.id}`, { reference: p.id });
    }
  }
}

function checkReference(byId: Map<string, BlueprintStep>, level: Map<string, number>, stepId: string, target: string, where: string): void {
  if (!byId.has(target)) throw new ZiggieError('BLUEPRINT_INVALID', `${where} references unknown step ${target}`, { stepId, reference: target });
  // The orchestrator's rule: the referenced step runs in an earlier wave. Levels are waves here, since copies share their template step's dependencies.
  if (level.get(target)! >= level.get(stepId)!) {
    throw new ZiggieError('BLUEPRINT_INVALID', `${where} references the output of ${target}, which does not run before it (add it to dependsOn)`, {
      stepId,
      reference: target,
    });
  }
}

/** The parts of a step that are templated: everything but its id, dependencies and fan-out. */
function templateFields(s: BlueprintStep): Omit<BlueprintStep, 'id' | 'dependsOn' | 'fanOut'> {
  const { id: _id, dependsOn: _deps, fanOut: _fan, ...fields } = s;
  return fields;
}

// ---------------------------------------------------------------------------------------------
// Substitution

interface Scope {
  blueprint: Blueprint;
  /** What is being expanded, for messages: "step x" or "outputs". */
  part: string;
  inputs: Record<string, unknown>;
  /** Template step id → its copies' ids, for fanned-out steps. */
  copies: ReadonlyMap<string, readonly string[]>;
  fan?: { index: number; item: unknown };
}

function where(scope: Scope): string {
  return `${ref(scope.blueprint)}: ${scope.part}`;
}

function dig(value: unknown, path: string[]): { found: boolean; value: unknown } {
  let current = value;
  for (const key of path) {
    if (!isPlainObject(current) && !Array.isArray(current)) return { found: false, value: undefined };
    if (!Object.prototype.hasOwnProperty.call(current, key)) return { found: false, value: undefined };
    current = (current as Record<string, unknown>)[key];
  }
  return { found: true, value: current };
}

function inputValue(scope: Scope, name: string, path: string[]): unknown {
  const b = scope.blueprint;
  const props = isPlainObject(b.inputSchema.properties) ? b.inputSchema.properties : {};
  if (!Object.prototype.hasOwnProperty.call(scope.inputs, name)) {
    if (!Object.prototype.hasOwnProperty.call(props, name)) {
      throw new ZiggieError('BLUEPRINT_INVALID', `${where(scope)} uses {{inputs.${name}}}, which the input schema does not declare`, { input: name });
    }
    const problems = [{ path: `/${name}`, message: `is used by ${scope.part} but was not given and has no default` }];
    throw new ZiggieError('BLUEPRINT_INPUT_INVALID', `inputs of ${ref(b)} are invalid: ${listProblems(problems)}`, { errors: problems });
  }
  const got = dig(scope.inputs[name], path);
  if (!got.found) {
    const full = [name, ...path].join('.');
    const problems = [{ path: `/${[name, ...path].join('/')}`, message: `is used by ${scope.part} as {{inputs.${full}}} but has no value` }];
    throw new ZiggieError('BLUEPRINT_INPUT_INVALID', `inputs of ${ref(b)} are invalid: ${listProblems(problems)}`, { errors: problems });
  }
  return got.value;
}

function fanValue(scope: Scope, p: Extract<Placeholder, { kind: 'fanIndex' | 'fanItem' }>): unknown {
  // analyse() has made sure only fanned-out steps use these.
  const fan = scope.fan!;
  if (p.kind === 'fanIndex') return fan.index;
  const got = dig(fan.item, p.path);
  if (!got.found) {
    throw new ZiggieError('BLUEPRINT_INPUT_INVALID', `inputs of ${ref(scope.blueprint)} are invalid: item ${fan.index} has no {{fanOut.item.${p.path.join('.')}}}`, {
      errors: [{ path: `/fanOut/item/${fan.index}`, message: `has no ${p.path.join('.')}` }],
    });
  }
  return got.value;
}

function copyRefs(copies: readonly string[], path: string): string[] {
  return copies.map((id) => `{{steps.${id}.output${path}}}`);
}

function asText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function renderString(s: string, scope: Scope): unknown {
  const matches = [...s.matchAll(PLACEHOLDER)];
  if (matches.length === 0) return s;
  // Same rule as the dispatch-time resolution: exactly one placeholder (surrounding blanks aside) keeps its value's type.
  if (matches.length === 1 && matches[0]![0] === s.trim()) {
    const p = parsePlaceholder(matches[0]![1]!, where(scope));
    switch (p.kind) {
      case 'input':
        return structuredClone(inputValue(scope, p.name, p.path));
      case 'fanIndex':
      case 'fanItem':
        return structuredClone(fanValue(scope, p));
      case 'step': {
        const copies = scope.copies.get(p.id);
        return copies ? copyRefs(copies, p.path) : s;
      }
      case 'task':
        return s;
    }
  }
  return s.replace(PLACEHOLDER, (whole: string, expr: string) => {
    const p = parsePlaceholder(expr, where(scope));
    switch (p.kind) {
      case 'input':
        return asText(inputValue(scope, p.name, p.path));
      case 'fanIndex':
      case 'fanItem':
        return asText(fanValue(scope, p));
      case 'step': {
        const copies = scope.copies.get(p.id);
        return copies ? copyRefs(copies, p.path).join('\n') : whole;
      }
      case 'task':
        return whole;
    }
  });
}

/** Substitutes parameters in a JSON value. Substituted values are data: they are never scanned again. */
function render(value: unknown, scope: Scope): unknown {
  if (typeof value === 'string') return renderString(value, scope);
  if (Array.isArray(value)) return value.map((v) => render(v, scope));
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, render(v, scope)]));
  return value;
}

/** The items a fanned-out step is copied over: 1, 2, … N for a count, the array's elements for forEach. */
function fanItems(s: BlueprintStep, scope: Scope): unknown[] {
  const fan = s.fanOut!;
  const at = where(scope);
  const limits = `an integer from 1 to ${MAX_FAN_OUT}`;
  if ('count' in fan) {
    const count = typeof fan.count === 'number' ? fan.count : render(fan.count, scope);
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_FAN_OUT) {
      throw new ZiggieError('BLUEPRINT_INVALID', `${at}: fanOut.count is ${JSON.stringify(count)}; it must be ${limits}`, { stepId: s.id, count });
    }
    return Array.from({ length: count }, (_, i) => i + 1);
  }
  const items = render(fan.forEach, scope);
  if (!Array.isArray(items)) {
    throw new ZiggieError('BLUEPRINT_INVALID', `${at}: fanOut.forEach must name an array input, got ${JSON.stringify(items)}`, { stepId: s.id });
  }
  if (items.length < 1 || items.length > MAX_FAN_OUT) {
    throw new ZiggieError('BLUEPRINT_INVALID', `${at}: fanOut.forEach has ${items.length} items; the count must be ${limits}`, { stepId: s.id, count: items.length });
  }
  return items;
}

function describePlanIssues(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>, steps: ReadonlyArray<Record<string, unknown>>): string {
  return issues
    .map((i) => {
      const [first, index, ...rest] = i.path;
      const step = first === 'steps' && typeof index === 'number' ? steps[index] : undefined;
      const at = step ? `step ${String(step.id)}${rest.length ? `.${rest.map(String).join('.')}` : ''}` : i.path.map(String).join('.') || 'plan';
      return `${at}: ${i.message}`;
    })
    .join('; ');
}

/**
 * Expands a blueprint with the caller's inputs into a plan (parsed by PlanSchema), the task's
 * output mapping, and the validated inputs. Throws BLUEPRINT_INPUT_INVALID when the inputs do
 * not match the input schema, BLUEPRINT_INVALID when the template cannot be expanded.
 */
export function expandBlueprint(blueprint: Blueprint, inputs: unknown): Expansion {
  analyse(blueprint);
  const values = validateInputs(blueprint, inputs);
  const base = { blueprint, inputs: values };

  // Sizes first: a huge fan-out is refused before anything is built.
  const itemsById = new Map<string, unknown[]>();
  let total = 0;
  for (const s of blueprint.template.steps) {
    if (s.fanOut) {
      const items = fanItems(s, { ...base, part: `step ${s.id}`, copies: new Map() });
      itemsById.set(s.id, items);
      total += items.length;
    } else total += 1;
    if (total > MAX_PLAN_STEPS) {
      throw new ZiggieError('BLUEPRINT_INVALID', `${ref(blueprint)} expands to more than ${MAX_PLAN_STEPS} steps`, { limit: MAX_PLAN_STEPS });
    }
  }

  const copies = new Map<string, string[]>();
  for (const [id, items] of itemsById) copies.set(id, items.map((_, i) => `${id}-${i + 1}`));
  const taken = new Set<string>();
  for (const s of blueprint.template.steps) {
    for (const id of copies.get(s.id) ?? [s.id]) {
      if (taken.has(id)) {
        throw new ZiggieError('BLUEPRINT_INVALID', `${ref(blueprint)}: step id ${id} would appear twice once fan-out steps are copied`, { stepId: id });
      }
      taken.add(id);
    }
  }

  const steps: Array<Record<string, unknown>> = [];
  for (const s of blueprint.template.steps) {
    const dependsOn = s.dependsOn.flatMap((d) => copies.get(d) ?? [d]);
    const fields = templateFields(s);
    const items = itemsById.get(s.id);
    if (!items) {
      steps.push({ id: s.id, ...(render(fields, { ...base, part: `step ${s.id}`, copies }) as object), dependsOn });
      continue;
    }
    items.forEach((item, i) => {
      const id = `${s.id}-${i + 1}`;
      const scope: Scope = { ...base, part: `step ${id}`, copies, fan: { index: i + 1, item } };
      steps.push({ id, ...(render(fields, scope) as object), dependsOn: [...dependsOn] });
    });
  }

  const parsed = PlanSchema.safeParse({ steps });
  if (!parsed.success) {
    throw new ZiggieError('BLUEPRINT_INVALID', `${ref(blueprint)} expands to an invalid plan: ${describePlanIssues(parsed.error.issues, steps)}`);
  }
  const outputs = render(blueprint.outputs, { ...base, part: 'outputs', copies }) as Record<string, unknown>;
  return { plan: parsed.data, outputs, inputs: values };
}

// ---------------------------------------------------------------------------------------------
// Validation of a blueprint as a whole

type JsonSchema = Record<string, unknown>;

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * A value the schema probably accepts: its first example, const, enum value or default, else
 * the smallest value of its type. Only required object properties are filled in; optional ones
 * are left to their defaults. Good enough to exercise a template, not a general generator.
 */
export function exampleValue(schema: unknown): unknown {
  if (!isPlainObject(schema)) return {};
  const s = schema as JsonSchema;
  if (Array.isArray(s.examples) && s.examples.length > 0) return structuredClone(s.examples[0]);
  if (s.const !== undefined) return structuredClone(s.const);
  if (Array.isArray(s.enum) && s.enum.length > 0) return structuredClone(s.enum[0]);
  if (s.default !== undefined) return structuredClone(s.default);
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'string':
      return 'x'.repeat(Math.max(1, num(s.minLength) ?? 1));
    case 'integer':
    case 'number': {
      const min = num(s.minimum) ?? (num(s.exclusiveMinimum) !== undefined ? num(s.exclusiveMinimum)! + 1 : undefined);
      const max = num(s.maximum) ?? (num(s.exclusiveMaximum) !== undefined ? num(s.exclusiveMaximum)! - 1 : undefined);
      const v = min ?? (max !== undefined && max < 1 ? max : 1);
      return type === 'integer' ? Math.ceil(v) : v;
    }
    case 'boolean':
      return false;
    case 'null':
      return null;
    case 'array':
      return Array.from({ length: Math.max(1, num(s.minItems) ?? 1) }, () => exampleValue(s.items));
    default: {
      const props = isPlainObject(s.properties) ? s.properties : {};
      const required = Array.isArray(s.required) ? s.required.filter((r): r is string => typeof r === 'string') : [];
      return Object.fromEntries(required.map((name) => [name, exampleValue(props[name])]));
    }
  }
}

/**
 * Checks a blueprint before it is stored: its shape, that its schemas compile, that its input
 * schema describes an object, and that it expands with example inputs (the schema's examples
 * and defaults, else minimal values). Throws BLUEPRINT_INVALID with the reason.
 */
export function validateBlueprint(b: Blueprint): void {
  const parsed = BlueprintSchema.safeParse(b);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(blueprint)'}: ${i.message}`).join('; ');
    throw new ZiggieError('BLUEPRINT_INVALID', `blueprint is invalid: ${why}`);
  }
  const bp = parsed.data;
  compileOrInvalid(inputSchemas, bp.inputSchema, 'input', bp);
  if (bp.outputSchema) compileOrInvalid(outputSchemas, bp.outputSchema, 'output', bp);
  const type = bp.inputSchema.type;
  if (type !== undefined && type !== 'object') {
    throw new ZiggieError('BLUEPRINT_INVALID', `${ref(bp)}: the input schema must describe an object (type "object"), not ${JSON.stringify(type)}`);
  }
  const example = exampleValue(bp.inputSchema);
  try {
    expandBlueprint(bp, example);
  } catch (err) {
    if (err instanceof ZiggieError && err.code === 'BLUEPRINT_INPUT_INVALID') {
      throw new ZiggieError(
        'BLUEPRINT_INVALID',
        `${ref(bp)} does not expand with example inputs ${JSON.stringify(example)} (give required inputs "examples" or defaults in the input schema): ${err.message}`,
        err.extras,
      );
    }
    throw err;
  }
}
