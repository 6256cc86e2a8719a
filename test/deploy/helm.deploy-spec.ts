import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CHART,
  ciValues,
  fullName,
  K8sObject,
  label,
  lint,
  named,
  ofKind,
  parseObjects,
  podSpecs,
  renderText,
  ROOT,
  SCENARIOS,
  SERVICES,
  validateObjects,
} from './support/helm';
import { mcpMetadataPaths } from './support/mcp-metadata';

/**
 * The Helm chart (deploy/helm/ziggie) in every scenario under ci/: a real helm lints and renders
 * it offline, every object is checked against the Kubernetes and CRD schemas with unknown fields
 * refused, and the security and naming rules hold for whatever the values switch on.
 */
/** mcp-gateway's OAuth protected resource metadata (RFC 9728), as its code serves it. */
const METADATA_PATHS = mcpMetadataPaths();
const texts = new Map<string, string>();
const rendered = new Map<string, K8sObject[]>();
const renderOf = (scenario: string): K8sObject[] => {
  let objects = rendered.get(scenario);
  if (!objects) {
    const text = renderText(ciValues(scenario));
    texts.set(scenario, text);
    objects = parseObjects(text);
    rendered.set(scenario, objects);
  }
  return objects;
};

describe.each(SCENARIOS)('chart with ci/%s', (scenario) => {
  let objects: K8sObject[];
  beforeAll(() => {
    objects = renderOf(scenario);
  });

  it('passes helm lint --strict', () => {
    const r = lint(ciValues(scenario));
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
  });

  it('renders objects that validate against their schemas, unknown fields refused', () => {
    expect(objects.length).toBeGreaterThan(20);
    const invalid = validateObjects(objects).filter((r) => r.errors.length > 0);
    expect(invalid.map((r) => `${r.kind}/${r.name}: ${r.errors.join('; ')}`)).toEqual([]);
  });

  it('prints no number in exponent notation (Helm reads values as floats: 3600000 would become 3.6e+06)', () => {
    expect(texts.get(scenario)!.match(/\b\d+(\.\d+)?e[+-]\d+\b/g) ?? []).toEqual([]);
  });

  it('runs every Pod as non-root with a read-only root filesystem, no capabilities, no privilege escalation, seccomp RuntimeDefault', () => {
    const pods = podSpecs(objects);
    expect(pods.length).toBeGreaterThanOrEqual(7);
    for (const { owner, spec } of pods) {
      const podCtx = spec.securityContext ?? {};
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        const ctx = { ...podCtx, ...(c.securityContext ?? {}) };
        const where = `${owner} container ${c.name}`;
        expect({ where, runAsNonRoot: ctx.runAsNonRoot }).toEqual({ where, runAsNonRoot: true });
        if (ctx.runAsUser !== undefined) expect({ where, uid: ctx.runAsUser > 0 }).toEqual({ where, uid: true });
        expect({ where, readOnlyRootFilesystem: c.securityContext?.readOnlyRootFilesystem }).toEqual({ where, readOnlyRootFilesystem: true });
        expect({ where, allowPrivilegeEscalation: c.securityContext?.allowPrivilegeEscalation }).toEqual({ where, allowPrivilegeEscalation: false });
        expect({ where, drop: c.securityContext?.capabilities?.drop }).toEqual({ where, drop: ['ALL'] });
        expect({ where, add: c.securityContext?.capabilities?.add ?? [] }).toEqual({ where, add: [] });
        expect({ where, privileged: c.securityContext?.privileged ?? false }).toEqual({ where, privileged: false });
        expect({ where, seccomp: ctx.seccompProfile?.type }).toEqual({ where, seccomp: 'RuntimeDefault' });
      }
      expect({ owner, hostNetwork: spec.hostNetwork ?? false, hostPID: spec.hostPID ?? false }).toEqual({ owner, hostNetwork: false, hostPID: false });
    }
  });

  it('gives the six services their ports, probes on /healthz and /readyz, and writable /tmp only through an emptyDir', () => {
    for (const [svc, ports] of Object.entries(SERVICES)) {
      const deploy = named(objects, 'Deployment', fullName(svc))!;
      expect(deploy).toBeDefined();
      const c = deploy.spec.template.spec.containers[0];
      expect(c.image).toMatch(new RegExp(`/ziggie-${svc}:[^:]+$`));
      expect(c.ports.map((p: any) => [p.name, p.containerPort])).toEqual([['http-api', ports.http], ...(ports.grpc ? [['grpc-api', ports.grpc]] : [])]);
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http-api' });
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http-api' });
      const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
      expect(env).toMatchObject({ HTTP_PORT: String(ports.http), NODE_ENV: 'production', HTTP_HOST: '0.0.0.0' });
      expect(env.NATS_URL).toMatch(/^nats:\/\//);
      if (ports.grpc) expect(env.GRPC_PORT).toBe(String(ports.grpc));
      expect(env).toMatchObject({
        ORCHESTRATOR_GRPC_ADDR: 'ziggie-orchestrator.ziggie.svc:50051',
        AGENT_REGISTRY_GRPC_ADDR: 'ziggie-agent-registry.ziggie.svc:50052',
        WORKSPACE_COORD_GRPC_ADDR: 'ziggie-workspace-coord.ziggie.svc:50053',
        MCP_GATEWAY_GRPC_ADDR: 'ziggie-mcp-gateway.ziggie.svc:50054',
      });
      // Only the services with migrations get a database.
      expect('DATABASE_URL' in env).toBe(!['agent-runtime', 'mcp-gateway'].includes(svc));
      const tmp = c.volumeMounts.find((m: any) => m.mountPath === '/tmp');
      expect(deploy.spec.template.spec.volumes.find((v: any) => v.name === tmp.name).emptyDir).toBeDefined();
      const sa = named(objects, 'ServiceAccount', deploy.spec.template.spec.serviceAccountName)!;
      const tokenMounted = svc === 'mcp-gateway' && scenario === 'eks-values.yaml';
      expect({ svc, sa: sa.automountServiceAccountToken, pod: deploy.spec.template.spec.automountServiceAccountToken }).toEqual({ svc, sa: tokenMounted, pod: tokenMounted });
    }
  });

  it('names every Service port http-*, grpc-* or tcp-* with a matching appProtocol', () => {
    for (const s of ofKind(objects, 'Service')) {
      for (const p of s.spec.ports) {
        expect({ service: s.metadata.name, name: p.name }).toEqual({ service: s.metadata.name, name: expect.stringMatching(/^(http|grpc|tcp)-[a-z0-9-]+$/) });
        expect({ service: s.metadata.name, name: p.name, appProtocol: p.appProtocol }).toEqual({
          service: s.metadata.name,
          name: p.name,
          appProtocol: p.name.split('-')[0],
        });
      }
    }
  });

  it('binds a Role only to mcp-gateway, touching only deployments, deployments/scale and scaledobjects, and no ClusterRole', () => {
    expect(ofKind(objects, 'ClusterRole')).toEqual([]);
    expect(ofKind(objects, 'ClusterRoleBinding')).toEqual([]);
    for (const binding of ofKind(objects, 'RoleBinding')) {
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: fullName('mcp-gateway'), namespace: 'ziggie' }]);
      expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: fullName('mcp-gateway') });
    }
    for (const role of ofKind(objects, 'Role')) {
      expect(role.metadata.name).toBe(fullName('mcp-gateway'));
      for (const rule of role.rules) {
        const allowed = rule.apiGroups[0] === 'keda.sh' ? ['scaledobjects'] : ['deployments', 'deployments/scale'];
        expect(rule.resources.every((r: string) => allowed.includes(r))).toBe(true);
        expect(rule.apiGroups.length).toBe(1);
        expect(['apps', 'keda.sh']).toContain(rule.apiGroups[0]);
        expect(rule.verbs).not.toContain('*');
        expect(rule.verbs).not.toContain('delete');
        expect(rule.verbs).not.toContain('create');
        // Every rule names the pool objects it may touch.
        expect(rule.resourceNames.length).toBeGreaterThan(0);
        for (const name of rule.resourceNames) expect(name).toMatch(/^ziggie-gpu-[a-z0-9-]+$/);
      }
    }
    expect(ofKind(objects, 'Role').length).toBe(scenario === 'eks-values.yaml' ? 1 : 0);
  });

  it('routes mcp-gateway\'s resource metadata through Kong without the jwt plugin, read-only, and /mcp with it', () => {
    const ingresses = ofKind(objects, 'Ingress');
    if (ingresses.length === 0) return;
    const jwt = named(objects, 'KongPlugin', 'ziggie-jwt')!;
    expect(jwt.plugin).toBe('jwt');
    /** The Ingresses routing a path to mcp-gateway, with their plugin names. */
    const byPath = new Map<string, K8sObject>();
    for (const ing of ingresses) {
      for (const p of ing.spec.rules.flatMap((r: any) => r.http.paths)) {
        if (p.backend.service.name === fullName('mcp-gateway')) byPath.set(p.path, ing);
      }
    }
    expect([...byPath.keys()].sort()).toEqual(['/mcp', ...METADATA_PATHS].sort());
    const metadata = named(objects, 'Ingress', fullName('kong-mcp-metadata'))!;
    expect(metadata).toBeDefined();
    for (const path of METADATA_PATHS) expect(byPath.get(path)).toBe(metadata);
    expect(metadata.spec.rules.flatMap((r: any) => r.http.paths.map((p: any) => [p.path, p.pathType, p.backend.service.port.name]))).toEqual(
      METADATA_PATHS.map((path) => [path, 'Exact', 'http-api']),
    );
    const plugins = metadata.metadata.annotations!['konghq.com/plugins']!.split(',');
    expect(plugins).not.toContain(jwt.metadata.name);
    // The same plugins as the public docs routes: correlation id, rate limit, metrics (and CORS when on).
    expect(plugins).toEqual(named(objects, 'Ingress', fullName('kong-docs'))!.metadata.annotations!['konghq.com/plugins']!.split(','));
    expect(plugins).toEqual(expect.arrayContaining(['ziggie-correlation-id', 'ziggie-rate-limiting', 'ziggie-prometheus']));
    expect(metadata.metadata.annotations!['konghq.com/methods']).toBe('GET,HEAD,OPTIONS');
    expect(metadata.metadata.annotations!['konghq.com/response-buffering']).toBeUndefined();
    expect(metadata.spec.rules.map((r: any) => r.host)).toEqual(byPath.get('/mcp')!.spec.rules.map((r: any) => r.host));
    expect(byPath.get('/mcp')!.metadata.annotations!['konghq.com/plugins']!.split(',')).toContain(jwt.metadata.name);
  });

  it('routes Kong Ingresses only to gateway and mcp-gateway, with plugins that exist', () => {
    const plugins = new Set(ofKind(objects, 'KongPlugin').map((p) => p.metadata.name));
    for (const ing of ofKind(objects, 'Ingress')) {
      expect(ing.spec.ingressClassName).toBe('kong');
      for (const name of ing.metadata.annotations!['konghq.com/plugins']!.split(',')) expect(plugins).toContain(name);
      for (const rule of ing.spec.rules) {
        for (const p of rule.http.paths) {
          const backend = p.backend.service.name;
          expect([fullName('gateway'), fullName('mcp-gateway')]).toContain(backend);
          expect(backend === fullName('mcp-gateway') ? ['/mcp', ...METADATA_PATHS] : ['/v1', '/openapi.json', '/docs', '/console']).toContain(p.path);
        }
      }
    }
    const consumers = ofKind(objects, 'KongConsumer');
    for (const consumer of consumers) {
      for (const cred of consumer.credentials) {
        const secret = named(objects, 'Secret', cred);
        // Either rendered here with the credential label, or the operator's own (kong.jwt.existingSecret).
        if (secret) expect(label(secret, 'konghq.com/credential')).toBe('jwt');
      }
    }
  });
});

