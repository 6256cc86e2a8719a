import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const SRC = join(resolve(__dirname, '..', '..', '..'), 'services/mcp-gateway/src');

/**
 * The paths of mcp-gateway's OAuth 2.0 protected resource metadata (RFC 9728), read from its
 * source, so the edge (Kong, the chart's Ingress and Istio policies) follows the code: the
 * path-specific URL of /mcp first, then the bare one.
 */
export function mcpMetadataPaths(): string[] {
  const http = readFileSync(join(SRC, 'mcp-http.ts'), 'utf8');
  const base = /export const PROTECTED_RESOURCE_PATH = '([^']+)'/.exec(http)?.[1];
  if (!base) throw new Error('PROTECTED_RESOURCE_PATH not found in services/mcp-gateway/src/mcp-http.ts');
  const server = readFileSync(join(SRC, 'mcp-server.ts'), 'utf8');
  // The controller's GET routes under it (Nest paths without the leading slash).
  const routes = [...server.matchAll(/@Get\((?:PROTECTED_RESOURCE_PATH\.slice\(1\)|`\$\{PROTECTED_RESOURCE_PATH\.slice\(1\)\}([^`]*)`)\)/g)].map((m) => `${base}${m[1] ?? ''}`);
  if (routes.length === 0) throw new Error('no @Get route on PROTECTED_RESOURCE_PATH in services/mcp-gateway/src/mcp-server.ts');
  return routes.sort((a, b) => b.length - a.length);
}
