#!/usr/bin/env node
// Writes the strict values.schema.json of deploy/helm/ziggie and of its local subcharts (nats,
// postgresql, redis) from the definitions below, so shapes used in several places (resources,
// security contexts, scheduling, NetworkPolicy peers, the six services) are written once. Every
// object refuses unknown keys. With --check, fails when a committed schema differs (drift).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const chart = path.join(root, 'deploy/helm/ziggie');
const check = process.argv.includes('--check');

// ---------------------------------------------------------------------------------------------
// Building blocks

/** A strict object: only the listed properties, all of them required unless `optional` names them. */
function object(properties, { optional = [], description } = {}) {
  const required = Object.keys(properties).filter((k) => !optional.includes(k));
  return {
    type: 'object',
    ...(description ? { description } : {}),
    additionalProperties: false,
    ...(required.length ? { required } : {}),
    properties,
  };
}
/** A map with free keys and values of one schema. */
const mapOf = (values, propertyNames) => ({ type: 'object', ...(propertyNames ? { propertyNames } : {}), additionalProperties: values });
const str = (extra = {}) => ({ type: 'string', ...extra });
const int = (extra = {}) => ({ type: 'integer', ...extra });
const bool = { type: 'boolean' };
const arrayOf = (items, extra = {}) => ({ type: 'array', items, ...extra });
const ref = (name) => ({ $ref: `#/definitions/${name}` });

const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const DURATION = '^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$';
const QUANTITY = '^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$';

/** Kubernetes shapes the chart passes through; the rendered objects are checked against the Kubernetes schema too. */
const k8s = {
  quantity: { anyOf: [str({ pattern: QUANTITY }), { type: 'number', minimum: 0 }] },
  resourceList: mapOf(ref('quantity'), str({ pattern: '^([a-z0-9.-]+/)?[a-z0-9-]+$' })),
  resources: object({ requests: ref('resourceList'), limits: ref('resourceList') }, { optional: ['requests', 'limits'] }),
  stringMap: mapOf(str()),
  seccompProfile: object({ type: str({ enum: ['RuntimeDefault', 'Localhost', 'Unconfined'] }), localhostProfile: str() }, { optional: ['localhostProfile'] }),
  podSecurityContext: object(
    {
      runAsNonRoot: bool,
      runAsUser: int({ minimum: 0 }),
      runAsGroup: int({ minimum: 0 }),
      fsGroup: int({ minimum: 0 }),
      fsGroupChangePolicy: str({ enum: ['Always', 'OnRootMismatch'] }),
      supplementalGroups: arrayOf(int({ minimum: 0 })),
      seccompProfile: ref('seccompProfile'),
    },
    { optional: ['runAsNonRoot', 'runAsUser', 'runAsGroup', 'fsGroup', 'fsGroupChangePolicy', 'supplementalGroups', 'seccompProfile'] },
  ),
  securityContext: object(
    {
      runAsNonRoot: bool,
      runAsUser: int({ minimum: 0 }),
      runAsGroup: int({ minimum: 0 }),
      allowPrivilegeEscalation: bool,
      readOnlyRootFilesystem: bool,
      privileged: bool,
      capabilities: object({ drop: arrayOf(str()), add: arrayOf(str()) }, { optional: ['drop', 'add'] }),
      seccompProfile: ref('seccompProfile'),
    },
    { optional: ['runAsNonRoot', 'runAsUser', 'runAsGroup', 'allowPrivilegeEscalation', 'readOnlyRootFilesystem', 'privileged', 'capabilities', 'seccompProfile'] },
  ),
  toleration: object(
    {
      key: str(),
      operator: str({ enum: ['Exists', 'Equal'] }),
      value: str(),
      effect: str({ enum: ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] }),
      tolerationSeconds: int(),
    },
    { optional: ['key', 'operator', 'value', 'effect', 'tolerationSeconds'] },
  ),
  tolerations: arrayOf(ref('toleration')),
  affinity: object(
    {
      nodeAffinity: { type: 'object', description: 'Kubernetes NodeAffinity (checked against the Kubernetes schema when rendered)' },
      podAffinity: { type: 'object', description: 'Kubernetes PodAffinity' },
      podAntiAffinity: { type: 'object', description: 'Kubernetes PodAntiAffinity' },
    },
    { optional: ['nodeAffinity', 'podAffinity', 'podAntiAffinity'] },
  ),
  labelSelector: object(
    {
      matchLabels: ref('stringMap'),
      matchExpressions: arrayOf(
        object({ key: str(), operator: str({ enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] }), values: arrayOf(str()) }, { optional: ['values'] }),
      ),
    },
    { optional: ['matchLabels', 'matchExpressions'] },
  ),
  networkPolicyPeer: object(
    {
      podSelector: ref('labelSelector'),
      namespaceSelector: ref('labelSelector'),
      ipBlock: object({ cidr: str(), except: arrayOf(str()) }, { optional: ['except'] }),
    },
    { optional: ['podSelector', 'namespaceSelector', 'ipBlock'] },
  ),
  networkPolicyPeers: arrayOf(ref('networkPolicyPeer')),
  topologySpreadConstraint: object(
    {
      maxSkew: int({ minimum: 1 }),
      topologyKey: str(),
      whenUnsatisfiable: str({ enum: ['DoNotSchedule', 'ScheduleAnyway'] }),
      labelSelector: ref('labelSelector'),
      minDomains: int({ minimum: 1 }),
      matchLabelKeys: arrayOf(str()),
      nodeAffinityPolicy: str({ enum: ['Honor', 'Ignore'] }),
      nodeTaintsPolicy: str({ enum: ['Honor', 'Ignore'] }),
    },
    { optional: ['labelSelector', 'minDomains', 'matchLabelKeys', 'nodeAffinityPolicy', 'nodeTaintsPolicy'] },
  ),
  image: object({ repository: str({ minLength: 1 }), tag: str({ minLength: 1 }), pullPolicy: ref('pullPolicy') }),
  pullPolicy: str({ enum: ['Always', 'IfNotPresent', 'Never'] }),
  persistence: object({ size: ref('quantity'), storageClass: str() }),
  global: { type: 'object', description: 'Helm global values (none are used)' },
};

