import 'reflect-metadata';
import { rawHttpExchange } from '../../../../test/support/raw-http';
import { ArgumentsHost, Catch, Controller, ExceptionFilter, Get, INestApplication, Logger, Module, Type } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host';
import { Permission, Role, ZiggieError } from '@ziggie/contracts';
import type { FastifyReply } from 'fastify';
import { ConfigError, loadConfig, PlatformConfig } from '../config/config';
import { ConfigModule } from '../config/config.module';
import { AuthenticatedRequest, CurrentPrincipal, Public, RequirePermission } from './auth.decorators';
import { ANONYMOUS_ADMIN, AuthGuard } from './auth.guard';
import { AuthModule } from './auth.module';
import { JwtVerifier, signDevToken } from './jwt';
import { assertWorkspace, Principal } from './principal';
import { createHttpApplication } from '../http/http-server';

const SECRET = 'guard-test-secret-0123456789';
const config = loadConfig('gateway', undefined, { ZIGGIE_JWT_SECRET: SECRET, HTTP_PORT: '0', LOG_LEVEL: 'silent' });
const signer = { secret: SECRET, issuer: config.auth.issuer, audience: config.auth.audience };

function tokenFor(roles: string[], workspaces: string[] = ['alpha']): string {
  return signDevToken({ subject: `user-${roles.join('-')}`, roles, workspaces, ttlSeconds: 300 }, signer);
}

@Controller('perm')
class PermissionController {
  @Public()
  @Get('open')
  open(): string {
    return 'open';
  }

  @Get('any')
  any(@CurrentPrincipal() principal: Principal): Principal {
    return principal;
  }

  @RequirePermission('workspace:manage')
  @Get('workspace-manage')
  workspaceManage(): string {
    return 'ok';
  }

  @RequirePermission('agent:dispatch')
  @Get('agent-dispatch')
  agentDispatch(): string {
    return 'ok';
  }

  @RequirePermission('mcp:call')
  @Get('mcp-call')
  mcpCall(): string {
    return 'ok';
  }

  @RequirePermission('config:change')
  @Get('config-change')
  configChange(): string {
    return 'ok';
  }
}

@Public()
@Controller('public')
class PublicController {
  @Get()
  index(): string {
    return 'public';
  }
}

@RequirePermission('config:change')
@Controller('admin')
class AdminController {
  @Get()
  index(): string {
    return 'admin';
  }

  @RequirePermission('mcp:call')
  @Get('tools')
  tools(): string {
    return 'tools';
  }
}

const handlerFor: Record<Permission, keyof PermissionController> = {
  'workspace:manage': 'workspaceManage',
  'agent:dispatch': 'agentDispatch',
  'mcp:call': 'mcpCall',
  'config:change': 'configChange',
};

function guardFor(cfg: PlatformConfig): AuthGuard {
  return new AuthGuard(new Reflector(), new JwtVerifier(cfg.auth), cfg);
}

function contextFor<T>(controller: Type<T>, method: keyof T, authorization?: string, extra: Partial<AuthenticatedRequest> = {}) {
  const request: AuthenticatedRequest = { headers: authorization === undefined ? {} : { authorization }, ...extra };
  const handler = controller.prototype[method] as () => unknown;
  return { request, context: new ExecutionContextHost([request, {}], controller, handler) };
}

async function denial(promise: Promise<unknown>): Promise<ZiggieError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ZiggieError);
    return error as ZiggieError;
  }
  throw new Error('expected the guard to throw');
}

