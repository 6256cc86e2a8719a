import type { Client } from '@grpc/grpc-js';
import type { Discovery, GrpcPeer, PlatformConfig } from '@ziggie/platform';
import { PeerClients } from '@ziggie/platform';

/**
 * The real PeerClients (its typed `api` included) over test doubles of the peers instead of gRPC
 * channels: each double answers a generated client's unary methods with (request, metadata,
 * options, callback), streaming ones as the client would. A peer without a double is refused.
 */
export function peersOver(config: PlatformConfig, doubles: Partial<Record<GrpcPeer, object>>): PeerClients {
  class DoublePeers extends PeerClients {
    override get<C extends Client>(peer: GrpcPeer): Promise<C> {
      const double = doubles[peer];
      return double ? Promise.resolve(double as unknown as C) : Promise.reject(new Error(`unexpected peer ${peer}`));
    }
  }
  return new DoublePeers(config, { resolve: () => Promise.reject(new Error('no discovery with test doubles')) } as unknown as Discovery);
}
