import { z } from 'zod';

/**
 * The configuration of one upstream MCP server (or model backend) behind mcp-gateway: the
 * format of MCP_SERVERS_FILE entries and of POST /v1/mcp/servers.
 */
export const McpServerName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'lowercase letters, digits, _ and -, at most 32');

/** A header value given inline, or a reference to a secret in the environment or a mounted file. */
export const SecretValue = z.union([
  z.string(),
  z.object({ secretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/) }).strict(),
  z.object({ secretFile: z.string().min(1) }).strict(),
]);
export type SecretValue = z.infer<typeof SecretValue>;

/** A GPU inference pool of mcp-gateway (GPU_POOLS); the same name as the workspace-coord pool it serves. */
export const GpuPoolName = z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, _ and -, at most 63, starting with a letter');

/** Calls in flight and calls per minute (each optional). */
const CallLimits = z
  .object({
    concurrency: z.number().int().min(1).optional(),
    perMinute: z.number().int().min(1).optional(),
  })
  .strict();

const common = {
  name: McpServerName,
  /**
   * The GPU pool whose pods serve this upstream: a call waits (scaling the pool up from zero if
   * need be) until the pool has a ready replica, and counts as in flight on it.
   */
  pool: GpuPoolName.optional(),
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
  /** Per-caller limits of each of this server's tools, overriding the gateway defaults. */
  limits: CallLimits.optional(),
  /** What the upstream itself can take: calls in flight and per minute, all callers and tools together. */
  capacity: CallLimits.optional(),
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