describe('AuthGuard', () => {
  const guard = guardFor(config);

  it('lets a @Public() handler through without a token', async () => {
    const { request, context } = contextFor(PermissionController, 'open');
    await expect(guard.canActivate(context)).resolves.toBe(true);
    expect(request.principal).toBeUndefined();
  });

  it('lets every handler of a @Public() controller through', async () => {
    await expect(guard.canActivate(contextFor(PublicController, 'index').context)).resolves.toBe(true);
  });

  it('answers AUTH_MISSING_TOKEN without an Authorization header', async () => {
    expect((await denial(guard.canActivate(contextFor(PermissionController, 'any').context))).code).toBe('AUTH_MISSING_TOKEN');
  });

  it('answers AUTH_INVALID_TOKEN for a malformed header or a bad token', async () => {
    const basic = contextFor(PermissionController, 'any', 'Basic dXNlcjpwYXNz').context;
    expect((await denial(guard.canActivate(basic))).code).toBe('AUTH_INVALID_TOKEN');
    const forged = contextFor(PermissionController, 'any', 'Bearer eyJhbGciOiJub25lIn0.e30.').context;
    expect((await denial(guard.canActivate(forged))).code).toBe('AUTH_INVALID_TOKEN');
  });

  it('answers AUTH_INVALID_TOKEN for a token in the query string, even beside a good header', async () => {
    const good = `Bearer ${tokenFor(['l1'])}`;
    for (const name of ['access_token', 'token']) {
      const { request, context } = contextFor(PermissionController, 'any', good, { query: { [name]: tokenFor(['admin']) } });
      const error = await denial(guard.canActivate(context));
      expect([error.code, error.message]).toEqual(['AUTH_INVALID_TOKEN', 'tokens are accepted only in the Authorization header']);
      expect(request.principal).toBeUndefined();
    }
    await expect(guard.canActivate(contextFor(PermissionController, 'any', good, { query: { workspace: 'alpha' } }).context)).resolves.toBe(true);
  });

  it('answers AUTH_INVALID_TOKEN for two Authorization headers or two tokens in one', async () => {
    const token = tokenFor(['l1']);
    const twice = { raw: { rawHeaders: ['Authorization', `Bearer ${token}`, 'authorization', `Bearer ${tokenFor(['admin'])}`] } };
    const error = await denial(guard.canActivate(contextFor(PermissionController, 'any', `Bearer ${token}`, twice).context));
    expect([error.code, error.message]).toEqual(['AUTH_INVALID_TOKEN', 'more than one Authorization header']);
    const joined = contextFor(PermissionController, 'any', `Bearer ${token}, Bearer ${tokenFor(['admin'])}`).context;
    expect((await denial(guard.canActivate(joined))).code).toBe('AUTH_INVALID_TOKEN');
  });

  it('attaches the verified principal to the request', async () => {
    const { request, context } = contextFor(PermissionController, 'any', `Bearer ${tokenFor(['l1'], ['alpha', 'beta'])}`);
    await expect(guard.canActivate(context)).resolves.toBe(true);
    expect(request.principal).toEqual({ subject: 'user-l1', roles: ['l1'], workspaces: ['alpha', 'beta'] });
  });

  it('answers AUTH_FORBIDDEN naming the missing permission', async () => {
    const { context } = contextFor(PermissionController, 'configChange', `Bearer ${tokenFor(['l1'])}`);
    const error = await denial(guard.canActivate(context));
    expect(error.code).toBe('AUTH_FORBIDDEN');
    expect(error.message).toBe('permission config:change required');
  });

  it('lets a handler permission override the controller permission', async () => {
    const l2l3 = `Bearer ${tokenFor(['l2l3'])}`;
    await expect(guard.canActivate(contextFor(AdminController, 'tools', l2l3).context)).resolves.toBe(true);
    expect((await denial(guard.canActivate(contextFor(AdminController, 'index', l2l3).context))).code).toBe('AUTH_FORBIDDEN');
  });

  it('does not authenticate non-HTTP transports', async () => {
    const context = new ExecutionContextHost([{}, {}], PermissionController, PermissionController.prototype.configChange);
    context.setType('rpc');
    await expect(guard.canActivate(context)).resolves.toBe(true);
  });

  // Seed 001 section 9, written out rather than derived from RolePermissions so a change there fails here.
  const matrix: Record<Role, Record<Permission, boolean>> = {
    admin: { 'workspace:manage': true, 'agent:dispatch': true, 'mcp:call': true, 'config:change': true },
    l1: { 'workspace:manage': false, 'agent:dispatch': true, 'mcp:call': true, 'config:change': false },
    l2l3: { 'workspace:manage': false, 'agent:dispatch': false, 'mcp:call': true, 'config:change': false },
    bmad: { 'workspace:manage': false, 'agent:dispatch': true, 'mcp:call': true, 'config:change': false },
  };
  const cases = Object.entries(matrix).flatMap(([role, permissions]) =>
    Object.entries(permissions).map(([permission, allowed]) => ({ role, permission: permission as Permission, allowed })),
  );

  it.each(cases)('$role on $permission → allowed: $allowed', async ({ role, permission, allowed }) => {
    const { context } = contextFor(PermissionController, handlerFor[permission], `Bearer ${tokenFor([role])}`);
    if (allowed) {
      await expect(guard.canActivate(context)).resolves.toBe(true);
    } else {
      expect((await denial(guard.canActivate(context))).code).toBe('AUTH_FORBIDDEN');
    }
  });

  it('grants the union of permissions of several roles', async () => {
    const { context } = contextFor(PermissionController, 'agentDispatch', `Bearer ${tokenFor(['l2l3', 'bmad'])}`);
    await expect(guard.canActivate(context)).resolves.toBe(true);
  });
});

