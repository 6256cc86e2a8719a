import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { verify } from 'jsonwebtoken';
import { isMap, isScalar, parse, parseDocument, YAMLMap } from 'yaml';
import { CHART, ciValues, fullName, helm, K8sObject, named, ofKind, render, ROOT, SERVICES } from './support/helm';

/**
 * The chart's values (documented, schema in step with the generator and with values.yaml), the
 * monitoring files it packs, the helm test Pod and its script (run here against a stand-in
 * gateway), and NOTES.txt.
 */

describe('values and schema', () => {
  it('has every values.schema.json as scripts/deploy-helm-schema.js writes it (no drift)', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/deploy-helm-schema.js'), '--check'], { encoding: 'utf8' });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  });

  /** Paths of values that have no comment: a map is documented by its own comment or by all of its entries'. */
  function undocumented(map: YAMLMap, path: string[] = []): string[] {
    const missing: string[] = [];
    map.items.forEach((pair, i) => {
      const key = isScalar(pair.key) ? String(pair.key.value) : '?';
      const own = Boolean((pair.key as { commentBefore?: string }).commentBefore || (i === 0 && map.commentBefore));
      if (own) return;
      if (isMap(pair.value) && pair.value.items.length > 0) missing.push(...undocumented(pair.value, [...path, key]));
      else missing.push([...path, key].join('.'));
    });
    return missing;
  }

  it.each(['values.yaml', 'charts/nats/values.yaml', 'charts/postgresql/values.yaml', 'charts/redis/values.yaml'])('documents every value of %s with a comment', (file) => {
    const doc = parseDocument(readFileSync(join(CHART, file), 'utf8'));
    expect(doc.errors).toEqual([]);
    // The file's own header is not a value's comment.
    const contents = doc.contents as YAMLMap;
    const first = contents.items[0]!.key as { commentBefore?: string };
    expect(first.commentBefore ?? '').toMatch(/--/);
    expect(undocumented(contents)).toEqual([]);
  });

  /** Every property the schema declares exists in values.yaml, so every value has a documented default. */
  function declaredButMissing(schema: any, values: any, defs: Record<string, any>, path: string[] = []): string[] {
    const s = schema.$ref ? defs[schema.$ref.replace('#/definitions/', '')] : schema;
    if (s.type !== 'object' || !s.properties || s.additionalProperties !== false) return [];
    const required: string[] = s.required ?? [];
    return Object.entries<any>(s.properties).flatMap(([key, sub]) => {
      if (key === 'global' || !required.includes(key)) return [];
      if (!values || typeof values !== 'object' || !(key in values)) return [[...path, key].join('.')];
      return declaredButMissing(sub, values[key], defs, [...path, key]);
    });
  }

  it.each(['', 'charts/nats/', 'charts/postgresql/', 'charts/redis/'])('has a default in %svalues.yaml for every value its schema declares', (dir) => {
    const schema = JSON.parse(readFileSync(join(CHART, dir, 'values.schema.json'), 'utf8'));
    const values = parse(readFileSync(join(CHART, dir, 'values.yaml'), 'utf8'));
    // The subchart sections of the parent are completed by the subcharts' own values.yaml.
    const missing = declaredButMissing(schema, values, schema.definitions).filter(
      (p) => dir !== '' || !/^(nats|postgresql|redis)\./.test(p) || /^(nats|postgresql|redis)\.(enabled|external)/.test(p),
    );
    expect(missing).toEqual([]);
  });

  it('keeps the parent’s subchart sections and the subcharts’ values in step', () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8'));
    for (const sub of ['nats', 'postgresql', 'redis']) {
      const own = JSON.parse(readFileSync(join(CHART, 'charts', sub, 'values.schema.json'), 'utf8'));
      expect({ sub, keys: Object.keys(schema.properties[sub].properties).sort() }).toEqual({ sub, keys: Object.keys(own.properties).sort() });
      const subValues = parse(readFileSync(join(CHART, 'charts', sub, 'values.yaml'), 'utf8'));
      expect({ sub, keys: [...Object.keys(subValues), 'global'].sort() }).toEqual({ sub, keys: Object.keys(own.properties).sort() });
    }
  });
});

