import { pb } from '@ziggie/contracts';

export const iso = (d: Date | string | null | undefined): string => (d ? new Date(d).toISOString() : '');

/** Offset pagination from the opaque cursor the list RPCs hand out. */
export function pageOf(page: pb.PageRequest | undefined, defaultLimit = 50): { limit: number; offset: number } {
  return {
    limit: Math.min(Math.max(page?.limit || defaultLimit, 1), 500),
    offset: Math.max(Number.parseInt(page?.cursor || '0', 10) || 0, 0),
  };
}

/** `{ items, total, nextCursor }` for an offset page; no cursor after the last page. */
export function pageResult<T>(items: T[], total: number, offset: number): { items: T[]; total: number; nextCursor: string } {
  return { items, total, nextCursor: offset + items.length < total ? String(offset + items.length) : '' };
}
