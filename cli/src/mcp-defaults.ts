/**
 * The tool policies `ziggie up` writes into `<data dir>/mcp-servers.json` next to the bundled MCP
 * servers, and the one-time upgrade of a file an earlier version wrote without them.
 */

/** The shape of a policy rule as mcp-gateway reads it (services/mcp-gateway/src/policy.ts, PolicyRuleSchema). */
export interface McpPolicyRule {
  effect: 'allow' | 'deny' | 'require_approval';
  tools: string[];
  roles?: string[];
  workspaces?: string[];
  reason?: string;
}

/**
 * Bundled tools that hand the caller the server's host rather than do work: `everything.get-env`
 * returns the server process's whole environment (credentials given to it in `env` included),
 * and `everything.gzip-file-as-resource` fetches any http(s) URL from the host, which reaches
 * what the host can reach (loopback services, cloud metadata). Only admins may call them by
 * default. The filesystem server (`files`) is confined to the artifacts directory and has no
 * such tool.
 */
export const HOST_REVEALING_TOOLS: readonly string[] = ['everything.get-env', 'everything.gzip-file-as-resource'];

export const HOST_REVEALING_REASON = "reveals the server's environment or network: admin only (see docs/mcp-gateway.md to allow it)";

/**
 * The first matching rule decides: admins are allowed, everyone else is denied. The allow rule
 * comes first so a token with several roles, one of them admin, is treated as an admin; a new
 * role is denied until a rule says otherwise.
 */
export function hostRevealingPolicies(tools: readonly string[] = HOST_REVEALING_TOOLS): McpPolicyRule[] {
  return [
    { effect: 'allow', tools: [...tools], roles: ['admin'], reason: 'admins may inspect the server' },
    { effect: 'deny', tools: [...tools], reason: HOST_REVEALING_REASON },
  ];
}

export interface PolicyUpgrade {
  /** The file's new content, or undefined when nothing changes. */
  content?: Record<string, unknown>;
  /** The tools the default rules were added for. */
  added: string[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * An mcp-servers.json written before the default policies existed gets them once: for each
 * host-revealing tool whose server the file still lists, and that no rule of the file names
 * exactly. A rule naming the tool (allow, deny or require_approval, for any roles) is the
 * operator's decision and leaves that tool alone, so this never re-adds what an operator
 * replaced. The rules go first: a broad rule of the file (`everything.*`) would otherwise decide
 * before them. A file that is not the expected shape is left to mcp-gateway to report.
 */
export function upgradePolicies(file: unknown): PolicyUpgrade {
  if (!isRecord(file) || !Array.isArray(file.servers)) return { added: [] };
  if (file.policies !== undefined && !Array.isArray(file.policies)) return { added: [] };
  const policies: unknown[] = Array.isArray(file.policies) ? file.policies : [];
  const servers = new Set(file.servers.filter(isRecord).map((s) => s.name));
  const named = new Set(policies.filter(isRecord).flatMap((p) => (Array.isArray(p.tools) ? p.tools : [])));
  const added = HOST_REVEALING_TOOLS.filter((tool) => servers.has(tool.slice(0, tool.indexOf('.'))) && !named.has(tool));
  if (added.length === 0) return { added };
  return { content: { ...file, policies: [...hostRevealingPolicies(added), ...policies] }, added };
}
