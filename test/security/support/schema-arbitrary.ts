// Hand-written: no JSON-Schema-to-fast-check package is installed, and fuzzing needs hooks (safe URLs only, no stdio servers, plausible ids).
import fc from 'fast-check';

export type JsonSchema = Record<string, any>;

/** Replaces the generator of a property by name (e.g. `urls`, `workspace`); undefined keeps the schema's. */
export type Override = (propertyName: string, schema: JsonSchema) => fc.Arbitrary<unknown> | undefined;

export interface SchemaArbitraryOptions {
  overrides?: Override;
  /** Branches of oneOf/anyOf to leave out (e.g. the stdio transport). */
  skipBranch?: (branch: JsonSchema) => boolean;
}

/** Bounds that keep generated values small enough to send hundreds of them quickly. */
const MAX_EXTRA_ITEMS = 3;
const MAX_EXTRA_CHARS = 40;
const SAFE_INT = 1e9;

function typesOf(schema: JsonSchema): string[] {
  if (Array.isArray(schema.type)) return schema.type as string[];
  if (typeof schema.type === 'string') return [schema.type];
  if (schema.properties || schema.additionalProperties !== undefined || schema.propertyNames) return ['object'];
  if (schema.items || schema.prefixItems) return ['array'];
  return [];
}

/** Characters that trip storage and protocol layers: NUL, other controls, a lone surrogate, bidi and BOM. */
const AWKWARD_CHARACTERS = ['\u0000', '\u0001', '\u001b', '\u007f', '\ud800', '\u202e', '\ufeff', '\n', '"', '\\', '%00', "'; --"];

/** Mostly printable ASCII; sometimes any code units, or ordinary text with awkward characters mixed in. */
export function text(minLength = 0, maxLength = minLength + MAX_EXTRA_CHARS): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.string({ minLength, maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength, maxLength }) },
    { weight: 2, arbitrary: fc.string({ unit: fc.oneof({ weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: 1 }) }, { weight: 1, arbitrary: fc.constantFrom(...AWKWARD_CHARACTERS) }), minLength, maxLength }) },
  );
}

function stringArbitrary(schema: JsonSchema): fc.Arbitrary<string> {
  const minLength = typeof schema.minLength === 'number' ? schema.minLength : 0;
  const maxLength = typeof schema.maxLength === 'number' ? Math.min(schema.maxLength, minLength + MAX_EXTRA_CHARS) : minLength + MAX_EXTRA_CHARS;
  switch (schema.format) {
    case 'date-time':
      return fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString());
    case 'uri':
    case 'url':
      return fc.constantFrom(...REFUSED_URLS);
    case 'email':
      return fc.emailAddress();
    case 'uuid':
      return fc.uuid();
    default:
      break;
  }
  if (typeof schema.pattern === 'string') {
    let pattern: RegExp | undefined;
    try {
      pattern = new RegExp(schema.pattern);
    } catch {
      pattern = undefined;
    }
    if (pattern) {
      const p = pattern;
      try {
        return fc.stringMatching(p).filter((s) => s.length >= minLength && (schema.maxLength === undefined || s.length <= schema.maxLength) && p.test(s));
      } catch {
        // A construct fast-check cannot generate from: plain strings, mostly refused, still exercise the route.
      }
    }
  }
  return text(minLength, maxLength);
}

function numberArbitrary(schema: JsonSchema, integer: boolean): fc.Arbitrary<number> {
  let min = typeof schema.minimum === 'number' ? schema.minimum : -SAFE_INT;
  let max = typeof schema.maximum === 'number' ? schema.maximum : SAFE_INT;
  if (typeof schema.exclusiveMinimum === 'number') min = schema.exclusiveMinimum + (integer ? 1 : Number.EPSILON);
  if (typeof schema.exclusiveMaximum === 'number') max = schema.exclusiveMaximum - (integer ? 1 : Number.EPSILON);
  min = Math.max(min, -SAFE_INT);
  max = Math.min(max, SAFE_INT);
  if (integer) {
    const lo = Math.ceil(min);
    const hi = Math.floor(max);
    // Mostly near the lower bound, where limits and defaults live; sometimes anywhere in range.
    return fc.oneof({ weight: 3, arbitrary: fc.integer({ min: lo, max: Math.min(hi, lo + 100) }) }, { weight: 1, arbitrary: fc.integer({ min: lo, max: hi }) });
  }
  return fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
}

