import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { PlatformConfig } from '@ziggie/platform';
import { PolicyRuleSchema } from './policy';

export const mcpEnv = {
  /** JSON file listing upstream MCP servers and adapters (format in docs/mcp-gateway.md). */
  MCP_SERVERS_FILE: z.string().optional(),
  /** Default time limit of one tool call. */
  MCP_CALL_TIMEOUT_MS: z.coerce.number().int().min(100).default(60_000),
  /** Largest upstream response accepted, in bytes. */
  MCP_MAX_RESPONSE_BYTES: z.coerce.number().int().min(1024).default(4 * 1024 * 1024),
  /** Per-tool limits unless a server sets its own. */
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
  /** Idle MCP sessions expire after this long. */
  MCP_SESSION_TTL_MS: z.coerce.number().int().min(10_000).default(30 * 60_000),
  /** Consecutive upstream failures that open a replica's circuit, and how long it stays open. */
  MCP_BREAKER_FAILURES: z.coerce.number().int().min(1).default(5),
  MCP_BREAKER_HALF_OPEN_MS: z.coerce.number().int().min(100).default(10_000),
};

export type McpExtra = z.infer<z.ZodObject<typeof mcpEnv>>;
export type McpConfig = PlatformConfig & { extra: McpExtra };

const serverName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'lowercase letters, digits, _ and -, at most 32');

/** A header value given inline, or a reference to a secret in the environment or a mounted file. */
export const SecretValue = z.union([
  z.string(),
  z.object({ secretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/) }).strict(),
  z.object({ secretFile: z.string().min(1) }).strict(),
]);
export type SecretValue = z.infer<typeof SecretValue>;

const common = {
  name: serverName,
  /** Only these upstream tool names are exposed (all when absent). */
  allowedTools: z.array(z.string().min(1)).optional(),
  /** Who may see and call this server's tools (everyone with mcp:call when absent). */
  acl: z
    .object({
      roles: z.array(z.string().min(1)).optional(),
      workspaces: z.array(z.string().min(1)).optional(),
    })
    .strict()
    .optional(),
  /** Per-tool limits for this server's tools, overriding the gateway defaults. */
  limits: z
    .object({
      concurrency: z.number().int().min(1).optional(),
      perMinute: z.number().int().min(1).optional(),
    })
    .strict()
    .optional(),
  timeoutMs: z.number().int().min(100).optional(),
  maxResponseBytes: z.number().int().min(1024).optional(),
};

const urls = z.array(z.url()).min(1).max(32);
const headers = z.record(z.string(), SecretValue).default({});

export const UpstreamSchema = z.discriminatedUnion('transport', [
  z
    .object({
      ...common,
      transport: z.literal('stdio'),
      command: z.string().min(1),
      args: z.array(z.string()).default([]),
      /** The child gets only a minimal inherited environment plus these. */
      env: z.record(z.string(), SecretValue).default({}),
      cwd: z.string().optional(),
      /** Child processes to run; calls go to the least busy. */
      replicas: z.number().int().min(1).max(8).default(1),
    })
    .strict(),
  z.object({ ...common, transport: z.literal('http'), urls, headers }).strict(),
  z.object({ ...common, transport: z.literal('sse'), urls, headers }).strict(),
  z.object({ ...common, transport: z.literal('ws'), urls, headers }).strict(),
  z.object({ ...common, transport: z.literal('comfyui'), urls, headers }).strict(),
  z.object({ ...common, transport: z.literal('ollama'), urls, headers }).strict(),
  z
    .object({
      ...common,
      transport: z.literal('openai'),
      urls,
      headers,
      /** Model used when a call names none. */
      defaultModel: z.string().optional(),
    })
    .strict(),
]);
export type UpstreamConfig = z.infer<typeof UpstreamSchema>;
export type UpstreamInput = z.input<typeof UpstreamSchema>;

/** Accepts `url` as a shorthand for a one-element `urls`. */
export function normalizeUpstream(raw: unknown): unknown {
  if (raw && typeof raw === 'object' && !Array.isArray(raw) && 'url' in raw && !('urls' in raw)) {
    const { url, ...rest } = raw as Record<string, unknown>;
    return { ...rest, urls: [url] };
  }
  return raw;
}

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
