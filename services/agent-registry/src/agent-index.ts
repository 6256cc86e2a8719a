import { Cursors, type CursorCodec, invalidCursor, type LevelIdPosition, pb, PayloadOf, Subject, ZiggieError } from '@ziggie/contracts';
import { IndexedHeap } from './indexed-heap';

export type AgentStatus = 'idle' | 'busy' | 'offline';
export type Heartbeat = PayloadOf<Subject.AgentHeartbeat>;

/** What the index keeps of an agent row. */
export interface AgentRecord {
  id: string;
  name: string;
  level: number;
  parentId: string | null;
  role: string;
  workspace: string;
  capabilities: readonly string[];
  team: string | null;
}

export interface AgentIndexOptions {
  /** A runtime whose last beat for an agent is older than this no longer counts for it. */
  offlineAfterMs: number;
  /** Milliseconds, never going back; the default follows the wall clock from a monotonic source. */
  now?: () => number;
}

interface RuntimeState {
  status: AgentStatus;
  load: number;
  at: number;
  stale: boolean;
}

interface Entry {
  readonly rec: AgentRecord;
  readonly id: string;
  readonly level: number;
  parent?: Entry;
  readonly children: Entry[];
  /** Position in the pre-order walk of the forest, the last position of its subtree, and depth. */
  tin: number;
  tout: number;
  depth: number;
  /** Live state per runtime that has beaten for the agent; absent while none has. */
  runtimes?: Map<string, RuntimeState>;
  status: AgentStatus;
  /** Sum of the loads reported by fresh runtimes. */
  load: number;
  /** Selections since the agent's last heartbeat: they count as load until a beat reports it. */
  reserved: number;
  score: number;
  lastSeen: number;
  /** The selection heaps the agent is in, one per capability (while not offline). */
  readonly heaps: IndexedHeap<Entry>[];
}

interface Expiry {
  entry: Entry;
  runtimeId: string;
  at: number;
}

interface Counts {
  total: number;
  levels: Map<number, number>;
  elite: number;
  bmad: number;
}

export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 1000;
export const MAX_BATCH_SELECTIONS = 10_000;

const monotonicNow = (): number => performance.timeOrigin + performance.now();

/** (level, id): the stable order of every listing. */
function compareKey(e: Entry, level: number, id: string): number {
  return e.level - level || (e.id < id ? -1 : e.id > id ? 1 : 0);
}