describe('JWT settings', () => {
  const envOf = (objects: K8sObject[], svc: string) =>
    Object.fromEntries((named(objects, 'Deployment', fullName(svc))!.spec.template.spec.containers[0].env as any[]).map((e) => [e.name, e.value ?? e.valueFrom]));

  it('gives the services and Kong the same HMAC secret (generated once per render when not set)', () => {
    const objects = render(ciValues('kind-values.yaml'));
    const auth = named(objects, 'Secret', 'ziggie-auth')!;
    const credential = named(objects, 'Secret', 'ziggie-kong-jwt')!;
    const secret = Buffer.from(auth.data['jwt-secret'], 'base64').toString();
    expect(secret).toMatch(/^[A-Za-z0-9]{48}$/);
    expect(credential.stringData).toEqual({ key: 'ziggie-local', algorithm: 'HS256', secret });
    for (const svc of Object.keys(SERVICES)) {
      expect(envOf(objects, svc)).toMatchObject({ JWT_ISSUER: 'ziggie-local', JWT_AUDIENCE: 'ziggie-api', JWT_ALGORITHMS: 'HS256', ZIGGIE_JWT_SECRET: { secretKeyRef: { name: 'ziggie-auth', key: 'jwt-secret' } } });
    }
  });

  it('verifies RS256 with the issuer’s public key in every service and in Kong', () => {
    const objects = render(ciValues('eks-values.yaml'));
    const values = parse(readFileSync(join(CHART, 'ci/eks-values.yaml'), 'utf8'));
    const auth = named(objects, 'Secret', 'ziggie-auth')!;
    expect(Object.keys(auth.data)).toEqual(['public.pem']);
    expect(Buffer.from(auth.data['public.pem'], 'base64').toString()).toBe(values.auth.publicKey);
    const credential = named(objects, 'Secret', 'ziggie-kong-jwt')!;
    expect(credential.stringData).toEqual({ key: 'https://auth.example.com/', algorithm: 'RS256', rsa_public_key: values.auth.publicKey });
    for (const svc of Object.keys(SERVICES)) {
      const env = envOf(objects, svc);
      expect(env).toMatchObject({ JWT_ALGORITHMS: 'RS256', JWT_PUBLIC_KEY_FILE: '/etc/ziggie/jwt/public.pem' });
      expect(env.ZIGGIE_JWT_SECRET).toBeUndefined();
    }
  });
});

describe('MCP authorization discovery settings (RFC 9728)', () => {
  const MCP_VARS = ['MCP_PUBLIC_URL', 'MCP_AUTHORIZATION_SERVERS', 'MCP_OAUTH_SCOPES'];
  const envOf = (objects: K8sObject[], svc: string): Record<string, unknown> =>
    Object.fromEntries((named(objects, 'Deployment', fullName(svc))!.spec.template.spec.containers[0].env as any[]).map((e) => [e.name, e.value ?? e.valueFrom]));
  const mcpVars = (objects: K8sObject[]) => Object.fromEntries(Object.entries(envOf(objects, 'mcp-gateway')).filter(([k]) => MCP_VARS.includes(k)));

  it('passes mcp.publicUrl, mcp.authorizationServers and mcp.oauthScopes to mcp-gateway only', () => {
    const objects = render([
      '--set', 'mcp.publicUrl=https://mcp.example.com/mcp',
      '--set', 'mcp.authorizationServers={https://auth.example.com/realms/ziggie,https://login.example.org}',
      '--set', 'mcp.oauthScopes={mcp:call,offline_access}',
    ]);
    expect(mcpVars(objects)).toEqual({
      MCP_PUBLIC_URL: 'https://mcp.example.com/mcp',
      MCP_AUTHORIZATION_SERVERS: 'https://auth.example.com/realms/ziggie,https://login.example.org',
      MCP_OAUTH_SCOPES: 'mcp:call offline_access',
    });
    for (const svc of Object.keys(SERVICES).filter((s) => s !== 'mcp-gateway')) {
      expect({ svc, vars: Object.keys(envOf(objects, svc)).filter((k) => MCP_VARS.includes(k)) }).toEqual({ svc, vars: [] });
    }
  });

  it('leaves them unset by default, so mcp-gateway uses the request Host and the JWT issuer', () => {
    expect(mcpVars(render([]))).toEqual({});
    // Kong without a host: no public URL to derive.
    expect(mcpVars(render(ciValues('kind-values.yaml')))).toEqual({});
  });

  it('derives the public URL of /mcp from the Kong host, https with Kong TLS; mcp.publicUrl wins', () => {
    expect(mcpVars(render(ciValues('eks-values.yaml')))).toEqual({ MCP_PUBLIC_URL: 'https://api.ziggie.example.com/mcp' });
    expect(mcpVars(render([...ciValues('kind-values.yaml'), '--set', 'kong.host=ziggie.local']))).toEqual({ MCP_PUBLIC_URL: 'http://ziggie.local/mcp' });
    expect(mcpVars(render([...ciValues('kind-values.yaml'), '--set', 'kong.enabled=false,kong.host=ziggie.local']))).toEqual({});
    expect(mcpVars(render([...ciValues('eks-values.yaml'), '--set', 'mcp.publicUrl=https://tools.example.com/mcp']))).toEqual({
      MCP_PUBLIC_URL: 'https://tools.example.com/mcp',
    });
  });
});

