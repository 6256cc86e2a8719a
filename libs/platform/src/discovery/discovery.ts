import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { Logger } from '@nestjs/common';
import type Consul from 'consul';
import { ZiggieError } from '@ziggie/contracts';
import { PlatformConfig } from '../config/config';
import { GrpcPeer } from '../config/services';

/** Finds gRPC peers and announces this service. Addresses are `host:port`. */
export interface Discovery {
  resolve(peer: GrpcPeer): Promise<string>;
  register(): Promise<void>;
  deregister(): Promise<void>;
  getKv(key: string): Promise<string | undefined>;
}

export type HostLookup = (hostname: string) => Promise<unknown>;

/** Splits `host:port`, `[v6]:port`; the host comes back without brackets. */
function splitHostPort(address: string): { host: string; port: string } {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(address);
  if (bracketed) return { host: bracketed[1], port: bracketed[2] };
  const i = address.lastIndexOf(':');
  return i < 0 ? { host: address, port: '' } : { host: address.slice(0, i), port: address.slice(i + 1) };
}

function joinHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Addresses from configuration. DNS names are looked up only to fail early with a clear error;
 * the name itself is returned because gRPC re-resolves it (Kubernetes Service DNS).
 */
export class StaticDiscovery implements Discovery {
  constructor(
    private readonly config: PlatformConfig,
    private readonly lookup: HostLookup = (name) => dns.lookup(name),
  ) {}

  async resolve(peer: GrpcPeer): Promise<string> {
    const address = this.config.discovery.peers[peer];
    const { host } = splitHostPort(address);
    if (isIP(host) !== 0 || host === 'localhost') return address;
    try {
      await this.lookup(host);
    } catch {
      throw new ZiggieError('UPSTREAM_UNAVAILABLE', `cannot resolve ${peer} host ${host}`, { peer });
    }
    return address;
  }

  register(): Promise<void> {
    return Promise.resolve();
  }

  deregister(): Promise<void> {
    return Promise.resolve();
  }

  getKv(_key: string): Promise<string | undefined> {
    return Promise.resolve(undefined);
  }
}

interface HealthEntry {
  Node?: { Address?: string };
  Service?: { Address?: string; Port?: number };
}

function addressOf(entry: unknown): string | undefined {
  const e = entry as HealthEntry | null;
  const port = e?.Service?.Port;
  // An empty Service.Address means "same as the node", as in Consul's own DNS interface.
  const host = e?.Service?.Address || e?.Node?.Address;
  return host && typeof port === 'number' && port > 0 ? joinHostPort(host, port) : undefined;
}

export const CONSUL_SERVICE_PREFIX = 'ziggie-';
export const CONSUL_KV_PREFIX = 'ziggie/';
const CONSUL_TIMEOUT_MS = 5_000;

/** Registers with the local Consul agent and resolves peers among their passing instances. */
export class ConsulDiscovery implements Discovery {
  readonly serviceId: string;
  private readonly consul: Consul;
  private readonly fallback: StaticDiscovery;
  private readonly next = new Map<GrpcPeer, number>();
  private readonly logger = new Logger('ConsulDiscovery');

  constructor(
    private readonly config: PlatformConfig,
    lookup?: HostLookup,
  ) {
    const addr = config.discovery.consulAddr;
    if (!addr) throw new Error('ConsulDiscovery needs discovery.consulAddr');
    this.serviceId = `${config.service}-${hostname()}-${process.pid}`;
    this.fallback = new StaticDiscovery(config, lookup);
    // baseUrl and timeout are papi client options the consul typings leave out; the URL keeps
    // any path prefix of CONSUL_HTTP_ADDR, and the timeout stops a hung agent blocking start-up.
    const options: ConstructorParameters<typeof Consul>[0] & { baseUrl: string; timeout: number } = {
      baseUrl: `${addr.replace(/\/+$/, '')}/v1`,
      timeout: CONSUL_TIMEOUT_MS,
      defaults: config.discovery.consulToken ? { token: config.discovery.consulToken } : undefined,
    };
    // Loaded only when Consul is configured: the static discovery of the local stack never needs it.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const ConsulClient = require('consul') as typeof Consul;
    this.consul = new ConsulClient(options);
  }

  async register(): Promise<void> {
    const { service, http, grpc, discovery } = this.config;
    const address = discovery.advertiseHost ?? http.host;
    const port = grpc.port !== 0 ? grpc.port : http.port;
    await this.consul.agent.service.register({
      name: `${CONSUL_SERVICE_PREFIX}${service}`,
      id: this.serviceId,
      address,
      port,
      tags: ['ziggie', grpc.port !== 0 ? 'grpc' : 'http'],
      meta: { service, httpPort: String(http.port), grpcPort: String(grpc.port) },
      check: {
        name: `${service} /healthz`,
        http: `http://${joinHostPort(address, http.port)}/healthz`,
        interval: '10s',
        timeout: '5s',
        deregistercriticalserviceafter: '1m',
      },
    });
  }

  async deregister(): Promise<void> {
    await this.consul.agent.service.deregister({ id: this.serviceId });
  }

  async resolve(peer: GrpcPeer): Promise<string> {
    let addresses: string[] = [];
    try {
      const entries: unknown = await this.consul.health.service({ service: `${CONSUL_SERVICE_PREFIX}${peer}`, passing: true });
      addresses = (Array.isArray(entries) ? entries : []).map(addressOf).filter((a): a is string => a !== undefined);
    } catch (error) {
      // A Consul outage should not stop calls to peers whose static address still works.
      this.logger.warn(`consul lookup of ${peer} failed, using the static address: ${(error as Error).message}`);
    }
    if (addresses.length === 0) return this.fallback.resolve(peer);
    const i = this.next.get(peer) ?? 0;
    this.next.set(peer, (i + 1) % addresses.length);
    return addresses[i % addresses.length];
  }

  async getKv(key: string): Promise<string | undefined> {
    const item = await this.consul.kv.get({ key: `${CONSUL_KV_PREFIX}${key}` });
    return item?.Value ?? undefined;
  }
}

/** Consul when CONSUL_HTTP_ADDR is set, the configured addresses otherwise. */
export function createDiscovery(config: PlatformConfig): Discovery {
  return config.discovery.consulAddr ? new ConsulDiscovery(config) : new StaticDiscovery(config);
}