/** Index of the first entry in [lo, hi) ordered after (level, id). */
function after(list: readonly Entry[], level: number, id: string, lo = 0, hi = list.length): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKey(list[mid]!, level, id) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the first entry at `level` or deeper in a list sorted by (level, id). */
function levelStart(list: readonly Entry[], level: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.level < level) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the first entry of a layer (sorted by tin) whose tin is greater than `tin`. */
function afterTin(layer: readonly Entry[], tin: number): number {
  let lo = 0;
  let hi = layer.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (layer[mid]!.tin <= tin) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Keyset position (level, id) of an entry, in the cursor of the listing that handed it out. */
function encodeCursor(codec: CursorCodec<LevelIdPosition>, e: Entry): string {
  return codec.encode({ level: e.level, id: e.id });
}

function limitOf(page: pb.PageRequest | undefined): number {
  return Math.min(Math.max(page?.limit || DEFAULT_PAGE_LIMIT, 1), MAX_PAGE_LIMIT);
}

/** Lower score first, then the deeper level, then the id. */
function better(a: Entry, b: Entry): boolean {
  return a.score < b.score || (a.score === b.score && (a.level > b.level || (a.level === b.level && a.id < b.id)));
}

function countInto(c: Counts, e: Entry): void {
  c.total++;
  if (e.rec.team === 'bmad') c.bmad++;
  else if (e.rec.team) c.elite++;
  else c.levels.set(e.level, (c.levels.get(e.level) ?? 0) + 1);
}

function emptyCounts(): Counts {
  return { total: 0, levels: new Map(), elite: 0, bmad: 0 };
}

/**
 * Every agent in memory with its live state: selection, hierarchy queries and listings read
 * only this. Selection keeps, per (capability, workspace, level), a heap of the live agents
 * ordered by load then id: a pick compares the top of one heap per level, and the reservation
 * or heartbeat that changes an agent's load moves it in O(log n) per capability. Heartbeats
 * update per (agent, runtime) state; runtimes that fall silent expire through a FIFO of beats
 * checked on every call, so nothing runs on a timer and an idle registry does no work.
 */
export class AgentIndex {
  private readonly byId = new Map<string, Entry>();
  /** Every agent by (level, id). */
  private readonly ordered: Entry[];
  private readonly byWorkspace = new Map<string, Entry[]>();
  /** Entries by depth in the forest, each layer in pre-order (breadth-first order of a subtree). */
  private readonly layers: Entry[][] = [];
  /** `capability \n workspace` → heaps by level, deepest level first. */
  private readonly pools = new Map<string, Array<{ level: number; leads: boolean; heap: IndexedHeap<Entry> }>>();
  private readonly capabilityList: string[];
  private readonly counts = new Map<string, Counts>();
  private readonly allCounts = emptyCounts();
  private readonly expiries: Expiry[] = [];
  private expiryHead = 0;
  private readonly offlineAfterMs: number;
  private readonly now: () => number;

  constructor(records: Iterable<AgentRecord>, options: AgentIndexOptions) {
    this.offlineAfterMs = options.offlineAfterMs;
    this.now = options.now ?? monotonicNow;
    for (const rec of records) {
      if (this.byId.has(rec.id)) throw new Error(`duplicate agent id ${rec.id}`);
      this.byId.set(rec.id, { rec, id: rec.id, level: rec.level, children: [], tin: 0, tout: 0, depth: 0, status: 'idle', load: 0, reserved: 0, score: 0, lastSeen: 0, heaps: [] });
    }
    this.ordered = [...this.byId.values()].sort((a, b) => compareKey(a, b.level, b.id));
    const capabilities = new Set<string>();
    for (const e of this.ordered) {
      const parent = e.rec.parentId === null ? undefined : this.byId.get(e.rec.parentId);
      if (parent) {
        e.parent = parent;
        parent.children.push(e);
      }
      const inWorkspace = this.byWorkspace.get(e.rec.workspace) ?? [];
      if (inWorkspace.length === 0) this.byWorkspace.set(e.rec.workspace, inWorkspace);
      inWorkspace.push(e);
      for (const cap of e.rec.capabilities) capabilities.add(cap);
      this.count(e);
    }
    // Heaps once every parent knows its children: agents that lead others have their own heaps.
    for (const e of this.byId.values()) {
      for (const cap of new Set(e.rec.capabilities)) e.heaps.push(this.heapFor(cap, e.rec.workspace, e.level, e.children.length > 0));
    }
    this.capabilityList = [...capabilities].sort();
    this.walkForest();
    for (const e of this.ordered) for (const heap of e.heaps) heap.push(e);
  }

  get size(): number {
    return this.ordered.length;
  }

  private heapFor(capability: string, workspace: string, level: number, leads: boolean): IndexedHeap<Entry> {
    const key = `${capability}\n${workspace}`;
    let levels = this.pools.get(key);
    if (!levels) this.pools.set(key, (levels = []));
    let slot = levels.find((l) => l.level === level && l.leads === leads);
    if (!slot) {
      slot = { level, leads, heap: new IndexedHeap<Entry>((a, b) => a.score < b.score || (a.score === b.score && a.id < b.id)) };
      levels.push(slot);
      levels.sort((a, b) => b.level - a.level);
    }
    return slot.heap;
  }

  private count(e: Entry): void {
    let ws = this.counts.get(e.rec.workspace);
    if (!ws) this.counts.set(e.rec.workspace, (ws = emptyCounts()));
    countInto(ws, e);
    countInto(this.allCounts, e);
  }

  /**
   * Numbers the forest in pre-order (tin), records each subtree's last number (tout) and
   * depth, and fills the layers. Agents without a known parent are roots; an agent caught in
   * a parent cycle becomes a root too, so every agent is numbered once.
   */
  private walkForest(): void {
    const seen = new Set<Entry>();
    const order: Entry[] = [];
    const walk = (root: Entry): void => {
      const stack: Array<{ e: Entry; depth: number }> = [{ e: root, depth: 0 }];
      while (stack.length > 0) {
        const { e, depth } = stack.pop()!;
        if (seen.has(e)) continue;
        seen.add(e);
        e.tin = order.length;
        e.depth = depth;
        order.push(e);
        (this.layers[depth] ??= []).push(e);
        for (let i = e.children.length - 1; i >= 0; i--) if (!seen.has(e.children[i]!)) stack.push({ e: e.children[i]!, depth: depth + 1 });
      }
    };
    for (const e of this.ordered) if (!e.parent) walk(e);
    for (const e of this.ordered) if (!seen.has(e)) walk(e);
    // Pre-order: a subtree is the run of numbers from its root to the last one of its descendants.
    for (let i = order.length - 1; i >= 0; i--) {
      const e = order[i]!;
      e.tout = Math.max(e.tout, e.tin);
      // Below depth 0 an agent was reached from its parent (walk roots have depth 0).
      if (e.parent && e.depth > 0) e.parent.tout = Math.max(e.parent.tout, e.tout);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Live state

  /** Applies one heartbeat; false when the agent is unknown. */
  heartbeat(beat: Heartbeat): boolean {
    const now = this.now();
    this.expire(now);
    const e = this.byId.get(beat.agentId);
    if (!e) return false;
    const runtimes = (e.runtimes ??= new Map());
    const state = runtimes.get(beat.runtimeId);
    if (state) {
      state.status = beat.status;
      state.load = beat.load;
      state.at = now;
      state.stale = false;
    } else {
      runtimes.set(beat.runtimeId, { status: beat.status, load: beat.load, at: now, stale: false });
    }
    e.reserved = 0;
    this.expiries.push({ entry: e, runtimeId: beat.runtimeId, at: now });
    this.refresh(e);
    return true;
  }

  /** Marks runtimes whose last beat is older than the limit as stale, oldest first. */
  private expire(now = this.now()): void {
    const cutoff = now - this.offlineAfterMs;
    const q = this.expiries;
    while (this.expiryHead < q.length && q[this.expiryHead]!.at < cutoff) {
      const { entry, runtimeId, at } = q[this.expiryHead++]!;
      const state = entry.runtimes?.get(runtimeId);
      // A later beat from the same runtime has its own place further on.
      if (!state || state.stale || state.at !== at) continue;
      // A stale runtime counts for nothing; the last one is kept to remember the agent was heard.
      if (entry.runtimes!.size > 1) entry.runtimes!.delete(runtimeId);
      else state.stale = true;
      this.refresh(entry);
    }
    if (this.expiryHead > 1024 && this.expiryHead * 2 > q.length) {
      q.splice(0, this.expiryHead);
      this.expiryHead = 0;
    }
  }

  /**
   * Aggregates the runtimes into status and load: busy if a fresh runtime says busy, else idle
   * if one says idle, else offline (every runtime stale or saying offline). A runtime that
   * says offline adds no load. Never heard from: idle.
   */
  private refresh(e: Entry): void {
    let load = 0;
    let busy = false;
    let idle = false;
    let lastSeen = 0;
    if (e.runtimes && e.runtimes.size > 0) {
      for (const r of e.runtimes.values()) {
        if (r.at > lastSeen) lastSeen = r.at;
        if (r.stale || r.status === 'offline') continue;
        load += r.load;
        if (r.status === 'busy') busy = true;
        else idle = true;
      }
      e.status = busy ? 'busy' : idle ? 'idle' : 'offline';
    } else {
      e.status = 'idle';
    }
    e.load = load;
    e.lastSeen = lastSeen;
    e.score = load + e.reserved;
    if (e.status === 'offline') for (const heap of e.heaps) heap.remove(e);
    else for (const heap of e.heaps) heap.push(e);
  }

  private reserve(e: Entry): void {
    e.reserved++;
    e.score = e.load + e.reserved;
    for (const heap of e.heaps) heap.update(e);
  }

  // ---------------------------------------------------------------------------------------
  // Selection

  /**
   * The agent for a step: the named one if live, else among the live agents with the
   * capability in the workspace (at the level, when filtered) the least loaded, counting
   * selections since its last heartbeat; ties go to the deepest level, then the id.
   */
  select(req: pb.SelectAgentRequest): pb.Agent {
    this.expire();
    return this.toPb(this.pick(req));
  }

  /** One result per request, in order; each pick counts for the next ones. */
  selectMany(requests: readonly pb.SelectAgentRequest[]): pb.SelectAgentResult[] {
    if (requests.length > MAX_BATCH_SELECTIONS) throw new ZiggieError('VALIDATION_FAILED', `at most ${MAX_BATCH_SELECTIONS} selections per call`);
    this.expire();
    return requests.map((req) => {
      try {
        return { agent: this.toPb(this.pick(req)), errorCode: '', errorMessage: '' };
      } catch (err) {
        if (!(err instanceof ZiggieError)) throw err;
        return { agent: undefined, errorCode: err.code, errorMessage: err.message };
      }
    });
  }

  private pick(req: pb.SelectAgentRequest): Entry {
    if (req.agentId) {
      const e = this.byId.get(req.agentId);
      if (!e) throw new ZiggieError('NOT_FOUND', `agent ${req.agentId} not found`);
      if (e.status === 'offline') throw new ZiggieError('AGENT_UNAVAILABLE', `agent ${e.id} is offline`);
      this.reserve(e);
      return e;
    }
    let best: Entry | undefined;
    for (const { level, leads, heap } of this.pools.get(`${req.capability}\n${req.workspace}`) ?? []) {
      if (req.filterLevel && level !== req.level) continue;
      if (req.withChildren && !leads) continue;
      const top = heap.peek();
      if (top && (!best || better(top, best))) best = top;
    }
    if (!best) {
      const where = `${req.filterLevel ? ` at level ${req.level}` : ''}${req.withChildren ? ' with agents under it' : ''}`;
      throw new ZiggieError('AGENT_UNAVAILABLE', `no live agent with capability ${req.capability} in workspace ${req.workspace}${where}`);
    }
    this.reserve(best);
    return best;
  }

  // ---------------------------------------------------------------------------------------
  // Reads

  private mustGet(id: string): Entry {
    const e = this.byId.get(id);
    if (!e) throw new ZiggieError('NOT_FOUND', `agent ${id} not found`);
    return e;
  }

  get(id: string): pb.Agent {
    this.expire();
    return this.toPb(this.mustGet(id));
  }

  /** Filters combine; keyset pages over (level, id). */
  list(req: pb.ListAgentsRequest): pb.ListAgentsResponse {
    this.expire();
    const checks: Array<(e: Entry) => boolean> = [];
    let source: readonly Entry[];
    if (req.parentId) {
      source = this.byId.get(req.parentId)?.children ?? [];
      if (req.workspace) checks.push((e) => e.rec.workspace === req.workspace);
    } else if (req.workspace) {
      source = this.byWorkspace.get(req.workspace) ?? [];
    } else {
      source = this.ordered;
    }
    if (req.capability) checks.push((e) => e.rec.capabilities.includes(req.capability));
    if (req.status) checks.push((e) => e.status === req.status);
    if (req.role) checks.push((e) => e.rec.role === req.role);
    // Sorted by level first: a level is one contiguous run.
    const lo = req.filterLevel ? levelStart(source, req.level) : 0;
    const hi = req.filterLevel ? levelStart(source, req.level + 1) : source.length;
    return this.page(Cursors.agents, source, lo, hi, checks, req.page);
  }

  listChildren(req: pb.ListChildrenRequest): pb.ListAgentsResponse {
    this.expire();
    const children = this.mustGet(req.id).children;
    return this.page(Cursors.agentChildren, children, 0, children.length, [], req.page);
  }

  private page(
    codec: CursorCodec<LevelIdPosition>,
    source: readonly Entry[],
    lo: number,
    hi: number,
    checks: Array<(e: Entry) => boolean>,
    page: pb.PageRequest | undefined,
  ): pb.ListAgentsResponse {
    const limit = limitOf(page);
    let start = lo;
    const c = codec.decode(page?.cursor);
    if (c) start = after(source, c.level, c.id, lo, hi);
    let items: Entry[];
    let total: number;
    let more: boolean;
    if (checks.length === 0) {
      items = source.slice(start, Math.min(start + limit, hi));
      total = hi - lo;
      more = start + items.length < hi;
    } else {
      items = [];
      total = 0;
      let fromStart = 0;
      for (let i = lo; i < hi; i++) {
        const e = source[i]!;
        if (!checks.every((check) => check(e))) continue;
        total++;
        if (i < start) continue;
        fromStart++;
        if (items.length < limit) items.push(e);
      }
      more = fromStart > items.length;
    }
    return { items: items.map((e) => this.toPb(e)), total, nextCursor: more ? encodeCursor(codec, items[items.length - 1]!) : '' };
  }

  /** Breadth-first below the agent (root excluded), `maxDepth` levels down (0: all). */
  subtree(req: pb.GetSubtreeRequest): pb.ListAgentsResponse {
    this.expire();
    const root = this.mustGet(req.id);
    if (req.maxDepth < 0) throw new ZiggieError('VALIDATION_FAILED', 'max_depth must be 0 (all) or more');
    const deepest = req.maxDepth > 0 ? Math.min(root.depth + req.maxDepth, this.layers.length - 1) : this.layers.length - 1;
    // Descendants at each depth are one run of that layer: tin in (root.tin, root.tout].
    const runs: Array<{ layer: Entry[]; lo: number; hi: number }> = [];
    let total = 0;
    for (let d = root.depth + 1; d <= deepest; d++) {
      const layer = this.layers[d]!;
      const lo = afterTin(layer, root.tin);
      const hi = afterTin(layer, root.tout);
      if (lo === hi) break;
      runs.push({ layer, lo, hi });
      total += hi - lo;
    }
    let run = 0;
    let at = runs[0]?.lo ?? 0;
    let offset = 0;
    const position = Cursors.agentSubtree.decode(req.page?.cursor);
    if (position) {
      const c = this.byId.get(position.id);
      run = c ? c.depth - root.depth - 1 : -1;
      if (!c || run < 0 || run >= runs.length || c.tin <= root.tin || c.tin > root.tout) throw invalidCursor('not a position in this subtree');
      at = afterTin(runs[run]!.layer, c.tin);
      for (let i = 0; i < run; i++) offset += runs[i]!.hi - runs[i]!.lo;
      offset += at - runs[run]!.lo;
    }
    const limit = limitOf(req.page);
    const items: Entry[] = [];
    while (run < runs.length && items.length < limit) {
      const r = runs[run]!;
      if (at >= r.hi) {
        run++;
        at = runs[run]?.lo ?? 0;
        continue;
      }
      items.push(r.layer[at++]!);
    }
    const more = offset + items.length < total;
    return { items: items.map((e) => this.toPb(e)), total, nextCursor: more ? encodeCursor(Cursors.agentSubtree, items[items.length - 1]!) : '' };
  }

  /** From the root (L0) down to the agent. */
  path(id: string): pb.Agent[] {
    this.expire();
    const chain: Entry[] = [];
    const seen = new Set<Entry>();
    for (let e: Entry | undefined = this.mustGet(id); e && !seen.has(e); e = e.parent) {
      seen.add(e);
      chain.push(e);
    }
    return chain.reverse().map((e) => this.toPb(e));
  }

  /** Counts for the given workspaces; none, or "*", means all. */
  summary(workspaces: readonly string[] = []): pb.HierarchySummary {
    let counts = this.allCounts;
    if (workspaces.length > 0 && !workspaces.includes('*')) {
      counts = emptyCounts();
      for (const ws of new Set(workspaces)) {
        const c = this.counts.get(ws);
        if (!c) continue;
        counts.total += c.total;
        counts.elite += c.elite;
        counts.bmad += c.bmad;
        for (const [level, n] of c.levels) counts.levels.set(level, (counts.levels.get(level) ?? 0) + n);
      }
    }
    return {
      total: counts.total,
      levels: [...counts.levels.entries()].sort(([a], [b]) => a - b).map(([level, count]) => ({ level, count })),
      elite: counts.elite,
      bmad: counts.bmad,
    };
  }

  capabilities(): string[] {
    return [...this.capabilityList];
  }

  /** Agents by level and live status, for the metrics. */
  statusCounts(): Array<{ level: number; status: AgentStatus; count: number }> {
    this.expire();
    const counts = new Map<string, { level: number; status: AgentStatus; count: number }>();
    for (const e of this.ordered) {
      const key = `${e.level}|${e.status}`;
      const c = counts.get(key);
      if (c) c.count++;
      else counts.set(key, { level: e.level, status: e.status, count: 1 });
    }
    return [...counts.values()];
  }

  /** The agent record, or undefined (for callers that need more than the wire shape). */
  record(id: string): AgentRecord | undefined {
    return this.byId.get(id)?.rec;
  }

  private toPb(e: Entry): pb.Agent {
    return {
      id: e.id,
      name: e.rec.name,
      level: e.level,
      parentId: e.rec.parentId ?? '',
      role: e.rec.role,
      workspace: e.rec.workspace,
      capabilities: [...e.rec.capabilities],
      status: e.status,
      load: e.load,
      lastSeenAt: e.lastSeen ? new Date(e.lastSeen).toISOString() : '',
    };
  }
}
