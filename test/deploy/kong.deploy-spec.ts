/**
 * deploy/kong/kong.yaml: the decK file for Kong 3.x in front of the local stack.
 *
 * Runs the real `deck validate` (Debian's deck 1.4.0), on the file as committed, on the file as
 * rendered by deploy/kong/render.js, and on broken copies, which it must refuse. deck 1.4.0 checks
 * only entity structure and references offline: plugin `config` is checked by Kong when it loads
 * the file. So this spec also validates every plugin's `config` against a small strict schema
 * that follows Kong 3.x's plugin schemas (kong/plugins/<name>/schema.lua, 3.9) for the fields
 * they define, including their entity checks, and asserts the routing and security rules.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { parse, stringify } from 'yaml';
import { JWT_ISSUER } from '../../cli/src/secret';
import { loadConfig } from '../../libs/platform/src/config/config';
import { mcpMetadataPaths } from './support/mcp-metadata';

const ROOT = join(__dirname, '..', '..');
const KONG_FILE = join(ROOT, 'deploy', 'kong', 'kong.yaml');
const RENDER = join(ROOT, 'deploy', 'kong', 'render.js');
const RENDER_ENV = { DECK_JWT_SECRET: 'test-secret-0123456789abcdef', DECK_REDIS_HOST: '127.0.0.1' };

/** mcp-gateway's OAuth protected resource metadata (RFC 9728), as its code serves it. */
const METADATA_PATHS = mcpMetadataPaths();
/** The public routes: the OpenAPI document, the docs page, the web console and the MCP resource metadata, read-only. */
const PUBLIC_PATHS = ['/openapi.json', '/docs', '/console', ...METADATA_PATHS];
/**
 * Paths that must never be reachable through Kong: Kong's Admin and Status API endpoints, and the
 * services' own health, readiness and metrics endpoints.
 */
const ADMIN_PATHS = [
  '/services', '/routes', '/consumers', '/plugins', '/certificates', '/ca_certificates', '/snis', '/upstreams',
  '/targets', '/config', '/status', '/schemas', '/cache', '/clustering', '/tags', '/vaults', '/keys', '/key-sets',
  '/debug', '/timers', '/endpoints', '/metrics', '/healthz', '/readyz',
];

interface Plugin {
  name: string;
  config?: Record<string, unknown>;
  tags?: string[];
  enabled?: boolean;
  protocols?: string[];
  service?: unknown;
  route?: unknown;
  consumer?: unknown;
}
interface Route {
  name: string;
  paths?: string[];
  methods?: string[];
  protocols?: string[];
  strip_path?: boolean;
  response_buffering?: boolean;
  plugins?: Plugin[];
}
interface Service {
  name: string;
  url?: string;
  routes?: Route[];
  plugins?: Plugin[];
}
interface KongFile {
  _format_version: string;
  services?: Service[];
  routes?: unknown[];
  plugins?: Plugin[];
  consumers?: Array<{ username: string; jwt_secrets?: Array<Record<string, unknown>> }>;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
}

function deckValidate(file: string): SpawnSyncReturns<string> {
  return run('deck', ['validate', '--no-color', '-s', file]);
}

function rendered(): string {
  const res = run('node', [RENDER, KONG_FILE], RENDER_ENV);
  if (res.status !== 0) throw new Error(`render.js failed: ${res.stderr}`);
  return res.stdout;
}

let tmp: string;
let raw: string;
let kong: KongFile;

