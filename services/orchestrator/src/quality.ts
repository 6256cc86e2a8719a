import { QualityGate } from '@ziggie/contracts';
import Ajv, { ValidateFunction } from 'ajv';

const ajv = new Ajv({ allErrors: true, strict: false });
const compiled = new Map<string, ValidateFunction>();

function validatorFor(schema: Record<string, unknown>): ValidateFunction {
  const key = JSON.stringify(schema);
  let fn = compiled.get(key);
  if (!fn) {
    fn = ajv.compile(schema);
    if (compiled.size > 500) compiled.clear();
    compiled.set(key, fn);
  }
  return fn;
}

/** The text a gate's patterns and length apply to: `output.text` when present, else the JSON. */
function textOf(output: Record<string, unknown>): string {
  return typeof output.text === 'string' ? output.text : JSON.stringify(output);
}

/** Checks a succeeded step's output against its quality gate; returns why it fails, or undefined. */
export function checkQualityGate(gate: QualityGate | null | undefined, output: Record<string, unknown>): string | undefined {
  if (!gate) return undefined;
  if (gate.outputSchema) {
    const mismatch = checkSchema(gate.outputSchema, output);
    if (mismatch) return `output does not match the gate's schema: ${mismatch}`;
  }
  const text = textOf(output);
  for (const pattern of gate.rejectPatterns ?? []) {
    let re: RegExp;
    try {
      re = new RegExp(pattern, 'i');
    } catch {
      return `the gate's reject pattern ${JSON.stringify(pattern)} is not a valid regular expression`;
    }
    const m = re.exec(text);
    if (m) return `output contains rejected content ${JSON.stringify(m[0])} (pattern ${JSON.stringify(pattern)})`;
  }
  if (gate.minTextLength !== undefined && text.length < gate.minTextLength) {
    return `output text has ${text.length} characters, the gate asks for at least ${gate.minTextLength}`;
  }
  return undefined;
}

/** Validates a value against a JSON Schema; returns why it does not match, or undefined. */
export function checkSchema(schema: Record<string, unknown>, value: unknown): string | undefined {
  let validate: ValidateFunction;
  try {
    validate = validatorFor(schema);
  } catch (err) {
    return `the schema does not compile: ${(err as Error).message}`;
  }
  if (validate(value)) return undefined;
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
}
