/**
 * Tool calls per minute, per tool and workspace, over the last hour: what the console's overview
 * shows (calls per minute, p95 per tool) without a Prometheus to ask. Latency is counted in the
 * fixed buckets of the `ziggie_mcp_call_duration_seconds` histogram, so the windows of several
 * replicas merge exactly (by adding counts) and the p95 is the one Grafana would compute.
 */

/** Upper bounds in ms of the Prometheus histogram's buckets (tools.service.ts), then +Inf. */
export const BUCKET_BOUNDS_MS: readonly number[] = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, Infinity];
export const WINDOW_MINUTES = 60;
const MINUTE_MS = 60_000;

/** One tool in one workspace during one minute. */
export interface StatsCell {
  workspace: string;
  tool: string;
  server: string;
  calls: number;
  errors: number;
  /** Calls per latency bucket, aligned with BUCKET_BOUNDS_MS. */
  buckets: number[];
}

/** One minute (epoch minute number) of cells. */
export interface StatsMinute {
  minute: number;
  cells: StatsCell[];
}

/** What a replica shares in the KV bucket: its minutes, oldest first. */
export interface ReplicaWindow {
  replica: string;
  at: string;
  /** When the replica started counting (epoch ms): rates over a window longer than that are over that time. */
  startedAt?: number;
  minutes: StatsMinute[];
}

export interface WindowFigures {
  minutes: number;
  calls: number;
  errors: number;
  callsPerMinute: number;
  errorsPerMinute: number;
  p50Ms?: number;
  p95Ms?: number;
}

export interface ToolFigures {
  tool: string;
  server: string;
  last5m: WindowFigures;
  last60m: WindowFigures;
}

export const minuteOf = (ms: number): number => Math.floor(ms / MINUTE_MS);

export function bucketOf(ms: number): number {
  const i = BUCKET_BOUNDS_MS.findIndex((b) => ms <= b);
  return i < 0 ? BUCKET_BOUNDS_MS.length - 1 : i;
}

const emptyBuckets = (): number[] => BUCKET_BOUNDS_MS.map(() => 0);
const keyOf = (workspace: string, tool: string): string => `${workspace}\u0000${tool}`;

/**
 * The quantile of a bucketed distribution as Prometheus' histogram_quantile estimates it: linear
 * within the bucket the rank falls in (from 0 for the first); in the +Inf bucket, the largest
 * finite bound.
 */
export function quantileMs(buckets: readonly number[], q: number): number | undefined {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return undefined;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < buckets.length; i++) {
    const count = buckets[i]!;
    if (below + count >= rank && count > 0) {
      const upper = BUCKET_BOUNDS_MS[i]!;
      if (upper === Infinity) return BUCKET_BOUNDS_MS[BUCKET_BOUNDS_MS.length - 2];
      const lower = i === 0 ? 0 : BUCKET_BOUNDS_MS[i - 1]!;
      return lower + ((upper - lower) * (rank - below)) / count;
    }
    below += count;
  }
  return BUCKET_BOUNDS_MS[BUCKET_BOUNDS_MS.length - 2];
}

/** A replica's own rolling window: one map of cells per minute, minutes older than the hour dropped. */
export class ToolStatsWindow {
  private readonly minutes = new Map<number, Map<string, StatsCell>>();
  /** Whether something was recorded since the last `takeChanged()`. */
  private changed = false;
  private readonly startedAt: number;

  constructor(private readonly now: () => number = Date.now) {
    this.startedAt = now();
  }

  record(workspace: string, tool: string, server: string, durationMs: number, failed: boolean): void {
    const minute = minuteOf(this.now());
    let cells = this.minutes.get(minute);
    if (!cells) {
      this.minutes.set(minute, (cells = new Map()));
      this.prune(minute);
    }
    const key = keyOf(workspace, tool);
    let cell = cells.get(key);
    if (!cell) cells.set(key, (cell = { workspace, tool, server, calls: 0, errors: 0, buckets: emptyBuckets() }));
    cell.calls++;
    if (failed) cell.errors++;
    cell.buckets[bucketOf(durationMs)]!++;
    this.changed = true;
  }

  private prune(current: number): void {
    for (const m of this.minutes.keys()) if (m <= current - WINDOW_MINUTES) this.minutes.delete(m);
  }

  /** A write of the window failed: it is written again at the next flush. */
  markChanged(): void {
    this.changed = true;
  }

  /** True once after each change: the replica writes its window to KV only then. */
  takeChanged(): boolean {
    const was = this.changed;
    this.changed = false;
    return was;
  }

  snapshot(replica: string): ReplicaWindow {
    this.prune(minuteOf(this.now()));
    const minutes = [...this.minutes.entries()]
      .sort(([a], [b]) => a - b)
      .map(([minute, cells]) => ({ minute, cells: [...cells.values()].map((c) => ({ ...c, buckets: [...c.buckets] })) }));
    return { replica, at: new Date(this.now()).toISOString(), startedAt: this.startedAt, minutes };
  }
}

