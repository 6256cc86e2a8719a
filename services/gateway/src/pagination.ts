import { z } from 'zod';

/** One pagination convention for every list: `?limit=&cursor=` in, `{ items, total, nextCursor? }` out. */
export const PageQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z.string().max(64).optional(),
  })
  .loose();

export function page<T>(items: T[], total: number, nextCursor: string): { items: T[]; total: number; nextCursor?: string } {
  return nextCursor ? { items, total, nextCursor } : { items, total };
}
