import { z } from 'zod';
import { ZiggieError } from './errors';

/**
 * The one cursor convention of every list (REST, gRPC and the MCP endpoint): a cursor is opaque
 * to callers, base64url (no padding) of `{"v":1,"k":<list kind>,"p":<position>}`, where the
 * position is small and typed: an offset, or a keyset tuple such as `{at,id}` or `{name}`.
 * Decoding is strict: the base64url alphabet only and canonical, UTF-8, JSON, the exact
 * envelope, the kind of the list that is being read, and the exact position shape with bounded
 * values. Anything else is a 400 VALIDATION_FAILED naming the `cursor` parameter, never a 500
 * and never a silent first page. An empty cursor (the proto3 default) means the first page.
 */

/** No list hands out a longer cursor; a longer one is refused before it is decoded. */
export const CURSOR_MAX_LENGTH = 512;
/** Offsets beyond this are not positions any list hands out (and keep SQL OFFSET sane). */
export const CURSOR_MAX_OFFSET = 100_000_000;
/** Keyset names and ids carried in a cursor. */
const CURSOR_MAX_KEY = 256;

const VERSION = 1;
const ALPHABET = /^[A-Za-z0-9_-]+$/;

const Envelope = z.object({ v: z.literal(VERSION), k: z.string().min(1).max(64), p: z.unknown() }).strict();

/** The problem every refused cursor answers: 400 VALIDATION_FAILED, naming the parameter. */
export function invalidCursor(reason = 'not a cursor this list issued'): ZiggieError {
  return new ZiggieError('VALIDATION_FAILED', `cursor: ${reason}`, { errors: [{ path: 'cursor', message: reason }] });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The envelope of a cursor, whatever its kind; throws invalidCursor() on anything else. */
export function parseCursorEnvelope(cursor: string): { kind: string; position: unknown } {
  if (typeof cursor !== 'string' || cursor.length === 0 || cursor.length > CURSOR_MAX_LENGTH || !ALPHABET.test(cursor)) throw invalidCursor();
  const bytes = Buffer.from(cursor, 'base64url');
  // Canonical only: a tampered last character that decodes to the same bytes is refused too.
  if (bytes.toString('base64url') !== cursor) throw invalidCursor();
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(bytes));
  } catch {
    throw invalidCursor();
  }
  const envelope = Envelope.safeParse(json);
  if (!envelope.success) throw invalidCursor();
  return { kind: envelope.data.k, position: envelope.data.p };
}

/** A list's cursor: its kind tag and the shape of its position. */
export interface CursorCodec<P> {
  readonly kind: string;
  /** The opaque cursor for a position (a position that does not fit its schema is a bug: throws). */
  encode(position: P): string;
  /** The position of a cursor this list issued; undefined for an absent or empty cursor. */
  decode(cursor: string | null | undefined): P | undefined;
  /** Whether the cursor is one this list could have issued (the REST validation uses it). */
  accepts(cursor: string): boolean;
}

export function cursorCodec<P>(kind: string, position: z.ZodType<P>): CursorCodec<P> {
  const decodeStrict = (cursor: string): P => {
    const envelope = parseCursorEnvelope(cursor);
    if (envelope.kind !== kind) throw invalidCursor('issued by another list');
    const parsed = position.safeParse(envelope.position);
    if (!parsed.success) throw invalidCursor();
    return parsed.data;
  };
  return {
    kind,
    encode(p: P): string {
      const checked = position.parse(p);
      const cursor = Buffer.from(JSON.stringify({ v: VERSION, k: kind, p: checked }), 'utf8').toString('base64url');
      if (cursor.length > CURSOR_MAX_LENGTH) throw new Error(`a ${kind} cursor would be ${cursor.length} characters long`);
      return cursor;
    },
    decode(cursor) {
      if (cursor === undefined || cursor === null || cursor === '') return undefined;
      return decodeStrict(cursor);
    },
    accepts(cursor) {
      try {
        decodeStrict(cursor);
        return true;
      } catch {
        return false;
      }
    },
  };
}

/** Offset pages (lists sorted in SQL). */
export const OffsetPosition = z.object({ offset: z.number().int().min(0).max(CURSOR_MAX_OFFSET) }).strict();
export type OffsetPosition = z.infer<typeof OffsetPosition>;

const Key = z.string().min(1).max(CURSOR_MAX_KEY);
/** Keyset over (level, id): agent listings. */
export const LevelIdPosition = z.object({ level: z.number().int().min(0).max(64), id: Key }).strict();
/** Keyset over (at, id), newest first: the audit log. */
export const TimeIdPosition = z
  .object({
    at: z.iso.datetime().refine((s) => {
      const year = Number(s.slice(0, 4));
      return year >= 1970 && year <= 9999;
    }),
    id: z.uuid(),
  })
  .strict();
export type LevelIdPosition = z.infer<typeof LevelIdPosition>;
export type TimeIdPosition = z.infer<typeof TimeIdPosition>;
/** Keyset over a name: catalogs sorted by name. */
export const NamePosition = z.object({ name: Key }).strict();
/** Keyset over an id: workspaces. */
export const IdPosition = z.object({ id: Key }).strict();
export type NamePosition = z.infer<typeof NamePosition>;
export type IdPosition = z.infer<typeof IdPosition>;

/** Every list's codec; kinds are unique, so one list's cursor is refused by every other. */
export const Cursors = {
  tasks: cursorCodec('tasks', OffsetPosition),
  decisions: cursorCodec('decisions', OffsetPosition),
  blueprints: cursorCodec('blueprints', OffsetPosition),
  policies: cursorCodec('policies', OffsetPosition),
  workspaces: cursorCodec('workspaces', IdPosition),
  agents: cursorCodec('agents', LevelIdPosition),
  agentChildren: cursorCodec('agents.children', LevelIdPosition),
  agentSubtree: cursorCodec('agents.subtree', LevelIdPosition),
  /** The gateway's own pages of the agents a workspace-scoped token may see. */
  agentsVisible: cursorCodec('agents.visible', OffsetPosition),
  audit: cursorCodec('audit', TimeIdPosition),
  /** mcp-gateway's catalog, keyed by name: ListTools (REST and gRPC) and the MCP endpoint's tools/list, prompts/list and resources/list. */
  mcpCatalog: cursorCodec('mcp.catalog', NamePosition),
} as const;

export type CursorKindName = keyof typeof Cursors;
