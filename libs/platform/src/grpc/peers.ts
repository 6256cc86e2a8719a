import { Inject, Injectable, OnApplicationShutdown, Optional } from '@nestjs/common';
import type { Client } from '@grpc/grpc-js';
import { PlatformConfig } from '../config/config';
import { CONFIG } from '../config/config.module';
import { GrpcPeer } from '../config/services';
import { Discovery } from '../discovery/discovery';
import { DISCOVERY } from '../discovery/discovery.module';
import { MetricsService } from '../health/metrics';
import { callUnaryOn, createGrpcClient, GrpcClientConstructor } from './grpc';
import { grpcClientMetrics } from './metrics';

/** A generated service definition: each method's streaming flags and its request and response codecs. */
interface MethodDefinition {
  requestStream: boolean;
  responseStream: boolean;
}

/** Per call: the deadline, when a method needs another than its peer's default. */
export interface PeerCallOptions {
  timeoutMs?: number;
}

/**
 * The unary methods of a service as promises of their answer, named as in the .proto: the
 * request and response types come from the generated definition, so a call site cannot mix
 * up a method and its message.
 */
export type UnaryApi<S> = {
  [K in keyof S as S[K] extends { requestStream: false; responseStream: false } ? K : never]: S[K] extends {
    requestSerialize(value: infer Req): Buffer;
    responseDeserialize(value: Buffer): infer Res;
  }
    ? (request: Req, options?: PeerCallOptions) => Promise<Res>
    : never;
};

/** The default deadline of a unary call to a peer. */
export const PEER_TIMEOUT_MS = 10_000;

/** gRPC clients to the other services, one per peer, addressed through discovery and TLS from config. */
@Injectable()
export class PeerClients implements OnApplicationShutdown {
  private readonly clients = new Map<GrpcPeer, Promise<Client>>();
  private readonly apis = new Map<string, unknown>();

  constructor(
    @Inject(CONFIG) private readonly config: PlatformConfig,
    @Inject(DISCOVERY) private readonly discovery: Discovery,
    @Optional() private readonly metrics?: MetricsService,
  ) {}

  get<C extends Client>(peer: GrpcPeer, Ctor: GrpcClientConstructor<C>): Promise<C> {
    let client = this.clients.get(peer);
    if (!client) {
      const interceptors = this.metrics ? [grpcClientMetrics(this.metrics, peer)] : [];
      client = this.discovery.resolve(peer).then((address) => createGrpcClient(Ctor, address, this.config.grpc.tls, interceptors));
      client.catch(() => this.clients.delete(peer));
      this.clients.set(peer, client);
    }
    return client as Promise<C>;
  }

  /**
   * The peer's unary methods by name (`registry.getAgent({ id })`), each with the correlation id,
   * trace context and a deadline (`timeoutMs`, the peer's default unless the call gives one);
   * errors come back as the ZiggieError the peer threw. One object per peer, over the one client.
   */
  api<C extends Client, S extends object>(peer: GrpcPeer, Ctor: GrpcClientConstructor<C> & { service: S }, timeoutMs = PEER_TIMEOUT_MS): UnaryApi<S> {
    const key = `${peer} ${timeoutMs}`;
    let api = this.apis.get(key) as UnaryApi<S> | undefined;
    if (!api) {
      const methods: Record<string, (request: unknown, options?: PeerCallOptions) => Promise<unknown>> = {};
      for (const [name, def] of Object.entries(Ctor.service as Record<string, MethodDefinition>)) {
        if (def.requestStream || def.responseStream) continue;
        methods[name] = async (request, options) => callUnaryOn(await this.get(peer, Ctor), name, request, { timeoutMs: options?.timeoutMs ?? timeoutMs, peer });
      }
      api = methods as UnaryApi<S>;
      this.apis.set(key, api);
    }
    return api;
  }

  async onApplicationShutdown(): Promise<void> {
    const all = await Promise.allSettled([...this.clients.values()]);
    for (const c of all) if (c.status === 'fulfilled') c.value.close();
    this.clients.clear();
  }
}
