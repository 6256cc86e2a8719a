import { pb, ZiggieError } from '@ziggie/contracts';
import { AgentIndex, AgentRecord, AgentStatus, MAX_PAGE_LIMIT } from './agent-index';
import { generateDefaultHierarchy } from './hierarchy';

const OFFLINE_AFTER_MS = 60_000;

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function agent(id: string, level: number, parentId: string | null, capabilities: string[], workspace = 'alpha', extra: Partial<AgentRecord> = {}): AgentRecord {
  return { id, name: id, level, parentId, role: `${capabilities[0]}-r${level}`, workspace, capabilities, team: null, ...extra };
}

/** root → lead (L1) → spec-a, spec-b (L2) → three L3 workers each; plus a beta workspace. */
const SMALL: AgentRecord[] = [
  agent('root', 0, null, ['coordinate']),
  agent('lead', 1, 'root', ['coordinate', 'code']),
  agent('spec-a', 2, 'lead', ['code']),
  agent('spec-b', 2, 'lead', ['code', 'qa']),
  agent('w-a1', 3, 'spec-a', ['code']),
  agent('w-a2', 3, 'spec-a', ['code']),
  agent('w-a3', 3, 'spec-a', ['code']),
  agent('w-b1', 3, 'spec-b', ['qa']),
  agent('w-b2', 3, 'spec-b', ['qa']),
  agent('w-b3', 3, 'spec-b', ['qa']),
  agent('beta-lead', 1, 'root', ['code'], 'beta'),
  agent('beta-w1', 2, 'beta-lead', ['code'], 'beta'),
];

function build(records: AgentRecord[] = SMALL) {
  const clock = manualClock();
  const index = new AgentIndex(records, { offlineAfterMs: OFFLINE_AFTER_MS, now: clock.now });
  const beat = (agentId: string, status: AgentStatus, load = 0, runtimeId = 'r1') => index.heartbeat({ agentId, status, load, runtimeId, at: new Date().toISOString() });
  return { index, clock, beat };
}

const req = (capability: string, workspace = 'alpha', extra: Partial<pb.SelectAgentRequest> = {}): pb.SelectAgentRequest => ({ capability, workspace, agentId: '', level: 0, filterLevel: false, withChildren: false, ...extra });

function failure(fn: () => unknown): ZiggieError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ZiggieError) return err;
    throw err;
  }
  throw new Error('expected a ZiggieError');
}

const listReq = (extra: Partial<pb.ListAgentsRequest> = {}): pb.ListAgentsRequest => ({ page: undefined, workspace: '', level: 0, capability: '', filterLevel: false, status: '', parentId: '', role: '', ...extra });

