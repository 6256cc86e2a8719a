import 'reflect-metadata';
import { Controller, Get, HttpCode, INestApplication, Module, Param, Post } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { z } from 'zod';
import { Public, RequirePermission } from '../auth/auth.decorators';
import { ApiDoc, StrictInputModule, ValidBody, ValidQuery } from './api';
import { buildOpenApi, openApiPath, routesOf } from './openapi';
import { ProblemFilter } from './problem';
import { assertSafeInput, MAX_INPUT_DEPTH } from './safe-input';
import { createHttpApplication } from './http-server';

const Body = z.object({ name: z.string().min(1), size: z.number().int().default(1) }).strict();
const Query = z.object({ limit: z.coerce.number().int().min(1).max(10).default(5), q: z.string().optional() }).strict();

@Controller('v1/things')
class ThingsController {
  @Get()
  @ApiDoc({ summary: 'List things' })
  list(@ValidQuery(Query) q: z.infer<typeof Query>): object {
    return { q };
  }

  @Post()
  @RequirePermission('config:change')
  @ApiDoc({ summary: 'Create a thing', errors: ['SERVER_EXISTS'] })
  create(@ValidBody(Body, 'BLUEPRINT_INVALID') body: z.infer<typeof Body>): object {
    return body;
  }

  @Post(':id/poke')
  @HttpCode(204)
  @ApiDoc({ summary: 'Poke a thing' })
  poke(@Param('id') id: string): void {
    void id;
  }

  @Get('open')
  @Public()
  @ApiDoc({ summary: 'Open to all' })
  open(): object {
    return {};
  }
}

@Controller('v1/undocumented')
class UndocumentedController {
  @Get()
  get(): object {
    return {};
  }
}

describe('OpenAPI document from route decorators', () => {
  const doc = buildOpenApi([ThingsController], { title: 't', version: '1' }) as { openapi: string; paths: Record<string, Record<string, Record<string, unknown>>> };

  it('is OpenAPI 3.1 with one operation per route, paths in OpenAPI form', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(['/v1/things', '/v1/things/open', '/v1/things/{id}/poke']);
    expect(routesOf([ThingsController]).map((r) => `${r.method} ${r.path}`)).toEqual(['get /v1/things', 'post /v1/things', 'post /v1/things/:id/poke', 'get /v1/things/open']);
    expect(openApiPath('/v1/a/:id/b/:stepId')).toBe('/v1/a/{id}/b/{stepId}');
  });

  it('documents query parameters, the strict body, status codes, security and permissions', () => {
    const list = doc.paths['/v1/things']!.get!;
    expect(list.parameters).toEqual([
      { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 10, default: 5 } },
      { name: 'q', in: 'query', required: false, schema: { type: 'string' } },
    ]);
    const create = doc.paths['/v1/things']!.post!;
    const body = (create.requestBody as { content: Record<string, { schema: Record<string, unknown> }> }).content['application/json']!.schema;
    expect(body).toMatchObject({ type: 'object', additionalProperties: false, required: ['name'] });
    expect(Object.keys(create.responses as object).sort()).toEqual(['201', '400', '401', '403', '409', '413', '429']);
    expect(create['x-required-permission']).toBe('config:change');
    expect(create.security).toEqual([{ bearerAuth: [] }]);
    const poke = doc.paths['/v1/things/{id}/poke']!.post!;
    expect(Object.keys(poke.responses as object)).toContain('204');
    expect(Object.keys(poke.responses as object)).toContain('404');
    expect((poke.parameters as Array<Record<string, unknown>>)[0]).toMatchObject({ name: 'id', in: 'path', required: true });
    const open = doc.paths['/v1/things/open']!.get!;
    expect(open.security).toEqual([]);
    expect(Object.keys(open.responses as object)).toEqual(['200']);
  });

  it('refuses to document a route without @ApiDoc', () => {
    expect(() => buildOpenApi([UndocumentedController], { title: 't', version: '1' })).toThrow(/UndocumentedController\.get .* has no @ApiDoc/);
  });
});

describe('ValidBody / ValidQuery / StrictInputGuard on a live app', () => {
  let app: INestApplication;
  let base: string;

  beforeAll(async () => {
    @Module({
      imports: [StrictInputModule],
      controllers: [ThingsController],
      providers: [{ provide: APP_FILTER, useClass: ProblemFilter }],
    })
    class TestModule {}
    app = await createHttpApplication(TestModule);
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
  });

  afterAll(() => app.close());

  const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  it('parses the body with its schema: defaults applied, unknown fields refused with the route\'s code', async () => {
    const ok = await post('/v1/things', { name: 'a' });
    expect(ok.status).toBe(201);
    expect(await ok.json()).toEqual({ name: 'a', size: 1 });
    const extra = await post('/v1/things', { name: 'a', isAdmin: true });
    expect(extra.status).toBe(400);
    expect(await extra.json()).toMatchObject({ code: 'BLUEPRINT_INVALID' });
  });

  it('parses the query with its schema and refuses query fields and bodies a route does not declare', async () => {
    expect(await (await fetch(`${base}/v1/things?limit=3`)).json()).toEqual({ q: { limit: 3 } });
    expect((await fetch(`${base}/v1/things?limit=30`)).status).toBe(400);
    expect((await fetch(`${base}/v1/things?other=1`)).status).toBe(400);
    const undeclaredQuery = await fetch(`${base}/v1/things/open?debug=1`);
    expect(undeclaredQuery.status).toBe(400);
    expect(await undeclaredQuery.json()).toMatchObject({ code: 'VALIDATION_FAILED', detail: expect.stringContaining('debug') });
    expect((await post('/v1/things/x/poke', { anything: 1 })).status).toBe(400);
    expect((await post('/v1/things/x/poke', {})).status).toBe(204);
  });

  it('answers an oversized body with 413 PAYLOAD_TOO_LARGE and a malformed one with 400', async () => {
    // Every application on the platform's HTTP server reads bodies up to 2 MB.
    const big = await post('/v1/things', { name: 'x'.repeat(2.5 * 1024 * 1024) });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    const malformed = await fetch(`${base}/v1/things`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":' });
    expect(malformed.status).toBe(400);
    const charset = await fetch(`${base}/v1/things`, { method: 'POST', headers: { 'content-type': 'application/json; charset=klingon' }, body: '{}' });
    expect(charset.status).toBe(400);
  });
});

describe('assertSafeInput', () => {
  const nest = (levels: number): unknown => {
    let v: unknown = 'leaf';
    for (let i = 0; i < levels; i++) v = { a: v };
    return v;
  };

  it('accepts ordinary input up to the depth limit', () => {
    expect(() => assertSafeInput({ a: [1, 'x', { b: null }] }, 'body')).not.toThrow();
    expect(() => assertSafeInput(nest(MAX_INPUT_DEPTH), 'body')).not.toThrow();
  });

  it('refuses deeper nesting, without exhausting the stack on hostile depth', () => {
    expect(() => assertSafeInput(nest(MAX_INPUT_DEPTH + 1), 'body')).toThrow(/nested deeper than/);
    expect(() => assertSafeInput(nest(200_000), 'body')).toThrow(/nested deeper than/);
  });

  it('refuses NUL characters in strings and keys, naming where', () => {
    expect(() => assertSafeInput({ plan: { title: 'a\u0000b' } }, 'body')).toThrow('body.plan.title: NUL characters are not allowed');
    expect(() => assertSafeInput({ ['k\u0000']: 1 }, 'query')).toThrow(/keys/);
  });
});
