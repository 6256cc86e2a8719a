import 'reflect-metadata';
import { Body, Controller, Get, INestApplication, Logger, Module, Param, Post, Put } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { AuthModule, ConfigModule, CurrentPrincipal, loadConfig, Principal, ProblemFilter, Public, RequirePermission, signDevToken, createHttpApplication } from '@ziggie/platform';
import { definition, GatewayModule } from '../service';
import { AdminApi } from './admin-api.decorator';
import { RateLimitOptions, rateLimitOptionsFrom } from './rate-limit.config';
import { workspaceOf } from './rate-limit.guard';
import { RateLimitModule } from './rate-limit.module';
import { GatewayRateLimiter, LimitKey } from './rate-limiter';

const SECRET = 'rate-limit-test-secret-0123456789';
const config = loadConfig('gateway', undefined, { ZIGGIE_JWT_SECRET: SECRET, HTTP_PORT: '0', LOG_LEVEL: 'silent' });
const signer = { secret: SECRET, issuer: config.auth.issuer, audience: config.auth.audience };
const LIMITS: RateLimitOptions = { userPerMinute: 5, workspacePerMinute: 8, adminPerMinute: 2 };

function tokenFor(subject: string, workspaces: string[] = ['*'], roles: string[] = ['admin']): string {
  return signDevToken({ subject, roles, workspaces, ttlSeconds: 300 }, signer);
}

@Controller('v1')
class LimitedController {
  @Get('things')
  list(@CurrentPrincipal() principal: Principal): { subject: string } {
    return { subject: principal.subject };
  }

  @Post('things')
  @RequirePermission('agent:dispatch')
  create(@Body() body: unknown): unknown {
    return body;
  }

  @Get('workspaces/:id/health')
  health(@Param('id') id: string): { id: string } {
    return { id };
  }

  @Post('workspaces')
  @RequirePermission('workspace:manage')
  createWorkspace(): string {
    return 'created';
  }

  @Put('settings')
  @RequirePermission('config:change')
  settings(): string {
    return 'changed';
  }

  @Post('reindex')
  @AdminApi()
  reindex(): string {
    return 'reindexing';
  }
}

@Public()
@Controller()
class OperationsController {
  @Get(['healthz', 'readyz', 'metrics', 'docs', 'openapi.json'])
  ok(): string {
    return 'ok';
  }
}

@Module({
  imports: [ConfigModule.forRoot(config), AuthModule, RateLimitModule.forRoot(LIMITS)],
  controllers: [LimitedController, OperationsController],
  providers: [{ provide: APP_FILTER, useClass: ProblemFilter }],
})
class TestModule {}

