import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { PlatformConfig } from '@ziggie/platform';

export const mcpEnv = {
  /** JSON file listing upstream MCP servers (format in the README). */
  MCP_SERVERS_FILE: z.string().optional(),
  /** Default time limit of one tool call. */
  MCP_CALL_TIMEOUT_MS: z.coerce.number().int().min(100).default(60_000),
};

export type McpConfig = PlatformConfig & { extra: { MCP_SERVERS_FILE?: string; MCP_CALL_TIMEOUT_MS: number } };

const serverName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'lowercase letters, digits, _ and -, at most 32');

export const UpstreamSchema = z.discriminatedUnion('transport', [
  z
    .object({
      name: serverName,
      transport: z.literal('stdio'),
      command: z.string().min(1),
      args: z.array(z.string()).default([]),
      /** The child gets only a minimal inherited environment plus these. */
      env: z.record(z.string(), z.string()).default({}),
      cwd: z.string().optional(),
    })
    .strict(),
  z
    .object({
      name: serverName,
      transport: z.literal('http'),
      url: z.url(),
      headers: z.record(z.string(), z.string()).default({}),
    })
    .strict(),
]);
export type UpstreamConfig = z.infer<typeof UpstreamSchema>;

export const UpstreamsFileSchema = z.object({ servers: z.array(UpstreamSchema) }).strict();

/** Reads and validates the upstream list; a bad file stops the service with every problem listed. */
export function readUpstreams(file: string | undefined): UpstreamConfig[] {
  if (!file) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`MCP_SERVERS_FILE ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const parsed = UpstreamsFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`MCP_SERVERS_FILE ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const names = parsed.data.servers.map((s) => s.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new Error(`MCP_SERVERS_FILE ${file}: server name ${dup} appears twice`);
  return parsed.data.servers;
}