describe('monitoring files', () => {
  const rulesDir = join(CHART, 'files/rules');
  const dashboardsDir = join(CHART, 'files/dashboards');
  const list = (dir: string, ext: string) => {
    try {
      return readdirSync(dir).filter((f) => f.endsWith(ext)).sort();
    } catch {
      return [];
    }
  };
  const on = ['--set', 'metrics.prometheusRule.enabled=true,grafana.dashboards.enabled=true'];

  it('packs the groups of every files/rules/*.yaml into one PrometheusRule, and one ConfigMap per files/dashboards/*.json', () => {
    const objects = render(on);
    const groups = list(rulesDir, '.yaml').flatMap((f) => (parse(readFileSync(join(rulesDir, f), 'utf8')) as { groups?: unknown[] }).groups ?? []);
    const rules = ofKind(objects, 'PrometheusRule');
    if (groups.length === 0) expect(rules).toEqual([]);
    else expect(rules.map((r) => r.spec.groups)).toEqual([groups]);
    const maps = ofKind(objects, 'ConfigMap').filter((c) => c.metadata.labels?.grafana_dashboard === '1');
    const dashboards = list(dashboardsDir, '.json');
    expect(maps.map((m) => Object.keys(m.data)[0]).sort()).toEqual(dashboards);
    for (const m of maps) {
      const file = Object.keys(m.data)[0]!;
      expect(m.data[file]).toBe(readFileSync(join(dashboardsDir, file), 'utf8').replace(/\n$/, ''));
      expect(m.metadata.annotations).toEqual({ grafana_folder: 'Ziggie' });
    }
  });

  describe('with other rule and dashboard files (a copy of the chart)', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'ziggie-chart-'));
      cpSync(CHART, dir, { recursive: true });
      rmSync(join(dir, 'files/rules'), { recursive: true, force: true });
      rmSync(join(dir, 'files/dashboards'), { recursive: true, force: true });
      cpSync(join(CHART, 'files/helm-test.js'), join(dir, 'files/helm-test.js'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('renders no PrometheusRule and no dashboard ConfigMap while there are no files', () => {
      const objects = render(on, dir);
      expect(ofKind(objects, 'PrometheusRule')).toEqual([]);
      expect(ofKind(objects, 'ConfigMap').filter((c) => c.metadata.labels?.grafana_dashboard)).toEqual([]);
    });

    it('concatenates the groups of several files in name order and names ConfigMaps after the dashboards', () => {
      mkdirSync(join(dir, 'files/rules'), { recursive: true });
      mkdirSync(join(dir, 'files/dashboards'), { recursive: true });
      writeFileSync(join(dir, 'files/rules/b.yaml'), 'groups:\n  - name: b\n    rules:\n      - alert: B\n        expr: vector(1) > 0\n        for: 5m\n');
      writeFileSync(join(dir, 'files/rules/a.yaml'), 'groups:\n  - name: a\n    rules:\n      - record: a:sum\n        expr: sum(up)\n');
      writeFileSync(join(dir, 'files/dashboards/Team_Overview.json'), '{"uid":"team","title":"Team"}\n');
      const objects = render(on, dir);
      expect(ofKind(objects, 'PrometheusRule').map((r) => r.spec.groups.map((g: any) => g.name))).toEqual([['a', 'b']]);
      const maps = ofKind(objects, 'ConfigMap').filter((c) => c.metadata.labels?.grafana_dashboard === '1');
      expect(maps.map((m) => [m.metadata.name, Object.keys(m.data)])).toEqual([['ziggie-dashboard-team-overview', ['Team_Overview.json']]]);
    });

    it('stops with the file name when a rules file is not YAML', () => {
      writeFileSync(join(dir, 'files/rules/broken.yaml'), 'groups: [\n');
      const r = helm(['template', 'ziggie', dir, ...on]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain('files/rules/broken.yaml');
    });
  });

  it('gives every service a ServiceMonitor on http-api /metrics, scraped with the mesh certificates under Istio', () => {
    const plain = render(['--set', 'metrics.serviceMonitor.enabled=true']);
    const mesh = render(ciValues('eks-values.yaml'));
    for (const [objects, istio] of [
      [plain, false],
      [mesh, true],
    ] as const) {
      const monitors = ofKind(objects, 'ServiceMonitor');
      expect(monitors.map((m) => m.metadata.name).sort()).toEqual(Object.keys(SERVICES).map(fullName).sort());
      for (const m of monitors) {
        expect(m.spec.endpoints).toHaveLength(1);
        expect(m.spec.endpoints[0]).toMatchObject({ port: 'http-api', path: '/metrics', honorLabels: true });
        // `up{service="gateway"}` as the alert rules select it, not the Service name ziggie-gateway.
        expect(m.spec.endpoints[0].relabelings).toEqual([
          { sourceLabels: ['__meta_kubernetes_service_label_app_kubernetes_io_component'], targetLabel: 'service', action: 'replace' },
        ]);
        expect(named(objects, 'Service', m.metadata.name)!.metadata.labels!['app.kubernetes.io/component']).toBe(m.metadata.name.replace('ziggie-', ''));
        expect(m.spec.endpoints[0].scheme).toBe(istio ? 'https' : undefined);
        const svc = named(objects, 'Service', m.metadata.name)!;
        for (const [k, v] of Object.entries<string>(m.spec.selector.matchLabels)) expect(svc.metadata.labels![k]).toBe(v);
      }
    }
    expect(ofKind(mesh, 'ServiceMonitor')[0]!.metadata.labels!.release).toBe('kube-prometheus-stack');
  });

  it('exports traces of every service to tracing.otlpEndpoint', () => {
    const objects = render(ciValues('eks-values.yaml'));
    for (const svc of Object.keys(SERVICES)) {
      const env = named(objects, 'Deployment', fullName(svc))!.spec.template.spec.containers[0].env as any[];
      expect(env.find((e) => e.name === 'OTEL_EXPORTER_OTLP_ENDPOINT')?.value).toBe('http://jaeger-collector.observability.svc:4318');
    }
  });
});

