import { DynamicModule, Module, Provider } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { CONFIG, PlatformConfig } from '@ziggie/platform';
import { RateLimitOptions, rateLimitOptionsFrom } from './rate-limit.config';
import { RateLimitGuard } from './rate-limit.guard';
import { GatewayRateLimiter } from './rate-limiter';

export const RATE_LIMIT_OPTIONS = Symbol('RATE_LIMIT_OPTIONS');

/**
 * Rate limits of the gateway's REST API. Import it after AuthModule: global guards run in module
 * order, and the limits are drawn per authenticated subject.
 */
@Module({})
export class RateLimitModule {
  /** Options from the given object, or from the service configuration's RATE_LIMIT_* and REDIS_URL. */
  static forRoot(options?: RateLimitOptions): DynamicModule {
    const optionsProvider: Provider = options
      ? { provide: RATE_LIMIT_OPTIONS, useValue: options }
      : {
          provide: RATE_LIMIT_OPTIONS,
          useFactory: (config: PlatformConfig & { extra?: Record<string, unknown> }) => rateLimitOptionsFrom(config.extra ?? {}),
          inject: [CONFIG],
        };
    return {
      module: RateLimitModule,
      providers: [
        optionsProvider,
        { provide: GatewayRateLimiter, useFactory: (opts: RateLimitOptions) => GatewayRateLimiter.create(opts), inject: [RATE_LIMIT_OPTIONS] },
        { provide: APP_GUARD, useClass: RateLimitGuard },
      ],
      exports: [GatewayRateLimiter],
    };
  }
}
