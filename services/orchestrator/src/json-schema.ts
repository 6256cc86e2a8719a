import { AJV_RE2_ENGINE } from '@ziggie/contracts';
import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

/**
 * JSON Schema for users' schemas (blueprint inputs and outputs, quality gates): strict about the
 * schema itself (an unknown keyword such as `minLenght` is a mistake worth refusing), lenient
 * about type combinations that are legitimate JSON Schema, and with `pattern` and
 * `patternProperties` run by RE2 (linear time) instead of JavaScript's backtracking engine.
 */
function newAjv(useDefaults: boolean): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    useDefaults,
    strict: true,
    strictTypes: false,
    strictTuples: false,
    strictRequired: false,
    allowUnionTypes: true,
    code: { regExp: AJV_RE2_ENGINE },
  });
  // ajv-formats is typed against its own copy of ajv 8; the instance is the same class at run time.
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  return ajv;
}

const MAX_CACHED_SCHEMAS = 500;

/** Compiled validators by schema text: schemas are read from the database per submission and per result. */
export class SchemaCache {
  private readonly ajv: Ajv;
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(useDefaults: boolean) {
    this.ajv = newAjv(useDefaults);
  }

  /** Throws ajv's error (or RE2's, for a pattern) when the schema does not compile. */
  get(schema: Record<string, unknown>): ValidateFunction {
    // `$schema` would select a meta-schema ajv may not have; `$id` would clash between two versions of a blueprint.
    const { $schema: _schema, $id: _id, ...rest } = schema;
    const key = JSON.stringify(rest);
    let fn = this.compiled.get(key);
    if (!fn) {
      if (this.compiled.size >= MAX_CACHED_SCHEMAS) {
        this.compiled.clear();
        this.ajv.removeSchema();
      }
      fn = this.ajv.compile(rest);
      this.compiled.set(key, fn);
    }
    return fn;
  }
}

/** Input schemas fill in their defaults; output schemas only check. */
export const inputSchemas = new SchemaCache(true);
export const outputSchemas = new SchemaCache(false);

/** Why a schema does not compile, or undefined when it does. */
export function schemaProblem(schema: Record<string, unknown>): string | undefined {
  try {
    outputSchemas.get(schema);
    return undefined;
  } catch (err) {
    return (err as Error).message.replace(/^error parsing regexp: /, 'pattern: ');
  }
}

/** Validates a value against a JSON Schema; returns why it does not match, or undefined. */
export function checkSchema(schema: Record<string, unknown>, value: unknown): string | undefined {
  let validate: ValidateFunction;
  try {
    validate = outputSchemas.get(schema);
  } catch (err) {
    return `the schema does not compile: ${(err as Error).message}`;
  }
  if (validate(value)) return undefined;
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
}