describe('helm test', () => {
  const script = join(CHART, 'files/helm-test.js');

  it('is a test hook Pod in the gateway image that runs files/helm-test.js', () => {
    const objects = render(ciValues('kind-values.yaml'));
    const pod = ofKind(objects, 'Pod')[0]!;
    expect(pod.metadata.annotations!['helm.sh/hook']).toBe('test');
    const c = pod.spec.containers[0];
    expect(c.image).toBe(named(objects, 'Deployment', fullName('gateway'))!.spec.template.spec.containers[0].image);
    expect(c.command).toEqual(['node', '/opt/ziggie-test/helm-test.js']);
    const config = ofKind(objects, 'ConfigMap').find((m) => m.metadata.annotations?.['helm.sh/hook'] === 'test')!;
    expect(config.data['helm-test.js']).toBe(readFileSync(script, 'utf8').replace(/\n$/, ''));
    const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
    expect(JSON.parse(env.ZIGGIE_SERVICES).map((s: { url: string }) => s.url).sort()).toEqual(
      Object.entries(SERVICES)
        .map(([s, p]) => `http://${fullName(s)}.ziggie.svc:${p.http}`)
        .sort(),
    );
    expect(env.ZIGGIE_JWT_SECRET).toEqual({ secretKeyRef: { name: 'ziggie-auth', key: 'jwt-secret' } });
    expect(env.ZIGGIE_TEST_TOOL).toBe('everything.echo');
    // EKS verifies RS256 tokens: the test takes one from a Secret.
    const eks = ofKind(render(ciValues('eks-values.yaml')), 'Pod')[0]!.spec.containers[0].env as any[];
    expect(eks.find((e) => e.name === 'ZIGGIE_TEST_TOKEN').valueFrom).toEqual({ secretKeyRef: { name: 'ziggie-test-token', key: 'token' } });
    expect(eks.find((e) => e.name === 'ZIGGIE_JWT_SECRET')).toBeUndefined();
  });

  /** A stand-in for the gateway and the six /readyz endpoints, recording what the script sends. */
  function standIn(secret: string, opts: { notReady?: string } = {}) {
    const seen: Array<{ method: string; url: string; body?: any }> = [];
    const task = { id: 't-1', status: 'running', waves: [{ index: 1, status: 'running', steps: [{ id: 'gate', status: 'pending' }, { id: 'tool', status: 'pending' }] }] };
    let polls = 0;
    const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        const body = raw ? JSON.parse(raw) : undefined;
        seen.push({ method: req.method!, url: req.url!, body });
        const send = (status: number, value: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(value));
        };
        const ready = /^\/svc\/([a-z-]+)\/readyz$/.exec(req.url!);
        if (ready) return send(ready[1] === opts.notReady ? 503 : 200, { status: ready[1] === opts.notReady ? 'not-ready' : 'ready' });
        try {
          verify((req.headers.authorization ?? '').replace(/^Bearer /, ''), secret, { algorithms: ['HS256'], issuer: 'ziggie-local', audience: 'ziggie-api' });
        } catch {
          return send(401, { code: 'AUTH_INVALID_TOKEN' });
        }
        if (req.method === 'POST' && req.url === '/v1/tasks') return send(201, { id: task.id, status: 'queued' });
        if (req.method === 'GET' && req.url === '/v1/tasks/t-1') {
          polls += 1;
          const steps = task.waves[0]!.steps;
          if (steps[0]!.status === 'pending' && polls > 1) steps[0]!.status = 'waiting_approval';
          if (steps[0]!.status === 'succeeded' && steps[1]!.status !== 'succeeded') steps[1]!.status = 'succeeded';
          else if (steps[1]!.status === 'succeeded') task.status = 'succeeded';
          return send(200, task);
        }
        if (req.method === 'POST' && req.url === '/v1/tasks/t-1/steps/gate/approve') {
          task.waves[0]!.steps[0]!.status = 'succeeded';
          return send(200, {});
        }
        send(404, { code: 'NOT_FOUND' });
      });
    });
    return { server, seen };
  }

  async function runScript(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
    const child = spawn(process.execPath, [script], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const code = await new Promise<number | null>((ok) => child.on('exit', ok));
    return { code, output };
  }

  it('checks every /readyz, then runs a task through approval and a tool step with a self-signed admin token', async () => {
    const secret = 'a-release-secret-of-some-length';
    const { server, seen } = standIn(secret);
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const { code, output } = await runScript({
        ZIGGIE_SERVICES: JSON.stringify(Object.keys(SERVICES).map((name) => ({ name, url: `${base}/svc/${name}` }))),
        ZIGGIE_GATEWAY_URL: base,
        ZIGGIE_TEST_WORKSPACE: 'ziggie',
        ZIGGIE_TEST_CAPABILITY: 'qa',
        ZIGGIE_TEST_TOOL: 'everything.echo',
        ZIGGIE_TEST_TOOL_ARGUMENTS: '{"message":"helm test"}',
        ZIGGIE_TEST_TIMEOUT_SECONDS: '30',
        ZIGGIE_JWT_SECRET: secret,
        JWT_ISSUER: 'ziggie-local',
        JWT_AUDIENCE: 'ziggie-api',
      });
      expect({ code, output }).toEqual({ code: 0, output: expect.stringContaining('task t-1 succeeded') });
      expect(seen.filter((s) => s.url.endsWith('/readyz')).map((s) => basename(s.url.replace('/readyz', '')))).toEqual(Object.keys(SERVICES));
      expect(seen.find((s) => s.method === 'POST' && s.url === '/v1/tasks')!.body).toEqual({
        title: 'helm test',
        workspace: 'ziggie',
        priority: 'P2',
        plan: {
          steps: [
            { id: 'gate', capability: 'qa', action: 'approval' },
            { id: 'tool', capability: 'qa', action: 'tool', dependsOn: ['gate'], input: { tool: 'everything.echo', arguments: { message: 'helm test' } } },
          ],
        },
      });
      expect(seen.find((s) => s.url.endsWith('/approve'))!.body).toEqual({ decision: 'approve', comment: 'helm test' });
    } finally {
      server.close();
    }
  }, 30_000);

  it('fails naming the service that is not ready', async () => {
    const { server } = standIn('unused-secret-0123456789', { notReady: 'orchestrator' });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const { code, output } = await runScript({
        ZIGGIE_SERVICES: JSON.stringify(['gateway', 'orchestrator'].map((name) => ({ name, url: `${base}/svc/${name}` }))),
        ZIGGIE_GATEWAY_URL: base,
        ZIGGIE_TEST_TIMEOUT_SECONDS: '3',
      });
      expect(code).toBe(1);
      expect(output).toMatch(/FAIL orchestrator \/readyz: gave up \(last: 503 /);
    } finally {
      server.close();
    }
  }, 30_000);
});

