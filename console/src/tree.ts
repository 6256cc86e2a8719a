import type { pb } from '@ziggie/contracts';

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