function schema(title, properties, definitions, options) {
  return { $schema: 'http://json-schema.org/draft-07/schema#', title, ...object(properties, options), definitions };
}

// ---------------------------------------------------------------------------------------------
// Subcharts. The parent passes `enabled` and `external` down, so they accept both.

const subchartCommon = (externalProps) => ({
  global: ref('global'),
  enabled: bool,
  external: object(externalProps),
  image: ref('image'),
  resources: ref('resources'),
  podSecurityContext: ref('podSecurityContext'),
  securityContext: ref('securityContext'),
  nodeSelector: ref('stringMap'),
  tolerations: ref('tolerations'),
  affinity: ref('affinity'),
});

const natsProps = {
  ...subchartCommon({ url: str() }),
  replicas: int({ minimum: 1, maximum: 9 }),
  jetstream: object({ maxMemoryStore: str({ pattern: '^[0-9]+[KMGT]?B?$' }), maxFileStore: str({ pattern: '^[0-9]+[KMGT]?B?$' }) }),
  persistence: ref('persistence'),
  networkPolicy: object({ enabled: bool }),
};

const pgExternal = { existingSecret: str(), existingSecretKey: str({ minLength: 1 }), url: str({ pattern: '^$|^postgres(ql)?://' }) };
const postgresqlProps = {
  ...subchartCommon(pgExternal),
  auth: object({
    username: str({ pattern: '^[a-z_][a-z0-9_]{0,62}$' }),
    database: str({ pattern: '^[a-z_][a-z0-9_]{0,62}$' }),
    password: str({ pattern: '^$|^[A-Za-z0-9._~-]{16,}$', description: 'URL-safe characters only: it becomes part of DATABASE_URL' }),
    existingSecret: str(),
  }),
  persistence: ref('persistence'),
  networkPolicy: object({ enabled: bool }),
};

