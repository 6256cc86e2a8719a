import { Controller, Get, HttpStatus, Injectable, Res } from '@nestjs/common';
import { ApiDoc } from '../http/api';
import type { FastifyReply } from 'fastify';
import { Public } from '../auth/auth.decorators';

export interface HealthIndicator {
  name: string;
  check(): Promise<{ ok: boolean; detail?: string }>;
}

/** Readiness checks registered by the modules a service uses (NATS, database, upstreams). */
@Injectable()
export class HealthRegistry {
  private readonly indicators: HealthIndicator[] = [];

  register(indicator: HealthIndicator): void {
    this.indicators.push(indicator);
  }

  async readiness(): Promise<{ ok: boolean; checks: Record<string, { ok: boolean; detail?: string }> }> {
    const results = await Promise.all(
      this.indicators.map(async (i) => {
        try {
          return [i.name, await withTimeout(i.check(), 2000)] as const;
        } catch (err) {
          return [i.name, { ok: false, detail: err instanceof Error ? err.message : String(err) }] as const;
        }
      }),
    );
    return { ok: results.every(([, r]) => r.ok), checks: Object.fromEntries(results) };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`check timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

@Public()
@Controller()
export class HealthController {
  constructor(private readonly registry: HealthRegistry) {}

  /** Liveness: the process answers. */
  @Get('healthz')
  @ApiDoc({ summary: 'Liveness: the process answers', tag: 'operations' })
  healthz(): { status: string } {
    return { status: 'ok' };
  }

  /** Readiness: every dependency this service needs answers. */
  @Get('readyz')
  @ApiDoc({ summary: 'Readiness: every dependency answers (503 with the failing checks otherwise)', tag: 'operations', errors: ['SERVICE_UNAVAILABLE'] })
  async readyz(@Res({ passthrough: true }) res: FastifyReply): Promise<object> {
    const r = await this.registry.readiness();
    res.status(r.ok ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE);
    return { status: r.ok ? 'ready' : 'not-ready', checks: r.checks };
  }
}
