import { isIP } from 'node:net';
import { z } from 'zod';
import { DefaultPorts, GrpcPeer, GrpcPeers, ServiceName } from './services';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const port = z.coerce.number().int().min(0).max(65535);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .optional()
  .transform((v) => (v === undefined ? undefined : ['true', '1', 'yes'].includes(v)));

/** Every variable the platform reads. Services add their own with `extra`. */
const platformEnv = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  HTTP_HOST: z.string().default('127.0.0.1'),
  HTTP_PORT: port.optional(),
  GRPC_HOST: z.string().default('127.0.0.1'),
  GRPC_PORT: port.optional(),
  GRPC_TLS_CA_FILE: optionalString,
  GRPC_TLS_CERT_FILE: optionalString,
  GRPC_TLS_KEY_FILE: optionalString,
  NATS_URL: z.string().default('nats://127.0.0.1:4222'),
  NATS_TLS_CA_FILE: optionalString,
  NATS_TLS_CERT_FILE: optionalString,
  NATS_TLS_KEY_FILE: optionalString,
  DATABASE_URL: optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/ }).optional()),
  DATA_DIR: z.string().default('.ziggie/data'),
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalString.pipe(z.url().optional()),
  ZIGGIE_JWT_SECRET: optionalString.pipe(z.string().min(16, 'at least 16 characters').optional()),
  JWT_PUBLIC_KEY_FILE: optionalString,
  JWT_JWKS_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
  JWT_JWKS_CACHE_MAX_AGE_SECONDS: z.coerce.number().int().min(10).max(86_400).default(600),
  JWT_ALGORITHMS: z
    .string()
    .default('HS256')
    .transform((v) => v.split(',').map((a) => a.trim()))
    .pipe(z.array(z.enum(['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'PS256']))),
  JWT_ISSUER: z.string().min(1).default('ziggie-local'),
  JWT_AUDIENCE: z.string().min(1).default('ziggie-api'),
  JWT_CLOCK_TOLERANCE_SECONDS: z.coerce.number().int().min(0).max(60).default(30),
  /** Longest lifetime a token may claim: `exp - iat`, or `exp - now` without `iat` (1 minute to 1 year). */
  JWT_MAX_TOKEN_LIFETIME_SECONDS: z.coerce.number().int().min(60).max(31_536_000).default(86_400),
  ZIGGIE_AUTH: z.enum(['on', 'off']).default('on'),
  CONSUL_HTTP_ADDR: optionalString.pipe(z.url().optional()),
  CONSUL_HTTP_TOKEN: optionalString,
  DISCOVERY_ADVERTISE_HOST: optionalString,
  ORCHESTRATOR_GRPC_ADDR: optionalString,
  AGENT_REGISTRY_GRPC_ADDR: optionalString,
  WORKSPACE_COORD_GRPC_ADDR: optionalString,
  MCP_GATEWAY_GRPC_ADDR: optionalString,
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(10_000),
  PRETTY_LOGS: bool,
});

export interface TlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface PlatformConfig {
  service: ServiceName;
  env: 'development' | 'production' | 'test';
  logLevel: string;
  prettyLogs: boolean;
  http: { host: string; port: number };
  grpc: { host: string; port: number; tls?: TlsFiles };
  nats: { url: string; tls?: TlsFiles };
  /** `url` is set whenever the service has a database: loadConfig's `database` option requires it. */
  db: { url?: string };
  dataDir: string;
  otel: { endpoint?: string };
  auth: {
    /** False only with ZIGGIE_AUTH=off, which validation allows on a loopback, non-production service. */
    enabled: boolean;
    secret?: string;
    publicKeyFile?: string;
    jwksUrl?: string;
    jwksCacheMaxAgeSeconds: number;
    algorithms: string[];
    issuer: string;
    audience: string;
    clockToleranceSeconds: number;
    /**
     * Longest lifetime a token may claim (JWT_MAX_TOKEN_LIFETIME_SECONDS): `exp - iat`, or, for a
     * token without `iat`, `exp - now` (plus the clock tolerance).
     */
    maxTokenLifetimeSeconds: number;
  };
  discovery: { consulAddr?: string; consulToken?: string; advertiseHost?: string; peers: Record<GrpcPeer, string> };
  shutdownGraceMs: number;
}

function tlsFrom(ca?: string, cert?: string, key?: string): TlsFiles | undefined {
  return ca || cert || key ? { caFile: ca, certFile: cert, keyFile: key } : undefined;
}

/** 127.0.0.0/8, ::1 and localhost: addresses no other machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare.toLowerCase() === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || bare === '0:0:0:0:0:0:0:1' || /^::ffff:127\./i.test(bare);
  return false;
}

function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
}

/**
 * Keys fetched in clear text could be swapped by anyone on the path, so plain http is accepted
 * only for a key server on this machine; credentials in the URL would end up in logs.
 */
function jwksUrlProblems(value: string): string[] {
  if (!value) return [];
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return []; // the schema reports an unparsable URL
  }
  const problems: string[] = [];
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) problems.push('JWT_JWKS_URL: must be https unless the host is a loopback address');
  if (url.username || url.password) problems.push('JWT_JWKS_URL: must not contain credentials');
  return problems;
}