describe('NOTES.txt', () => {
  const notes = (values: string) => {
    const r = helm(['install', 'ziggie', CHART, '--namespace', 'ziggie', '--dry-run=client', ...ciValues(values)]);
    expect(r.status).toBe(0);
    return r.stdout.slice(r.stdout.indexOf('NOTES:'));
  };

  it('tells how to get a token, reach the API through Kong or a port-forward, and run helm test', () => {
    const kind = notes('kind-values.yaml');
    expect(kind).toContain("kubectl -n ziggie get secret ziggie-auth -o jsonpath='{.data.jwt-secret}'");
    expect(kind).toContain("node cli/dist/main.js token --role admin --workspace '*'");
    expect(kind).toContain('kubectl -n kong port-forward svc/kong-gateway-proxy 8080:80');
    expect(kind).toContain('kubectl -n ziggie port-forward svc/ziggie-gateway 4000:4000');
    expect(kind).toContain('helm test ziggie -n ziggie --logs');
    const eks = notes('eks-values.yaml');
    expect(eks).toContain('export ZIGGIE_URL=https://api.ziggie.example.com');
    expect(eks).toContain('curl "$ZIGGIE_URL/.well-known/oauth-protected-resource/mcp"');
    expect(eks).not.toContain('Set mcp.publicUrl');
    expect(kind).toContain('Set mcp.publicUrl (or kong.host)');
    expect(eks).toContain('Tokens come from your identity provider');
    expect(eks).toContain('GPU pools: sdxl, llm.');
  });
});

// The objects of one more scenario the checks above lean on, to keep them honest.
it('keeps the test hook resources out of a release without tests', () => {
  const objects: K8sObject[] = render(['--set', 'tests.enabled=false']);
  expect(objects.filter((o) => o.metadata.annotations?.['helm.sh/hook'])).toEqual([]);
  expect(JSON.stringify(ofKind(objects, 'NetworkPolicy'))).not.toContain('"tests"');
});