/**
 * The replica's window as stored in KV, at most `maxBytes` of JSON: the oldest minutes go first
 * (a NATS message, and so a KV value, is limited to 1 MB by default).
 */
export function encodeWindow(w: ReplicaWindow, maxBytes: number): string {
  let minutes = w.minutes;
  for (;;) {
    const text = JSON.stringify({ ...w, minutes });
    if (text.length <= maxBytes || minutes.length === 0) return text;
    minutes = minutes.slice(Math.max(1, Math.ceil(minutes.length / 10)));
  }
}

/** A stored value back as a window, or undefined when it is not one (another version, a stray key). */
export function parseWindow(v: unknown): ReplicaWindow | undefined {
  const w = v as ReplicaWindow | undefined;
  if (!w || typeof w.replica !== 'string' || !Array.isArray(w.minutes)) return undefined;
  const ok = w.minutes.every(
    (m) =>
      typeof m?.minute === 'number' &&
      Array.isArray(m.cells) &&
      m.cells.every((c) => typeof c?.tool === 'string' && typeof c.workspace === 'string' && typeof c.calls === 'number' && Array.isArray(c.buckets) && c.buckets.length === BUCKET_BOUNDS_MS.length),
  );
  return ok ? w : undefined;
}

interface Totals {
  server: string;
  calls: number;
  errors: number;
  buckets: number[];
}

function add(into: Totals, c: { calls: number; errors: number; buckets: readonly number[] }): void {
  into.calls += c.calls;
  into.errors += c.errors;
  for (let i = 0; i < into.buckets.length; i++) into.buckets[i]! += c.buckets[i] ?? 0;
}

/**
 * Per-minute rates over the last `minutes` minutes, the current one counted for the part of it
 * that has passed (so a burst a moment ago is not diluted over a whole minute that has not been),
 * and over no more than the time since the first replica started counting (at least a minute):
 * right after a start, 4 calls in 30 s are not 0.9 per minute.
 */
function figures(t: Totals, minutes: number, nowMs: number, startedAt: number): WindowFigures {
  const elapsed = Math.min(minutes - 1 + (nowMs - minuteOf(nowMs) * MINUTE_MS) / MINUTE_MS, Math.max(1, (nowMs - startedAt) / MINUTE_MS));
  const round = (n: number) => Math.round(n * 100) / 100;
  const p50 = quantileMs(t.buckets, 0.5);
  const p95 = quantileMs(t.buckets, 0.95);
  return {
    minutes,
    calls: t.calls,
    errors: t.errors,
    callsPerMinute: round(t.calls / elapsed),
    errorsPerMinute: round(t.errors / elapsed),
    ...(p50 === undefined ? {} : { p50Ms: round(p50) }),
    ...(p95 === undefined ? {} : { p95Ms: round(p95) }),
  };
}

export interface MergedStats {
  items: ToolFigures[];
  total5m: WindowFigures;
  total60m: WindowFigures;
  replicas: number;
}

/**
 * Adds up the windows of every replica (cells of the same minute, workspace and tool sum) for the
 * cells `include` keeps, by tool over the last 5 and 60 minutes, most called first.
 */
export function mergeWindows(windows: readonly ReplicaWindow[], nowMs: number, include: (cell: StatsCell) => boolean): MergedStats {
  const current = minuteOf(nowMs);
  const fresh = () => ({ server: '', calls: 0, errors: 0, buckets: emptyBuckets() });
  const byTool = new Map<string, { last5m: Totals; last60m: Totals }>();
  const total5m = fresh();
  const total60m = fresh();
  const startedAt = Math.min(...windows.map((w) => (typeof w.startedAt === 'number' ? w.startedAt : 0)));
  for (const w of windows) {
    for (const m of w.minutes) {
      const age = current - m.minute;
      if (age < 0 || age >= WINDOW_MINUTES) continue;
      for (const c of m.cells) {
        if (!include(c)) continue;
        let t = byTool.get(c.tool);
        if (!t) byTool.set(c.tool, (t = { last5m: fresh(), last60m: fresh() }));
        t.last60m.server = t.last5m.server = c.server;
        add(t.last60m, c);
        add(total60m, c);
        if (age < 5) {
          add(t.last5m, c);
          add(total5m, c);
        }
      }
    }
  }
  const items = [...byTool.entries()]
    .map(([tool, t]) => ({ tool, server: t.last60m.server, last5m: figures(t.last5m, 5, nowMs, startedAt), last60m: figures(t.last60m, WINDOW_MINUTES, nowMs, startedAt) }))
    .sort((a, b) => b.last60m.calls - a.last60m.calls || b.last5m.calls - a.last5m.calls || a.tool.localeCompare(b.tool));
  return { items, total5m: figures(total5m, 5, nowMs, startedAt), total60m: figures(total60m, WINDOW_MINUTES, nowMs, startedAt), replicas: windows.length };
}