/** Sets a key even when it is `__proto__`, so the JSON carries it as an ordinary member. */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Values that match the schema's shape (types, required members, enums, patterns, bounds),
 * i.e. bodies a correct client could send.
 */
export function validShaped(schema: JsonSchema, opts: SchemaArbitraryOptions = {}, root: JsonSchema = schema, depth = 0): fc.Arbitrary<unknown> {
  if (depth > 12) return fc.constant(null);
  if (typeof schema.$ref === 'string') return validShaped(resolveRef(root, schema.$ref), opts, root, depth + 1);
  if ('const' in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
  for (const key of ['oneOf', 'anyOf'] as const) {
    if (Array.isArray(schema[key])) {
      const branches = (schema[key] as JsonSchema[]).filter((b) => !opts.skipBranch?.(b));
      return fc.oneof(...branches.map((b) => validShaped(b, opts, root, depth + 1)));
    }
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length > 0) return validShaped(Object.assign({}, ...schema.allOf) as JsonSchema, opts, root, depth + 1);

  const types = typesOf(schema);
  if (types.length === 0) return freeForm();
  return fc.oneof(...types.map((t) => ofType(t, schema, opts, root, depth)));
}

function ofType(type: string, schema: JsonSchema, opts: SchemaArbitraryOptions, root: JsonSchema, depth: number): fc.Arbitrary<unknown> {
  switch (type) {
    case 'string':
      return stringArbitrary(schema);
    case 'integer':
      return numberArbitrary(schema, true);
    case 'number':
      return numberArbitrary(schema, false);
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      if (Array.isArray(schema.prefixItems)) return fc.tuple(...(schema.prefixItems as JsonSchema[]).map((s) => validShaped(s, opts, root, depth + 1)));
      const minLength = typeof schema.minItems === 'number' ? schema.minItems : 0;
      const maxLength = typeof schema.maxItems === 'number' ? Math.min(schema.maxItems, minLength + MAX_EXTRA_ITEMS) : minLength + MAX_EXTRA_ITEMS;
      const items = schema.items && typeof schema.items === 'object' ? validShaped(schema.items as JsonSchema, opts, root, depth + 1) : freeForm();
      return fc.array(items, { minLength, maxLength });
    }
    case 'object':
      return objectArbitrary(schema, opts, root, depth);
    default:
      return freeForm();
  }
}

function objectArbitrary(schema: JsonSchema, opts: SchemaArbitraryOptions, root: JsonSchema, depth: number): fc.Arbitrary<unknown> {
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema.required ?? []) as string[]);
  const names = Object.keys(properties);
  if (names.length === 0) {
    const extra = schema.additionalProperties;
    if (extra === false) return fc.constant({});
    const keyArb = schema.propertyNames && typeof schema.propertyNames === 'object' ? (stringArbitrary(schema.propertyNames as JsonSchema) as fc.Arbitrary<string>) : fc.string({ maxLength: 12 });
    const valueArb = extra && typeof extra === 'object' ? validShaped(extra as JsonSchema, opts, root, depth + 1) : freeForm();
    return fc.dictionary(keyArb, valueArb, { maxKeys: MAX_EXTRA_ITEMS });
  }
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const name of names) model[name] = opts.overrides?.(name, properties[name]!) ?? validShaped(properties[name]!, opts, root, depth + 1);
  return fc.record(model, { requiredKeys: names.filter((n) => required.has(n)) });
}

function resolveRef(root: JsonSchema, ref: string): JsonSchema {
  if (!ref.startsWith('#')) throw new Error(`only local $ref is supported, got ${ref}`);
  let node: any = root;
  for (const part of ref.slice(1).split('/').filter(Boolean)) node = node?.[decodeURIComponent(part.replace(/~1/g, '/').replace(/~0/g, '~'))];
  if (!node || typeof node !== 'object') throw new Error(`unresolvable $ref ${ref}`);
  return node as JsonSchema;
}

