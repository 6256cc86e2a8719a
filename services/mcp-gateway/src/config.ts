import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { PlatformConfig } from '@ziggie/platform';
import { normalizeUpstream, SecretValue, UpstreamConfig, UpstreamInput, UpstreamSchema } from '@ziggie/contracts';
import { PolicyRuleSchema } from './policy';
import { gpuPoolEnv } from './pools/config';

export const mcpEnv = {
  /** JSON file listing upstream MCP servers and adapters (format in docs/mcp-gateway.md). */
  MCP_SERVERS_FILE: z.string().optional(),
  /** Default time limit of one tool call. */
  MCP_CALL_TIMEOUT_MS: z.coerce.number().int().min(100).default(60_000),
  /** Largest upstream response accepted, in bytes. */
  MCP_MAX_RESPONSE_BYTES: z.coerce.number().int().min(1024).default(4 * 1024 * 1024),
  /** Each caller's calls of a tool (in flight, per minute) unless the tool's server sets its own `limits`. */
  MCP_TOOL_CONCURRENCY: z.coerce.number().int().min(1).default(10),
  MCP_TOOL_PER_MINUTE: z.coerce.number().int().min(1).default(100),
  /** Per-user and per-workspace call rates across all tools (0: no limit). */
  MCP_USER_PER_MINUTE: z.coerce.number().int().min(0).default(0),
  MCP_WORKSPACE_PER_MINUTE: z.coerce.number().int().min(0).default(0),
  /** Limits are shared by every replica through Redis when set; in process otherwise. */
  REDIS_URL: z.string().optional(),
  /**
   * CIDR ranges upstream URLs may point at although private, link-local or metadata
   * (comma-separated). Loopback is allowed by default for the local stack; set "" in a cluster.
   */
  MCP_SSRF_ALLOW: z.string().default('127.0.0.0/8,::1/128'),
  /** Origins allowed to open /mcp sessions from a browser (comma-separated); none by default. */
  MCP_ALLOWED_ORIGINS: z.string().default(''),
  /**
   * Whether browser pages on loopback origins (http://localhost:*, http://127.0.0.1:*,
   * http://[::1]:*) may use /mcp. `auto`: yes when HTTP_HOST is a loopback address.
   */
  MCP_ALLOW_LOOPBACK_ORIGINS: z.enum(['auto', 'true', 'false']).default('auto'),
  /**
   * Public URL of /mcp (the protected resource's identifier in its RFC 9728 metadata and in
   * WWW-Authenticate challenges). Unset: derived from each request's Host (fine on loopback; set
   * it behind a proxy).
   */
  MCP_PUBLIC_URL: z.preprocess((v) => (v === '' ? undefined : v), z.url({ protocol: /^https?$/ }).optional()),
  /**
   * Issuer URLs of the OAuth authorization servers whose tokens /mcp accepts (comma-separated),
   * listed as `authorization_servers`. Unset: JWT_ISSUER when it is an http(s) URL, else none.
   */
  MCP_AUTHORIZATION_SERVERS: z.string().optional(),
  /** Scopes listed as `scopes_supported` and asked for in challenges (space- or comma-separated); none by default. */
  MCP_OAUTH_SCOPES: z.string().default(''),
  /** SSE `retry` (ms) sent with the priming event of every stream on protocol 2025-11-25 and later. */
  MCP_SSE_RETRY_MS: z.coerce.number().int().min(0).max(600_000).default(1_000),
  /**
   * Server-to-client messages each session keeps for resumption with Last-Event-ID (0: no
   * resumption). A client resumes the stream it lost moments ago: 100 covers that, where 1,000
   * per session held about 3 MB of a busy session's memory (bench:mcp --soak-s, 32 sessions).
   */
  MCP_RESUME_EVENTS: z.coerce.number().int().min(0).max(100_000).default(100),
  /** ... and at most this many bytes of them (JSON), the oldest dropped first. */
  MCP_RESUME_BYTES: z.coerce.number().int().min(0).default(1024 * 1024),
  /** Idle MCP sessions expire after this long. */
  MCP_SESSION_TTL_MS: z.coerce.number().int().min(10_000).default(30 * 60_000),
  /** Consecutive upstream failures that open a replica's circuit, and how long it stays open. */
  MCP_BREAKER_FAILURES: z.coerce.number().int().min(1).default(5),
  MCP_BREAKER_HALF_OPEN_MS: z.coerce.number().int().min(100).default(10_000),
  /** How often a replica shares its per-tool call window with the others (JetStream KV), when it changed. */
  MCP_STATS_FLUSH_MS: z.coerce.number().int().min(100).max(60_000).default(5_000),
  /** GPU inference pools (GPU_POOLS or GPU_POOLS_FILE, POD_NAMESPACE, KUBECONFIG). */
  ...gpuPoolEnv,
};

export type McpExtra = z.infer<z.ZodObject<typeof mcpEnv>>;
export type McpConfig = PlatformConfig & { extra: McpExtra };

export { normalizeUpstream, SecretValue, UpstreamSchema };
export type { UpstreamConfig, UpstreamInput };

export const UpstreamsFileSchema = z
  .object({
    servers: z.array(z.preprocess(normalizeUpstream, UpstreamSchema)),
    policies: z.array(PolicyRuleSchema).default([]),
  })
  .strict();
export type UpstreamsFile = z.infer<typeof UpstreamsFileSchema>;

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** Validates one upstream entry (file or API); the message lists every problem. */
export function parseUpstream(raw: unknown): { ok: true; value: UpstreamConfig } | { ok: false; message: string } {
  const parsed = UpstreamSchema.safeParse(normalizeUpstream(raw));
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, message: issues(parsed.error) };
}

/** Reads and validates the upstream list and policies; a bad file stops the service with every problem listed. */
export function readUpstreams(file: string | undefined): UpstreamsFile {
  if (!file) return { servers: [], policies: [] };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`MCP_SERVERS_FILE ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const parsed = UpstreamsFileSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`MCP_SERVERS_FILE ${file}: ${issues(parsed.error)}`);
  const names = parsed.data.servers.map((s) => s.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new Error(`MCP_SERVERS_FILE ${file}: server name ${dup} appears twice`);
  return parsed.data;
}

/** Resolves a header or environment value; a missing secret is a clear start-up error for that upstream. */
export function resolveSecret(value: SecretValue): string {
  if (typeof value === 'string') return value;
  if ('secretEnv' in value) {
    const v = process.env[value.secretEnv];
    if (v === undefined) throw new Error(`secret environment variable ${value.secretEnv} is not set`);
    return v;
  }
  return readFileSync(value.secretFile, 'utf8').trim();
}

export function resolveSecrets(values: Record<string, SecretValue>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, resolveSecret(v)]));
}
