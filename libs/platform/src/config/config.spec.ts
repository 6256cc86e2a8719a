import { ConfigError, loadConfig } from './config';
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

  it('accepts a Postgres URL and peer overrides', () => {
    const c = loadConfig('gateway', undefined, { ...valid, DATABASE_URL: 'postgres://u@db:5432/z', ORCHESTRATOR_GRPC_ADDR: 'orchestrator.ziggie.svc:50051' });
    expect(c.db.url).toBe('postgres://u@db:5432/z');
    expect(c.discovery.peers.orchestrator).toBe('orchestrator.ziggie.svc:50051');
  });
});
