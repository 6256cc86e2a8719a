import { RequestMethod, Type } from '@nestjs/common';
import { HTTP_CODE_METADATA, METHOD_METADATA, PATH_METADATA, SSE_METADATA } from '@nestjs/common/constants';
import { ErrorCodes } from '@ziggie/contracts';
import { z, ZodType } from 'zod';
import { IS_PUBLIC_KEY, REQUIRED_PERMISSION_KEY } from '../auth/auth.decorators';
import { API_BODY_KEY, API_DOC_KEY, API_QUERY_KEY, ApiDocOptions, ApiInput } from './api';

export interface OpenApiInfo {
  title: string;
  version: string;
  description?: string;
}

/** One route as Nest will serve it: method, path and where it came from. */
export interface RouteInfo {
  method: string;
  /** Route form, e.g. /v1/tasks/:id */
  path: string;
  controller: Type;
  handler: string;
}

type JsonSchema = Record<string, unknown>;
type Operation = Record<string, unknown>;

const METHOD_NAMES: Partial<Record<RequestMethod, string>> = {
  [RequestMethod.GET]: 'get',
  [RequestMethod.POST]: 'post',
  [RequestMethod.PUT]: 'put',
  [RequestMethod.DELETE]: 'delete',
  [RequestMethod.PATCH]: 'patch',
  [RequestMethod.OPTIONS]: 'options',
  [RequestMethod.HEAD]: 'head',
};

function joinPath(...parts: string[]): string {
  const joined = parts
    .flatMap((p) => p.split('/'))
    .filter((s) => s.length > 0)
    .join('/');
  return `/${joined}`;
}

function firstPath(value: unknown): string {
  if (Array.isArray(value)) return String(value[0] ?? '');
  return typeof value === 'string' ? value : '';
}

function handlerNames(controller: Type): string[] {
  return Object.getOwnPropertyNames(controller.prototype).filter((name) => {
    if (name === 'constructor') return false;
    const fn = (controller.prototype as Record<string, unknown>)[name];
    return typeof fn === 'function' && Reflect.hasMetadata(METHOD_METADATA, fn);
  });
}

/** Every route the given controllers declare, in declaration order. */
export function routesOf(controllers: readonly Type[]): RouteInfo[] {
  const routes: RouteInfo[] = [];
  for (const controller of controllers) {
    const base = firstPath(Reflect.getMetadata(PATH_METADATA, controller));
    for (const handler of handlerNames(controller)) {
      const fn = (controller.prototype as Record<string, unknown>)[handler] as object;
      const method = METHOD_NAMES[Reflect.getMetadata(METHOD_METADATA, fn) as RequestMethod];
      if (!method) throw new Error(`${controller.name}.${handler}: unsupported HTTP method for the API document`);
      routes.push({ method, path: joinPath(base, firstPath(Reflect.getMetadata(PATH_METADATA, fn))), controller, handler });
    }
  }
  return routes;
}

/** `/v1/tasks/:id` → `/v1/tasks/{id}` */
export function openApiPath(routePath: string): string {
  return routePath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/**
 * JSON Schema of a zod schema: requests as accepted (`input`: defaults make fields optional),
 * responses as produced (`output`); transforms cannot be expressed and become {}.
 */
function jsonSchemaOf(schema: ZodType, io: 'input' | 'output' = 'input'): JsonSchema {
  const s = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as JsonSchema;
  delete s.$schema;
  return s;
}

function queryParameters(input: ApiInput | undefined): JsonSchema[] {
  if (!input) return [];
  const schema = jsonSchemaOf(input.documentedAs ?? input.schema);
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema.required as string[] | undefined) ?? []);
  return Object.entries(properties).map(([name, s]) => {
    const { description, ...rest } = s;
    return { name, in: 'query', required: required.has(name), ...(description ? { description } : {}), schema: rest };
  });
}

function tagOf(path: string): string {
  const segments = path.split('/').filter(Boolean);
  return segments[0] === 'v1' ? (segments[1] ?? 'v1') : 'operations';
}

function problemResponse(description: string): JsonSchema {
  return { description, content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } };
}