describe('AuthGuard with ZIGGIE_AUTH=off', () => {
  const off = loadConfig('gateway', undefined, { ZIGGIE_JWT_SECRET: SECRET, ZIGGIE_AUTH: 'off', HTTP_HOST: '127.0.0.1', LOG_LEVEL: 'silent' });

  afterEach(() => jest.restoreAllMocks());

  it('is refused by configuration in production or off loopback', () => {
    const base = { ZIGGIE_JWT_SECRET: SECRET, ZIGGIE_AUTH: 'off' };
    expect(() => loadConfig('gateway', undefined, { ...base, NODE_ENV: 'production' })).toThrow(ConfigError);
    expect(() => loadConfig('gateway', undefined, { ...base, HTTP_HOST: '0.0.0.0' })).toThrow(ConfigError);
    expect(off.auth.enabled).toBe(false);
  });

  it('treats every request as the anonymous admin of every workspace, with or without a token', async () => {
    const guard = guardFor(off);
    for (const authorization of [undefined, 'Bearer not-a-token']) {
      const { request, context } = contextFor(PermissionController, 'configChange', authorization);
      await expect(guard.canActivate(context)).resolves.toBe(true);
      expect(request.principal).toEqual(ANONYMOUS_ADMIN);
    }
  });

  it('warns once, at start', () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    guardFor(config).onModuleInit();
    expect(warn).not.toHaveBeenCalled();
    guardFor(off).onModuleInit();
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]?.[0]).toMatch(/AUTHENTICATION IS DISABLED/);
  });
});

describe('assertWorkspace', () => {
  const principal = (workspaces: string[]): Principal => ({ subject: 's', roles: ['l1'], workspaces });

  it('allows listed workspaces and "*"', () => {
    expect(() => assertWorkspace(principal(['alpha']), 'alpha')).not.toThrow();
    expect(() => assertWorkspace(principal(['*']), 'anything')).not.toThrow();
  });

  it('answers AUTH_WORKSPACE_FORBIDDEN otherwise', () => {
    let error: unknown;
    try {
      assertWorkspace(principal(['alpha']), 'beta');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ZiggieError);
    expect((error as ZiggieError).code).toBe('AUTH_WORKSPACE_FORBIDDEN');
    expect(() => assertWorkspace(principal([]), 'alpha')).toThrow(ZiggieError);
  });
});

