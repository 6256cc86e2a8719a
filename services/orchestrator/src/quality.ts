import { compileUserPattern, QualityGate } from '@ziggie/contracts';
import { checkSchema } from './json-schema';

/** The text a gate's patterns and length apply to: `output.text` when present, else the JSON. */
function textOf(output: Record<string, unknown>): string {
  return typeof output.text === 'string' ? output.text : JSON.stringify(output);
}

/**
 * Checks a succeeded step's output against its quality gate; returns why it fails, or undefined.
 * Reject patterns run on RE2 (linear in the text), so a gate cannot stall the orchestrator.
 */
export function checkQualityGate(gate: QualityGate | null | undefined, output: Record<string, unknown>): string | undefined {
  if (!gate) return undefined;
  if (gate.outputSchema) {
    const mismatch = checkSchema(gate.outputSchema, output);
    if (mismatch) return `output does not match the gate's schema: ${mismatch}`;
  }
  const text = textOf(output);
  for (const pattern of gate.rejectPatterns ?? []) {
    let match: string | undefined;
    try {
      match = compileUserPattern(pattern, { caseInsensitive: true }).firstMatch(text);
    } catch {
      // Refused at submission; a gate stored by an older version that RE2 cannot take fails the step.
      return `the gate's reject pattern ${JSON.stringify(pattern)} is not a supported regular expression`;
    }
    if (match !== undefined) return `output contains rejected content ${JSON.stringify(match)} (pattern ${JSON.stringify(pattern)})`;
  }
  if (gate.minTextLength !== undefined && text.length < gate.minTextLength) {
    return `output text has ${text.length} characters, the gate asks for at least ${gate.minTextLength}`;
  }
  return undefined;
}
