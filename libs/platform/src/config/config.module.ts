import { DynamicModule, Global, Module } from '@nestjs/common';
import { PlatformConfig } from './config';

export const CONFIG = Symbol('ZIGGIE_CONFIG');

/** Makes the already-validated configuration injectable as CONFIG. */
@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: PlatformConfig): DynamicModule {
    return { module: ConfigModule, providers: [{ provide: CONFIG, useValue: config }], exports: [CONFIG] };
  }
}
