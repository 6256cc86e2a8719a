import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { CONFIG } from '@ziggie/platform';
import { AuditConfig } from './audit.config';

/**
 * Applies TRUST_PROXY to Express, which decides `req.ip` for the whole gateway (audit records
 * and per-IP limits alike). Off unless configured: a forwarded address is believed only from
 * the proxies named there (Kong in production).
 */
@Injectable()
export class TrustProxySetting implements OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(CONFIG) private readonly config: AuditConfig,
  ) {}

  onModuleInit(): void {
    const express = this.adapterHost.httpAdapter?.getInstance<{ set(name: string, value: unknown): void }>();
    express?.set('trust proxy', this.config.extra.TRUST_PROXY);
  }
}