const redisExternal = { existingSecret: str(), existingSecretKey: str({ minLength: 1 }), url: str({ pattern: '^$|^rediss?://' }) };
const redisProps = {
  ...subchartCommon(redisExternal),
  auth: object({
    password: str({ pattern: '^$|^[A-Za-z0-9._~-]{16,}$', description: 'URL-safe characters only: it becomes part of REDIS_URL' }),
    existingSecret: str(),
  }),
  persistence: object({ enabled: bool, size: ref('quantity'), storageClass: str() }),
  networkPolicy: object({ enabled: bool, extraFrom: ref('networkPolicyPeers') }, { optional: ['enabled'] }),
};

// ---------------------------------------------------------------------------------------------
// The parent chart

/** The six services share one shape. Variables the chart sets itself cannot be set through env. */
const CHART_ENV = [
  'NODE_ENV', 'LOG_LEVEL', 'HTTP_HOST', 'HTTP_PORT', 'GRPC_HOST', 'GRPC_PORT', 'DATA_DIR', 'HOME', 'NATS_URL',
  'ORCHESTRATOR_GRPC_ADDR', 'AGENT_REGISTRY_GRPC_ADDR', 'WORKSPACE_COORD_GRPC_ADDR', 'MCP_GATEWAY_GRPC_ADDR',
  'JWT_ISSUER', 'JWT_AUDIENCE', 'JWT_ALGORITHMS', 'JWT_CLOCK_TOLERANCE_SECONDS', 'JWT_MAX_TOKEN_LIFETIME_SECONDS', 'ZIGGIE_JWT_SECRET', 'JWT_PUBLIC_KEY_FILE',
  'JWT_JWKS_URL', 'JWT_JWKS_CACHE_MAX_AGE_SECONDS', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'DATABASE_URL', 'POSTGRES_PASSWORD',
  'REDIS_URL', 'REDIS_PASSWORD', 'ZIGGIE_SEED', 'CORS_ORIGINS', 'MCP_SERVERS_FILE', 'MCP_SSRF_ALLOW', 'MCP_ALLOWED_ORIGINS',
  'MCP_PUBLIC_URL', 'MCP_AUTHORIZATION_SERVERS', 'MCP_OAUTH_SCOPES', 'POD_NAMESPACE', 'GPU_POOLS', 'SHUTDOWN_GRACE_MS', 'ZIGGIE_AUTH',
];

const service = object({
  replicaCount: int({ minimum: 0 }),
  env: mapOf(str(), { pattern: '^[A-Z_][A-Z0-9_]*$', not: { enum: CHART_ENV } }),
  resources: ref('resources'),
  autoscaling: object({
    enabled: bool,
    minReplicas: int({ minimum: 1 }),
    maxReplicas: int({ minimum: 1 }),
    targetCPUUtilizationPercentage: int({ minimum: 1, maximum: 100 }),
  }),
  podDisruptionBudget: object({ enabled: bool, maxUnavailable: { anyOf: [int({ minimum: 1 }), str({ pattern: '^[0-9]+%$' })] } }),
  terminationGracePeriodSeconds: int({ minimum: 10, maximum: 3600 }),
  tmpSizeLimit: ref('quantity'),
  dataSizeLimit: ref('quantity'),
  nodeSelector: ref('stringMap'),
  tolerations: ref('tolerations'),
  affinity: ref('affinity'),
  topologySpreadConstraints: arrayOf(ref('topologySpreadConstraint')),
  priorityClassName: str(),
  podLabels: ref('stringMap'),
  podAnnotations: ref('stringMap'),
  serviceAnnotations: ref('stringMap'),
});

const algorithms = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'PS256'];

