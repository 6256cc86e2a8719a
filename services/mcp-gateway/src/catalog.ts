import { createHash } from 'node:crypto';
import type { Prompt, Resource, Tool } from '@modelcontextprotocol/sdk/types.js';
import { Cursors } from '@ziggie/contracts';
import { stringify } from 'safe-stable-stringify';
import type { ToolProvider } from './providers/provider';

export const MAX_TOOL_NAME = 64;

/** A tool as the gateway exposes it. */
export interface CatalogTool {
  /** Namespaced, unique, at most 64 characters: server.tool */
  name: string;
  provider: ToolProvider;
  /** The upstream's own name for it. */
  upstreamName: string;
  /** The upstream's definition, exactly as received (what is hashed and pinned). */
  definition: Tool;
  hash: string;
}

export interface CatalogPrompt {
  name: string;
  provider: ToolProvider;
  upstreamName: string;
  definition: Prompt;
}

export interface CatalogResource {
  uri: string;
  provider: ToolProvider;
  definition: Resource;
}

/** A tool definition pinned on first sight; a later different definition waits for approval. */
export interface PinRecord {
  name: string;
  server: string;
  pinnedHash: string;
  pinned: Tool;
  pendingHash?: string;
  pending?: Tool;
  approvedBy?: string;
  updatedAt: string;
}

const hashes = new WeakMap<object, string>();

/** sha256 over the whole definition in canonical (key-sorted) JSON, computed once per object. */
export function definitionHash(definition: unknown): string {
  const cached = typeof definition === 'object' && definition !== null ? hashes.get(definition) : undefined;
  if (cached) return cached;
  const hash = createHash('sha256').update(stringify(definition) ?? '').digest('hex');
  if (typeof definition === 'object' && definition !== null) hashes.set(definition, hash);
  return hash;
}

const shortHash = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 8);

/**
 * server.tool, with characters outside MCP's tool-name alphabet replaced; names longer than 64
 * keep a prefix and end in a hash of the upstream name, so the result is stable across restarts
 * and replicas.
 */
export function namespacedName(server: string, upstreamName: string): string {
  const clean = upstreamName.replace(/[^A-Za-z0-9_.-]/g, '_');
  const full = `${server}.${clean}`;
  if (full.length <= MAX_TOOL_NAME && clean === upstreamName) return full;
  const suffix = `_${shortHash(upstreamName)}`;
  return `${server}.${clean}`.slice(0, MAX_TOOL_NAME - suffix.length) + suffix;
}

/**
 * Assigns names to every provider's items: providers in name order, items in upstream name
 * order, so when two map to the same name the same one always wins and the other gets _2, _3…
 */
function assignNames<T>(providers: ToolProvider[], items: (p: ToolProvider) => readonly T[], nameOf: (t: T) => string): { provider: ToolProvider; upstreamName: string; name: string; item: T }[] {
  const taken = new Set<string>();
  const out: { provider: ToolProvider; upstreamName: string; name: string; item: T }[] = [];
  for (const p of [...providers].sort((a, b) => a.name.localeCompare(b.name))) {
    for (const item of [...items(p)].sort((a, b) => nameOf(a).localeCompare(nameOf(b)))) {
      const base = namespacedName(p.name, nameOf(item));
      let name = base;
      for (let n = 2; taken.has(name); n++) name = `${base.slice(0, MAX_TOOL_NAME - String(n).length - 1)}_${n}`;
      taken.add(name);
      out.push({ provider: p, upstreamName: nameOf(item), name, item });
    }
  }
  return out;
}

/**
 * One page of a name-sorted list after the cursor's name (keyset: stable while the list changes).
 * The cursor is the shared codec's `mcp.catalog` kind: the catalog lists (tools over REST and
 * gRPC, tools/prompts/resources over MCP) are all keyed by name; anything else is refused with
 * VALIDATION_FAILED.
 */
export function pageOf<T extends { name: string }>(sorted: readonly T[], cursor: string | undefined, limit: number): { items: T[]; nextCursor?: string } {
  const after = Cursors.mcpCatalog.decode(cursor)?.name;
  let start = 0;
  if (after !== undefined) {
    // Binary search: sorted by name with the same comparison as below.
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareNames(sorted[mid]!.name, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  const items = sorted.slice(start, start + limit);
  return { items, nextCursor: start + items.length < sorted.length ? Cursors.mcpCatalog.encode({ name: items[items.length - 1]!.name }) : undefined };
}

export const compareNames = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export interface CatalogSnapshot {
  /** Listed and callable, sorted by name. */
  tools: CatalogTool[];
  byName: Map<string, CatalogTool>;
  /** Held back: their definition differs from the pin. */
  quarantined: Map<string, CatalogTool>;
  prompts: CatalogPrompt[];
  promptsByName: Map<string, CatalogPrompt>;
  resources: CatalogResource[];
  resourcesByUri: Map<string, CatalogResource>;
}

/**
 * Builds the visible catalog from the providers and the pins. `pin` returns the pin for a
 * name or undefined when the tool was never seen (it is then pinned by the caller); `exposed`
 * applies each server's allow list; `listedWhileDown` keeps a provider that is not ready listed
 * with the items it last had (a server on a GPU pool scaled to zero).
 */
export function buildCatalog(
  providers: ToolProvider[],
  pin: (name: string) => PinRecord | undefined,
  exposed: (provider: ToolProvider, upstreamName: string) => boolean = () => true,
  listedWhileDown: (provider: ToolProvider) => boolean = () => false,
): { snapshot: CatalogSnapshot; unpinned: CatalogTool[] } {
  const ready = providers.filter((p) => p.status === 'ready' || listedWhileDown(p));
  const tools: CatalogTool[] = [];
  const quarantined = new Map<string, CatalogTool>();
  const unpinned: CatalogTool[] = [];
  // Tools a server's allow list leaves out are never listed, pinned or callable.
  for (const t of assignNames(ready, (p) => p.tools.filter((tool) => exposed(p, tool.name)), (t) => t.name)) {
    const entry: CatalogTool = { name: t.name, provider: t.provider, upstreamName: t.upstreamName, definition: t.item, hash: definitionHash(t.item) };
    const p = pin(t.name);
    if (!p) {
      unpinned.push(entry);
      tools.push(entry);
    } else if (p.pinnedHash === entry.hash) tools.push(entry);
    else quarantined.set(entry.name, entry);
  }
  tools.sort((a, b) => compareNames(a.name, b.name));
  const prompts = assignNames(ready, (p) => p.prompts, (p) => p.name)
    .map((p) => ({ name: p.name, provider: p.provider, upstreamName: p.upstreamName, definition: p.item }))
    .sort((a, b) => compareNames(a.name, b.name));
  // Resource URIs are already global; on a clash the provider first in name order keeps it.
  const resourcesByUri = new Map<string, CatalogResource>();
  for (const p of [...ready].sort((a, b) => a.name.localeCompare(b.name))) {
    for (const r of p.resources) if (!resourcesByUri.has(r.uri)) resourcesByUri.set(r.uri, { uri: r.uri, provider: p, definition: r });
  }
  const resources = [...resourcesByUri.values()].sort((a, b) => compareNames(a.uri, b.uri));
  return {
    snapshot: {
      tools,
      byName: new Map(tools.map((t) => [t.name, t])),
      quarantined,
      prompts,
      promptsByName: new Map(prompts.map((p) => [p.name, p])),
      resources,
      resourcesByUri,
    },
    unpinned,
  };
}
