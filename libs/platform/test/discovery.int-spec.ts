import 'reflect-metadata';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ZiggieError } from '@ziggie/contracts';
import { loadConfig } from '../src/config/config';
import { ConfigModule } from '../src/config/config.module';
import { ServiceName } from '../src/config/services';
import {
  ConsulDiscovery,
  createDiscovery,
  DISCOVERY,
  Discovery,
  DiscoveryModule,
  StaticDiscovery,
} from '../src/discovery';

const SECRET = 'discovery-test-secret-0123456789';
const TOKEN = 'consul-acl-token-1234';

interface Registration {
  Name: string;
  ID: string;
  Address?: string;
  Port?: number;
  Tags?: string[];
  Meta?: Record<string, string>;
  Check?: Record<string, unknown>;
}

interface Seen {
  method: string;
  path: string;
  query: string;
  token: string | undefined;
}

/**
 * A test double of the Consul agent HTTP API: only the endpoints ConsulDiscovery uses, with
 * Consul's response shapes (base64 KV values, 404 for a missing key or service id, 403 for a
 * bad ACL token). A real Consul is not available where these tests run.
 */
class ConsulDouble {
  readonly services = new Map<string, Registration>();
  readonly status = new Map<string, 'passing' | 'critical'>();
  readonly kv = new Map<string, string>();
  readonly seen: Seen[] = [];
  readonly unexpected: string[] = [];
  private server?: Server;

  constructor(private readonly token: string) {}

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** Adds an instance as another node's agent would have registered it. */
  add(name: string, id: string, address: string, port: number, status: 'passing' | 'critical'): void {
    this.services.set(id, { Name: name, ID: id, Address: address, Port: port });
    this.status.set(id, status);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://consul');
    const token = req.headers['x-consul-token'] as string | undefined;
    // Consul (Go net/http) routes on the decoded path; the client percent-encodes "/" in KV keys.
    const path = decodeURIComponent(url.pathname);
    this.seen.push({ method: req.method ?? '', path, query: url.search, token });
    const body = await new Promise<string>((resolve) => {
      let data = '';
      req.on('data', (chunk: Buffer) => (data += chunk.toString()));
      req.on('end', () => resolve(data));
    });
    const send = (status: number, payload?: unknown) => {
      res.writeHead(status, payload === undefined ? {} : { 'content-type': 'application/json' });
      res.end(payload === undefined ? '' : JSON.stringify(payload));
    };
    if (token !== this.token) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('ACL not found');
      return;
    }

    let m: RegExpExecArray | null;
    if (req.method === 'PUT' && path === '/v1/agent/service/register') {
      const registration = JSON.parse(body) as Registration;
      this.services.set(registration.ID, registration);
      this.status.set(registration.ID, 'critical'); // Consul starts a service critical until its check passes.
      return send(200);
    }
    if (req.method === 'PUT' && (m = /^\/v1\/agent\/service\/deregister\/([^/]+)$/.exec(path))) {
      const id = m[1];
      if (!this.services.delete(id)) {
        res.writeHead(404).end(`Unknown service ID "${id}"`);
        return;
      }
      return send(200);
    }
    if (req.method === 'GET' && (m = /^\/v1\/health\/service\/([^/]+)$/.exec(path))) {
      const name = m[1];
      const passingOnly = url.searchParams.has('passing') && url.searchParams.get('passing') !== 'false';
      const entries = [...this.services.values()]
        .filter((s) => s.Name === name)
        .filter((s) => !passingOnly || this.status.get(s.ID) === 'passing')
        .map((s) => ({
          Node: { ID: 'node-1', Node: 'node-1', Address: '192.0.2.1', Datacenter: 'dc1' },
          Service: { ID: s.ID, Service: s.Name, Tags: s.Tags ?? [], Address: s.Address ?? '', Meta: s.Meta ?? {}, Port: s.Port ?? 0 },
          Checks: [{ CheckID: `service:${s.ID}`, Status: this.status.get(s.ID), ServiceID: s.ID }],
        }));
      return send(200, entries);
    }
    if (req.method === 'GET' && path.startsWith('/v1/kv/')) {
      const key = path.slice('/v1/kv/'.length);
      const value = this.kv.get(key);
      if (value === undefined) return send(404);
      return send(200, [
        { LockIndex: 0, Key: key, Flags: 0, Value: Buffer.from(value).toString('base64'), CreateIndex: 7, ModifyIndex: 7 },
      ]);
    }
    this.unexpected.push(`${req.method} ${path}`);
    send(404);
  }
}

function configFor(service: ServiceName, env: Record<string, string>) {
  return loadConfig(service, undefined, { ZIGGIE_JWT_SECRET: SECRET, LOG_LEVEL: 'silent', ...env });
}

