import 'reflect-metadata';
import { DynamicModule, INestApplication, Module, Type } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger as PinoNestLogger } from 'nestjs-pino';
import type { Server } from '@grpc/grpc-js';
import { z } from 'zod';
import { ConfigError, loadConfig, PlatformConfig } from './config/config';
import { ServiceName } from './config/services';
import { DatabaseService } from './db/database.service';
import { GrpcBinding, startGrpcServer, stopGrpcServer } from './grpc/grpc';
import { MetricsService } from './health/metrics';
import { createHttpApplication, type HttpServerOptions } from './http/http-server';
import { createRootLogger } from './logging/logger';
import { NatsService } from './nats/nats.service';
import { PlatformModule, PlatformOptions } from './platform.module';
import { stopTelemetry } from './telemetry/telemetry';

export interface ServiceDefinition<E extends z.ZodRawShape> extends PlatformOptions {
  service: ServiceName;
  /** The service's own variables, validated together with the platform's. */
  extraConfig?: E;
  /** The service's module, built from its validated configuration. */
  module: (config: PlatformConfig & { extra: z.infer<z.ZodObject<E>> }) => Type | DynamicModule;
  /** gRPC services to serve, resolved from the started application. */
  grpc?: (app: INestApplication) => GrpcBinding[];
  /** HTTP server settings of the service's own (which proxies to trust), from its configuration. */
  httpServer?: (config: PlatformConfig & { extra: z.infer<z.ZodObject<E>> }) => HttpServerOptions;
  /** HTTP settings of the service's own (CORS, ...), applied before the routes. */
  configureApp?: (app: NestFastifyApplication, config: PlatformConfig & { extra: z.infer<z.ZodObject<E>> }) => void;
}

export interface RunningService {
  app: NestFastifyApplication;
  config: PlatformConfig;
  grpcPort?: number;
  httpPort: number;
  stop(): Promise<void>;
}

/**
 * Starts a service: configuration (exit listing every bad variable), logging, NATS and
 * database before anything else runs, then HTTP (health, metrics, REST) and gRPC.
 * SIGTERM/SIGINT stop it gracefully.
 */
export async function bootstrapService<E extends z.ZodRawShape>(def: ServiceDefinition<E>, env: NodeJS.ProcessEnv = process.env): Promise<RunningService> {
  let config: PlatformConfig & { extra: z.infer<z.ZodObject<E>> };
  try {
    // A service with migrations keeps its state in PostgreSQL: DATABASE_URL is required.
    config = loadConfig(def.service, def.extraConfig, env, { database: Boolean(def.migrations) });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ziggie-${def.service}: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createRootLogger(config);

  @Module({ imports: [PlatformModule.forRoot(config, logger, def), def.module(config)] })
  class RootModule {}

  const app = await createHttpApplication(RootModule, { http: def.httpServer?.(config), nest: { bufferLogs: true, abortOnError: false, logger: undefined } });
  app.useLogger(app.get(PinoNestLogger));
  def.configureApp?.(app, config);
  // NATS and the database start first: other providers use them from onApplicationBootstrap on.
  if (def.nats) await app.get(NatsService).start();
  if (def.migrations) await app.get(DatabaseService).start();
  await app.init();

  let grpcServer: Server | undefined;
  let grpcPort: number | undefined;
  if (def.grpc) {
    const started = await startGrpcServer(config.grpc, def.grpc(app), config.grpc.tls, app.get(MetricsService));
    grpcServer = started.server;
    grpcPort = started.port;
  }
  await app.listen(config.http.port, config.http.host);
  const httpPort = (app.getHttpServer().address() as { port: number }).port;
  logger.info({ httpPort, grpcPort }, `ziggie-${def.service} ready`);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (grpcServer) await stopGrpcServer(grpcServer, config.shutdownGraceMs);
      await app.close();
      await stopTelemetry();
    })());
  return { app, config, grpcPort, httpPort, stop };
}

/** main.ts entry: start, stop on signals, exit non-zero on a failed start. */
export function runService<E extends z.ZodRawShape>(def: ServiceDefinition<E>): void {
  bootstrapService(def).then(
    (svc) => {
      const onSignal = (signal: string) => {
        svc.app.get(PinoNestLogger).log(`${signal} received, stopping`);
        const force = setTimeout(() => process.exit(1), svc.config.shutdownGraceMs + 5000);
        force.unref();
        svc.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGTERM', () => onSignal('SIGTERM'));
      process.once('SIGINT', () => onSignal('SIGINT'));
    },
    (err: unknown) => {
      process.stderr.write(`ziggie-${def.service}: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
