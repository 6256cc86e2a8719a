import { Global, Inject, Injectable, Logger, Module, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { CONFIG } from '../config/config.module';
import { createDiscovery, Discovery } from './discovery';

export const DISCOVERY = Symbol('ZIGGIE_DISCOVERY');

/**
 * Announces the service once it is up and withdraws it on shutdown. Failures are logged, not
 * thrown: peers still reach this service through static addresses, and Consul's own health
 * check removes an entry that a crash left behind.
 */
@Injectable()
export class DiscoveryLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Discovery');

  constructor(@Inject(DISCOVERY) private readonly discovery: Discovery) {}

  async onApplicationBootstrap(): Promise<void> {
    try {
      await this.discovery.register();
    } catch (error) {
      this.logger.error(`service registration failed: ${(error as Error).message}`);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    try {
      await this.discovery.deregister();
    } catch (error) {
      this.logger.error(`service deregistration failed: ${(error as Error).message}`);
    }
  }
}

@Global()
@Module({
  providers: [{ provide: DISCOVERY, useFactory: createDiscovery, inject: [CONFIG] }, DiscoveryLifecycle],
  exports: [DISCOVERY],
})
export class DiscoveryModule {}
