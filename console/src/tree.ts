import type { PageView, pb } from '@ziggie/contracts';

export interface TreeRow {
  agent: pb.Agent;
  depth: number;
  expanded: boolean;
  /** Expanded, but its children have not arrived yet. */
  loading: boolean;
  /** Leaves (L3) have no children to open. */
  leaf: boolean;
}

/** The deepest level of the hierarchy: its agents have no reports. */
export const LEAF_LEVEL = 3;

/**
 * The rows a tree shows, in order: each root, then (when expanded) its children, depth first.
 * Only rows of expanded branches exist, so a tree of 100,000 agents costs what is open.
 */
export function flattenTree(roots: readonly pb.Agent[], childrenOf: (id: string) => readonly pb.Agent[] | undefined, expanded: ReadonlySet<string>): TreeRow[] {
  const rows: TreeRow[] = [];
  const visit = (agent: pb.Agent, depth: number, seen: Set<string>) => {
    // A cycle in bad data must not hang the page.
    if (seen.has(agent.id)) return;
    seen.add(agent.id);
    const leaf = agent.level >= LEAF_LEVEL;
    const open = !leaf && expanded.has(agent.id);
    const children = open ? childrenOf(agent.id) : undefined;
    rows.push({ agent, depth, expanded: open, loading: open && children === undefined, leaf });
    for (const child of children ?? []) visit(child, depth + 1, seen);
  };
  const seen = new Set<string>();
  for (const r of roots) visit(r, 0, seen);
  return rows;
}

/** The most pages `allPages` reads: 200 pages of 500 is a branch of 100,000 agents. */
export const MAX_PAGES = 200;

/**
 * Every item of a list, page after page: a branch of the tree shows all its children, and the L0
 * of a large fleet has more than the API's largest page (1,388 L1 specialists at 100,000 agents).
 */
export async function allPages<T>(fetchPage: (cursor: string | undefined) => Promise<PageView<T>>, maxPages = MAX_PAGES): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < maxPages; i++) {
    const page = await fetchPage(cursor);
    items.push(...page.items);
    // A cursor that does not move would ask for the same page forever.
    if (!page.nextCursor || page.nextCursor === cursor) break;
    cursor = page.nextCursor;
  }
  return items;
}