export interface LoadConfigOptions {
  /** The service keeps state in PostgreSQL (it has migrations): DATABASE_URL is required. */
  database?: boolean;
}

/**
 * Validates the environment once, at start-up, into a typed object. Every bad or missing
 * variable is listed in one ConfigError. Nothing else in a service reads process.env.
 */
export function loadConfig<E extends z.ZodRawShape = Record<string, never>>(
  service: ServiceName,
  extraShape?: E,
  env: NodeJS.ProcessEnv = process.env,
  options: LoadConfigOptions = {},
): PlatformConfig & { extra: z.infer<z.ZodObject<E>> } {
  const problems: string[] = [];
  const base = platformEnv.safeParse(env);
  const extra = z.object(extraShape ?? ({} as E)).safeParse(env);
  if (!base.success) problems.push(...formatIssues(base.error));
  if (!extra.success) problems.push(...formatIssues(extra.error));
  // Cross-variable rules read the raw values, so they are reported even when other variables are bad.
  const raw = (name: string) => (env[name] ?? '').trim();
  const algorithms = (raw('JWT_ALGORITHMS') || 'HS256').split(',').map((a) => a.trim());
  if (!raw('ZIGGIE_JWT_SECRET') && !raw('JWT_PUBLIC_KEY_FILE') && !raw('JWT_JWKS_URL') && algorithms.some((a) => a.startsWith('HS'))) {
    problems.push('ZIGGIE_JWT_SECRET: required for HS* algorithms (or set JWT_PUBLIC_KEY_FILE or JWT_JWKS_URL, and JWT_ALGORITHMS)');
  }
  if (raw('JWT_PUBLIC_KEY_FILE') && raw('JWT_JWKS_URL')) {
    problems.push('JWT_PUBLIC_KEY_FILE/JWT_JWKS_URL: give one or the other, not both');
  }
  problems.push(...jwksUrlProblems(raw('JWT_JWKS_URL')));
  if (options.database && !raw('DATABASE_URL')) {
    problems.push(`DATABASE_URL: required: ${service} keeps its state in PostgreSQL (postgres://user:password@host:port/database)`);
  }
  if (raw('ZIGGIE_AUTH') === 'off') {
    // The switch exists for benchmark baselines; it must never leave a reachable or production service open.
    if (raw('NODE_ENV') === 'production') problems.push('ZIGGIE_AUTH: off is not allowed when NODE_ENV=production');
    if (!isLoopbackHost(raw('HTTP_HOST') || '127.0.0.1')) problems.push('ZIGGIE_AUTH: off is allowed only when HTTP_HOST is a loopback address');
  }
  if (Boolean(raw('GRPC_TLS_CERT_FILE')) !== Boolean(raw('GRPC_TLS_KEY_FILE'))) {
    problems.push('GRPC_TLS_CERT_FILE/GRPC_TLS_KEY_FILE: give both or neither');
  }
  if (problems.length > 0 || !base.success || !extra.success) throw new ConfigError(problems);

  const e = base.data;
  const defaults = DefaultPorts[service];
  const peers = Object.fromEntries(
    (Object.keys(GrpcPeers) as GrpcPeer[]).map((peer) => [
      peer,
      (e[GrpcPeers[peer]] as string | undefined) ?? `127.0.0.1:${DefaultPorts[peer].grpc}`,
    ]),
  ) as Record<GrpcPeer, string>;
  return {
    service,
    env: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    prettyLogs: e.PRETTY_LOGS ?? false,
    http: { host: e.HTTP_HOST, port: e.HTTP_PORT ?? defaults.http },
    grpc: {
      host: e.GRPC_HOST,
      port: e.GRPC_PORT ?? defaults.grpc ?? 0,
      tls: tlsFrom(e.GRPC_TLS_CA_FILE, e.GRPC_TLS_CERT_FILE, e.GRPC_TLS_KEY_FILE),
    },
    nats: { url: e.NATS_URL, tls: tlsFrom(e.NATS_TLS_CA_FILE, e.NATS_TLS_CERT_FILE, e.NATS_TLS_KEY_FILE) },
    db: { url: e.DATABASE_URL },
    dataDir: e.DATA_DIR,
    otel: { endpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT },
    auth: {
      enabled: e.ZIGGIE_AUTH === 'on',
      secret: e.ZIGGIE_JWT_SECRET,
      publicKeyFile: e.JWT_PUBLIC_KEY_FILE,
      jwksUrl: e.JWT_JWKS_URL,
      jwksCacheMaxAgeSeconds: e.JWT_JWKS_CACHE_MAX_AGE_SECONDS,
      algorithms: e.JWT_ALGORITHMS,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      clockToleranceSeconds: e.JWT_CLOCK_TOLERANCE_SECONDS,
      maxTokenLifetimeSeconds: e.JWT_MAX_TOKEN_LIFETIME_SECONDS,
    },
    discovery: {
      consulAddr: e.CONSUL_HTTP_ADDR,
      consulToken: e.CONSUL_HTTP_TOKEN,
      advertiseHost: e.DISCOVERY_ADVERTISE_HOST,
      peers,
    },
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    extra: extra.data,
  };
}

/** Variable names the platform reads, for docs and checks. */
export const PLATFORM_ENV_VARS = Object.keys(platformEnv.shape);
