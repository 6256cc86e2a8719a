// Strict JSON schemas for the Kong Ingress Controller resources the chart renders. No
// kubernetes-models package covers Kong's CRDs, so these are written from Kong Ingress Controller
// 3.x (configuration.konghq.com/v1 KongPlugin and KongConsumer, the konghq.com/credential Secret
// label, the konghq.com/* Ingress annotations) and, for `config`, from the Kong Gateway 3.x schemas
// of the five plugins used (jwt, rate-limiting, cors, correlation-id, prometheus). The CRDs keep
// `config` free-form (Kong checks it when the controller syncs), so a mistake there would
// otherwise surface only in the controller's log; here every object refuses unknown keys.

const str = { type: 'string' };
const bool = { type: 'boolean' };
const num = { type: 'number' };
const strings = { type: 'array', items: str };
const strict = (properties, required = []) => ({ type: 'object', additionalProperties: false, properties, required });

const objectMeta = {
  type: 'object',
  required: ['name'],
  properties: {
    name: str,
    namespace: str,
    labels: { type: 'object', additionalProperties: str },
    annotations: { type: 'object', additionalProperties: str },
  },
  additionalProperties: false,
};

const redisConfig = strict({
  host: str,
  port: { type: 'integer', minimum: 0, maximum: 65535 },
  username: str,
  password: str,
  database: { type: 'integer', minimum: 0 },
  timeout: num,
  connect_timeout: num,
  send_timeout: num,
  read_timeout: num,
  ssl: bool,
  ssl_verify: bool,
  server_name: str,
});

/** Kong Gateway 3.x plugin configuration schemas (the fields each plugin defines). */
export const pluginConfigs = {
  jwt: strict({
    uri_param_names: strings,
    cookie_names: strings,
    header_names: strings,
    key_claim_name: str,
    secret_is_base64: bool,
    claims_to_verify: { type: 'array', items: { enum: ['exp', 'nbf'] } },
    anonymous: str,
    run_on_preflight: bool,
    maximum_expiration: { type: 'number', minimum: 0, maximum: 31536000 },
    realm: str,
  }),
  'rate-limiting': {
    ...strict({
      second: num,
      minute: num,
      hour: num,
      day: num,
      month: num,
      year: num,
      limit_by: { enum: ['consumer', 'credential', 'ip', 'service', 'header', 'path', 'consumer-group'] },
      header_name: str,
      path: str,
      policy: { enum: ['local', 'cluster', 'redis'] },
      fault_tolerant: bool,
      hide_client_headers: bool,
      error_code: num,
      error_message: str,
      sync_rate: num,
      redis: redisConfig,
    }),
    anyOf: ['second', 'minute', 'hour', 'day', 'month', 'year'].map((k) => ({ required: [k] })),
  },
  cors: strict({
    origins: strings,
    headers: strings,
    exposed_headers: strings,
    methods: { type: 'array', items: { enum: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'] } },
    max_age: num,
    credentials: bool,
    private_network: bool,
    preflight_continue: bool,
    allow_origin_absent: bool,
  }),
  'correlation-id': strict({
    header_name: str,
    generator: { enum: ['uuid', 'uuid#counter', 'tracker'] },
    echo_downstream: bool,
  }),
  prometheus: strict({
    per_consumer: bool,
    status_code_metrics: bool,
    latency_metrics: bool,
    bandwidth_metrics: bool,
    upstream_health_metrics: bool,
    ai_metrics: bool,
  }),
};

const secretKeyRef = strict({ name: str, key: str, namespace: str }, ['name', 'key']);

/** configuration.konghq.com/v1 KongPlugin (KIC 3.x CRD), with `config` checked per plugin. */
export const kongPlugin = {
  ...strict(
    {
      apiVersion: { const: 'configuration.konghq.com/v1' },
      kind: { const: 'KongPlugin' },
      metadata: objectMeta,
      plugin: { enum: Object.keys(pluginConfigs) },
      config: { type: 'object' },
      configFrom: strict({ secretKeyRef }, ['secretKeyRef']),
      configPatches: {
        type: 'array',
        items: strict({ path: { type: 'string', pattern: '^/.*$' }, valueFrom: strict({ secretKeyRef }, ['secretKeyRef']) }, ['path', 'valueFrom']),
      },
      consumerRef: str,
      disabled: bool,
      instance_name: str,
      ordering: strict({ before: { type: 'object', additionalProperties: strings }, after: { type: 'object', additionalProperties: strings } }),
      protocols: { type: 'array', items: { enum: ['http', 'https', 'grpc', 'grpcs', 'tcp', 'tls', 'udp', 'ws', 'wss'] } },
      run_on: { enum: ['first', 'second', 'all'] },
    },
    ['apiVersion', 'kind', 'metadata', 'plugin'],
  ),
  // The CRD's validation rules: configFrom excludes both config and configPatches.
  not: { anyOf: [{ required: ['config', 'configFrom'] }, { required: ['configFrom', 'configPatches'] }] },
};

/** configuration.konghq.com/v1 KongClusterPlugin: a cluster-scoped KongPlugin the controller picks up by class. */
export const kongClusterPlugin = {
  ...kongPlugin,
  properties: {
    ...kongPlugin.properties,
    kind: { const: 'KongClusterPlugin' },
    metadata: {
      ...objectMeta,
      required: ['name', 'annotations'],
      properties: { name: str, labels: objectMeta.properties.labels, annotations: { type: 'object', additionalProperties: str, required: ['kubernetes.io/ingress.class'] } },
    },
  },
};

/** configuration.konghq.com/v1 KongConsumer (KIC 3.x CRD). */
export const kongConsumer = {
  ...strict(
    {
      apiVersion: { const: 'configuration.konghq.com/v1' },
      kind: { const: 'KongConsumer' },
      metadata: {
        ...objectMeta,
        // The controller only picks up consumers that name its class.
        required: ['name', 'annotations'],
        properties: { ...objectMeta.properties, annotations: { type: 'object', additionalProperties: str, required: ['kubernetes.io/ingress.class'] } },
      },
      username: str,
      custom_id: str,
      credentials: strings,
      consumerGroups: strings,
    },
    ['apiVersion', 'kind', 'metadata'],
  ),
  anyOf: [{ required: ['username'] }, { required: ['custom_id'] }],
};

/** The fields of a JWT credential Secret (label konghq.com/credential=jwt). */
export const jwtCredential = {
  ...strict({ key: str, algorithm: { enum: ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'EdDSA'] }, secret: str, rsa_public_key: str }, [
    'key',
    'algorithm',
  ]),
  if: { properties: { algorithm: { pattern: '^HS' } } },
  then: { required: ['secret'] },
  else: { required: ['rsa_public_key'] },
};

/** konghq.com/* annotations Kong Ingress Controller 3.x reads from an Ingress or a Service. */
export const kongAnnotations = new Set([
  'konghq.com/plugins',
  'konghq.com/strip-path',
  'konghq.com/protocols',
  'konghq.com/https-redirect-status-code',
  'konghq.com/methods',
  'konghq.com/headers',
  'konghq.com/host-aliases',
  'konghq.com/preserve-host',
  'konghq.com/regex-priority',
  'konghq.com/path-handling',
  'konghq.com/request-buffering',
  'konghq.com/response-buffering',
  'konghq.com/snis',
  'konghq.com/read-timeout',
  'konghq.com/write-timeout',
  'konghq.com/connect-timeout',
  'konghq.com/retries',
  'konghq.com/path',
  'konghq.com/host-header',
  'konghq.com/tags',
]);