/**
 * Deeply nested arrays or objects, as a placeholder string that toJsonText() expands into the
 * nesting: JSON.stringify (and fast-check's own printing) recurse and overflow the stack a few
 * thousand levels down, while servers parse far deeper JSON without trouble.
 */
function deeplyNested(): fc.Arbitrary<unknown> {
  return fc.tuple(fc.integer({ min: 64, max: 20_000 }), fc.boolean()).map(([levels, arrays]) => `\u0000deep:${levels}:${arrays ? 'a' : 'o'}\u0000`);
}

const DEEP_PLACEHOLDER = /"\\u0000deep:(\d+):([ao])\\u0000"/g;

/** The JSON text of a generated body, with every deep-nesting placeholder expanded. */
export function toJsonText(body: unknown): string {
  return (JSON.stringify(body) ?? 'null').replace(DEEP_PLACEHOLDER, (_, levels: string, kind: string) => {
    const n = Number(levels);
    return kind === 'a' ? `${'['.repeat(n)}"bottom"${']'.repeat(n)}` : `${'{"n":'.repeat(n)}"bottom"${'}'.repeat(n)}`;
  });
}

/** Long strings: plain filler up to ~1 MB (under the body limit) or shorter strings of arbitrary code units. */
function hugeString(): fc.Arbitrary<string> {
  return fc.oneof(
    fc.integer({ min: 10_000, max: 1_000_000 }).map((n) => 'x'.repeat(n)),
    fc.string({ unit: 'binary', minLength: 1_000, maxLength: 5_000 }),
    fc.string({ unit: 'grapheme', minLength: 1_000, maxLength: 3_000 }),
  );
}

/** What a schema of `{}` (anything) is given: ordinary JSON, sometimes very deep. */
function freeForm(): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) }, { weight: 1, arbitrary: deeplyNested() });
}

/** Members a client must never be able to set, plus prototype-pollution probes. */
export const FORBIDDEN_MEMBERS = ['id', 'createdBy', 'createdAt', 'status', 'isAdmin', 'principal', 'roles', 'workspaces', '__proto__', 'constructor'] as const;

/** URLs the SSRF guard must refuse; only these are ever generated, so fuzzing never reaches a real host. */
export const REFUSED_URLS = [
  'http://127.0.0.1:9/mcp',
  'http://localhost:9/mcp',
  'http://[::1]:9/mcp',
  'http://10.0.0.1/mcp',
  'http://169.254.169.254/latest/meta-data',
  'http://0.0.0.0:9/',
  'http://2130706433/',
  'file:///etc/passwd',
  'gopher://x',
  'not a url',
] as const;

function mutateWrongType(value: unknown): fc.Arbitrary<unknown> {
  const wrong = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 }), fc.object({ maxDepth: 1 }));
  if (!isPlainObject(value) || Object.keys(value).length === 0) return wrong.filter((w) => typeof w !== typeof value || Array.isArray(w) !== Array.isArray(value));
  const keys = Object.keys(value);
  return fc.tuple(fc.constantFrom(...keys), wrong).map(([key, w]) => {
    const copy = { ...value };
    setOwn(copy, key, typeof w === typeof value[key] && Array.isArray(w) === Array.isArray(value[key]) ? { wrong: w } : w);
    return copy;
  });
}

function mutateMissingRequired(value: unknown, schema: JsonSchema): fc.Arbitrary<unknown> {
  const required = requiredOf(value, schema);
  if (!isPlainObject(value) || required.length === 0) return fc.constant(value);
  return fc.constantFrom(...required).map((key) => {
    const copy = { ...value };
    delete copy[key];
    return copy;
  });
}

function mutateExtraMember(value: unknown): fc.Arbitrary<unknown> {
  const name = fc.oneof(fc.constantFrom(...FORBIDDEN_MEMBERS), fc.string({ minLength: 1, maxLength: 12 }));
  const payload = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant({ isAdmin: true, roles: ['admin'], workspaces: ['*'] }));
  return fc.tuple(name, payload).map(([key, v]) => {
    const copy = isPlainObject(value) ? { ...value } : { value };
    if (!Object.hasOwn(copy, key)) setOwn(copy, key, v);
    else setOwn(copy, `${key}_extra`, v);
    return copy;
  });
}