describe('values that must be refused', () => {
  it('refuses an unknown top-level key (values.schema.json is strict)', () => {
    const r = lint(['--set', 'foo=bar']);
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toContain("additional properties 'foo' not allowed");
  });

  it.each([
    ['a misspelt service setting', 'gateway.replicas=3', "at '/gateway': additional properties 'replicas' not allowed"],
    ['a nested unknown key', 'istio.virtualService.retries.attemps=3', "additional properties 'attemps' not allowed"],
    ['a key the bundled NATS does not know', 'nats.persistence.sizee=1Gi', "additional properties 'sizee' not allowed"],
    ['an env variable the chart sets itself', 'gateway.env.NATS_URL=nats://elsewhere:4222', "invalid propertyName 'NATS_URL'"],
    ['a wildcard CORS origin', 'cors.origins[0]=*', "at '/cors/origins/0': '*' does not match pattern"],
    ['MCP_PUBLIC_URL through env (mcp.publicUrl sets it)', 'mcpGateway.env.MCP_PUBLIC_URL=https://x/mcp', "invalid propertyName 'MCP_PUBLIC_URL'"],
    ['a public URL of /mcp that is not http(s)', 'mcp.publicUrl=api.example.com/mcp', "at '/mcp/publicUrl': 'api.example.com/mcp' does not match pattern"],
    ['an authorization server that is not a URL', 'mcp.authorizationServers[0]=keycloak', "at '/mcp/authorizationServers/0': 'keycloak' does not match pattern"],
    ['an OAuth scope with a space', 'mcp.oauthScopes[0]=mcp:call tools', "at '/mcp/oauthScopes/0': 'mcp:call tools' does not match pattern"],
    [
      'a GPU pool scaled by an HPA to zero',
      'gpu.enabled=true,gpu.pools[0].name=x,gpu.pools[0].image=i,gpu.pools[0].autoscaling=hpa,gpu.pools[0].minReplicas=0',
      "at '/gpu/pools/0/minReplicas': minimum: got 0, want 1",
    ],
  ])('refuses %s', (_what, set, message) => {
    const r = lint(['--set', set]);
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toContain(message);
  });

  it('refuses a chart without a database, and asymmetric JWT without a key', () => {
    expect(renderText.bind(null, ['--set', 'postgresql.enabled=false'])).toThrow(/postgresql: set postgresql.enabled=true/);
    expect(renderText.bind(null, ['--set', 'auth.algorithms[0]=RS256'])).toThrow(/auth: with only asymmetric algorithms/);
  });

  it('has a validator that refuses unknown fields, misspelt CRD fields and unknown kinds', () => {
    const objects = renderOf('eks-values.yaml');
    const deployment = structuredClone(named(objects, 'Deployment', fullName('gateway'))!);
    deployment.spec.template.spec.containers[0].readOnlyRootFileSystem = true;
    const vs = structuredClone(ofKind(objects, 'VirtualService')[0]!);
    vs.spec.http[0].retry = { attempts: 3 };
    const plugin = structuredClone(ofKind(objects, 'KongPlugin').find((p) => p.plugin === 'rate-limiting')!);
    plugin.config.limit_by_ip = true;
    const scaled = structuredClone(ofKind(objects, 'ScaledObject')[0]!);
    scaled.spec.minReplicas = 0;
    const results = validateObjects([deployment, vs, plugin, scaled, { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }]);
    expect(results.map((r) => r.errors)).toEqual([
      ['/spec/template/spec/containers/0/readOnlyRootFileSystem is not a field of Deployment'],
      ['/spec/http/0/retry is not a field of VirtualService'],
      ['/config/limit_by_ip is not a field of rate-limiting config'],
      ['/spec/minReplicas is not a field of ScaledObject'],
      ['no schema for example.com/v1/Widget'],
    ]);
  });
});

