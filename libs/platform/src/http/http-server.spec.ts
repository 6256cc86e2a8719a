import 'reflect-metadata';
import { Body, Controller, Get, Module, Param, Post, Query } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { currentCorrelationId } from '../context';
import { MetricsService } from '../health/metrics';
import { createHttpApplication, servedRoutes } from './http-server';
import { ProblemFilter } from './problem';
import { rawHttpExchange } from '../../../../test/support/raw-http';

@Controller('v1/things')
class ThingsController {
  @Post()
  create(@Body() body: unknown): object {
    return { body: body ?? null, correlationId: currentCorrelationId() };
  }

  @Get(':id')
  one(@Param('id') id: string, @Query() query: Record<string, unknown>): object {
    return { id, query };
  }
}

@Module({
  controllers: [ThingsController],
  providers: [{ provide: APP_FILTER, useClass: ProblemFilter }, { provide: MetricsService, useValue: new MetricsService('spec') }],
})
class ThingsModule {}

describe('the platform HTTP server (Fastify under Nest)', () => {
  let app: NestFastifyApplication;
  let base: string;
  let port: number;

  beforeAll(async () => {
    app = await createHttpApplication(ThingsModule);
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as { port: number }).port;
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(() => app.close());

  const post = (body: string, contentType = 'application/json') => fetch(`${base}/v1/things`, { method: 'POST', headers: { 'content-type': contentType }, body });
  const problem = async (res: Response) => ({ status: res.status, type: res.headers.get('content-type'), code: ((await res.json()) as { code?: string }).code });

  it('reads JSON objects and arrays; an empty body is no body', async () => {
    expect(await (await post('{"a":[1,{"b":2}]}')).json()).toMatchObject({ body: { a: [1, { b: 2 }] } });
    expect(await (await post('[1,2]', 'application/json; charset=utf-8')).json()).toMatchObject({ body: [1, 2] });
    expect(await (await post('')).json()).toMatchObject({ body: null });
    // A member named __proto__ stays an own member (strict schemas refuse it by name), never a prototype.
    const proto = (await (await post('{"__proto__":{"admin":true}}')).json()) as { body: Record<string, unknown> };
    expect(Object.keys(proto.body)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('refuses bodies it cannot read with problem+json and a stable code', async () => {
    const json = 'application/problem+json; charset=utf-8';
    expect(await problem(await post('{"a":'))).toEqual({ status: 400, type: json, code: 'VALIDATION_FAILED' });
    expect(await problem(await post('42'))).toEqual({ status: 400, type: json, code: 'VALIDATION_FAILED' });
    expect(await problem(await post('a=1', 'application/x-www-form-urlencoded'))).toEqual({ status: 415, type: json, code: 'UNSUPPORTED_MEDIA_TYPE' });
    expect(await problem(await post('hello', 'text/plain'))).toEqual({ status: 415, type: json, code: 'UNSUPPORTED_MEDIA_TYPE' });
    expect(await problem(await post(JSON.stringify({ s: 'x'.repeat(2.5 * 1024 * 1024) })))).toEqual({ status: 413, type: json, code: 'PAYLOAD_TOO_LARGE' });
    expect(await problem(await post('{"s":"a\\u0000b"}'))).toEqual({ status: 400, type: json, code: 'VALIDATION_FAILED' });
    expect(await problem(await fetch(`${base}/v1/things/x?q=a%00b`))).toEqual({ status: 400, type: json, code: 'VALIDATION_FAILED' });
    expect(await problem(await fetch(`${base}/v1/nothing`))).toEqual({ status: 404, type: json, code: 'NOT_FOUND' });
  });

  it('reads an oversized body to its end before refusing it, so the client gets the 413 and keeps its connection', async () => {
    for (let i = 0; i < 3; i++) {
      const big = await post(JSON.stringify({ s: 'x'.repeat(3 * 1024 * 1024) }));
      expect([big.status, big.headers.get('connection'), ((await big.json()) as { code: string }).code]).toEqual([413, 'keep-alive', 'PAYLOAD_TOO_LARGE']);
    }
  });

  it('echoes the caller\'s correlation id, keeps it in context, and puts it in problems', async () => {
    const ok = await fetch(`${base}/v1/things`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-correlation-id': 'corr-1' }, body: '{}' });
    expect([ok.headers.get('x-request-id'), ok.headers.get('x-correlation-id'), ((await ok.json()) as { correlationId: string }).correlationId]).toEqual(['corr-1', 'corr-1', 'corr-1']);
    const refused = await fetch(`${base}/v1/things`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'corr-2' }, body: '{' });
    expect([refused.headers.get('x-request-id'), ((await refused.json()) as { correlationId: string }).correlationId]).toEqual(['corr-2', 'corr-2']);
    // An id that is not sane is replaced, never echoed.
    const replaced = await fetch(`${base}/v1/things/x`, { headers: { 'x-request-id': 'bad id\twith spaces' } });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('routes a trailing slash and long path parameters as the API documents them', async () => {
    expect(((await (await fetch(`${base}/v1/things/abc/`)).json()) as { id: string }).id).toBe('abc');
    const long = 'x'.repeat(500);
    expect(((await (await fetch(`${base}/v1/things/${long}`)).json()) as { id: string }).id).toBe(long);
    expect(((await (await fetch(`${base}/v1/things/a?tag=1&tag=2`)).json()) as { query: unknown }).query).toEqual({ tag: ['1', '2'] });
  });

  it('answers a request the HTTP parser refuses with problem+json', async () => {
    const raw = await rawHttpExchange(port, 'GARBAGE / NOT-HTTP\r\n\r\n');
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(raw).toContain('"code":"REQUEST_MALFORMED"');
  });

  it('lists the routes it serves, and times requests by route template', async () => {
    expect(servedRoutes(app)).toEqual(['GET /v1/things/{id}', 'POST /v1/things']);
    await fetch(`${base}/v1/things/timed`);
    const text = await app.get(MetricsService).registry.metrics();
    expect(text).toMatch(/http_request_duration_seconds_count\{[^}]*route="\/v1\/things\/:id"[^}]*\} [1-9]/);
  });
});
