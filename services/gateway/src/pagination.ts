import { CURSOR_MAX_LENGTH, type CursorCodec } from '@ziggie/contracts';
import { z } from 'zod';

const digits = (v: unknown): unknown => (typeof v === 'string' && /^[0-9]{1,15}$/.test(v) ? Number(v) : v);

/**
 * An integer in a query string, parsed strictly: decimal digits only (no `1e3`, ` 5`, `0x10`,
 * `5.0`, `NaN` or an empty value) within [min, max]; anything else is a 400 VALIDATION_FAILED.
 * Documented as an integer (with its default when it has one).
 */
export function queryInt(min: number, max: number, fallback?: number): z.ZodType<number, unknown> {
  const n = z.number().int().min(min).max(max);
  return fallback === undefined ? z.preprocess(digits, n) : z.preprocess(digits, n.default(fallback));
}

const NOT_ISSUED = 'not a cursor this list issued';

/**
 * The `cursor` of a list: opaque, one of the cursors the list hands out (the shared codec of
 * @ziggie/contracts: base64url, the list's kind, an exact position). The service decodes it
 * again (gRPC callers are held to the same rule); refusing it here answers a malformed one before
 * any call.
 */
export function cursorParam(...codecs: ReadonlyArray<Pick<CursorCodec<unknown>, 'accepts'>>) {
  return z
    .string()
    .min(1, NOT_ISSUED)
    .max(CURSOR_MAX_LENGTH, NOT_ISSUED)
    .regex(/^[A-Za-z0-9_-]+$/, NOT_ISSUED)
    .refine((c) => codecs.some((codec) => codec.accepts(c)), NOT_ISSUED)
    .describe('Opaque: the `nextCursor` of the previous page of this list, as it was given');
}

/**
 * One pagination convention for every list: `?limit=&cursor=` in, `{ items, total, nextCursor? }`
 * out; `limit` is 1 to 500 (50 when absent), `cursor` one this list handed out. Routes extend it
 * with their filters and make it strict: an unknown query parameter is refused like a bad one.
 */
export function pageQuery(...codecs: ReadonlyArray<Pick<CursorCodec<unknown>, 'accepts'>>) {
  return z.object({
    limit: queryInt(1, 500, 50),
    cursor: cursorParam(...codecs).optional(),
  });
}

export function page<T>(items: T[], total: number, nextCursor: string): { items: T[]; total: number; nextCursor?: string } {
  return nextCursor ? { items, total, nextCursor } : { items, total };
}
