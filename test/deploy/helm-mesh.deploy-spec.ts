import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parseAllDocuments } from 'yaml';
import {
  ciValues,
  fullName,
  GRPC_CALLS,
  K8sObject,
  label,
  named,
  ofKind,
  principal,
  render,
  ROOT,
  SCENARIOS,
  SERVICES,
  validateObjects,
} from './support/helm';
import { mcpMetadataPaths } from './support/mcp-metadata';

/**
 * Who may talk to whom: the Istio AuthorizationPolicies and the NetworkPolicies allow exactly the
 * gRPC calls of DESIGN §2 (GRPC_CALLS, checked against the code here too), plus Kong on the
 * public routes, Prometheus on /metrics and the helm test Pod; no retries where a repeated request
 * would repeat a tool call or a generation. deploy/istio/ is the chart's output.
 */
const KONG = 'cluster.local/ns/kong/sa/kong-gateway';
const PROMETHEUS = 'cluster.local/ns/monitoring/sa/kube-prometheus-stack-prometheus';
const TESTS = principal('tests');
const callKey = ([caller, callee]: readonly [string, string]) => `${caller} -> ${callee}`;
const EXPECTED_CALLS = GRPC_CALLS.map(callKey).sort();
/** mcp-gateway's OAuth protected resource metadata (RFC 9728), public through Kong. */
const METADATA_PATHS = mcpMetadataPaths();

const renders = new Map(SCENARIOS.map((s) => [s, render(ciValues(s))] as const));
const meshScenarios = SCENARIOS.filter((s) => ofKind(renders.get(s)!, 'AuthorizationPolicy').length > 0);
const componentOf = (o: K8sObject): string => o.spec.selector?.matchLabels?.['app.kubernetes.io/component'];
const pools = (objects: K8sObject[]) => ofKind(objects, 'Deployment').filter((d) => label(d, 'ziggie.io/gpu-pool'));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return name.endsWith('.ts') && !name.endsWith('.spec.ts') ? [full] : [];
  });
}