describe('AgentIndex selection', () => {
  it('picks the least loaded live agent, preferring the deepest level, then the id', () => {
    const { index, beat } = build();
    // Nobody has beaten: all idle at load 0, so the deepest level wins, then the smallest id.
    expect(index.select(req('code')).id).toBe('w-a1');
    beat('w-a1', 'busy', 3);
    beat('w-a2', 'busy', 1);
    beat('w-a3', 'busy', 2);
    // spec-a, spec-b and lead are at 0 (never heard from): the deepest of them, then the id.
    expect(index.select(req('code')).id).toBe('spec-a');
    expect(index.select(req('code')).id).toBe('spec-b');
    // Now spec-a and spec-b hold one reservation each; lead (L1, load 0) is next.
    expect(index.select(req('code')).id).toBe('lead');
    // Everyone is at 1 except w-a1 (3) and w-a3 (2): w-a2 (L3) wins the tie at 1.
    expect(index.select(req('code')).id).toBe('w-a2');
  });

  it('counts selections made since the last heartbeat as load, and a heartbeat resets them', () => {
    const { index, beat } = build();
    const picks = [1, 2, 3, 4].map(() => index.select(req('qa')).id);
    // Three idle L3 qa agents take one each, then the L2 qa agent (spec-b) at 0 comes before a second round.
    expect(picks).toEqual(['w-b1', 'w-b2', 'w-b3', 'spec-b']);
    expect(index.select(req('qa')).id).toBe('w-b1');
    // w-b3 reports load 0: its reservation is gone, so it is the only one at 0.
    beat('w-b3', 'idle', 0);
    expect(index.select(req('qa')).id).toBe('w-b3');
    // The reported load counts like reservations do.
    beat('w-b2', 'busy', 0.5);
    expect(index.get('w-b2').load).toBe(0.5);
  });

  it('filters by level when asked', () => {
    const { index } = build();
    expect(index.select(req('code', 'alpha', { level: 2, filterLevel: true })).id).toBe('spec-a');
    expect(index.select(req('code', 'alpha', { level: 1, filterLevel: true })).id).toBe('lead');
    const none = failure(() => index.select(req('code', 'alpha', { level: 0, filterLevel: true })));
    expect(none.code).toBe('AGENT_UNAVAILABLE');
    expect(none.message).toContain('at level 0');
    // level 0 without filter_level means any level.
    expect(index.select(req('code', 'alpha', { level: 0 })).level).toBe(3);
  });

  it('picks only agents with children for a delegation, even when a childless one is less loaded', () => {
    const { index, beat } = build([...SMALL, agent('solo', 2, 'lead', ['code'])]);
    beat('spec-a', 'busy', 3);
    beat('spec-b', 'busy', 2);
    expect(index.select(req('code', 'alpha', { level: 2, filterLevel: true })).id).toBe('solo');
    expect(index.select(req('code', 'alpha', { level: 2, filterLevel: true, withChildren: true })).id).toBe('spec-b');
    expect(failure(() => index.select(req('qa', 'alpha', { level: 3, filterLevel: true, withChildren: true }))).message).toMatch(/with agents under it/);
  });

  it('keeps to the workspace', () => {
    const { index } = build();
    expect(index.select(req('code', 'beta')).id).toBe('beta-w1');
    expect(failure(() => index.select(req('qa', 'beta'))).code).toBe('AGENT_UNAVAILABLE');
    expect(failure(() => index.select(req('code', 'gamma'))).code).toBe('AGENT_UNAVAILABLE');
  });

  it('skips offline agents, and takes them back when they beat again', () => {
    const { index, beat } = build();
    beat('w-b1', 'offline');
    beat('w-b2', 'offline');
    expect(index.select(req('qa', 'alpha', { level: 3, filterLevel: true })).id).toBe('w-b3');
    beat('w-b3', 'offline');
    expect(failure(() => index.select(req('qa', 'alpha', { level: 3, filterLevel: true }))).code).toBe('AGENT_UNAVAILABLE');
    expect(index.select(req('qa')).id).toBe('spec-b');
    beat('w-b2', 'idle');
    expect(index.select(req('qa', 'alpha', { level: 3, filterLevel: true })).id).toBe('w-b2');
  });

  it('selects a named agent if it exists and is live, and reserves it', () => {
    const { index, beat } = build();
    expect(index.select(req('', '', { agentId: 'w-a3' })).id).toBe('w-a3');
    // The reservation makes w-a3 the last choice among the equal L3 agents.
    expect([1, 2].map(() => index.select(req('code', 'alpha', { level: 3, filterLevel: true })).id)).toEqual(['w-a1', 'w-a2']);
    expect(failure(() => index.select(req('', '', { agentId: 'ghost' }))).code).toBe('NOT_FOUND');
    beat('w-a3', 'offline');
    expect(failure(() => index.select(req('', '', { agentId: 'w-a3' }))).code).toBe('AGENT_UNAVAILABLE');
  });

  it('answers a batch with one result per request, in order, failures as results', () => {
    const { index } = build();
    const results = index.selectMany([req('qa'), req('qa'), req('nope'), req('', '', { agentId: 'ghost' }), req('qa', 'beta'), req('qa')]);
    expect(results.map((r) => [r.agent?.id ?? null, r.errorCode])).toEqual([
      ['w-b1', ''],
      ['w-b2', ''],
      [null, 'AGENT_UNAVAILABLE'],
      [null, 'NOT_FOUND'],
      [null, 'AGENT_UNAVAILABLE'],
      ['w-b3', ''],
    ]);
    expect(results[3]!.errorMessage).toBe('agent ghost not found');
    expect(index.selectMany([])).toEqual([]);
  });
});

