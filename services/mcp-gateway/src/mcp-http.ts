import type { ServerResponse } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { ErrorCodes, ZiggieError } from '@ziggie/contracts';
import { bodyRefusalOf } from '@ziggie/platform';
import type { McpExtra } from './config';

/**
 * HTTP-level pieces of /mcp that are not MCP sessions: JSON-RPC error bodies for refusals,
 * RFC 9728 protected resource metadata and its WWW-Authenticate challenges, and which browser
 * origins may call.
 */

/** JSON-RPC error codes the transport uses (the SDK's own for -32000 and -32001). */
export const RpcCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  InvalidParams: -32602,
  InternalError: -32603,
  /** Generic transport refusal (bad header, wrong media type, ...). */
  Server: -32000,
  SessionNotFound: -32001,
  /** Refused by authentication or authorisation, not by the request's shape. */
  Forbidden: -32003,
  Unavailable: -32004,
  Limited: -32029,
} as const;

/** A refusal of an HTTP request to /mcp: its status, and the JSON-RPC error the body carries. */
export class McpHttpError extends Error {
  constructor(
    readonly status: number,
    readonly rpcCode: number,
    message: string,
    readonly data?: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const PROTECTED_RESOURCE_PATH = '/.well-known/oauth-protected-resource';
const RESOURCE_NAME = 'Ziggie Command Center MCP gateway';

/** The JSON-RPC code a ZiggieError travels with over HTTP (its `code` goes in `data`). */
export function rpcCodeOf(z: ZiggieError): number {
  const http = ErrorCodes[z.code].http;
  if (z.code === 'MCP_SESSION_NOT_FOUND') return RpcCode.SessionNotFound;
  if (http === 401 || http === 403) return RpcCode.Forbidden;
  if (http === 429) return RpcCode.Limited;
  if (http === 503) return RpcCode.Unavailable;
  if (http === 400 || http === 404 || http === 413) return RpcCode.InvalidRequest;
  return RpcCode.InternalError;
}

/** Refusals of the body while it was read, before any route ran, as JSON-RPC errors. */
export function bodyRefusal(err: unknown): McpHttpError | undefined {
  const refused = bodyRefusalOf(err);
  switch (refused?.reason) {
    case 'invalid-json':
      return new McpHttpError(400, RpcCode.ParseError, 'Parse error: the request body is not valid JSON', { code: 'VALIDATION_FAILED' });
    case 'not-an-object':
      // A bare JSON value is valid JSON, but no JSON-RPC message.
      return new McpHttpError(400, RpcCode.InvalidRequest, 'Invalid Request: the body is not a JSON-RPC 2.0 message', { code: 'VALIDATION_FAILED' });
    case 'too-large':
      return new McpHttpError(413, RpcCode.Server, 'Payload too large: the request body exceeds 2 MB', { code: 'PAYLOAD_TOO_LARGE' });
    case 'media-type':
      return new McpHttpError(415, RpcCode.Server, 'Unsupported Media Type: Content-Type must be application/json', { code: 'UNSUPPORTED_MEDIA_TYPE' });
    default:
      return undefined;
  }
}

/** Whether a Content-Type is application/json (any parameters). */
export function isJsonContentType(value: string | undefined): boolean {
  return value !== undefined && /^application\/json\s*(;|$)/i.test(value.trim());
}

/** What /mcp's HTTP helpers read of a request. */
export type McpHttpRequest = Pick<FastifyRequest, 'headers' | 'protocol'>;

const quoted = (s: string): string => `"${s.replace(/[\\"]/g, '\\$&').replace(/[\r\n]+/g, ' ')}"`;

/** Loopback host names a browser may show in an Origin. */
const LOOPBACK_ORIGIN_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

export function isLoopbackBind(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** http(s)://localhost:*, http(s)://127.0.0.1:*, http(s)://[::1]:* exactly as browsers send an Origin. */
export function isLoopbackOrigin(origin: string): boolean {
  try {
    const url = new URL(origin);
    return (url.protocol === 'http:' || url.protocol === 'https:') && LOOPBACK_ORIGIN_HOSTS.has(url.hostname) && url.origin === origin;
  } catch {
    return false;
  }
}

/** Which browser origins may use /mcp: the configured list, plus loopback pages when the service is bound to loopback. */
export class OriginPolicy {
  private readonly allowed: Set<string>;
  private readonly loopback: boolean;

  constructor(extra: McpExtra, bindHost: string) {
    this.allowed = new Set(
      extra.MCP_ALLOWED_ORIGINS.split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );
    this.loopback = extra.MCP_ALLOW_LOOPBACK_ORIGINS === 'true' || (extra.MCP_ALLOW_LOOPBACK_ORIGINS === 'auto' && isLoopbackBind(bindHost));
  }

  allows(origin: string): boolean {
    return this.allowed.has(origin) || (this.loopback && isLoopbackOrigin(origin));
  }
}

/** Response headers a browser page may read, and request headers it may send (CORS). */
const EXPOSED = 'Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate, Retry-After';
const ALLOWED_HEADERS = 'Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID, X-Ziggie-Workspace, traceparent, tracestate';

export function corsHeaders(res: ServerResponse, origin: string): void {
  res.setHeader('Access-Control-Allow-Origin', origin);
  res.setHeader('Access-Control-Expose-Headers', EXPOSED);
  const vary = res.getHeader('Vary');
  res.setHeader('Vary', vary === undefined ? 'Origin' : `${String(vary)}, Origin`);
}

export function preflight(res: ServerResponse): void {
  res.writeHead(204, { 'Access-Control-Allow-Methods': 'GET, POST, DELETE', 'Access-Control-Allow-Headers': ALLOWED_HEADERS, 'Access-Control-Max-Age': '600' });
  res.end();
}

/**
 * The protected resource's identity and its authorization servers (MCP authorization, resource
 * server side; RFC 9728 metadata, RFC 6750 challenges).
 */
export class ResourceMetadata {
  private readonly servers: string[];
  private readonly scopes: string[];

  constructor(
    private readonly extra: McpExtra,
    issuer: string,
  ) {
    const configured = extra.MCP_AUTHORIZATION_SERVERS;
    this.servers =
      configured !== undefined
        ? configured
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : /^https?:\/\//.test(issuer)
          ? [issuer]
          : [];
    this.scopes = extra.MCP_OAUTH_SCOPES.split(/[\s,]+/).filter(Boolean);
  }

  get authorizationServers(): readonly string[] {
    return this.servers;
  }

  /** The public URL of /mcp: configured, or this request's scheme and Host (loopback default). */
  resourceUrl(req: McpHttpRequest): URL {
    if (this.extra.MCP_PUBLIC_URL) return new URL(this.extra.MCP_PUBLIC_URL);
    const host = req.headers.host && /^[A-Za-z0-9.\-:[\]]+$/.test(req.headers.host) ? req.headers.host : 'localhost';
    return new URL(`${req.protocol === 'https' ? 'https' : 'http'}://${host}/mcp`);
  }

  /** Where the metadata of the resource at `resource` lives: the well-known path inserted before its path (RFC 9728 §3.1). */
  metadataUrl(req: McpHttpRequest): string {
    const resource = this.resourceUrl(req);
    const path = resource.pathname === '/' ? '' : resource.pathname.replace(/\/$/, '');
    return `${resource.origin}${PROTECTED_RESOURCE_PATH}${path}`;
  }

  /**
   * The metadata document. At the path-specific URL the resource is /mcp's public URL; at the
   * bare well-known URL (which clients try last) it is the origin, as RFC 9728 §3.3 requires the
   * resource to be the URL the well-known suffix was inserted into.
   */
  document(req: McpHttpRequest, atRoot: boolean): Record<string, unknown> {
    const resource = this.resourceUrl(req);
    return {
      resource: atRoot ? resource.origin : resource.href,
      authorization_servers: this.servers,
      bearer_methods_supported: ['header'],
      ...(this.scopes.length > 0 ? { scopes_supported: this.scopes } : {}),
      resource_name: RESOURCE_NAME,
    };
  }

  /** WWW-Authenticate for a refused token: 401 always, 403 when the token lacks what the call needs. */
  challenge(req: McpHttpRequest, status: number, z: ZiggieError): string | undefined {
    const params: string[] = [];
    if (status === 401) {
      // RFC 6750 §3.1: no error code when the request carried no token at all.
      if (z.code !== 'AUTH_MISSING_TOKEN') params.push(`error="invalid_token"`, `error_description=${quoted(z.message)}`);
    } else if (status === 403 && (z.code === 'AUTH_FORBIDDEN' || z.code === 'AUTH_WORKSPACE_FORBIDDEN')) {
      params.push(`error="insufficient_scope"`, `error_description=${quoted(z.message)}`);
    } else {
      return undefined;
    }
    params.push(`resource_metadata=${quoted(this.metadataUrl(req))}`);
    if (this.scopes.length > 0) params.push(`scope=${quoted(this.scopes.join(' '))}`);
    return `Bearer ${params.join(', ')}`;
  }
}
