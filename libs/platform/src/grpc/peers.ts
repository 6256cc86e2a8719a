import { Inject, Injectable, OnApplicationShutdown, Optional } from '@nestjs/common';
import type { Client } from '@grpc/grpc-js';
import { PlatformConfig } from '../config/config';
import { CONFIG } from '../config/config.module';
import { GrpcPeer } from '../config/services';
import { Discovery } from '../discovery/discovery';
import { DISCOVERY } from '../discovery/discovery.module';
import { MetricsService } from '../health/metrics';
import { createGrpcClient, GrpcClientConstructor } from './grpc';
import { grpcClientMetrics } from './metrics';

/** gRPC clients to the other services, one per peer, addressed through discovery and TLS from config. */
@Injectable()
export class PeerClients implements OnApplicationShutdown {
  private readonly clients = new Map<GrpcPeer, Promise<Client>>();

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

  async onApplicationShutdown(): Promise<void> {
    const all = await Promise.allSettled([...this.clients.values()]);
    for (const c of all) if (c.status === 'fulfilled') c.value.close();
    this.clients.clear();
  }
}