function operationOf(route: RouteInfo): Operation {
  const fn = (route.controller.prototype as Record<string, unknown>)[route.handler] as object;
  const targets = [fn, route.controller];
  const meta = <T>(key: string): T | undefined => {
    for (const t of targets) {
      const v = Reflect.getMetadata(key, t) as T | undefined;
      if (v !== undefined) return v;
    }
    return undefined;
  };
  const doc = Reflect.getMetadata(API_DOC_KEY, fn) as ApiDocOptions | undefined;
  if (!doc) throw new Error(`${route.controller.name}.${route.handler} (${route.method.toUpperCase()} ${route.path}) has no @ApiDoc`);
  const body = Reflect.getMetadata(API_BODY_KEY, route.controller.prototype, route.handler) as ApiInput | undefined;
  const query = Reflect.getMetadata(API_QUERY_KEY, route.controller.prototype, route.handler) as ApiInput | undefined;
  const isPublic = meta<boolean>(IS_PUBLIC_KEY) === true;
  const permission = meta<string>(REQUIRED_PERMISSION_KEY);
  const sse = Reflect.getMetadata(SSE_METADATA, fn) === true;
  const status = String((Reflect.getMetadata(HTTP_CODE_METADATA, fn) as number | undefined) ?? (route.method === 'post' ? 201 : 200));
  const produces = sse ? 'text/event-stream' : (doc.produces ?? 'application/json');

  const pathParams = [...route.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string', maxLength: 256 } }));
  const parameters = [...pathParams, ...queryParameters(query)];

  const success: JsonSchema = { description: doc.summary };
  if (status !== '204') {
    const schema = doc.response ? jsonSchemaOf(doc.response, 'output') : produces === 'application/json' ? { type: 'object' } : { type: 'string' };
    success.content = { [produces]: { schema } };
  }
  const responses: Record<string, JsonSchema> = { [status]: success };
  if (parameters.length > 0 || body) responses['400'] = problemResponse('The request does not match the schema');
  if (!isPublic) {
    responses['401'] = problemResponse('Missing or invalid token');
    responses['403'] = problemResponse(permission ? `The token lacks ${permission}` : 'Forbidden');
    responses['429'] = problemResponse('Rate limit exceeded; see Retry-After');
  }
  if (pathParams.length > 0) responses['404'] = problemResponse('Not found, or not in the token\'s workspaces');
  if (body) responses['413'] = problemResponse('Request body too large');
  for (const code of doc.errors ?? []) {
    const http = String(ErrorCodes[code].http);
    responses[http] ??= problemResponse(ErrorCodes[code].title);
  }

  const op: Operation = {
    operationId: `${route.controller.name.replace(/Controller$/, '').replace(/^./, (c) => c.toLowerCase())}.${route.handler}`,
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    tags: [doc.tag ?? tagOf(route.path)],
    ...(parameters.length ? { parameters } : {}),
    ...(body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchemaOf(body.documentedAs ?? body.schema) } } } } : {}),
    responses,
    security: isPublic ? [] : [{ bearerAuth: [] }],
  };
  if (permission) op['x-required-permission'] = permission;
  if (doc.errors?.length) op['x-error-codes'] = [...doc.errors];
  return op;
}

const ProblemSchema: JsonSchema = {
  type: 'object',
  description: 'RFC 9457 problem details with a stable machine-readable code.',
  required: ['type', 'title', 'status', 'detail', 'code'],
  properties: {
    type: { type: 'string', format: 'uri' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string', enum: Object.keys(ErrorCodes) },
    instance: { type: 'string' },
    correlationId: { type: 'string' },
    errors: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
  },
};

/**
 * The OpenAPI 3.1 document of the given controllers, built from the same decorators that route
 * and validate requests, so the document cannot describe an API other than the one served.
 */
export function buildOpenApi(controllers: readonly Type[], info: OpenApiInfo): Record<string, unknown> {
  const paths: Record<string, Record<string, Operation>> = {};
  const routes = routesOf(controllers).sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
  for (const route of routes) {
    const path = openApiPath(route.path);
    const item = (paths[path] ??= {});
    if (item[route.method]) throw new Error(`two handlers for ${route.method.toUpperCase()} ${route.path}`);
    item[route.method] = operationOf(route);
  }
  return {
    openapi: '3.1.0',
    info,
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    servers: [{ url: '/' }],
    paths,
    components: {
      schemas: { Problem: ProblemSchema },
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
    },
    'x-request-id': 'Every response echoes X-Request-ID (the one given, or a generated one).',
  };
}