describe('RateLimitModule in a Nest HTTP application (in process)', () => {
  let app: INestApplication;
  let base: string;
  let consumed: LimitKey[][];

  beforeAll(async () => {
    app = await createHttpApplication(TestModule);
    await app.listen(0, '127.0.0.1');
    base = await app.getUrl();
    const limiter = app.get(GatewayRateLimiter);
    const consume = limiter.consume.bind(limiter);
    jest.spyOn(limiter, 'consume').mockImplementation((keys) => {
      consumed.push(keys);
      return consume(keys);
    });
  });

  afterAll(async () => {
    await app.close();
  });

  beforeEach(() => {
    consumed = [];
  });

  const call = (method: string, path: string, token?: string, body?: unknown) =>
    fetch(`${base}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const rateHeaders = (res: Response) => ({
    limit: res.headers.get('ratelimit-limit'),
    remaining: res.headers.get('ratelimit-remaining'),
    policy: res.headers.get('ratelimit-policy'),
  });

  async function expectRateLimited(res: Response, policy: string): Promise<void> {
    expect(res.status).toBe(429);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(await res.json()).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(rateHeaders(res)).toEqual({ limit: policy.split(';')[0], remaining: '0', policy });
    expect(Number(res.headers.get('ratelimit-reset'))).toBe(retryAfter);
  }

  it('runs after the AuthGuard, drawing on the budget of the verified subject', async () => {
    const res = await call('GET', '/v1/things', tokenFor('order-check'));
    expect(res.status).toBe(200);
    expect(consumed).toEqual([[{ scope: 'user', key: 'order-check' }]]);
  });

  it('is imported after AuthModule by the gateway, which is what makes it run second', () => {
    const imports = (Reflect.getMetadata('imports', GatewayModule) as unknown[]).map((m) =>
      typeof m === 'object' && m !== null && 'module' in m ? (m as { module: unknown }).module : m,
    );
    expect(imports.indexOf(AuthModule)).toBeGreaterThanOrEqual(0);
    expect(imports.indexOf(RateLimitModule)).toBeGreaterThan(imports.indexOf(AuthModule));
  });

  it('sends the RateLimit headers on every limited response and refuses the request past the user limit', async () => {
    const token = tokenFor('user-limit');
    for (let i = 1; i <= 5; i++) {
      const res = await call('GET', '/v1/things', token);
      expect(res.status).toBe(200);
      expect(rateHeaders(res)).toEqual({ limit: '5', remaining: String(5 - i), policy: '5;w=60' });
      const reset = Number(res.headers.get('ratelimit-reset'));
      expect(reset).toBeGreaterThanOrEqual(1);
      expect(reset).toBeLessThanOrEqual(60);
    }
    await expectRateLimited(await call('GET', '/v1/things', token), '5;w=60');
    // Another user has a budget of their own.
    expect((await call('GET', '/v1/things', tokenFor('user-limit-other'))).status).toBe(200);
  });

  it('shares a workspace budget between users, named in the body, the query or the path', async () => {
    const a = tokenFor('ws-a', ['shared']);
    const b = tokenFor('ws-b', ['shared']);
    for (let i = 0; i < 3; i++) expect((await call('POST', '/v1/things', a, { workspace: 'shared' })).status).toBe(201);
    for (let i = 0; i < 2; i++) expect((await call('GET', '/v1/things?workspace=shared', a)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await call('GET', '/v1/workspaces/shared/health', b)).status).toBe(200);
    const eighth = await call('GET', '/v1/things?workspace=shared', b);
    expect(eighth.status).toBe(200);
    // b has 2 of 5 left, the workspace 0 of 8: the workspace is the most restrictive.
    expect(rateHeaders(eighth)).toEqual({ limit: '8', remaining: '0', policy: '8;w=60' });
    await expectRateLimited(await call('POST', '/v1/things', b, { workspace: 'shared' }), '8;w=60');
    // The refused request gave its user point back: b has drawn 3 of 5.
    const free = await call('GET', '/v1/things', b);
    expect(rateHeaders(free)).toEqual({ limit: '5', remaining: '1', policy: '5;w=60' });
  });

  it('does not count a workspace the caller may not use, nor a malformed one', async () => {
    await call('GET', '/v1/things?workspace=victim', tokenFor('outsider', ['mine']));
    await call('POST', '/v1/things', tokenFor('outsider-2', ['*']), { workspace: '../Not A Workspace' });
    await call('POST', '/v1/things', tokenFor('outsider-3', ['*']), { workspace: ['victim'] });
    expect(consumed.flat().filter((k) => k.scope === 'workspace')).toEqual([]);
  });

  it.each([
    ['PUT', '/v1/settings', 'config:change'],
    ['POST', '/v1/workspaces', 'workspace:manage'],
    ['POST', '/v1/reindex', '@AdminApi()'],
  ])('applies the admin budget to %s %s (%s)', async (method, path) => {
    const token = tokenFor(`admin-${path}`);
    const first = await call(method, path, token);
    expect(first.ok).toBe(true);
    // Admin 1 of 2 left is tighter than user 4 of 5.
    expect(rateHeaders(first)).toEqual({ limit: '2', remaining: '1', policy: '2;w=60' });
    expect((await call(method, path, token)).ok).toBe(true);
    await expectRateLimited(await call(method, path, token), '2;w=60');
    // Other APIs still answer: the refused admin call gave its user point back.
    const other = await call('GET', '/v1/things', token);
    expect(other.status).toBe(200);
    expect(rateHeaders(other)).toEqual({ limit: '5', remaining: '2', policy: '5;w=60' });
  });

  it('never limits public routes and sends them no RateLimit headers', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/docs', '/openapi.json']) {
      for (let i = 0; i < 8; i++) {
        const res = await call('GET', path, tokenFor('public'));
        expect(res.status).toBe(200);
        expect(res.headers.get('ratelimit-limit')).toBeNull();
      }
    }
    expect(consumed).toEqual([]);
  });

  it('leaves unauthenticated requests to the AuthGuard without drawing on any budget', async () => {
    const res = await call('GET', '/v1/things');
    expect(res.status).toBe(401);
    expect(res.headers.get('ratelimit-limit')).toBeNull();
    expect(consumed).toEqual([]);
  });
});

describe('GatewayRateLimiter (in process)', () => {
  it('skips a scope whose limit is 0', async () => {
    const limiter = GatewayRateLimiter.create({ userPerMinute: 0, workspacePerMinute: 0, adminPerMinute: 1 });
    expect(await limiter.consume([{ scope: 'user', key: 'u' }])).toEqual({ allowed: true });
    expect(await limiter.consume([{ scope: 'admin', key: 'u' }])).toMatchObject({ allowed: true, state: { scope: 'admin', limit: 1, remaining: 0 } });
    expect(await limiter.consume([{ scope: 'admin', key: 'u' }])).toMatchObject({ allowed: false, state: { scope: 'admin', limit: 1, remaining: 0 } });
  });

  it('rejects a negative or fractional limit', () => {
    expect(() => GatewayRateLimiter.create({ ...LIMITS, userPerMinute: -1 })).toThrow(/user/);
    expect(() => GatewayRateLimiter.create({ ...LIMITS, workspacePerMinute: 1.5 })).toThrow(/workspace/);
  });

  it('logs nothing in process', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const limiter = GatewayRateLimiter.create(LIMITS);
    await limiter.consume([{ scope: 'user', key: 'quiet' }]);
    await limiter.onApplicationShutdown();
    expect(warn).not.toHaveBeenCalled();
    warn.mockRestore();
  });
});

describe('rate-limit configuration', () => {
  it('defaults to 100 per user, 500 per workspace, 20 for admin APIs, in process', () => {
    expect(rateLimitOptionsFrom({})).toEqual({ userPerMinute: 100, workspacePerMinute: 500, adminPerMinute: 20, redisUrl: undefined });
  });

  it('reads the gateway variables and checks them', () => {
    const env = { ZIGGIE_JWT_SECRET: SECRET, RATE_LIMIT_USER_PER_MIN: '7', RATE_LIMIT_WORKSPACE_PER_MIN: '0', RATE_LIMIT_ADMIN_PER_MIN: '3', REDIS_URL: 'redis://127.0.0.1:6390' };
    const { extra } = loadConfig('gateway', definition.extraConfig, env);
    expect(rateLimitOptionsFrom(extra)).toEqual({ userPerMinute: 7, workspacePerMinute: 0, adminPerMinute: 3, redisUrl: 'redis://127.0.0.1:6390' });
    expect(() => loadConfig('gateway', definition.extraConfig, { ...env, REDIS_URL: 'http://127.0.0.1' })).toThrow(/REDIS_URL/);
    expect(() => loadConfig('gateway', definition.extraConfig, { ...env, RATE_LIMIT_USER_PER_MIN: '-1' })).toThrow(/RATE_LIMIT_USER_PER_MIN/);
  });
});

describe('workspaceOf', () => {
  const request = (r: { url?: string; params?: object; body?: unknown; query?: object }) =>
    ({ url: '/', params: {}, body: undefined, query: {}, ...r }) as Parameters<typeof workspaceOf>[0];

  it('takes the path first, then the body, then the query', () => {
    expect(workspaceOf(request({ url: '/v1/workspaces/alpha/ports', body: { workspace: 'beta' }, query: { workspace: 'gamma' } }))).toBe('alpha');
    expect(workspaceOf(request({ url: '/v1/tasks', body: { workspace: 'beta' }, query: { workspace: 'gamma' } }))).toBe('beta');
    expect(workspaceOf(request({ url: '/v1/tasks', query: { workspace: 'gamma' } }))).toBe('gamma');
    expect(workspaceOf(request({ url: '/v1/x/:workspace', params: { workspace: 'delta' } }))).toBe('delta');
  });

  it('finds none on other routes or in other shapes', () => {
    expect(workspaceOf(request({ url: '/v1/workspaces' }))).toBeUndefined();
    expect(workspaceOf(request({ url: '/v1/tasks', body: [{ workspace: 'a' }], query: { workspace: ['a', 'b'] } }))).toBeUndefined();
    expect(workspaceOf(request({ url: '/v1/workspaces/%E0%A4%A' }))).toBeUndefined();
  });
});
