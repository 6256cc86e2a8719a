export const MAX_PORT = 65535;

/** Inclusive at both ends. */
export interface PortRange {
  start: number;
  end: number;
}

export function rangeSize(r: PortRange): number {
  return r.end - r.start + 1;
}

export function overlaps(a: PortRange, b: PortRange): boolean {
  return a.start <= b.end && b.start <= a.end;
}

export function formatRange(r: PortRange): string {
  return `${r.start}-${r.end}`;
}

/** The first of `others` whose range overlaps `range`. */
export function findOverlap<T extends { range: PortRange }>(range: PortRange, others: readonly T[]): T | undefined {
  return others.find((o) => overlaps(range, o.range));
}

/**
 * The lowest block `[base + k·size, base + (k+1)·size − 1]` (k ≥ 0) that overlaps none of
 * `taken` and ends at or below the highest port; undefined when there is none.
 */
export function nextFreeBlock(taken: readonly PortRange[], base: number, size: number): PortRange | undefined {
  const sorted = [...taken].sort((a, b) => a.start - b.start);
  let start = base;
  while (start + size - 1 <= MAX_PORT) {
    const block = { start, end: start + size - 1 };
    const clash = sorted.filter((t) => overlaps(block, t));
    if (clash.length === 0) return block;
    // Jump to the first block starting after the furthest clashing range.
    const after = Math.max(...clash.map((t) => t.end)) + 1;
    start = base + Math.ceil((after - base) / size) * size;
  }
  return undefined;
}

/** The lowest port of `range` not in `taken` (ascending, may hold ports outside the range). */
export function lowestFreePort(range: PortRange, taken: readonly number[]): number | undefined {
  let candidate = range.start;
  for (const port of taken) {
    if (port < candidate) continue;
    if (port > candidate) break;
    candidate++;
  }
  return candidate <= range.end ? candidate : undefined;
}