/** A GPU pool: every field optional on an entry (gpu.poolDefaults fills the rest), all present in the defaults. */
const poolProps = {
  // At most 18 characters: <fullname (40)>-gpu-<name> stays a valid 63-character object name.
  name: str({ pattern: '^([a-z]([a-z0-9-]{0,16}[a-z0-9])?)?$' }),
  image: str(),
  imagePullPolicy: ref('pullPolicy'),
  command: arrayOf(str()),
  args: arrayOf(str()),
  env: mapOf(str(), { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }),
  port: int({ minimum: 1, maximum: 65535 }),
  healthPath: str({ pattern: '^/' }),
  startupFailureThreshold: int({ minimum: 1 }),
  cacheSizeLimit: ref('quantity'),
  resources: ref('resources'),
  tolerations: ref('tolerations'),
  nodeSelector: ref('stringMap'),
  minReplicas: int({ minimum: 0 }),
  maxReplicas: int({ minimum: 1 }),
  autoscaling: str({ enum: ['keda', 'hpa'] }),
  keda: object({ targetQueueDepth: int({ minimum: 1 }), pollingInterval: int({ minimum: 1 }), cooldownPeriod: int({ minimum: 0 }) }),
  hpa: object({ targetCPUUtilizationPercentage: int({ minimum: 1, maximum: 100 }) }),
};
const poolEntry = {
  ...object(poolProps, { optional: Object.keys(poolProps).filter((k) => k !== 'name' && k !== 'image') }),
  // Only KEDA scales a Deployment to zero.
  if: { properties: { autoscaling: { const: 'hpa' } }, required: ['autoscaling'] },
  then: { properties: { minReplicas: int({ minimum: 1 }) }, required: ['minReplicas'] },
};
poolEntry.properties = { ...poolEntry.properties, name: str({ pattern: '^[a-z]([a-z0-9-]{0,16}[a-z0-9])?$' }), image: str({ minLength: 1 }) };

const peers = ref('networkPolicyPeers');
const peersRequired = { ...ref('networkPolicyPeers'), minItems: 1 };

