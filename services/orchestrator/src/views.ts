import { type CursorCodec, type OffsetPosition, pb } from '@ziggie/contracts';

export const iso = (d: Date | string | null | undefined): string => (d ? new Date(d).toISOString() : '');

type OffsetCursor = CursorCodec<OffsetPosition>;

/**
 * Offset pagination from the opaque cursor a list RPC handed out (the shared codec of
 * @ziggie/contracts). A cursor this list did not issue is refused with VALIDATION_FAILED here,
 * where it is decoded, so gRPC callers are held to it as well as the REST gateway. Lists pass
 * their own codec; ListTasks uses the default.
 */
export function pageOf(page: pb.PageRequest | undefined, cursor: OffsetCursor): { limit: number; offset: number } {
  return {
    limit: Math.min(Math.max(page?.limit || 50, 1), 500),
    offset: cursor.decode(page?.cursor)?.offset ?? 0,
  };
}

/** `{ items, total, nextCursor }` for an offset page; no cursor after the last page. */
export function pageResult<T>(items: T[], total: number, offset: number, cursor: OffsetCursor): { items: T[]; total: number; nextCursor: string } {
  return { items, total, nextCursor: offset + items.length < total ? cursor.encode({ offset: offset + items.length }) : '' };
}