describe('GPU pools', () => {
  it('renders nothing GPU-related with gpu.enabled=false, even with pools listed', () => {
    for (const scenario of ['gpu-off-values.yaml', 'kind-values.yaml', 'default-values.yaml']) {
      const objects = renderOf(scenario);
      const text = JSON.stringify(objects);
      expect(text).not.toContain('nvidia.com/gpu');
      expect(text).not.toContain('GPU_POOLS');
      expect(text).not.toContain('ziggie-gpu-');
      expect(ofKind(objects, 'ScaledObject')).toEqual([]);
      expect(ofKind(objects, 'Role')).toEqual([]);
    }
  });

  it('gives each pool a GPU, the GPU taint toleration, a Service on http-*, and KEDA (to zero) or an HPA (from one)', () => {
    const objects = renderOf('eks-values.yaml');
    const sdxl = named(objects, 'Deployment', 'ziggie-gpu-sdxl')!;
    const pod = sdxl.spec.template.spec;
    expect(pod.containers[0].resources.limits['nvidia.com/gpu']).toBe(1);
    expect(pod.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(pod.nodeSelector).toEqual({ 'eks.amazonaws.com/nodegroup': 'gpu' });
    expect(sdxl.spec.replicas).toBeUndefined();
    expect(named(objects, 'Service', 'ziggie-gpu-sdxl')!.spec.ports).toEqual([{ name: 'http-pool', port: 8188, targetPort: 'http-pool', protocol: 'TCP', appProtocol: 'http' }]);
    const so = named(objects, 'ScaledObject', 'ziggie-gpu-sdxl')!;
    expect(so.spec).toMatchObject({ scaleTargetRef: { name: 'ziggie-gpu-sdxl' }, minReplicaCount: 0, maxReplicaCount: 4 });
    expect(so.spec.triggers).toEqual([
      {
        type: 'prometheus',
        metadata: {
          serverAddress: 'http://kube-prometheus-stack-prometheus.monitoring.svc:9090',
          query: 'sum(ziggie_gpu_pool_queue_depth{pool="sdxl"}) + sum(ziggie_gpu_pool_in_flight{pool="sdxl"})',
          threshold: '2',
          activationThreshold: '0',
          ignoreNullValues: 'true',
        },
      },
    ]);
    expect(named(objects, 'ScaledObject', 'ziggie-gpu-llm')).toBeUndefined();
    expect(named(objects, 'HorizontalPodAutoscaler', 'ziggie-gpu-llm')!.spec).toMatchObject({ minReplicas: 1, maxReplicas: 2 });
  });

  it('hands mcp-gateway GPU_POOLS, its namespace, and a Role on exactly the pool objects', () => {
    const objects = renderOf('eks-values.yaml');
    const env = named(objects, 'Deployment', fullName('mcp-gateway'))!.spec.template.spec.containers[0].env as any[];
    expect(env.find((e) => e.name === 'POD_NAMESPACE').valueFrom).toEqual({ fieldRef: { fieldPath: 'metadata.namespace' } });
    expect(JSON.parse(env.find((e) => e.name === 'GPU_POOLS').value)).toEqual([
      {
        name: 'sdxl',
        mode: 'keda',
        namespace: 'ziggie',
        deployment: 'ziggie-gpu-sdxl',
        scaledObject: 'ziggie-gpu-sdxl',
        minReplicas: 0,
        maxReplicas: 4,
        endpoint: 'http://ziggie-gpu-sdxl.ziggie.svc:8188',
      },
      { name: 'llm', mode: 'deployment', namespace: 'ziggie', deployment: 'ziggie-gpu-llm', minReplicas: 1, maxReplicas: 2, endpoint: 'http://ziggie-gpu-llm.ziggie.svc:8000' },
    ]);
    expect(named(objects, 'Role', fullName('mcp-gateway'))!.rules).toEqual([
      { apiGroups: ['apps'], resources: ['deployments'], resourceNames: ['ziggie-gpu-sdxl', 'ziggie-gpu-llm'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['apps'], resources: ['deployments/scale'], resourceNames: ['ziggie-gpu-sdxl', 'ziggie-gpu-llm'], verbs: ['get', 'update', 'patch'] },
      { apiGroups: ['keda.sh'], resources: ['scaledobjects'], resourceNames: ['ziggie-gpu-sdxl'], verbs: ['get', 'list', 'watch', 'patch'] },
    ]);
  });
});

afterAll(() => {
  // What each scenario renders, for the record (test/deploy/last-render.txt).
  if (rendered.size < SCENARIOS.length) return;
  const kinds = [...new Set([...rendered.values()].flatMap((objs) => objs.map((o) => o.kind)))].sort();
  const columns = SCENARIOS.map((s) => s.replace(/-values\.yaml$/, ''));
  const width = Math.max(...kinds.map((k) => k.length), 'kind'.length);
  const row = (first: string, cells: Array<string | number>) => [first.padEnd(width), ...cells.map((c, i) => String(c).padStart(Math.max(columns[i]!.length, 5)))].join('  ');
  const lines = [row('kind', columns)];
  for (const kind of kinds) lines.push(row(kind, SCENARIOS.map((s) => rendered.get(s)!.filter((o) => o.kind === kind).length)));
  lines.push(row('total', SCENARIOS.map((s) => rendered.get(s)!.length)));
  const table = `${lines.join('\n')}\n`;
  writeFileSync(join(ROOT, 'test/deploy/last-render.txt'), `# Objects per kind rendered by helm template deploy/helm/ziggie -f ci/<scenario>-values.yaml\n${table}`);
  console.log(`${CHART}: objects per kind and scenario\n${table}`);
});
