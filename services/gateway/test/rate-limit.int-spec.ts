import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { Controller, Get, INestApplication, Logger, Module, Type } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { AuthModule, ConfigModule, CurrentPrincipal, loadConfig, Principal, ProblemFilter, signDevToken, createHttpApplication } from '@ziggie/platform';
import { RateLimitModule, RateLimitOptions } from '../src/rate-limit';
import { freePort, startRedis, type RedisServerHandle } from '../../../test/support';

const SECRET = 'rate-limit-int-secret-0123456789';
const config = loadConfig('gateway', undefined, { ZIGGIE_JWT_SECRET: SECRET, HTTP_PORT: '0', LOG_LEVEL: 'silent' });
const tokenFor = (subject: string) =>
  signDevToken({ subject, roles: ['l1'], workspaces: ['*'], ttlSeconds: 300 }, { secret: SECRET, issuer: config.auth.issuer, audience: config.auth.audience });

@Controller('v1')
class PingController {
  @Get('ping')
  ping(@CurrentPrincipal() principal: Principal): { subject: string } {
    return { subject: principal.subject };
  }
}

function gatewayReplica(options: RateLimitOptions): Type {
  @Module({
    imports: [ConfigModule.forRoot(config), AuthModule, RateLimitModule.forRoot(options)],
    controllers: [PingController],
    providers: [{ provide: APP_FILTER, useClass: ProblemFilter }],
  })
  class ReplicaModule {}
  return ReplicaModule;
}

async function startReplica(options: RateLimitOptions): Promise<{ app: INestApplication; base: string }> {
  const app = await createHttpApplication(gatewayReplica(options));
  await app.listen(0, '127.0.0.1');
  return { app, base: await app.getUrl() };
}

describe('gateway rate limits shared through a real redis-server', () => {
  let redis: RedisServerHandle;
  let replicas: Array<{ app: INestApplication; base: string }>;
  let warn: jest.SpyInstance;

  beforeAll(async () => {
    warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    redis = await startRedis();
    // Both replicas share one key prefix, as replicas of one deployment do.
    const options: RateLimitOptions = { userPerMinute: 10, workspacePerMinute: 0, adminPerMinute: 0, redisUrl: redis.url, keyPrefix: `test:${randomUUID()}` };
    replicas = [await startReplica(options), await startReplica(options)];
  }, 30_000);

  afterAll(async () => {
    await Promise.all((replicas ?? []).map((r) => r.app.close()));
    await redis?.stop();
    warn.mockRestore();
  });

  const ping = (replica: number, token: string) => fetch(`${replicas[replica]!.base}/v1/ping`, { headers: { authorization: `Bearer ${token}` } });

  it('enforces one budget across both replicas: 10 allowed in all, the 11th refused', async () => {
    const token = tokenFor('shared-user');
    for (let i = 1; i <= 10; i++) {
      const res = await ping(i % 2, token);
      expect(res.status).toBe(200);
      expect(res.headers.get('ratelimit-remaining')).toBe(String(10 - i));
    }
    for (const replica of [0, 1]) {
      const refused = await ping(replica, token);
      expect(refused.status).toBe(429);
      expect(await refused.json()).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
      const retryAfter = Number(refused.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect({
        limit: refused.headers.get('ratelimit-limit'),
        remaining: refused.headers.get('ratelimit-remaining'),
        reset: Number(refused.headers.get('ratelimit-reset')),
        policy: refused.headers.get('ratelimit-policy'),
      }).toEqual({ limit: '10', remaining: '0', reset: retryAfter, policy: '10;w=60' });
    }
    // Another subject is unaffected.
    expect((await ping(1, tokenFor('other-user'))).status).toBe(200);
  });

  it('keeps answering with Redis stopped, counting in process, and says so in the log', async () => {
    await redis.stop();
    const token = tokenFor('during-outage');
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await ping(0, token)).status);
    // Fail open, yet still limited: replica 0 counts this subject on its own.
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(200));
    expect(statuses.slice(10)).toEqual([429, 429]);
    expect((await ping(1, token)).status).toBe(200);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('Redis unreachable'));
  }, 30_000);

  it('starts and answers when Redis is not there at all', async () => {
    const nowhere = `redis://127.0.0.1:${await freePort()}`;
    const started = Date.now();
    const replica = await startReplica({ userPerMinute: 2, workspacePerMinute: 0, adminPerMinute: 0, redisUrl: nowhere, keyPrefix: `test:${randomUUID()}` });
    try {
      expect(Date.now() - started).toBeLessThan(10_000);
      const token = tokenFor('no-redis');
      const get = () => fetch(`${replica.base}/v1/ping`, { headers: { authorization: `Bearer ${token}` } });
      expect([(await get()).status, (await get()).status, (await get()).status]).toEqual([200, 200, 429]);
      expect(warn).toHaveBeenCalledWith(expect.stringContaining('Redis not reachable at start'));
    } finally {
      await replica.app.close();
    }
  }, 30_000);
});
