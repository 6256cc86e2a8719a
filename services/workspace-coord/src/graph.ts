/** Workspace id → the workspaces it depends on. */
export type DependencyGraph = ReadonlyMap<string, readonly string[]>;

/**
 * The shortest dependency cycle through `node`, as the path `[node, …, node]`, or undefined.
 * The graph is acyclic before a change, so a change to one node's dependencies can only close
 * a cycle that passes through that node; checking it alone is enough.
 */
export function cycleThrough(graph: DependencyGraph, node: string): string[] | undefined {
  const cameFrom = new Map<string, string>();
  const queue: string[] = [];
  for (const dep of graph.get(node) ?? []) {
    if (dep === node) return [node, node];
    if (!cameFrom.has(dep)) {
      cameFrom.set(dep, node);
      queue.push(dep);
    }
  }
  for (let i = 0; i < queue.length; i++) {
    const current = queue[i]!;
    for (const dep of graph.get(current) ?? []) {
      if (dep === node) {
        const path = [node];
        for (let at: string | undefined = current; at !== undefined && at !== node; at = cameFrom.get(at)) path.push(at);
        return [node, ...path.slice(1).reverse(), node];
      }
      if (!cameFrom.has(dep)) {
        cameFrom.set(dep, current);
        queue.push(dep);
      }
    }
  }
  return undefined;
}

export function formatCycle(path: readonly string[]): string {
  return path.join(' → ');
}

export interface Affected {
  /** The given workspaces first (deduplicated, in the given order), then their dependents breadth first. */
  workspaces: string[];
  /** One per dependent: "<dependent> depends on <workspace>", naming the workspace it was reached from. */
  reasons: string[];
}

/** The given workspaces and every workspace that depends on them, directly or transitively. */
export function affectedWorkspaces(graph: DependencyGraph, roots: readonly string[]): Affected {
  const dependents = new Map<string, string[]>();
  for (const [id, deps] of graph) {
    for (const dep of new Set(deps)) {
      const list = dependents.get(dep);
      if (list) list.push(id);
      else dependents.set(dep, [id]);
    }
  }
  for (const list of dependents.values()) list.sort();

  const seen = new Set<string>();
  const workspaces: string[] = [];
  for (const root of roots) {
    if (seen.has(root)) continue;
    seen.add(root);
    workspaces.push(root);
  }
  const reasons: string[] = [];
  for (let i = 0; i < workspaces.length; i++) {
    const current = workspaces[i]!;
    for (const dependent of dependents.get(current) ?? []) {
      if (seen.has(dependent)) continue;
      seen.add(dependent);
      workspaces.push(dependent);
      reasons.push(`${dependent} depends on ${current}`);
    }
  }
  return { workspaces, reasons };
}