/** Stands in for the platform's problem+json filter, which is not this module's concern. */
@Catch(ZiggieError)
class CodeFilter implements ExceptionFilter {
  catch(error: ZiggieError, host: ArgumentsHost): void {
    void host.switchToHttp().getResponse<FastifyReply>().code(error.httpStatus).send({ code: error.code });
  }
}

@Module({ imports: [ConfigModule.forRoot(config), AuthModule], controllers: [PermissionController, PublicController] })
class AppModule {}

describe('AuthModule in a Nest HTTP application', () => {
  let app: INestApplication;
  let base: string;

  beforeAll(async () => {
    app = await createHttpApplication(AppModule);
    app.useGlobalFilters(new CodeFilter());
    await app.listen(0, '127.0.0.1');
    base = await app.getUrl();
  });

  afterAll(async () => {
    await app.close();
  });

  const get = (path: string, token?: string) =>
    fetch(`${base}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('exports a JwtVerifier built from CONFIG', async () => {
    const verifier = app.get(JwtVerifier);
    expect((await verifier.verify(tokenFor(['admin']))).roles).toEqual(['admin']);
  });

  it('serves public routes without a token', async () => {
    const [open, pub] = await Promise.all([get('/perm/open'), get('/public')]);
    expect([open.status, pub.status]).toEqual([200, 200]);
  });

  it('guards every other route and hands the principal to @CurrentPrincipal()', async () => {
    const missing = await get('/perm/any');
    expect(missing.status).toBe(401);
    expect(await missing.json()).toEqual({ code: 'AUTH_MISSING_TOKEN' });

    const ok = await get('/perm/any', tokenFor(['bmad'], ['*']));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ subject: 'user-bmad', roles: ['bmad'], workspaces: ['*'] });
  });

  it('answers 401 for a token in the query string', async () => {
    const res = await fetch(`${base}/perm/any?access_token=${tokenFor(['admin'])}`);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ code: 'AUTH_INVALID_TOKEN' });
  });

  it('answers 401 for two Authorization header lines, which Node would otherwise reduce to the first', async () => {
    const { port } = new URL(base);
    const response = await rawHttpExchange(
      Number(port),
      `GET /perm/any HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${tokenFor(['l1'])}\r\n` + `Authorization: Bearer ${tokenFor(['admin'])}\r\nConnection: close\r\n\r\n`,
    );
    expect(response).toMatch(/^HTTP\/1\.1 401 /);
    expect(response).toContain('"code":"AUTH_INVALID_TOKEN"');
  });

  it('answers 403 AUTH_FORBIDDEN for a missing permission', async () => {
    const res = await get('/perm/workspace-manage', tokenFor(['l1']));
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ code: 'AUTH_FORBIDDEN' });
    expect((await get('/perm/workspace-manage', tokenFor(['admin']))).status).toBe(200);
  });
});

describe('AuthModule with ZIGGIE_AUTH=off in a Nest HTTP application', () => {
  const off = loadConfig('gateway', undefined, { ZIGGIE_JWT_SECRET: SECRET, ZIGGIE_AUTH: 'off', HTTP_PORT: '0', LOG_LEVEL: 'silent' });

  @Module({ imports: [ConfigModule.forRoot(off), AuthModule], controllers: [PermissionController] })
  class OffModule {}

  it('warns once at start and serves every route as the anonymous admin', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const app = await createHttpApplication(OffModule);
    try {
      await app.listen(0, '127.0.0.1');
      expect(warn.mock.calls.filter(([message]) => /AUTHENTICATION IS DISABLED/.test(String(message)))).toHaveLength(1);
      const base = await app.getUrl();
      const [any, config] = await Promise.all([fetch(`${base}/perm/any`), fetch(`${base}/perm/config-change`)]);
      expect([any.status, config.status]).toEqual([200, 200]);
      expect(await any.json()).toEqual(ANONYMOUS_ADMIN);
    } finally {
      await app.close();
      warn.mockRestore();
    }
  });
});
