import { pb } from '@ziggie/contracts';
import { McpGatewayPort } from './peers';

/** How long a fetched catalog is trusted. */
export const CATALOG_TTL_MS = 30_000;
/** Catalogs kept at once (one per distinct role and workspace set). */
const MAX_ENTRIES = 100;

export interface CatalogView {
  tools: Map<string, pb.Tool>;
  servers: pb.Server[];
  fetchedAt: number;
}

/**
 * The MCP gateway's tool catalog as a principal sees it, fetched (ListTools, every page, and
 * ListServers) at most once per TTL per role/workspace set. Concurrent lookups share one fetch.
 */
export class ToolCatalog {
  private readonly entries = new Map<string, Promise<CatalogView>>();

  constructor(
    private readonly gateway: McpGatewayPort,
    private readonly now: () => number = Date.now,
    private readonly ttlMs = CATALOG_TTL_MS,
  ) {}

  /** The catalog; `maxAgeMs` asks for one at most that old (fetched again otherwise). */
  async get(principal: pb.Principal, maxAgeMs = this.ttlMs): Promise<CatalogView> {
    const key = `${[...principal.roles].sort().join(',')}|${[...principal.workspaces].sort().join(',')}`;
    const cached = this.entries.get(key);
    if (cached) {
      const view = await cached.catch(() => undefined);
      if (view && this.now() - view.fetchedAt <= Math.min(maxAgeMs, this.ttlMs)) return view;
    }
    // Another caller may have started a newer fetch while this one waited: join it.
    const latest = this.entries.get(key);
    if (latest && latest !== cached) return latest;
    const fetching = this.fetch(principal);
    this.entries.delete(key);
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, fetching);
    fetching.catch(() => {
      if (this.entries.get(key) === fetching) this.entries.delete(key);
    });
    return fetching;
  }

  private async fetch(principal: pb.Principal): Promise<CatalogView> {
    // Servers only tell which upstreams are LLM adapters; without them tool steps still work.
    const [tools, servers] = await Promise.all([this.gateway.listTools(principal), this.gateway.listServers(principal).catch(() => [])]);
    return { tools: new Map(tools.map((t) => [t.name, t])), servers, fetchedAt: this.now() };
  }
}
