/**
 * Form fields from a JSON Schema (a blueprint's input schema, a tool's input schema): the flat
 * properties of an object schema become typed inputs; anything nested is edited as JSON text.
 * Written here because the form libraries that read JSON Schema (react-jsonschema-form and the
 * like) weigh more than the whole console and render markup this page's CSP and styles do not need.
 */
export type JsonSchema = Record<string, unknown>;

export type FieldKind = 'string' | 'text' | 'integer' | 'number' | 'boolean' | 'enum' | 'json';

export interface Field {
  name: string;
  kind: FieldKind;
  required: boolean;
  label: string;
  description?: string;
  options?: string[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  initial: string;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

function kindOf(schema: JsonSchema): FieldKind {
  const type = Array.isArray(schema.type) ? (schema.type as unknown[]).find((t) => t !== 'null') : schema.type;
  if (Array.isArray(schema.enum) && schema.enum.every((v) => typeof v === 'string')) return 'enum';
  if (type === 'string') return (num(schema.maxLength) ?? Infinity) > 200 ? 'text' : 'string';
  if (type === 'integer' || type === 'number' || type === 'boolean') return type;
  return 'json';
}

function initialOf(kind: FieldKind, schema: JsonSchema): string {
  const d = schema.default;
  if (d === undefined) return kind === 'boolean' ? 'false' : '';
  if (kind === 'json') return JSON.stringify(d, null, 2);
  return String(d);
}

export function fieldsOf(schema: JsonSchema | undefined | null): Field[] {
  const props = schema && typeof schema.properties === 'object' && schema.properties !== null ? (schema.properties as Record<string, JsonSchema>) : {};
  const required = new Set(Array.isArray(schema?.required) ? (schema.required as string[]) : []);
  // Required fields first: a schema that went through protobuf's Struct has lost its key order.
  const entries = Object.entries(props).sort(([a], [b]) => Number(required.has(b)) - Number(required.has(a)));
  return entries.map(([name, p]) => {
    const kind = kindOf(p);
    return {
      name,
      kind,
      required: required.has(name),
      label: typeof p.title === 'string' ? p.title : name,
      description: typeof p.description === 'string' ? p.description : undefined,
      options: kind === 'enum' ? (p.enum as string[]) : undefined,
      minimum: num(p.minimum),
      maximum: num(p.maximum),
      minLength: num(p.minLength),
      maxLength: num(p.maxLength),
      initial: initialOf(kind, p),
    };
  });
}

export function initialValues(fields: readonly Field[]): Record<string, string> {
  return Object.fromEntries(fields.map((f) => [f.name, f.initial]));
}

/**
 * The form's text values as the JSON the schema describes, or an error per field. An empty optional
 * field is left out, so the server applies the schema's default.
 */
export function valuesToInput(fields: readonly Field[], values: Record<string, string>): { value: Record<string, unknown>; errors: Record<string, string> } {
  const value: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const f of fields) {
    const raw = values[f.name] ?? '';
    if (raw.trim() === '' && f.kind !== 'boolean') {
      if (f.required) errors[f.name] = 'required';
      continue;
    }
    switch (f.kind) {
      case 'integer':
      case 'number': {
        const n = Number(raw);
        if (!Number.isFinite(n) || (f.kind === 'integer' && !Number.isInteger(n))) errors[f.name] = f.kind === 'integer' ? 'a whole number' : 'a number';
        else if (f.minimum !== undefined && n < f.minimum) errors[f.name] = `at least ${f.minimum}`;
        else if (f.maximum !== undefined && n > f.maximum) errors[f.name] = `at most ${f.maximum}`;
        else value[f.name] = n;
        break;
      }
      case 'boolean':
        value[f.name] = raw === 'true';
        break;
      case 'json':
        try {
          value[f.name] = JSON.parse(raw);
        } catch {
          errors[f.name] = 'not valid JSON';
        }
        break;
      default:
        if (f.minLength !== undefined && raw.length < f.minLength) errors[f.name] = `at least ${f.minLength} characters`;
        else if (f.maxLength !== undefined && raw.length > f.maxLength) errors[f.name] = `at most ${f.maxLength} characters`;
        else if (f.options && !f.options.includes(raw)) errors[f.name] = `one of ${f.options.join(', ')}`;
        else value[f.name] = raw;
    }
  }
  return { value, errors };
}
