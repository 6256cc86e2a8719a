import { BUCKET_BOUNDS_MS, bucketOf, encodeWindow, mergeWindows, parseWindow, quantileMs, ToolStatsWindow } from './tool-stats';

const MINUTE = 60_000;
/** 10:00:30 on some day: half of the current minute has passed. */
const T0 = Date.UTC(2026, 0, 1, 10, 0, 30);

describe('tool call windows', () => {
  it('puts a duration in the first bucket whose bound holds it, beyond the last in +Inf', () => {
    expect(bucketOf(0.2)).toBe(0);
    expect(bucketOf(1)).toBe(0);
    expect(bucketOf(1.01)).toBe(1);
    expect(bucketOf(300)).toBe(BUCKET_BOUNDS_MS.indexOf(500));
    expect(bucketOf(120_000)).toBe(BUCKET_BOUNDS_MS.length - 1);
  });

  it('estimates quantiles as histogram_quantile does: linear inside the bucket, the last finite bound for +Inf', () => {
    const buckets = BUCKET_BOUNDS_MS.map(() => 0);
    expect(quantileMs(buckets, 0.95)).toBeUndefined();
    buckets[BUCKET_BOUNDS_MS.indexOf(500)] = 4; // (250, 500]
    buckets[BUCKET_BOUNDS_MS.indexOf(100)] = 1; // (50, 100]
    // rank 4.75 of 5: 3.75 of the 4 calls into (250, 500].
    expect(quantileMs(buckets, 0.95)).toBeCloseTo(250 + (250 * 3.75) / 4);
    expect(quantileMs(buckets, 0.2)).toBeCloseTo(100);
    const slow = BUCKET_BOUNDS_MS.map(() => 0);
    slow[slow.length - 1] = 3;
    expect(quantileMs(slow, 0.95)).toBe(60_000);
  });

  it('merges two replicas exactly: same minute and tool add up, other workspaces and old minutes stay out', () => {
    let now = T0 - 2 * 60 * MINUTE; // counting for two hours
    const a = new ToolStatsWindow(() => now);
    const b = new ToolStatsWindow(() => now);
    now = T0;
    a.record('alpha', 's.slow', 's', 300, false);
    a.record('alpha', 's.slow', 's', 400, true);
    b.record('alpha', 's.slow', 's', 450, false);
    b.record('alpha', 's.fast', 's', 3, false);
    b.record('beta', 's.fast', 's', 3, false);
    now = T0 - 10 * MINUTE; // ten minutes back: in the hour, not in the last 5 minutes
    a.record('alpha', 's.fast', 's', 3, false);
    now = T0 - 61 * MINUTE; // outside the hour
    b.record('alpha', 's.slow', 's', 30_000, true);
    now = T0;

    const merged = mergeWindows([a.snapshot('a'), b.snapshot('b')], T0, (c) => c.workspace === 'alpha');
    expect(merged.replicas).toBe(2);
    expect(merged.items.map((t) => [t.tool, t.last5m.calls, t.last60m.calls])).toEqual([
      ['s.slow', 3, 3],
      ['s.fast', 1, 2],
    ]);
    const slow = merged.items[0]!;
    expect(slow.last5m).toMatchObject({ minutes: 5, calls: 3, errors: 1 });
    // 4.5 minutes have passed of the 5-minute window.
    expect(slow.last5m.callsPerMinute).toBeCloseTo(3 / 4.5, 2);
    expect(slow.last60m.callsPerMinute).toBeCloseTo(3 / 59.5, 2);
    expect(slow.last5m.p95Ms).toBeGreaterThan(250);
    expect(slow.last5m.p95Ms).toBeLessThanOrEqual(500);
    expect(merged.total5m).toMatchObject({ calls: 4, errors: 1 });
    expect(merged.total60m.calls).toBe(5);
  });

  it('stores a window as bounded JSON, dropping the oldest minutes first, and reads back only well-formed ones', () => {
    let now = T0;
    const w = new ToolStatsWindow(() => now);
    for (let m = 0; m < 60; m++) {
      now = T0 - m * MINUTE;
      for (let t = 0; t < 20; t++) w.record('alpha', `s.tool-${t}`, 's', 10, false);
    }
    now = T0;
    const snapshot = w.snapshot('r1');
    const full = encodeWindow(snapshot, 10_000_000);
    const small = encodeWindow(snapshot, full.length / 2);
    expect(small.length).toBeLessThanOrEqual(full.length / 2);
    const parsed = parseWindow(JSON.parse(small))!;
    expect(parsed.minutes.length).toBeLessThan(60);
    // What is kept is the most recent.
    expect(parsed.minutes[parsed.minutes.length - 1]!.minute).toBe(Math.floor(T0 / MINUTE));
    expect(parseWindow({ replica: 'x', minutes: [{ minute: 1, cells: [{ tool: 't', workspace: 'w', calls: 1, buckets: [1] }] }] })).toBeUndefined();
    expect(parseWindow('nonsense')).toBeUndefined();
  });

  it('counts rates over the time since the first replica started, at least a minute', () => {
    let now = T0;
    const young = new ToolStatsWindow(() => now);
    now = T0 + 30_000; // started 30 s ago: 4 calls are 4 per minute, not 4 over 4.5 minutes
    for (let i = 0; i < 4; i++) young.record('alpha', 's.t', 's', 5, false);
    expect(mergeWindows([young.snapshot('y')], now, () => true).total5m.callsPerMinute).toBe(4);
    now = T0 + 3 * MINUTE;
    expect(mergeWindows([young.snapshot('y')], now, () => true).total5m.callsPerMinute).toBeCloseTo(4 / 3, 2);
    // An older replica's window: the figures cover its time too.
    const old = { ...young.snapshot('o'), startedAt: T0 - 60 * MINUTE, minutes: [] };
    // (4.5 minutes of the 5-minute window have passed: half of the current minute.)
    expect(mergeWindows([young.snapshot('y'), old], now, () => true).total5m.callsPerMinute).toBeCloseTo(4 / 4.5, 2);
  });

  it('reports a change once, so an idle replica does not rewrite its window', () => {
    const w = new ToolStatsWindow(() => T0);
    expect(w.takeChanged()).toBe(false);
    w.record('alpha', 's.t', 's', 1, false);
    expect(w.takeChanged()).toBe(true);
    expect(w.takeChanged()).toBe(false);
  });
});