const parent = {
  nameOverride: str(),
  fullnameOverride: str({ maxLength: 40 }),
  commonLabels: ref('stringMap'),
  clusterDomain: str({ minLength: 1 }),
  image: object({ repository: str({ minLength: 1 }), tag: str(), pullPolicy: ref('pullPolicy') }),
  imagePullSecrets: arrayOf(object({ name: str({ minLength: 1 }) })),
  podSecurityContext: ref('podSecurityContext'),
  securityContext: ref('securityContext'),
  logLevel: str({ enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] }),
  listenHost: str({ minLength: 1 }),
  seed: str({ enum: ['default', 'none'] }),
  auth: object({
    issuer: str({ minLength: 1 }),
    audience: str({ minLength: 1 }),
    algorithms: arrayOf(str({ enum: algorithms }), { minItems: 1, uniqueItems: true }),
    clockToleranceSeconds: int({ minimum: 0, maximum: 60 }),
    maxTokenLifetimeSeconds: int({ minimum: 60, maximum: 31536000 }),
    jwtSecret: str({ pattern: '^$|^.{16,}$' }),
    publicKey: str({ pattern: '^$|-----BEGIN PUBLIC KEY-----' }),
    jwksUrl: str({ pattern: '^$|^https://' }),
    jwksCacheMaxAgeSeconds: int({ minimum: 10, maximum: 86400 }),
    existingSecret: str(),
  }),
  cors: object({ origins: arrayOf(str({ pattern: '^https?://[^/*\\s]+$' }), { uniqueItems: true }) }),
  mcp: object({
    servers: arrayOf(
      {
        type: 'object',
        required: ['name', 'transport'],
        properties: { name: str({ minLength: 1 }), transport: str({ enum: ['stdio', 'http', 'sse', 'ws', 'comfyui', 'ollama', 'openai'] }) },
        description: "An upstream entry; mcp-gateway checks the rest of it against its own strict schema (libs/contracts UpstreamSchema) at start-up, so the two never disagree",
      },
    ),
    policies: arrayOf({ type: 'object', description: 'A tool policy; checked strictly by mcp-gateway at start-up (PolicyRuleSchema)' }),
    ssrfAllow: str(),
    allowedOrigins: arrayOf(str({ pattern: '^https?://[^/*\\s]+$' })),
    publicUrl: str({ pattern: '^$|^https?://[^/\\s]+(/[^\\s]*)?$' }),
    authorizationServers: arrayOf(str({ pattern: '^https?://[^,\\s]+$' })),
    // RFC 6749 scope-tokens, without the comma mcp-gateway splits MCP_OAUTH_SCOPES on.
    oauthScopes: arrayOf(str({ pattern: '^[\\x21\\x23-\\x2B\\x2D-\\x5B\\x5D-\\x7E]+$' })),
    credentialsSecret: str(),
  }),
  tracing: object({ otlpEndpoint: str({ pattern: '^$|^https?://' }) }),
  gateway: ref('service'),
  orchestrator: ref('service'),
  agentRegistry: ref('service'),
  workspaceCoord: ref('service'),
  agentRuntime: ref('service'),
  mcpGateway: ref('service'),
  nats: object(natsProps, {
    optional: Object.keys(natsProps).filter((k) => !['enabled', 'external'].includes(k)),
    description: 'The bundled NATS; charts/nats/values.schema.json checks the nested settings',
  }),
  postgresql: object(postgresqlProps, {
    optional: Object.keys(postgresqlProps).filter((k) => !['enabled', 'external', 'auth'].includes(k)),
    description: 'The bundled PostgreSQL or an external one; charts/postgresql/values.schema.json checks the nested settings',
  }),
  redis: object(redisProps, {
    optional: Object.keys(redisProps).filter((k) => !['enabled', 'external', 'auth'].includes(k)),
    description: 'The bundled Redis or an external one; charts/redis/values.schema.json checks the nested settings',
  }),
  kong: object({
    enabled: bool,
    ingressClassName: str({ minLength: 1 }),
    host: str(),
    tls: object({ enabled: bool, secretName: str() }),
    annotations: ref('stringMap'),
    readTimeoutMs: int({ minimum: 1000 }),
    consumer: object({ username: str({ minLength: 1 }) }),
    jwt: object({ existingSecret: str(), rsaPublicKey: str({ pattern: '^$|-----BEGIN PUBLIC KEY-----' }), maximumExpirationSeconds: int({ minimum: 0 }) }),
    rateLimiting: object({
      minute: int({ minimum: 1 }),
      hour: int({ minimum: 0 }),
      limitBy: str({ enum: ['ip', 'consumer', 'credential', 'service', 'header', 'path'] }),
      policy: str({ enum: ['redis', 'cluster', 'local'] }),
      redis: object({
        host: str(),
        port: int({ minimum: 1, maximum: 65535 }),
        database: int({ minimum: 0 }),
        timeoutMs: int({ minimum: 1 }),
        ssl: bool,
        passwordSecret: object({ name: str(), key: str({ minLength: 1 }) }),
      }),
    }),
    correlationId: object({ generator: str({ enum: ['uuid', 'uuid#counter', 'tracker'] }) }),
  }),
  istio: object({
    enabled: bool,
    trustDomain: str({ minLength: 1 }),
    kongPrincipals: arrayOf(str({ pattern: '^[^/]+/ns/[^/]+/sa/[^/]+$' }), { minItems: 1 }),
    prometheusPrincipals: arrayOf(str({ pattern: '^[^/]+/ns/[^/]+/sa/[^/]+$' }), { minItems: 1 }),
    destinationRule: object({
      connectionPool: object({
        tcp: object({ maxConnections: int({ minimum: 1 }), connectTimeout: str({ pattern: DURATION }) }),
        http: object({ http2MaxRequests: int({ minimum: 1 }), maxRequestsPerConnection: int({ minimum: 0 }), idleTimeout: str({ pattern: DURATION }) }),
      }),
      outlierDetection: object({
        consecutive5xxErrors: int({ minimum: 0 }),
        interval: str({ pattern: DURATION }),
        baseEjectionTime: str({ pattern: DURATION }),
        maxEjectionPercent: int({ minimum: 0, maximum: 100 }),
      }),
    }),
    virtualService: object({
      timeout: str({ pattern: DURATION }),
      streamTimeout: str({ pattern: DURATION }),
      poolTimeout: str({ pattern: DURATION }),
      retries: object({ attempts: int({ minimum: 0, maximum: 10 }), perTryTimeout: str({ pattern: DURATION }), retryOn: str({ pattern: '^[a-z0-9-]+(,[a-z0-9-]+)*$' }) }),
    }),
  }),
  metrics: object({
    serviceMonitor: object({
      enabled: bool,
      labels: ref('stringMap'),
      interval: str({ pattern: DURATION }),
      scrapeTimeout: str({ pattern: DURATION }),
      istioCertsDir: str({ pattern: '^/' }),
    }),
    prometheusRule: object({ enabled: bool, labels: ref('stringMap') }),
  }),
  grafana: object({
    dashboards: object({
      enabled: bool,
      namespace: str({ pattern: `^$|${DNS_LABEL}` }),
      label: str({ minLength: 1 }),
      labelValue: str(),
      folder: str(),
      folderAnnotation: str({ minLength: 1 }),
    }),
  }),
  gpu: object({
    enabled: bool,
    prometheusAddress: str({ pattern: '^https?://' }),
    poolDefaults: object(poolProps),
    pools: arrayOf(poolEntry),
  }),
  networkPolicy: object({
    enabled: bool,
    dns: object({ to: peers }),
    kong: object({ from: peersRequired }),
    prometheus: object({ from: peersRequired }),
    otlpCollector: object({ to: peers }),
    istiod: object({ to: peers }),
    external: object({ nats: peers, postgresql: peers, redis: peers }),
    kubeApiServer: object({ to: peers, ports: arrayOf(int({ minimum: 1, maximum: 65535 }), { minItems: 1 }) }),
    mcpUpstreams: object({ enabled: bool, to: peers, ports: arrayOf(int({ minimum: 1, maximum: 65535 })) }),
  }),
  tests: object({
    enabled: bool,
    token: str(),
    existingSecret: str(),
    existingSecretKey: str({ minLength: 1 }),
    workspace: str({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }),
    capability: str({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }),
    tool: object({ name: str(), arguments: { type: 'object', description: 'Arguments of the tool call, as the tool defines them' } }),
    timeoutSeconds: int({ minimum: 10 }),
    resources: ref('resources'),
  }),
};

