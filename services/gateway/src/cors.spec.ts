import 'reflect-metadata';
import { Controller, Get, INestApplication, Module } from '@nestjs/common';
import { z } from 'zod';
import { corsEnv, corsOptions } from './cors';
import { createHttpApplication } from '@ziggie/platform';

const parse = (value: string) => z.object(corsEnv).safeParse({ CORS_ORIGINS: value });

@Controller()
class PingController {
  @Get('ping')
  ping(): object {
    return { ok: true };
  }
}

describe('CORS of the gateway', () => {
  it('accepts exact origins only: no wildcard, no "null", no paths', () => {
    expect(parse('').data?.CORS_ORIGINS).toEqual([]);
    expect(parse('https://console.example, http://localhost:5173').data?.CORS_ORIGINS).toEqual(['https://console.example', 'http://localhost:5173']);
    for (const bad of ['*', 'null', 'https://console.example/', 'https://console.example/app', 'console.example', 'ftp://x.example']) {
      expect(parse(bad).success).toBe(false);
    }
    expect(corsOptions([])).toBeUndefined();
  });

  describe('on a live app', () => {
    let app: INestApplication;
    let base: string;
    beforeAll(async () => {
      @Module({ controllers: [PingController] })
      class M {}
      app = await createHttpApplication(M);
      app.enableCors(corsOptions(['https://console.example']));
      await app.listen(0, '127.0.0.1');
      base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
    });
    afterAll(() => app.close());

    it('echoes an allowed origin with credentials and Vary: Origin, never *', async () => {
      const res = await fetch(`${base}/ping`, { headers: { origin: 'https://console.example' } });
      expect(res.headers.get('access-control-allow-origin')).toBe('https://console.example');
      expect(res.headers.get('access-control-allow-credentials')).toBe('true');
      expect(res.headers.get('vary')).toContain('Origin');
      const preflight = await fetch(`${base}/ping`, {
        method: 'OPTIONS',
        headers: { origin: 'https://console.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe('https://console.example');
      expect(preflight.headers.get('access-control-allow-headers')).toContain('authorization');
    });

    it('gives any other origin no CORS grant', async () => {
      for (const origin of ['https://evil.example', 'null', 'https://console.example.evil.example']) {
        const res = await fetch(`${base}/ping`, { headers: { origin } });
        expect(res.headers.get('access-control-allow-origin')).toBeNull();
      }
    });
  });
});