beforeAll(() => {
  const version = spawnSync('deck', ['version'], { encoding: 'utf8' });
  if (version.error || version.status !== 0) {
    throw new Error('Kong\'s deck is not installed: bash scripts/install-deps.sh deck (Debian package "deck")');
  }
  tmp = mkdtempSync(join(tmpdir(), 'ziggie-kong-'));
  raw = readFileSync(KONG_FILE, 'utf8');
  kong = parse(rendered()) as KongFile;
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function routesOf(file: KongFile): Array<{ service: Service; route: Route }> {
  return (file.services ?? []).flatMap((service) => (service.routes ?? []).map((route) => ({ service, route })));
}

/** The plugins Kong runs on a route: global ones, then the service's, then the route's own (same name wins). */
function effectivePlugins(file: KongFile, service: Service, route: Route): Map<string, Plugin> {
  const byName = new Map<string, Plugin>();
  for (const p of [...(file.plugins ?? []), ...(service.plugins ?? []), ...(route.plugins ?? [])]) {
    if (p.enabled !== false) byName.set(p.name, p);
  }
  return byName;
}

/**
 * The route Kong picks for a request among these prefix routes (no hosts, headers or regexes):
 * the longest matching path whose methods allow the request's.
 */
function routeFor(file: KongFile, method: string, path: string): { service: Service; route: Route } | undefined {
  let best: { service: Service; route: Route; length: number } | undefined;
  for (const { service, route } of routesOf(file)) {
    if (route.methods && !route.methods.includes(method)) continue;
    for (const p of route.paths ?? []) {
      if (path.startsWith(p) && (!best || p.length > best.length)) best = { service, route, length: p.length };
    }
  }
  return best && { service: best.service, route: best.route };
}

function isPublic(route: Route): boolean {
  return (route.paths ?? []).every((p) => PUBLIC_PATHS.includes(p));
}

function allPlugins(file: KongFile): Plugin[] {
  return [
    ...(file.plugins ?? []),
    ...(file.services ?? []).flatMap((s) => [...(s.plugins ?? []), ...(s.routes ?? []).flatMap((r) => r.plugins ?? [])]),
  ];
}

describe('deck validate (Debian deck 1.4.0)', () => {
  it('accepts the committed file and the rendered one', () => {
    const committed = deckValidate(KONG_FILE);
    expect({ status: committed.status, stderr: committed.stderr }).toEqual({ status: 0, stderr: '' });

    const out = join(tmp, 'rendered.yaml');
    const res = run('node', [RENDER, KONG_FILE, '-o', out], RENDER_ENV);
    expect(res.status).toBe(0);
    const check = deckValidate(out);
    expect({ status: check.status, stderr: check.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it.each([
    [
      'a plugin on a route that does not exist',
      (f: KongFile) => {
        f.plugins = [...(f.plugins ?? []), { name: 'request-termination', route: 'no-such-route', config: { status_code: 403 } } as Plugin];
      },
      /route no-such-route for plugin request-termination: entity not found/,
    ],
    [
      'two services with one name',
      (f: KongFile) => {
        f.services = [...(f.services ?? []), { name: 'ziggie-gateway', url: 'http://127.0.0.1:4999' }];
      },
      /inserting service ziggie-gateway: entity already exists/,
    ],
    [
      'two routes with one name',
      (f: KongFile) => {
        f.services![0].routes!.push({ name: 'ziggie-mcp', paths: ['/other'] });
      },
      /inserting route ziggie-mcp: entity already exists/,
    ],
    [
      'a field Kong does not know on a route',
      (f: KongFile) => {
        (f.services![0].routes![0] as unknown as Record<string, unknown>).strip_paths = false;
      },
      /Additional property strip_paths is not allowed/,
    ],
  ])('refuses a broken copy: %s', (_what, breakIt, expected) => {
    const copy = parse(raw) as KongFile;
    breakIt(copy);
    const file = join(tmp, 'broken.yaml');
    writeFileSync(file, stringify(copy));
    const res = deckValidate(file);
    expect(res.status).not.toBe(0);
    expect(res.stderr).toMatch(expected);
  });
});

describe('render.js', () => {
  it('fills both placeholders with quoted values and leaves nothing unrendered', () => {
    const text = rendered();
    expect(text).not.toMatch(/\$\{\{/);
    const file = parse(text) as KongFile;
    expect(file.consumers?.[0].jwt_secrets?.[0].secret).toBe(RENDER_ENV.DECK_JWT_SECRET);
    // A secret with YAML-significant characters survives as the same string.
    const tricky = '#: "quoted" \'single\' {braces} & *star 0123';
    const res = run('node', [RENDER, KONG_FILE], { ...RENDER_ENV, DECK_JWT_SECRET: tricky });
    expect((parse(res.stdout) as KongFile).consumers?.[0].jwt_secrets?.[0].secret).toBe(tricky);
  });

  it('writes nothing and fails while a variable is missing', () => {
    const res = run('node', [RENDER, KONG_FILE], { DECK_JWT_SECRET: '', DECK_REDIS_HOST: '' });
    expect(res.status).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain('DECK_JWT_SECRET');
    expect(res.stderr).toContain('DECK_REDIS_HOST');
  });

  it('keeps the secret out of the committed file', () => {
    const committed = parse(raw) as KongFile;
    expect(committed.consumers?.[0].jwt_secrets?.[0].secret).toBe('${{ env "DECK_JWT_SECRET" }}');
    // Kong refuses the unrendered file: the placeholder is no valid host name (typedefs.host).
    const redis = (allPlugins(committed).find((p) => p.name === 'rate-limiting')?.config?.redis ?? {}) as Record<string, unknown>;
    expect(redis.host).toBe('${{ env "DECK_REDIS_HOST" }}');
    expect(String(redis.host)).not.toMatch(HOST_PATTERN);
  });
});

describe('routes and services', () => {
  it('uses Kong 3.x\'s format version', () => {
    expect(kong._format_version).toBe('3.0');
  });

  it('puts every route under a service, with unique names', () => {
    // deck 1.4.0 does not check that a top-level route's service exists, so there are none.
    expect(kong.routes).toBeUndefined();
    const routes = routesOf(kong);
    expect(routes.map(({ route }) => route.name).sort()).toEqual(['ziggie-api', 'ziggie-docs', 'ziggie-mcp', 'ziggie-mcp-metadata']);
    expect(new Set(kong.services?.map((s) => s.name)).size).toBe(kong.services?.length);
    for (const { service } of routes) expect(service.url).toBeDefined();
  });

  it('routes /v1/ and the docs to the gateway and /mcp and its resource metadata to mcp-gateway, on their default ports, paths kept', () => {
    const target = Object.fromEntries(routesOf(kong).map(({ service, route }) => [route.name, { url: service.url, paths: route.paths }]));
    expect(METADATA_PATHS).toEqual(['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']);
    expect(target).toEqual({
      'ziggie-api': { url: 'http://127.0.0.1:4000', paths: ['/v1/'] },
      'ziggie-docs': { url: 'http://127.0.0.1:4000', paths: ['/openapi.json', '/docs', '/console'] },
      'ziggie-mcp': { url: 'http://127.0.0.1:4100', paths: ['/mcp'] },
      'ziggie-mcp-metadata': { url: 'http://127.0.0.1:4100', paths: METADATA_PATHS },
    });
    for (const { route } of routesOf(kong)) expect(route.strip_path).toBe(false);
  });

  it('streams server-sent events unbuffered on /v1/ and /mcp', () => {
    for (const { route } of routesOf(kong).filter(({ route }) => !isPublic(route))) {
      expect({ route: route.name, response_buffering: route.response_buffering }).toEqual({ route: route.name, response_buffering: false });
    }
  });

  it('exposes no admin, status, health or metrics path', () => {
    for (const { service, route } of routesOf(kong)) {
      for (const path of route.paths ?? []) {
        expect(path.startsWith('~')).toBe(false);
        // A prefix route matches every path that starts with it.
        const reachable = ADMIN_PATHS.filter((admin) => admin.startsWith(path) || path.startsWith(admin));
        expect({ route: route.name, path, reachable }).toEqual({ route: route.name, path, reachable: [] });
      }
      const port = new URL(service.url ?? '').port;
      expect(['4000', '4100']).toContain(port);
    }
  });

  it('keeps the public routes read-only (the metadata also answers CORS preflights)', () => {
    const publicRoutes = routesOf(kong).filter(({ route }) => isPublic(route));
    expect(publicRoutes.map(({ route }) => [route.name, route.methods])).toEqual([
      ['ziggie-docs', ['GET', 'HEAD']],
      ['ziggie-mcp-metadata', ['GET', 'HEAD', 'OPTIONS']],
    ]);
  });

  it('sends the MCP resource metadata requests to mcp-gateway without the jwt plugin, and /mcp with it', () => {
    for (const path of METADATA_PATHS) {
      const get = routeFor(kong, 'GET', path);
      expect({ path, route: get?.route.name, url: get?.service.url }).toEqual({ path, route: 'ziggie-mcp-metadata', url: 'http://127.0.0.1:4100' });
      expect(routeFor(kong, 'HEAD', path)?.route.name).toBe('ziggie-mcp-metadata');
      expect(routeFor(kong, 'OPTIONS', path)?.route.name).toBe('ziggie-mcp-metadata');
      // Read-only: no other method reaches anything.
      for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) expect({ method, path, route: routeFor(kong, method, path) }).toEqual({ method, path, route: undefined });
      const plugins = effectivePlugins(kong, get!.service, get!.route);
      expect([...plugins.keys()].sort()).toEqual(['correlation-id', 'cors', 'prometheus', 'rate-limiting']);
    }
    // No jwt plugin anywhere that could reach the metadata route: not global, not on its service or route.
    const metadata = routesOf(kong).find(({ route }) => route.name === 'ziggie-mcp-metadata')!;
    expect(allPlugins({ ...kong, services: [metadata.service] }).filter((p) => p.name === 'jwt')).toEqual([]);
    expect(kong.plugins?.some((p) => p.name === 'jwt')).toBe(false);
    for (const method of ['GET', 'POST', 'DELETE']) {
      const mcp = routeFor(kong, method, '/mcp');
      expect(mcp?.route.name).toBe('ziggie-mcp');
      expect(effectivePlugins(kong, mcp!.service, mcp!.route).has('jwt')).toBe(true);
    }
  });
});

describe('plugins', () => {
  it('has the five plugins', () => {
    expect([...new Set(allPlugins(kong).map((p) => p.name))].sort()).toEqual(['correlation-id', 'cors', 'jwt', 'prometheus', 'rate-limiting']);
  });

  it('requires a JWT on every route that is not public, on the service so new routes are covered too', () => {
    for (const { service, route } of routesOf(kong)) {
      const jwt = effectivePlugins(kong, service, route).get('jwt');
      if (isPublic(route)) {
        expect(jwt).toBeUndefined();
        continue;
      }
      expect(service.plugins?.some((p) => p.name === 'jwt')).toBe(true);
      expect(jwt?.config).toMatchObject({
        key_claim_name: 'iss',
        claims_to_verify: ['exp'],
        header_names: ['authorization'],
        uri_param_names: [],
        cookie_names: [],
        secret_is_base64: false,
      });
    }
  });

  it('rate-limits every route through Redis, by client IP as the chart does, failing open', () => {
    for (const { service, route } of routesOf(kong)) {
      const rl = effectivePlugins(kong, service, route).get('rate-limiting');
      expect(rl?.config).toMatchObject({ policy: 'redis', limit_by: 'ip', fault_tolerant: true, redis: { host: '127.0.0.1', port: 6379 } });
      expect(rl?.config?.minute).toBeGreaterThan(0);
    }
  });

  it('answers CORS for exact origins only, with credentials, exposing X-Request-ID', () => {
    const cors = kong.plugins?.find((p) => p.name === 'cors');
    const config = cors?.config as { origins: string[]; credentials: boolean; exposed_headers: string[]; headers: string[] };
    expect(config.origins.length).toBeGreaterThan(0);
    for (const origin of config.origins) {
      // Kong treats an origin with other characters as a regular expression.
      expect(origin).toMatch(/^https?:\/\/[A-Za-z0-9.:-]+$/);
      expect(new URL(origin).origin).toBe(origin);
    }
    expect(config.credentials).toBe(true);
    expect(config.exposed_headers).toContain('X-Request-ID');
    expect(config.headers).toEqual(expect.arrayContaining(['Authorization', 'Content-Type', 'X-Request-ID']));
  });

  it('sets X-Request-ID (uuid) and echoes it, and exports Prometheus metrics, on every route', () => {
    for (const { service, route } of routesOf(kong)) {
      const plugins = effectivePlugins(kong, service, route);
      expect(plugins.get('correlation-id')?.config).toEqual({ header_name: 'X-Request-ID', generator: 'uuid', echo_downstream: true });
      expect(plugins.has('prometheus')).toBe(true);
      expect(plugins.has('cors')).toBe(true);
    }
    const prometheus = kong.plugins?.find((p) => p.name === 'prometheus');
    expect(prometheus).toBeDefined();
    expect(prometheus?.service ?? prometheus?.route ?? prometheus?.consumer).toBeUndefined();
  });
});

describe('consumer', () => {
  it('holds one HS256 credential keyed by the issuer the services expect', () => {
    const platform = loadConfig('gateway', {}, { ZIGGIE_JWT_SECRET: 'x'.repeat(32) });
    expect(platform.auth.issuer).toBe(JWT_ISSUER);
    expect(kong.consumers?.map((c) => c.username)).toEqual(['ziggie-operators']);
    const secrets = kong.consumers?.[0].jwt_secrets ?? [];
    expect(secrets).toHaveLength(1);
    expect(secrets[0]).toMatchObject({ key: platform.auth.issuer, algorithm: 'HS256' });
    expect(platform.auth.algorithms).toContain(secrets[0].algorithm);
    expect(secrets[0].rsa_public_key).toBeUndefined();
  });
});

// --- Kong 3.x plugin config schemas -------------------------------------------------------------
// Strict copies of kong/plugins/<name>/schema.lua (Kong 3.9) for these five plugins: every field
// Kong defines, with its type, enum and range; unknown fields refused (Kong refuses them too),
// and the schema's entity checks as if/then.

const HOST_PATTERN = /^(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])$/;
const strings = { type: 'array', items: { type: 'string' } };
const PERIODS = ['second', 'minute', 'hour', 'day', 'month', 'year'];

const KONG_SCHEMAS: Record<string, object> = {
  jwt: {
    type: 'object',
    additionalProperties: false,
    properties: {
      uri_param_names: strings,
      cookie_names: strings,
      header_names: strings,
      key_claim_name: { type: 'string' },
      secret_is_base64: { type: 'boolean' },
      claims_to_verify: { type: 'array', items: { enum: ['exp', 'nbf'] } },
      anonymous: { type: 'string' },
      run_on_preflight: { type: 'boolean' },
      maximum_expiration: { type: 'number', minimum: 0, maximum: 31536000 },
      realm: { type: 'string' },
    },
    if: { properties: { maximum_expiration: { exclusiveMinimum: 0 } }, required: ['maximum_expiration'] },
    then: { required: ['claims_to_verify'], properties: { claims_to_verify: { contains: { const: 'exp' } } } },
  },
  'rate-limiting': {
    type: 'object',
    additionalProperties: false,
    properties: {
      ...Object.fromEntries(PERIODS.map((p) => [p, { type: 'number', exclusiveMinimum: 0 }])),
      limit_by: { enum: ['consumer', 'consumer-group', 'credential', 'ip', 'service', 'header', 'path'] },
      header_name: { type: 'string' },
      path: { type: 'string', pattern: '^/' },
      policy: { enum: ['local', 'cluster', 'redis'] },
      fault_tolerant: { type: 'boolean' },
      redis: {
        type: 'object',
        additionalProperties: false,
        properties: {
          host: { type: 'string', pattern: HOST_PATTERN.source },
          port: { type: 'integer', minimum: 0, maximum: 65535 },
          timeout: { type: 'integer', minimum: 0, maximum: 2147483646 },
          username: { type: 'string' },
          password: { type: 'string' },
          database: { type: 'integer' },
          ssl: { type: 'boolean' },
          ssl_verify: { type: 'boolean' },
          server_name: { type: 'string' },
        },
      },
      hide_client_headers: { type: 'boolean' },
      error_code: { type: 'number', minimum: 0 },
      error_message: { type: 'string' },
      sync_rate: { type: 'number' },
    },
    anyOf: PERIODS.map((p) => ({ required: [p] })),
    allOf: [
      {
        if: { properties: { policy: { const: 'redis' } }, required: ['policy'] },
        then: { required: ['redis'], properties: { redis: { required: ['host', 'port'] } } },
      },
      { if: { properties: { limit_by: { const: 'header' } }, required: ['limit_by'] }, then: { required: ['header_name'] } },
      { if: { properties: { limit_by: { const: 'path' } }, required: ['limit_by'] }, then: { required: ['path'] } },
    ],
  },
  cors: {
    type: 'object',
    additionalProperties: false,
    properties: {
      origins: strings,
      headers: strings,
      exposed_headers: strings,
      methods: { type: 'array', items: { enum: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'] } },
      max_age: { type: 'number' },
      credentials: { type: 'boolean' },
      private_network: { type: 'boolean' },
      preflight_continue: { type: 'boolean' },
    },
  },
  'correlation-id': {
    type: 'object',
    additionalProperties: false,
    properties: {
      header_name: { type: 'string' },
      generator: { enum: ['uuid', 'uuid#counter', 'tracker'] },
      echo_downstream: { type: 'boolean' },
    },
  },
  prometheus: {
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(
      ['per_consumer', 'status_code_metrics', 'ai_metrics', 'latency_metrics', 'bandwidth_metrics', 'upstream_health_metrics'].map((f) => [f, { type: 'boolean' }]),
    ),
  },
};

/** Kong's rate-limiting custom validator: a longer period may not have a lower limit. */
function periodsOrdered(config: Record<string, unknown>): boolean {
  const limits = PERIODS.map((p) => config[p]).filter((v): v is number => typeof v === 'number');
  return limits.every((v, i) => i === 0 || v >= limits[i - 1]);
}

/** Kong's cors validator: each origin is `*` or a valid regular expression (PCRE; JS syntax is close enough here). */
function originsValid(config: Record<string, unknown>): boolean {
  return ((config.origins as string[] | undefined) ?? []).every((o) => {
    if (o === '*') return true;
    try {
      new RegExp(o);
      return true;
    } catch {
      return false;
    }
  });
}

describe('plugin config against Kong 3.x plugin schemas', () => {
  const ajv = new Ajv({ allErrors: true });
  const validators = Object.fromEntries(Object.entries(KONG_SCHEMAS).map(([name, schema]) => [name, ajv.compile(schema)]));

  function problems(plugin: Plugin): string[] {
    const validate = validators[plugin.name];
    if (!validate) return [`no schema for plugin ${plugin.name}`];
    const config = plugin.config ?? {};
    const out: string[] = [];
    if (!validate(config)) out.push(...(validate.errors ?? []).map((e) => `${plugin.name}${JSON.stringify(e)}`));
    if (plugin.name === 'rate-limiting' && !periodsOrdered(config)) out.push('rate-limiting: periods out of order');
    if (plugin.name === 'cors' && !originsValid(config)) out.push('cors: invalid origin');
    return out;
  }

  it('accepts every plugin of the file', () => {
    expect(allPlugins(kong).flatMap(problems)).toEqual([]);
  });

  it.each([
    ['jwt', { claims_to_verify: ['iat'] }],
    ['jwt', { claims_to_verify: ['nbf'], maximum_expiration: 60 }],
    ['jwt', { key_claim_names: 'iss' }],
    ['rate-limiting', { limit_by: 'consumer', policy: 'redis', redis: { host: '127.0.0.1' } }],
    ['rate-limiting', { minute: 10, policy: 'redis' }],
    ['rate-limiting', { minute: 10, policy: 'redis', redis: { host: '${{ env "X" }}', port: 6379 } }],
    ['rate-limiting', { minute: 10, policy: 'redis', redis: { host: 'redis', prot: 6379 } }],
    ['rate-limiting', { minute: 10, hour: 5 }],
    ['cors', { origins: ['(unclosed'] }],
    ['cors', { methods: ['GET', 'BREW'] }],
    ['correlation-id', { generator: 'uuid4' }],
    ['prometheus', { per_service: true }],
  ])('refuses a bad %s config: %j', (name, config) => {
    expect(problems({ name, config })).not.toEqual([]);
  });
});