it('has the call table of DESIGN §2 that the services’ code makes (PeerClients.get and .api)', () => {
  const calls = new Set<string>();
  for (const svc of Object.keys(SERVICES)) {
    for (const file of sourceFiles(join(ROOT, 'services', svc, 'src'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\.(?:get|api)\(\s*'(orchestrator|agent-registry|workspace-coord|mcp-gateway)'\s*,\s*pb\.\w+Client/g)) {
        calls.add(callKey([svc, m[1]!]));
      }
    }
  }
  expect([...calls].sort()).toEqual(EXPECTED_CALLS);
});

it('renders Istio resources in the scenarios that turn it on', () => {
  expect(meshScenarios.sort()).toEqual(['eks-values.yaml', 'gpu-off-values.yaml']);
});

describe.each(meshScenarios)('Istio with ci/%s', (scenario) => {
  const objects = renders.get(scenario)!;
  const policies = ofKind(objects, 'AuthorizationPolicy');
  const poolNames = pools(objects).map((d) => d.metadata.name);

  it('requires mTLS for the whole namespace and inside the mesh for every service and pool', () => {
    const pa = ofKind(objects, 'PeerAuthentication');
    expect(pa.map((p) => p.spec)).toEqual([{ mtls: { mode: 'STRICT' } }]);
    const rules = ofKind(objects, 'DestinationRule');
    expect(rules.map((r) => r.spec.host).sort()).toEqual(
      [...Object.keys(SERVICES).map(fullName), ...poolNames].map((n) => `${n}.ziggie.svc.cluster.local`).sort(),
    );
    for (const r of rules) {
      expect(r.spec.trafficPolicy.tls).toEqual({ mode: 'ISTIO_MUTUAL' });
      expect(r.spec.trafficPolicy.outlierDetection.consecutive5xxErrors).toBeGreaterThan(0);
      expect(r.spec.trafficPolicy.connectionPool.tcp.maxConnections).toBeGreaterThan(0);
    }
  });

  it('puts one ALLOW policy on every service and pool, each rule with a source principal and a destination', () => {
    expect(policies.map(componentOf).sort()).toEqual([...Object.keys(SERVICES), ...poolNames.map((n) => n.replace('ziggie-', ''))].sort());
    for (const p of policies) {
      expect(p.spec.action).toBe('ALLOW');
      expect(p.spec.rules.length).toBeGreaterThan(0);
      for (const rule of p.spec.rules) {
        expect(rule.from.length).toBeGreaterThan(0);
        for (const f of rule.from) expect(f.source.principals.length).toBeGreaterThan(0);
        expect(rule.to.length).toBeGreaterThan(0);
        for (const t of rule.to) expect(t.operation.ports.length).toBeGreaterThan(0);
      }
    }
  });

  it('allows exactly the expected caller → callee calls, nothing else', () => {
    const grpc: string[] = [];
    const other: string[] = [];
    for (const p of policies) {
      const callee = componentOf(p);
      const ports = SERVICES[callee];
      for (const rule of p.spec.rules) {
        const principals: string[] = rule.from.flatMap((f: any) => f.source.principals);
        const service = Object.keys(SERVICES).find((s) => principals.length === 1 && principals[0] === principal(s));
        if (service && ports) {
          grpc.push(callKey([service, callee]));
          expect({ callee, to: rule.to }).toEqual({ callee, to: [{ operation: { ports: [String(ports.grpc)], paths: [`/ziggie.v1.${ports.grpcService}/*`] } }] });
        } else if (service === 'mcp-gateway') {
          const pool = named(objects, 'Service', fullName(callee))!;
          other.push(`mcp-gateway -> ${callee}`);
          expect(rule.to).toEqual([{ operation: { ports: [String(pool.spec.ports[0].port)] } }]);
        } else if (principals.join() === KONG) {
          // The public routes; on mcp-gateway also its resource metadata, read-only, in a rule of its own.
          const metadata = { operation: { ports: [String(ports!.http)], methods: ['GET', 'HEAD', 'OPTIONS'], paths: METADATA_PATHS } };
          const isMetadata = callee === 'mcp-gateway' && isDeepStrictEqual(rule.to, [metadata]);
          other.push(`kong -> ${callee}${isMetadata ? ' metadata' : ''}`);
          if (isMetadata) continue;
          const paths = callee === 'mcp-gateway' ? ['/mcp', '/mcp/*'] : ['/v1', '/v1/*', '/openapi.json', '/docs', '/docs/*', '/console', '/console/*'];
          expect(rule.to).toEqual([{ operation: { ports: [String(ports!.http)], paths } }]);
        } else if (principals.join() === PROMETHEUS) {
          other.push(`prometheus -> ${callee}`);
          expect(rule.to).toEqual([{ operation: { ports: [String(ports!.http)], methods: ['GET'], paths: ['/metrics'] } }]);
        } else if (principals.join() === TESTS) {
          other.push(`helm-test -> ${callee}`);
          const readyz = { operation: { ports: [String(ports!.http)], methods: ['GET'], paths: ['/readyz'] } };
          const tasks = { operation: { ports: ['4000'], methods: ['GET', 'POST'], paths: ['/v1/tasks', '/v1/tasks/*'] } };
          expect(rule.to).toEqual(callee === 'gateway' ? [readyz, tasks] : [readyz]);
        } else {
          throw new Error(`unexpected rule on ${callee}: ${JSON.stringify(rule)}`);
        }
      }
    }
    expect(grpc.sort()).toEqual(EXPECTED_CALLS);
    const expectedOther = [
      'kong -> gateway',
      'kong -> mcp-gateway',
      'kong -> mcp-gateway metadata',
      ...Object.keys(SERVICES).flatMap((s) => [`prometheus -> ${s}`, `helm-test -> ${s}`]),
      ...poolNames.map((n) => `mcp-gateway -> ${n.replace('ziggie-', '')}`),
    ];
    expect(other.sort()).toEqual(expectedOther.sort());
  });

  it('never retries a tool call, an MCP stream, a task event stream or a GPU pool request', () => {
    const services = ofKind(objects, 'VirtualService');
    expect(services.length).toBe(Object.keys(SERVICES).length + poolNames.length);
    /** The route Istio picks for a request: the first whose match fits. */
    const routeFor = (vs: K8sObject, port: number, uri: string) =>
      vs.spec.http.find((r: any) =>
        r.match.some(
          (m: any) =>
            (m.port === undefined || m.port === port) &&
            (m.uri === undefined || m.uri.exact === uri || (m.uri.prefix !== undefined && uri.startsWith(m.uri.prefix)) || (m.uri.regex !== undefined && new RegExp(m.uri.regex).test(uri))),
        ),
      );
    const vsOf = (component: string) => named(objects, 'VirtualService', fullName(component))!;
    const noRetry = [
      routeFor(vsOf('mcp-gateway'), 50054, '/ziggie.v1.McpGateway/CallTool'),
      routeFor(vsOf('mcp-gateway'), 4100, '/mcp'),
      routeFor(vsOf('mcp-gateway'), 4100, '/mcp/session'),
      routeFor(vsOf('gateway'), 4000, '/v1/tasks/t-1/events'),
      ...poolNames.map((n) => {
        const vs = named(objects, 'VirtualService', n)!;
        return routeFor(vs, named(objects, 'Service', n)!.spec.ports[0].port, '/prompt');
      }),
    ];
    // Explicitly 0: a route without retries gets Istio's default of two.
    for (const route of noRetry) expect({ route: route.name, retries: route.retries }).toEqual({ route: route.name, retries: { attempts: 0 } });
    const retried = [routeFor(vsOf('mcp-gateway'), 50054, '/ziggie.v1.McpGateway/ListTools'), routeFor(vsOf('orchestrator'), 50051, '/ziggie.v1.Orchestrator/SubmitTask')];
    for (const route of retried) expect(route.retries).toMatchObject({ attempts: 2, retryOn: 'connect-failure,refused-stream' });
    // The resource metadata is an idempotent GET: its own route, the ordinary timeout and retries.
    for (const path of METADATA_PATHS) {
      const route = routeFor(vsOf('mcp-gateway'), 4100, path);
      expect({ path, name: route.name, timeout: route.timeout }).toEqual({ path, name: 'protected-resource-metadata', timeout: routeFor(vsOf('mcp-gateway'), 4100, '/readyz').timeout });
      expect(route.retries).toMatchObject({ attempts: 2, retryOn: 'connect-failure,refused-stream' });
      expect(route.route).toEqual([{ destination: { host: 'ziggie-mcp-gateway.ziggie.svc.cluster.local', port: { number: 4100 } } }]);
    }
    for (const vs of services) for (const route of vs.spec.http) expect(route.retries).toBeDefined();
  });
});

describe.each(SCENARIOS)('NetworkPolicies with ci/%s', (scenario) => {
  const objects = renders.get(scenario)!;
  const selectorOf = (peer: any): string | undefined => (peer.namespaceSelector ? undefined : peer.podSelector?.matchLabels?.['app.kubernetes.io/component']);

  it('let each service in only from its callers, Kong, Prometheus and the test Pod, and out only to its callees among the services', () => {
    const ingress: string[] = [];
    const egress: string[] = [];
    const kong: string[] = [];
    for (const svc of Object.keys(SERVICES)) {
      const np = named(objects, 'NetworkPolicy', fullName(svc))!;
      expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      for (const rule of np.spec.ingress) {
        expect(rule.from?.length).toBeGreaterThan(0);
        const callers = rule.from.map(selectorOf);
        const ports = rule.ports.map((p: any) => p.port);
        if (callers.every((c: string | undefined) => c && c !== 'tests')) {
          for (const c of callers) ingress.push(callKey([c, svc]));
          expect(ports).toEqual([SERVICES[svc]!.grpc]);
        } else {
          // Kong, Prometheus (other namespaces) and the helm test Pod reach the HTTP port only.
          expect(ports).toEqual([SERVICES[svc]!.http]);
          if (rule.from.some((p: any) => p.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'kong')) kong.push(svc);
        }
      }
      for (const rule of np.spec.egress) {
        for (const peer of rule.to ?? []) {
          const callee = selectorOf(peer);
          if (callee && SERVICES[callee]) {
            egress.push(callKey([svc, callee]));
            expect(rule.ports.map((p: any) => p.port)).toEqual([SERVICES[callee]!.grpc]);
          }
        }
      }
    }
    expect(ingress.sort()).toEqual(EXPECTED_CALLS);
    expect(egress.sort()).toEqual(EXPECTED_CALLS);
    const kongOn = ofKind(objects, 'Ingress').length > 0;
    expect(kong.sort()).toEqual(kongOn ? ['gateway', 'mcp-gateway'] : []);
  });
});

describe('deploy/istio (standalone manifests)', () => {
  it('is what the chart renders (no drift)', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/deploy-istio.js'), '--check'], { encoding: 'utf8' });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('holds valid Istio objects for namespace ziggie, the same policies as a default release with Kong', () => {
    const files = ['peer-authentication.yaml', 'destination-rules.yaml', 'authorization-policies.yaml', 'virtual-services.yaml'];
    const objects = files.flatMap((f) =>
      parseAllDocuments(readFileSync(join(ROOT, 'deploy/istio', f), 'utf8'))
        .map((d) => d.toJS() as K8sObject | null)
        .filter((o): o is K8sObject => o !== null),
    );
    expect(validateObjects(objects).filter((r) => r.errors.length > 0)).toEqual([]);
    expect(objects.every((o) => o.metadata.namespace === 'ziggie' && !o.metadata.labels?.['helm.sh/chart'])).toBe(true);
    const gateway = objects.find((o) => o.kind === 'AuthorizationPolicy' && componentOf(o) === 'gateway')!;
    expect(gateway.spec.rules.map((r: any) => r.from[0].source.principals[0])).toEqual([KONG, PROMETHEUS, TESTS]);
    // Kong reaches /mcp and, read-only, its resource metadata.
    const mcp = objects.find((o) => o.kind === 'AuthorizationPolicy' && componentOf(o) === 'mcp-gateway')!;
    const fromKong = mcp.spec.rules.filter((r: any) => r.from[0].source.principals[0] === KONG).map((r: any) => r.to[0].operation);
    expect(fromKong).toEqual([
      { ports: ['4100'], paths: ['/mcp', '/mcp/*'] },
      { ports: ['4100'], methods: ['GET', 'HEAD', 'OPTIONS'], paths: METADATA_PATHS },
    ]);
  });
});