describe('ConsulDiscovery against a Consul HTTP API test double', () => {
  const consul = new ConsulDouble(TOKEN);
  let addr: string;
  const serviceId = (service: string) => `${service}-${hostname()}-${process.pid}`;

  beforeAll(async () => {
    addr = await consul.start();
  });

  afterAll(async () => {
    await consul.stop();
  });

  beforeEach(() => {
    consul.services.clear();
    consul.status.clear();
    consul.kv.clear();
    consul.seen.length = 0;
  });

  afterEach(() => {
    expect(consul.unexpected).toEqual([]);
  });

  const orchestrator = () =>
    configFor('orchestrator', {
      CONSUL_HTTP_ADDR: addr,
      CONSUL_HTTP_TOKEN: TOKEN,
      DISCOVERY_ADVERTISE_HOST: '10.1.2.3',
      HTTP_PORT: '4010',
      GRPC_PORT: '50051',
      WORKSPACE_COORD_GRPC_ADDR: '10.9.9.9:50053',
    });

  it('is what createDiscovery picks when CONSUL_HTTP_ADDR is set', () => {
    expect(createDiscovery(orchestrator())).toBeInstanceOf(ConsulDiscovery);
    expect(createDiscovery(configFor('orchestrator', {}))).toBeInstanceOf(StaticDiscovery);
  });

  it('registers the service with its gRPC port and an HTTP health check, sending the token', async () => {
    await new ConsulDiscovery(orchestrator()).register();

    expect(consul.seen).toEqual([{ method: 'PUT', path: '/v1/agent/service/register', query: '', token: TOKEN }]);
    const registration = consul.services.get(serviceId('orchestrator'));
    expect(registration).toEqual({
      Name: 'ziggie-orchestrator',
      ID: serviceId('orchestrator'),
      Address: '10.1.2.3',
      Port: 50051,
      Tags: ['ziggie', 'grpc'],
      Meta: { service: 'orchestrator', httpPort: '4010', grpcPort: '50051' },
      Check: {
        Name: 'orchestrator /healthz',
        HTTP: 'http://10.1.2.3:4010/healthz',
        Interval: '10s',
        Timeout: '5s',
        DeregisterCriticalServiceAfter: '1m',
      },
    });
  });

  it('registers a service without gRPC on its HTTP port and HTTP host', async () => {
    const config = configFor('gateway', { CONSUL_HTTP_ADDR: addr, CONSUL_HTTP_TOKEN: TOKEN, HTTP_HOST: '127.0.0.5', HTTP_PORT: '4000' });
    await new ConsulDiscovery(config).register();
    const registration = consul.services.get(serviceId('gateway'));
    expect(registration).toMatchObject({ Name: 'ziggie-gateway', Address: '127.0.0.5', Port: 4000, Tags: ['ziggie', 'http'] });
    expect(registration?.Check).toMatchObject({ HTTP: 'http://127.0.0.5:4000/healthz' });
  });

  it('fails when Consul rejects the token', async () => {
    const config = configFor('orchestrator', { CONSUL_HTTP_ADDR: addr, CONSUL_HTTP_TOKEN: 'wrong-token' });
    await expect(new ConsulDiscovery(config).register()).rejects.toThrow();
    expect(consul.services.size).toBe(0);
  });

  it('deregisters its own instance', async () => {
    const discovery = new ConsulDiscovery(orchestrator());
    await discovery.register();
    consul.add('ziggie-orchestrator', 'orchestrator-other-host-1', '10.0.0.9', 50051, 'passing');
    await discovery.deregister();

    expect(consul.seen.at(-1)).toEqual({
      method: 'PUT',
      path: `/v1/agent/service/deregister/${serviceId('orchestrator')}`,
      query: '',
      token: TOKEN,
    });
    expect([...consul.services.keys()]).toEqual(['orchestrator-other-host-1']);
  });

  it('resolves a peer to its passing instances in turn', async () => {
    consul.add('ziggie-agent-registry', 'ar-1', '10.0.0.1', 50052, 'passing');
    consul.add('ziggie-agent-registry', 'ar-2', '', 50062, 'passing'); // no service address: the node's
    consul.add('ziggie-agent-registry', 'ar-3', '10.0.0.3', 50052, 'critical');
    consul.add('ziggie-orchestrator', 'orch-1', '10.0.0.4', 50051, 'passing');
    const discovery = new ConsulDiscovery(orchestrator());

    const picks = [];
    for (let i = 0; i < 4; i++) picks.push(await discovery.resolve('agent-registry'));

    expect(picks).toEqual(['10.0.0.1:50052', '192.0.2.1:50062', '10.0.0.1:50052', '192.0.2.1:50062']);
    expect(consul.seen.at(-1)).toEqual({
      method: 'GET',
      path: '/v1/health/service/ziggie-agent-registry',
      query: '?passing=true',
      token: TOKEN,
    });
  });

  it('falls back to the static address when no instance passes', async () => {
    consul.add('ziggie-workspace-coord', 'wc-1', '10.0.0.7', 50053, 'critical');
    await expect(new ConsulDiscovery(orchestrator()).resolve('workspace-coord')).resolves.toBe('10.9.9.9:50053');
  });

  it('falls back to the static address when Consul cannot be reached', async () => {
    // A port that was just listening and is now closed: connection refused, quickly.
    const probe = new ConsulDouble(TOKEN);
    const closedAddr = await probe.start();
    await probe.stop();
    const config = configFor('orchestrator', { CONSUL_HTTP_ADDR: closedAddr, WORKSPACE_COORD_GRPC_ADDR: '10.9.9.9:50053' });
    await expect(new ConsulDiscovery(config).resolve('workspace-coord')).resolves.toBe('10.9.9.9:50053');
  });

  it('reads KV values under ziggie/ and decodes them', async () => {
    consul.kv.set('ziggie/flags/beta', 'on: ✓ {"limit":5}');
    const discovery = new ConsulDiscovery(orchestrator());

    await expect(discovery.getKv('flags/beta')).resolves.toBe('on: ✓ {"limit":5}');
    await expect(discovery.getKv('flags/missing')).resolves.toBeUndefined();
    expect(consul.seen.map((s) => [s.method, s.path, s.token])).toEqual([
      ['GET', '/v1/kv/ziggie/flags/beta', TOKEN],
      ['GET', '/v1/kv/ziggie/flags/missing', TOKEN],
    ]);
  });

  it('DiscoveryModule registers on bootstrap and deregisters on shutdown', async () => {
    @Module({ imports: [ConfigModule.forRoot(orchestrator()), DiscoveryModule] })
    class AppModule {}
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
    app.enableShutdownHooks();
    await app.init();
    expect(app.get<Discovery>(DISCOVERY)).toBeInstanceOf(ConsulDiscovery);
    expect([...consul.services.keys()]).toEqual([serviceId('orchestrator')]);

    await app.close();
    expect(consul.services.size).toBe(0);
  });

  it('DiscoveryModule keeps the service running when Consul refuses it', async () => {
    const config = configFor('orchestrator', { CONSUL_HTTP_ADDR: addr, CONSUL_HTTP_TOKEN: 'wrong-token' });
    @Module({ imports: [ConfigModule.forRoot(config), DiscoveryModule] })
    class AppModule {}
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
    await expect(app.init()).resolves.toBe(app);
    await expect(app.close()).resolves.toBeUndefined();
    expect(consul.seen.map((s) => s.path)).toEqual([
      '/v1/agent/service/register',
      `/v1/agent/service/deregister/${serviceId('orchestrator')}`,
    ]);
  });
});