describe('AgentIndex heartbeats', () => {
  it('leaves an agent never heard from idle at load 0', () => {
    const { index } = build();
    expect(index.get('w-a1')).toMatchObject({ status: 'idle', load: 0, lastSeenAt: '' });
  });

  it('ignores beats for unknown agents', () => {
    const { beat } = build();
    expect(beat('ghost', 'busy', 1)).toBe(false);
    expect(beat('w-a1', 'busy', 1)).toBe(true);
  });

  it('aggregates across runtimes: load is the sum, busy wins over idle, offline only when every runtime is', () => {
    const { index, beat } = build();
    beat('w-a1', 'busy', 2, 'r1');
    beat('w-a1', 'idle', 1, 'r2');
    expect(index.get('w-a1')).toMatchObject({ status: 'busy', load: 3 });
    beat('w-a1', 'idle', 0, 'r1');
    expect(index.get('w-a1')).toMatchObject({ status: 'idle', load: 1 });
    beat('w-a1', 'offline', 0, 'r2');
    expect(index.get('w-a1')).toMatchObject({ status: 'idle', load: 0 });
    beat('w-a1', 'offline', 0, 'r1');
    expect(index.get('w-a1')).toMatchObject({ status: 'offline', load: 0 });
    beat('w-a1', 'busy', 4, 'r2');
    expect(index.get('w-a1')).toMatchObject({ status: 'busy', load: 4 });
  });

  it('drops a silent runtime after the offline limit, and marks the agent offline when all are silent', () => {
    const { index, clock, beat } = build();
    beat('w-a1', 'busy', 2, 'r1');
    clock.advance(OFFLINE_AFTER_MS / 2);
    beat('w-a1', 'idle', 1, 'r2');
    expect(index.get('w-a1')).toMatchObject({ status: 'busy', load: 3 });
    // Exactly at the limit r1 still counts; just past it, it does not.
    clock.advance(OFFLINE_AFTER_MS / 2);
    expect(index.get('w-a1')).toMatchObject({ status: 'busy', load: 3 });
    clock.advance(1);
    expect(index.get('w-a1')).toMatchObject({ status: 'idle', load: 1 });
    clock.advance(OFFLINE_AFTER_MS / 2);
    const offline = index.get('w-a1');
    expect(offline).toMatchObject({ status: 'offline', load: 0 });
    expect(Date.parse(offline.lastSeenAt)).toBeGreaterThan(0);
    // Selection skips it until it beats again.
    expect(index.select(req('code', 'alpha', { level: 3, filterLevel: true })).id).toBe('w-a2');
    beat('w-a1', 'idle', 0, 'r3');
    expect(index.get('w-a1')).toMatchObject({ status: 'idle', load: 0 });
  });

  it('keeps a runtime that beats regularly fresh', () => {
    const { index, clock, beat } = build();
    for (let i = 0; i < 10; i++) {
      beat('w-a1', 'busy', 1, 'r1');
      clock.advance(OFFLINE_AFTER_MS / 3);
    }
    expect(index.get('w-a1')).toMatchObject({ status: 'busy', load: 1 });
  });

  it('counts agents by level and status', () => {
    const { index, beat } = build();
    beat('w-a1', 'busy', 1);
    beat('w-a2', 'offline');
    const counts = index.statusCounts();
    const of = (level: number, status: AgentStatus) => counts.find((c) => c.level === level && c.status === status)?.count ?? 0;
    expect([of(3, 'idle'), of(3, 'busy'), of(3, 'offline'), of(2, 'idle'), of(0, 'idle')]).toEqual([4, 1, 1, 3, 1]);
  });

  it('selects exactly like a full scan would, through random beats, expiries and selections', () => {
    // A reference model: per (agent, runtime) last beat, aggregated on demand, scanned in full.
    const records = generateDefaultHierarchy().filter((a) => a.workspace === 'fitflow' || a.level === 0);
    const { index, clock, beat } = build(records);
    const beats = new Map<string, Map<string, { status: AgentStatus; load: number; at: number }>>();
    const reserved = new Map<string, number>();
    const live = (id: string) => {
      const runtimes = [...(beats.get(id)?.values() ?? [])].filter((r) => clock.now() - r.at <= OFFLINE_AFTER_MS);
      if (!beats.has(id)) return { status: 'idle', load: 0 };
      const on = runtimes.filter((r) => r.status !== 'offline');
      const status = on.some((r) => r.status === 'busy') ? 'busy' : on.length > 0 ? 'idle' : 'offline';
      return { status, load: on.reduce((n, r) => n + r.load, 0) };
    };
    const reference = (capability: string, level?: number) => {
      let best: { id: string; score: number; level: number } | undefined;
      for (const a of records) {
        if (!a.capabilities.includes(capability) || a.workspace !== 'fitflow' || (level !== undefined && a.level !== level)) continue;
        const l = live(a.id);
        if (l.status === 'offline') continue;
        const score = l.load + (reserved.get(a.id) ?? 0);
        if (!best || score < best.score || (score === best.score && (a.level > best.level || (a.level === best.level && a.id < best.id)))) best = { id: a.id, score, level: a.level };
      }
      return best?.id;
    };
    let seed = 42;
    // mulberry32: a small seeded generator, so a failure replays the same way.
    const random = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pickOf = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    const capabilities = ['code', 'qa', 'design', 'coordinate'];
    let compared = 0;
    for (let step = 0; step < 3000; step++) {
      const r = random();
      if (r < 0.5) {
        const a = pickOf(records);
        const status = pickOf(['idle', 'busy', 'busy', 'offline'] as const);
        const load = Math.floor(random() * 4);
        const runtime = pickOf(['r1', 'r2', 'r3']);
        beat(a.id, status, load, runtime);
        const perRuntime = beats.get(a.id) ?? new Map();
        beats.set(a.id, perRuntime.set(runtime, { status, load, at: clock.now() }));
        reserved.delete(a.id);
      } else if (r < 0.6) {
        clock.advance(Math.floor(random() * 20_000));
      } else {
        const capability = pickOf(capabilities);
        const level = random() < 0.3 ? pickOf([1, 2, 3]) : undefined;
        const expected = reference(capability, level);
        let got: string | undefined;
        try {
          got = index.select(req(capability, 'fitflow', { level: level ?? 0, filterLevel: level !== undefined })).id;
        } catch (err) {
          expect((err as ZiggieError).code).toBe('AGENT_UNAVAILABLE');
        }
        expect(got).toBe(expected);
        if (got) reserved.set(got, (reserved.get(got) ?? 0) + 1);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(1000);
  });
});

describe('AgentIndex hierarchy queries', () => {
  const { index } = build(generateDefaultHierarchy());
  const ids = (r: { items: pb.Agent[] }) => r.items.map((a) => a.id);

  /** Every page of a listing, following nextCursor; checks total stays the same. */
  function allPages(fetch: (page: pb.PageRequest) => pb.ListAgentsResponse, limit: number): { ids: string[]; total: number; pages: number } {
    const out: string[] = [];
    let cursor = '';
    let total = -1;
    let pages = 0;
    do {
      const res = fetch({ limit, cursor });
      if (total >= 0) expect(res.total).toBe(total);
      total = res.total;
      expect(res.items.length).toBeLessThanOrEqual(limit);
      out.push(...ids(res));
      cursor = res.nextCursor;
      pages++;
    } while (cursor);
    return { ids: out, total, pages };
  }

  it('lists the children of an agent in (level, id) order, page by page', () => {
    const all = index.listChildren({ id: 'l0-coordinator', page: { limit: 1000, cursor: '' } });
    expect(all.total).toBe(40);
    expect(all.nextCursor).toBe('');
    expect(ids(all).filter((id) => id.startsWith('l1-'))).toHaveLength(22);
    expect(ids(all)).toEqual([...ids(all)].sort());
    const paged = allPages((page) => index.listChildren({ id: 'l0-coordinator', page }), 15);
    expect(paged).toEqual({ ids: ids(all), total: 40, pages: 3 });
    expect(ids(index.listChildren({ id: 'l2-fitflow-01-03', page: undefined }))).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((k) => `l3-fitflow-01-03-0${k}`));
    expect(index.listChildren({ id: 'l3-fitflow-01-03-01', page: undefined })).toEqual({ items: [], total: 0, nextCursor: '' });
    expect(failure(() => index.listChildren({ id: 'ghost', page: undefined })).code).toBe('NOT_FOUND');
  });

  it('walks a subtree breadth-first, root excluded, to a maximum depth', () => {
    const sub = index.subtree({ id: 'l1-simstudio-02', maxDepth: 0, page: { limit: 1000, cursor: '' } });
    expect(sub.total).toBe(72);
    expect(sub.items.map((a) => a.level)).toEqual([...Array(8).fill(2), ...Array(64).fill(3)]);
    expect(ids(sub)).not.toContain('l1-simstudio-02');
    // Breadth-first: the L3 layer comes in the order of the L2 parents.
    expect(sub.items.slice(8).map((a) => a.parentId)).toEqual(sub.items.slice(0, 8).flatMap((p) => Array(8).fill(p.id)));
    const one = index.subtree({ id: 'l1-simstudio-02', maxDepth: 1, page: undefined });
    expect(one.total).toBe(8);
    expect(one.items.every((a) => a.parentId === 'l1-simstudio-02')).toBe(true);
    expect(index.subtree({ id: 'l1-simstudio-02', maxDepth: 7, page: undefined }).total).toBe(72);
    expect(index.subtree({ id: 'l3-simstudio-01-01-01', maxDepth: 0, page: undefined })).toEqual({ items: [], total: 0, nextCursor: '' });
  });

  it('pages a subtree with cursors that cross depth layers', () => {
    const whole = index.subtree({ id: 'l0-coordinator', maxDepth: 0, page: { limit: 1000, cursor: '' } });
    expect(whole.total).toBe(1624);
    const paged = allPages((page) => index.subtree({ id: 'l0-coordinator', maxDepth: 0, page }), 37);
    expect(paged.total).toBe(1624);
    expect(new Set(paged.ids).size).toBe(1624);
    expect(paged.ids.slice(0, 1000)).toEqual(ids(whole));
    expect(paged.pages).toBe(Math.ceil(1624 / 37));
  });

  it('refuses a cursor from another listing', () => {
    const other = index.subtree({ id: 'l1-fitflow-01', maxDepth: 0, page: { limit: 3, cursor: '' } }).nextCursor;
    expect(other).not.toBe('');
    expect(failure(() => index.subtree({ id: 'l1-ziggie-01', maxDepth: 0, page: { limit: 3, cursor: other } })).code).toBe('VALIDATION_FAILED');
    expect(failure(() => index.subtree({ id: 'l1-ziggie-01', maxDepth: 0, page: { limit: 3, cursor: 'not-a-cursor' } })).code).toBe('VALIDATION_FAILED');
    expect(failure(() => index.subtree({ id: 'l1-ziggie-01', maxDepth: -1, page: undefined })).code).toBe('VALIDATION_FAILED');
    expect(failure(() => index.subtree({ id: 'ghost', maxDepth: 0, page: undefined })).code).toBe('NOT_FOUND');
    // Each listing has its own cursor kind: a list or children cursor is not a subtree position, and back.
    const listed = index.list(listReq({ page: { limit: 3, cursor: '' } })).nextCursor;
    const children = index.listChildren({ id: 'l0-coordinator', page: { limit: 3, cursor: '' } }).nextCursor;
    expect(failure(() => index.subtree({ id: 'l0-coordinator', maxDepth: 0, page: { limit: 3, cursor: listed } })).message).toMatch(/^cursor: /);
    expect(failure(() => index.subtree({ id: 'l0-coordinator', maxDepth: 0, page: { limit: 3, cursor: children } })).code).toBe('VALIDATION_FAILED');
    expect(failure(() => index.list(listReq({ page: { limit: 3, cursor: children } }))).code).toBe('VALIDATION_FAILED');
    expect(failure(() => index.listChildren({ id: 'l0-coordinator', page: { limit: 3, cursor: other } })).code).toBe('VALIDATION_FAILED');
    expect(failure(() => index.list(listReq({ page: { limit: 3, cursor: '99999999999999999999' } }))).code).toBe('VALIDATION_FAILED');
  });

  it('gives the path from L0 to the agent', () => {
    expect(index.path('l3-fitflow-02-03-04').map((a) => a.id)).toEqual(['l0-coordinator', 'l1-fitflow-02', 'l2-fitflow-02-03', 'l3-fitflow-02-03-04']);
    expect(index.path('l0-coordinator').map((a) => a.id)).toEqual(['l0-coordinator']);
    expect(index.path('bmad-qa').map((a) => a.id)).toEqual(['l0-coordinator', 'bmad-qa']);
    expect(failure(() => index.path('ghost')).code).toBe('NOT_FOUND');
  });

  it('survives orphans and parent cycles: each becomes a root', () => {
    const odd = build([agent('a', 1, 'b', ['x']), agent('b', 1, 'a', ['x']), agent('orphan', 2, 'missing', ['x']), agent('kid', 3, 'orphan', ['x'])]).index;
    expect(odd.path('kid').map((a) => a.id)).toEqual(['orphan', 'kid']);
    expect(odd.path('a').map((a) => a.id).sort()).toEqual(['a', 'b']);
    expect(ids(odd.subtree({ id: 'orphan', maxDepth: 0, page: undefined }))).toEqual(['kid']);
    expect(odd.subtree({ id: 'a', maxDepth: 0, page: undefined }).total + odd.subtree({ id: 'b', maxDepth: 0, page: undefined }).total).toBe(1);
  });
});

describe('AgentIndex listings', () => {
  const { index, beat } = build(generateDefaultHierarchy());

  it('combines workspace, level and capability filters', () => {
    const res = index.list(listReq({ workspace: 'fitflow', level: 3, filterLevel: true, capability: 'qa', page: { limit: 1000, cursor: '' } }));
    // 5 L1 × one qa L2 each × 8 L3.
    expect(res.total).toBe(40);
    expect(res.items.every((a) => a.workspace === 'fitflow' && a.level === 3 && a.capabilities.includes('qa'))).toBe(true);
    expect(index.list(listReq({ level: 0, filterLevel: true })).items.map((a) => a.id)).toEqual(['l0-coordinator']);
    expect(index.list(listReq({ level: 0 })).total).toBe(1625);
    expect(index.list(listReq({ workspace: 'nowhere' }))).toEqual({ items: [], total: 0, nextCursor: '' });
  });

  it('filters by status, parent and role', () => {
    beat('l3-ziggie-01-01-01', 'busy', 1);
    beat('l3-fitflow-01-01-01', 'offline');
    expect(index.list(listReq({ status: 'busy' })).items.map((a) => a.id)).toEqual(['l3-ziggie-01-01-01']);
    expect(index.list(listReq({ status: 'offline', workspace: 'fitflow' })).total).toBe(1);
    expect(index.list(listReq({ status: 'idle' })).total).toBe(1623);
    expect(index.list(listReq({ parentId: 'l2-fitflow-01-01' })).total).toBe(8);
    expect(index.list(listReq({ parentId: 'l2-fitflow-01-01', status: 'offline' })).total).toBe(1);
    expect(index.list(listReq({ parentId: 'l0-coordinator', workspace: 'fitflow' })).total).toBe(5);
    expect(index.list(listReq({ role: 'elite-art' })).total).toBe(4);
    expect(index.list(listReq({ role: 'qa-micro', workspace: 'meowping-nft' })).total).toBe(16);
  });

  it('pages by keyset in (level, id) order with a stable total', () => {
    const pageOf = (limit: number, cursor = '') => index.list(listReq({ workspace: 'simstudio', page: { limit, cursor } }));
    const first = pageOf(100);
    expect(first.total).toBe(219);
    const keys = first.items.map((a) => [a.level, a.id] as const);
    expect(keys).toEqual([...keys].sort((x, y) => x[0] - y[0] || (x[1] < y[1] ? -1 : 1)));
    const second = pageOf(100, first.nextCursor);
    const third = pageOf(100, second.nextCursor);
    expect([first.items.length, second.items.length, third.items.length]).toEqual([100, 100, 19]);
    expect(third.nextCursor).toBe('');
    expect(new Set([...first.items, ...second.items, ...third.items].map((a) => a.id)).size).toBe(219);
    // A filtered scan pages the same way.
    const filtered = index.list(listReq({ capability: 'code', page: { limit: 30, cursor: '' } }));
    const rest = index.list(listReq({ capability: 'code', page: { limit: 1000, cursor: filtered.nextCursor } }));
    expect(filtered.items.length + rest.items.length).toBe(filtered.total);
    expect(rest.nextCursor).toBe('');
  });

  it('clamps the page size and refuses a bad cursor', () => {
    expect(index.list(listReq({ page: { limit: 0, cursor: '' } })).items).toHaveLength(100);
    expect(index.list(listReq({ page: { limit: 5000, cursor: '' } })).items).toHaveLength(MAX_PAGE_LIMIT);
    expect(failure(() => index.list(listReq({ page: { limit: 5, cursor: '!!' } }))).code).toBe('VALIDATION_FAILED');
    const wrongShape = Buffer.from(JSON.stringify({ level: 1 })).toString('base64url');
    expect(failure(() => index.list(listReq({ page: { limit: 5, cursor: wrongShape } }))).code).toBe('VALIDATION_FAILED');
  });

  it('summarises the hierarchy for the given workspaces', () => {
    const all = { total: 1625, levels: [{ level: 0, count: 1 }, { level: 1, count: 22 }, { level: 2, count: 176 }, { level: 3, count: 1408 }], elite: 15, bmad: 3 };
    expect(index.summary([])).toEqual(all);
    expect(index.summary(['fitflow', '*'])).toEqual(all);
    expect(index.summary(['fitflow'])).toEqual({ total: 365, levels: [{ level: 1, count: 5 }, { level: 2, count: 40 }, { level: 3, count: 320 }], elite: 0, bmad: 0 });
    expect(index.summary(['ziggie', 'meowping-nft', 'ziggie'])).toEqual({
      total: 1 + 18 + 8 * 73 + 2 * 73,
      levels: [{ level: 0, count: 1 }, { level: 1, count: 10 }, { level: 2, count: 80 }, { level: 3, count: 640 }],
      elite: 15,
      bmad: 3,
    });
    expect(index.summary(['nowhere'])).toEqual({ total: 0, levels: [], elite: 0, bmad: 0 });
  });

  it('lists the capabilities sorted', () => {
    expect(index.capabilities()).toEqual(['art', 'code', 'content', 'coordinate', 'data', 'design', 'ops', 'qa', 'research']);
  });
});
