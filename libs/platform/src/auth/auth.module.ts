import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { CONFIG } from '../config/config.module';
import { PlatformConfig } from '../config/config';
import { AuthGuard } from './auth.guard';
import { JwtVerifier } from './jwt';

/** Verifies bearer tokens on every HTTP route of the importing application. */
@Module({
  providers: [
    { provide: JwtVerifier, useFactory: (config: PlatformConfig) => new JwtVerifier(config.auth), inject: [CONFIG] },
    { provide: APP_GUARD, useClass: AuthGuard },
  ],
  exports: [JwtVerifier],
})
export class AuthModule {}