describe('StaticDiscovery', () => {
  const config = configFor('gateway', {
    ORCHESTRATOR_GRPC_ADDR: '10.0.0.1:50051',
    AGENT_REGISTRY_GRPC_ADDR: 'localhost:50052',
    WORKSPACE_COORD_GRPC_ADDR: 'workspace-coord.ziggie.svc.cluster.local:50053',
    MCP_GATEWAY_GRPC_ADDR: '[::1]:50054',
  });
  const noLookup = async (name: string): Promise<unknown> => {
    throw new Error(`unexpected DNS lookup of ${name}`);
  };

  it('returns IP and localhost addresses without a DNS lookup', async () => {
    const discovery = new StaticDiscovery(config, noLookup);
    await expect(discovery.resolve('orchestrator')).resolves.toBe('10.0.0.1:50051');
    await expect(discovery.resolve('agent-registry')).resolves.toBe('localhost:50052');
    await expect(discovery.resolve('mcp-gateway')).resolves.toBe('[::1]:50054');
  });

  it('checks a DNS name exists but returns the name for gRPC to resolve', async () => {
    const looked: string[] = [];
    const discovery = new StaticDiscovery(config, async (name) => {
      looked.push(name);
      return { address: '10.96.0.10', family: 4 };
    });
    await expect(discovery.resolve('workspace-coord')).resolves.toBe('workspace-coord.ziggie.svc.cluster.local:50053');
    expect(looked).toEqual(['workspace-coord.ziggie.svc.cluster.local']);
  });

  it('answers UPSTREAM_UNAVAILABLE for a name that does not resolve (real DNS)', async () => {
    const discovery = new StaticDiscovery(configFor('gateway', { WORKSPACE_COORD_GRPC_ADDR: 'no-such-host.invalid:50053' }));
    const error = await discovery.resolve('workspace-coord').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ZiggieError);
    expect((error as ZiggieError).code).toBe('UPSTREAM_UNAVAILABLE');
  });

  it('has no registration and no KV', async () => {
    const discovery = new StaticDiscovery(config, noLookup);
    await expect(discovery.register()).resolves.toBeUndefined();
    await expect(discovery.deregister()).resolves.toBeUndefined();
    await expect(discovery.getKv('anything')).resolves.toBeUndefined();
  });
});
