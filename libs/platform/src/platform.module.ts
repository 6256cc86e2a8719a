import { DynamicModule, Module, Provider } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { Logger } from 'pino';
import { PlatformConfig } from './config/config';
import { ConfigModule } from './config/config.module';
import { DB_MIGRATIONS, DatabaseService, Migrations } from './db/database.service';
import { DiscoveryModule } from './discovery/discovery.module';
import { PeerClients } from './grpc/peers';
import { HealthController, HealthRegistry } from './health/health';
import { MetricsController, MetricsService } from './health/metrics';
import { ErrorFormats, ProblemEvents, ProblemFilter } from './http/problem';
import { LoggingModule } from './logging/logging.module';
import { NATS_OPTIONS, NatsModuleOptions, NatsService } from './nats/nats.service';

export interface PlatformOptions {
  /** Migrations of the service's own tables; omit for a service without a database. */
  migrations?: Migrations;
  /** Streams and consumers; omit for a service that does not use NATS. */
  nats?: NatsModuleOptions;
}

/**
 * Everything every service shares, wired once: config, logging, health, metrics, errors (with
 * ProblemEvents to watch them), discovery, and optionally NATS and the database. Global, so
 * service modules just inject.
 */
@Module({})
export class PlatformModule {
  static forRoot(config: PlatformConfig, logger: Logger, options: PlatformOptions): DynamicModule {
    const providers: Provider[] = [
      HealthRegistry,
      { provide: MetricsService, useValue: new MetricsService(config.service) },
      ProblemEvents,
      ErrorFormats,
      { provide: APP_FILTER, useClass: ProblemFilter },
      PeerClients,
    ];
    const exports: Array<Provider | symbol | string | (abstract new (...args: never[]) => unknown)> = [HealthRegistry, MetricsService, ProblemEvents, ErrorFormats, PeerClients];
    if (options.nats) {
      providers.push({ provide: NATS_OPTIONS, useValue: options.nats }, NatsService);
      exports.push(NatsService);
    }
    if (options.migrations) {
      providers.push({ provide: DB_MIGRATIONS, useValue: options.migrations }, DatabaseService);
      exports.push(DatabaseService);
    }
    return {
      module: PlatformModule,
      global: true,
      imports: [ConfigModule.forRoot(config), LoggingModule.forRoot(logger), DiscoveryModule],
      controllers: [HealthController, MetricsController],
      providers,
      exports: exports as DynamicModule['exports'],
    };
  }
}