function mutateHugeString(value: unknown): fc.Arbitrary<unknown> {
  if (!isPlainObject(value)) return hugeString();
  const stringKeys = Object.keys(value).filter((k) => typeof value[k] === 'string');
  const keys = stringKeys.length > 0 ? stringKeys : Object.keys(value);
  if (keys.length === 0) return hugeString().map((s) => ({ note: s }));
  return fc.tuple(fc.constantFrom(...keys), hugeString()).map(([key, s]) => {
    const copy = { ...value };
    setOwn(copy, key, s);
    return copy;
  });
}

function mutateDeepNesting(value: unknown): fc.Arbitrary<unknown> {
  if (!isPlainObject(value) || Object.keys(value).length === 0) return deeplyNested();
  return fc.tuple(fc.constantFrom(...Object.keys(value)), deeplyNested()).map(([key, deep]) => {
    const copy = { ...value };
    setOwn(copy, key, deep);
    return copy;
  });
}

function requiredOf(value: unknown, schema: JsonSchema): string[] {
  const branches = [schema, ...((schema.oneOf ?? schema.anyOf ?? []) as JsonSchema[])];
  const names = new Set<string>();
  for (const b of branches) for (const r of (b.required ?? []) as string[]) if (isPlainObject(value) && Object.hasOwn(value, r)) names.add(r);
  return [...names];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Request bodies for one operation: mostly valid-shaped ones, and as many that are wrong in
 * one way each (a member of the wrong type, a required member missing, a member the schema does
 * not declare, a huge string, deep nesting) or just any JSON at all.
 */
export function requestBodyArbitrary(schema: JsonSchema, opts: SchemaArbitraryOptions = {}): fc.Arbitrary<unknown> {
  const valid = validShaped(schema, opts);
  return fc.oneof(
    { weight: 4, arbitrary: valid },
    { weight: 2, arbitrary: valid.chain(mutateWrongType) },
    { weight: 2, arbitrary: valid.chain((v) => mutateMissingRequired(v, schema)) },
    { weight: 2, arbitrary: valid.chain(mutateExtraMember) },
    { weight: 1, arbitrary: valid.chain(mutateHugeString) },
    { weight: 1, arbitrary: valid.chain(mutateDeepNesting) },
    { weight: 1, arbitrary: fc.jsonValue() },
  );
}

/** The query string of one request: `[name, value]` pairs, a name repeated where the generator asked for it. */
export type QueryPairs = Array<[string, string]>;

/**
 * Query strings for documented parameters: values shaped by each parameter's schema or not
 * (text with awkward characters, numbers, long values), parameters left out or repeated, and
 * parameters the route does not declare.
 */
export function queryArbitrary(parameters: ReadonlyArray<{ name: string; required: boolean; schema: JsonSchema }>): fc.Arbitrary<QueryPairs> {
  const value = (schema: JsonSchema) =>
    fc.oneof(
      { weight: 4, arbitrary: validShaped(schema).map((v) => (typeof v === 'string' ? v : JSON.stringify(v) ?? '')) },
      { weight: 2, arbitrary: text(0, 40) },
      { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double({ noNaN: false })).map(String) },
      { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 6_000 }).map((n) => 'x'.repeat(n)) },
    );
  const one = (p: { name: string; schema: JsonSchema }) => fc.array(value(p.schema), { minLength: 1, maxLength: 2 }).map((vs) => vs.map((v): [string, string] => [p.name, v]));
  const declared = parameters.map((p) => (p.required ? one(p) : fc.option(one(p), { nil: [] as Array<[string, string]> })));
  const undeclared = fc.option(fc.tuple(fc.oneof(fc.constantFrom(...FORBIDDEN_MEMBERS, 'access_token', 'workspace[]', '__proto__[isAdmin]'), text(1, 12)), text(0, 20)), { nil: undefined });
  return fc.tuple(fc.tuple(...declared), undeclared).map(([pairs, extra]) => {
    const all = pairs.flat();
    if (extra) all.push(extra);
    return all;
  });
}