// ---------------------------------------------------------------------------------------------

function definitionsFor(value, pool = { ...k8s, service }) {
  // Only the definitions a schema references (transitively), so each file stays readable.
  const used = new Set();
  const visit = (node) => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!node || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') {
        const name = v.replace('#/definitions/', '');
        if (!used.has(name)) {
          used.add(name);
          visit(pool[name]);
        }
      } else visit(v);
    }
  };
  visit(value);
  return Object.fromEntries([...used].sort().map((n) => [n, pool[n]]));
}

const files = {
  'values.schema.json': schema('Ziggie Command Center', parent, definitionsFor(parent), {
    optional: [],
  }),
  'charts/nats/values.schema.json': schema('NATS with JetStream', natsProps, definitionsFor(natsProps), { optional: ['global', 'enabled', 'external'] }),
  'charts/postgresql/values.schema.json': schema('PostgreSQL', postgresqlProps, definitionsFor(postgresqlProps), { optional: ['global', 'enabled', 'external'] }),
  'charts/redis/values.schema.json': schema('Redis', redisProps, definitionsFor(redisProps), { optional: ['global', 'enabled', 'external'] }),
};
// Helm hands `global` to every chart; the parent's schema must accept it too.
files['values.schema.json'].properties.global = ref('global');
files['values.schema.json'].definitions.global = k8s.global;

let drift = false;
for (const [rel, value] of Object.entries(files)) {
  const target = path.join(chart, rel);
  const text = `${JSON.stringify(value, null, 2)}\n`;
  if (check) {
    const committed = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '';
    if (committed !== text) {
      drift = true;
      console.error(`helm-schema: ${path.relative(root, target)} differs from scripts/deploy-helm-schema.js (run node scripts/deploy-helm-schema.js)`);
    }
  } else {
    fs.writeFileSync(target, text);
    console.log(`helm-schema: wrote ${path.relative(root, target)}`);
  }
}
if (check) {
  if (drift) process.exit(1);
  console.log('helm-schema: every values.schema.json matches');
}
