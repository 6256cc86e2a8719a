/**
 * The MCP gateway's concurrency limits as the scheduler learns them from refusals, so that it does
 * not dispatch more calls of a tool than the gateway admits (each refused call costs a dispatch, a
 * runtime slot and a wait of at least a second). A TOOL_CONCURRENCY_LIMITED refusal names its limit
 * and scope: `tool` (one caller's calls of one tool) or `server` (an upstream's capacity, all
 * callers). A learned limit is forgotten after a while without refusals, so a raised limit is
 * found again and a stale one does not hold steps back for good; the gateway stays the one that
 * enforces, this only avoids asking it in vain.
 *
 * Kept in memory by each replica: a replica that has not seen a refusal yet dispatches as before
 * and learns from the first one.
 */
export interface LearnedRefusal {
  subject: string;
  tool: string;
  scope: 'tool' | 'server';
  limit: number;
}

export interface CapacityKey {
  key: string;
  limit: number;
  label: string;
}

/** A known limit that is reached: the steps it holds back, and why. */
export type FullLimit = { scope: 'tool'; subject: string; tool: string; reason: string } | { scope: 'server'; server: string; reason: string };

interface Learned {
  limit: number;
  until: number;
  label: string;
  /** What the limit holds: one caller's tool, or a server. */
  holds: { scope: 'tool'; subject: string; tool: string } | { scope: 'server'; server: string };
}

const waitingReason = (label: string, limit: number) => `waiting for capacity: ${label} admits ${limit} calls at once`;

/** Tool names are `<server>.<tool>` in the gateway's catalog. */
export function serverOf(tool: string): string {
  const dot = tool.indexOf('.');
  return dot > 0 ? tool.slice(0, dot) : tool;
}

const toolKey = (subject: string, tool: string) => `tool\u0000${subject}\u0000${tool}`;
const serverKey = (server: string) => `server\u0000${server}`;

export const LEARNED_LIMIT_TTL_MS = 10 * 60_000;

export class ToolCapacity {
  private readonly limits = new Map<string, Learned>();

  constructor(
    private readonly ttlMs = LEARNED_LIMIT_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  learn(r: LearnedRefusal): void {
    if (!Number.isInteger(r.limit) || r.limit < 1) return;
    const until = this.now() + this.ttlMs;
    if (r.scope === 'server') {
      const server = serverOf(r.tool);
      this.limits.set(serverKey(server), { limit: r.limit, until, label: `server ${server}`, holds: { scope: 'server', server } });
    } else {
      this.limits.set(toolKey(r.subject, r.tool), { limit: r.limit, until, label: `tool ${r.tool} for caller ${r.subject}`, holds: { scope: 'tool', subject: r.subject, tool: r.tool } });
    }
  }

  /** Whether any limit is known (the scheduler counts calls in flight only then). */
  get active(): boolean {
    this.expire();
    return this.limits.size > 0;
  }

  /** The known limits a call of `tool` by `subject` counts against. */
  keysOf(subject: string, tool: string): CapacityKey[] {
    const keys: CapacityKey[] = [];
    for (const key of [toolKey(subject, tool), serverKey(serverOf(tool))]) {
      const learned = this.limits.get(key);
      if (learned) keys.push({ key, limit: learned.limit, label: learned.label });
    }
    return keys;
  }

  /** Calls in flight per key, from (subject, tool, count) rows. */
  inFlight(rows: Array<{ subject: string; tool: string; n: number }>): Map<string, number> {
    const counts = new Map<string, number>();
    for (const r of rows) {
      for (const key of [toolKey(r.subject, r.tool), serverKey(serverOf(r.tool))]) counts.set(key, (counts.get(key) ?? 0) + r.n);
    }
    return counts;
  }

  /**
   * Admits a call when every known limit it counts against has room, and counts it; otherwise
   * says which limit is full.
   */
  admit(subject: string, tool: string, counts: Map<string, number>): { ok: true } | { ok: false; reason: string } {
    const keys = this.keysOf(subject, tool);
    const full = keys.find((k) => (counts.get(k.key) ?? 0) >= k.limit);
    if (full) return { ok: false, reason: waitingReason(full.label, full.limit) };
    for (const k of keys) counts.set(k.key, (counts.get(k.key) ?? 0) + 1);
    return { ok: true };
  }

  /** The known limits that `counts` (calls in flight) have reached. */
  full(counts: Map<string, number>): FullLimit[] {
    this.expire();
    const full: FullLimit[] = [];
    for (const [key, learned] of this.limits) {
      if ((counts.get(key) ?? 0) < learned.limit) continue;
      full.push({ ...learned.holds, reason: waitingReason(learned.label, learned.limit) });
    }
    return full;
  }

  private expire(): void {
    const now = this.now();
    for (const [key, v] of this.limits) if (v.until <= now) this.limits.delete(key);
  }
}
