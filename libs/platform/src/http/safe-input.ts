import { ZiggieError } from '@ziggie/contracts';

/**
 * Deepest nesting of objects and arrays a request may carry. Free-form fields (tool arguments,
 * blueprint schemas, inputs) travel as protobuf Structs, whose decoder stops at 100 message
 * levels (about 3 per JSON level); 24 leaves room for the messages around them.
 */
export const MAX_INPUT_DEPTH = 24;

/**
 * Refuses input no service can store or carry: a NUL character in any string or key (Postgres
 * text and jsonb cannot hold one) and nesting deeper than MAX_INPUT_DEPTH. Iterative, so a
 * hostile depth cannot exhaust the stack while checking it.
 */
export function assertSafeInput(value: unknown, where: string): void {
  const stack: Array<{ value: unknown; depth: number; path: string }> = [{ value, depth: 0, path: where }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (typeof item.value === 'string') {
      if (item.value.includes('\u0000')) throw new ZiggieError('VALIDATION_FAILED', `${item.path}: NUL characters are not allowed`, { errors: [{ path: item.path, message: 'NUL characters are not allowed' }] });
      continue;
    }
    if (item.value === null || typeof item.value !== 'object') continue;
    if (item.depth >= MAX_INPUT_DEPTH) {
      throw new ZiggieError('VALIDATION_FAILED', `${item.path}: nested deeper than ${MAX_INPUT_DEPTH} levels`, { errors: [{ path: item.path, message: `nested deeper than ${MAX_INPUT_DEPTH} levels` }] });
    }
    for (const [key, child] of Object.entries(item.value as Record<string, unknown>)) {
      if (key.includes('\u0000')) throw new ZiggieError('VALIDATION_FAILED', `${item.path}: NUL characters are not allowed in keys`);
      stack.push({ value: child, depth: item.depth + 1, path: `${item.path}.${key}` });
    }
  }
}
