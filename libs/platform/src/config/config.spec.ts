import { ConfigError, isLoopbackHost, loadConfig } from './config';
import { z } from 'zod';

describe('loadConfig', () => {
  const valid = { ZIGGIE_JWT_SECRET: 'a-development-secret-of-length' };

  it('fills defaults for the service', () => {
    const c = loadConfig('orchestrator', undefined, valid);
    expect(c.http).toEqual({ host: '127.0.0.1', port: 4010 });
    expect(c.grpc.port).toBe(50051);
    expect(c.auth).toMatchObject({ issuer: 'ziggie-local', audience: 'ziggie-api', algorithms: ['HS256'] });
    expect(c.discovery.peers['mcp-gateway']).toBe('127.0.0.1:50054');
    expect(c.db.url).toBeUndefined();
  });

  it('lists every bad or missing variable in one error', () => {
    let error: unknown;
    try {
      loadConfig('gateway', { EXTRA_LIMIT: z.coerce.number().int().min(1) }, {
        HTTP_PORT: 'eighty',
        NATS_URL: '',
        DATABASE_URL: 'mysql://x',
        LOG_LEVEL: 'loud',
        JWT_CLOCK_TOLERANCE_SECONDS: '600',
        EXTRA_LIMIT: '0',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of ['HTTP_PORT', 'DATABASE_URL', 'LOG_LEVEL', 'JWT_CLOCK_TOLERANCE_SECONDS', 'EXTRA_LIMIT', 'ZIGGIE_JWT_SECRET']) {
      expect(problems).toContain(name);
    }
  });

  it('requires DATABASE_URL of a service with a database, naming it among the other problems', () => {
    let error: unknown;
    try {
      loadConfig('orchestrator', undefined, { DATABASE_URL: ' ', LOG_LEVEL: 'loud' }, { database: true });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toContainEqual(expect.stringMatching(/^DATABASE_URL: required: orchestrator keeps its state in PostgreSQL/));
    expect(problems.join('\n')).toContain('LOG_LEVEL');
    expect(problems.join('\n')).toContain('ZIGGIE_JWT_SECRET');
    // A wrong scheme is reported once, as such.
    try {
      loadConfig('orchestrator', undefined, { ...valid, DATABASE_URL: 'mysql://x' }, { database: true });
      throw new Error('accepted mysql://x');
    } catch (err) {
      expect((err as ConfigError).problems).toEqual([expect.stringMatching(/^DATABASE_URL: (?!required)/)]);
    }
    expect(loadConfig('orchestrator', undefined, { ...valid, DATABASE_URL: 'postgresql://u@db/z' }, { database: true }).db.url).toBe('postgresql://u@db/z');
    // Stateless services do not need one.
    expect(loadConfig('mcp-gateway', undefined, valid).db.url).toBeUndefined();
  });

  it('accepts a Postgres URL and peer overrides', () => {
    const c = loadConfig('gateway', undefined, { ...valid, DATABASE_URL: 'postgres://u@db:5432/z', ORCHESTRATOR_GRPC_ADDR: 'orchestrator.ziggie.svc:50051' });
    expect(c.db.url).toBe('postgres://u@db:5432/z');
    expect(c.discovery.peers.orchestrator).toBe('orchestrator.ziggie.svc:50051');
  });

  it('fills auth defaults: on, no JWKS, a ten-minute key cache', () => {
    const c = loadConfig('gateway', undefined, valid);
    expect(c.auth).toMatchObject({ enabled: true, jwksUrl: undefined, jwksCacheMaxAgeSeconds: 600 });
  });

  function problemsOf(env: Record<string, string>): string[] {
    try {
      loadConfig('gateway', undefined, env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems;
    }
    return [];
  }

  it('accepts a JWKS URL over https, or over http to loopback only', () => {
    const rs = { JWT_ALGORITHMS: 'RS256' };
    expect(loadConfig('gateway', undefined, { ...rs, JWT_JWKS_URL: 'https://idp.example.com/.well-known/jwks.json' }).auth.jwksUrl).toBe(
      'https://idp.example.com/.well-known/jwks.json',
    );
    expect(loadConfig('gateway', undefined, { ...rs, JWT_JWKS_URL: 'http://127.0.0.1:8080/jwks' }).auth.jwksUrl).toBe('http://127.0.0.1:8080/jwks');
    expect(loadConfig('gateway', undefined, { ...rs, JWT_JWKS_URL: 'http://[::1]:8080/jwks' }).auth.jwksUrl).toBe('http://[::1]:8080/jwks');
    expect(problemsOf({ ...rs, JWT_JWKS_URL: 'http://idp.example.com/jwks' }).join()).toContain('JWT_JWKS_URL: must be https');
    expect(problemsOf({ ...rs, JWT_JWKS_URL: 'http://10.0.0.5/jwks' }).join()).toContain('JWT_JWKS_URL: must be https');
    expect(problemsOf({ ...rs, JWT_JWKS_URL: 'file:///etc/passwd' }).join()).toContain('JWT_JWKS_URL');
    expect(problemsOf({ ...rs, JWT_JWKS_URL: 'https://user:pw@idp.example.com/jwks' }).join()).toContain('must not contain credentials');
    expect(problemsOf({ ...rs, JWT_JWKS_URL: 'https://idp.example.com/jwks', JWT_PUBLIC_KEY_FILE: '/k.pem' }).join()).toContain('not both');
    expect(problemsOf({ ...rs, JWT_JWKS_URL: 'https://idp.example.com/jwks', JWT_JWKS_CACHE_MAX_AGE_SECONDS: '1' }).join()).toContain('JWT_JWKS_CACHE_MAX_AGE_SECONDS');
  });

  it('allows ZIGGIE_AUTH=off only outside production and on a loopback HTTP host', () => {
    expect(loadConfig('gateway', undefined, { ...valid, ZIGGIE_AUTH: 'off' }).auth.enabled).toBe(false);
    expect(loadConfig('gateway', undefined, { ...valid, ZIGGIE_AUTH: 'off', HTTP_HOST: '::1', NODE_ENV: 'test' }).auth.enabled).toBe(false);
    expect(problemsOf({ ...valid, ZIGGIE_AUTH: 'off', NODE_ENV: 'production' }).join()).toContain('ZIGGIE_AUTH');
    expect(problemsOf({ ...valid, ZIGGIE_AUTH: 'off', HTTP_HOST: '0.0.0.0' }).join()).toContain('ZIGGIE_AUTH');
    expect(problemsOf({ ...valid, ZIGGIE_AUTH: 'off', HTTP_HOST: '192.168.1.4' }).join()).toContain('ZIGGIE_AUTH');
    expect(problemsOf({ ...valid, ZIGGIE_AUTH: 'maybe' }).join()).toContain('ZIGGIE_AUTH');
  });

  it.each([
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['localhost', true],
    ['::1', true],
    ['[::1]', true],
    ['0.0.0.0', false],
    ['::', false],
    ['10.0.0.1', false],
    ['127.0.0.1.example.com', false],
    ['localhost.example.com', false],
  ])('isLoopbackHost(%s) → %s', (host, loopback) => {
    expect(isLoopbackHost(host as string)).toBe(loopback);
  });
});
