import { Body, CanActivate, ExecutionContext, Injectable, Module, PipeTransform, Query, SetMetadata } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ErrorCode, ZiggieError } from '@ziggie/contracts';
import type { ZodType } from 'zod';
import { parseInput } from './problem';

export const API_BODY_KEY = 'ziggie:api:body';
export const API_QUERY_KEY = 'ziggie:api:query';
export const API_DOC_KEY = 'ziggie:api:doc';

export interface ApiInput {
  schema: ZodType;
  /** The error code of a body that does not match (VALIDATION_FAILED unless said otherwise). */
  code: ErrorCode;
  /** What the document shows when `schema` preprocesses its input (which JSON Schema cannot express). */
  documentedAs?: ZodType;
}

export interface ApiDocOptions {
  summary: string;
  description?: string;
  /** Groups the operation in the docs; defaults to the first path segment after /v1. */
  tag?: string;
  /** Schema of the success body; omitted when the body is described in words only. */
  response?: ZodType;
  /** `text/event-stream` for SSE routes, `text/html` for pages. */
  produces?: string;
  /** Error codes a caller should expect besides the common ones (400, 401, 403, 429). */
  errors?: readonly ErrorCode[];
}

/** Parses a route input with its zod schema, so what is documented is exactly what is enforced. */
class ZodPipe implements PipeTransform {
  constructor(private readonly input: ApiInput) {}

  transform(value: unknown): unknown {
    // An absent body or query arrives as undefined or {}; both mean "no fields".
    return parseInput(this.input.schema, value ?? {}, this.input.code);
  }
}

function inputDecorator(key: string, nestDecorator: (pipe: PipeTransform) => ParameterDecorator, input: ApiInput): ParameterDecorator {
  return (target, propertyKey, index) => {
    if (propertyKey === undefined) throw new Error('API input decorators apply to handler parameters');
    Reflect.defineMetadata(key, input, target, propertyKey);
    nestDecorator(new ZodPipe(input))(target, propertyKey, index);
  };
}

/** The JSON body, validated by `schema` (unknown fields refused where the schema is strict) and documented in OpenAPI. */
export function ValidBody(schema: ZodType, code: ErrorCode = 'VALIDATION_FAILED', documentedAs?: ZodType): ParameterDecorator {
  return inputDecorator(API_BODY_KEY, (pipe) => Body(pipe), { schema, code, documentedAs });
}

/** The query string, validated by `schema` and documented in OpenAPI as query parameters. */
export function ValidQuery(schema: ZodType, code: ErrorCode = 'VALIDATION_FAILED'): ParameterDecorator {
  return inputDecorator(API_QUERY_KEY, (pipe) => Query(pipe), { schema, code });
}

/** Documents an operation: every route of the public API carries one (the OpenAPI check enforces it). */
export const ApiDoc = (options: ApiDocOptions): MethodDecorator => SetMetadata(API_DOC_KEY, options);

function hasBody(body: unknown): boolean {
  if (body === undefined || body === null) return false;
  if (typeof body === 'object') return Object.keys(body).length > 0;
  return true;
}

/** Which inputs a handler declares, read once per handler. */
const declared = new WeakMap<object, { query: boolean; body: boolean }>();

function declaredInputs(context: ExecutionContext): { query: boolean; body: boolean } {
  const handler = context.getHandler();
  let inputs = declared.get(handler);
  if (!inputs) {
    const prototype = context.getClass().prototype as object;
    inputs = { query: Reflect.hasMetadata(API_QUERY_KEY, prototype, handler.name), body: Reflect.hasMetadata(API_BODY_KEY, prototype, handler.name) };
    declared.set(handler, inputs);
  }
  return inputs;
}

/**
 * Refuses what a route does not declare: query parameters on a route without @ValidQuery and a
 * body on a route without @ValidBody, so no input reaches a handler unvalidated. A guard (not an
 * interceptor): a request that passes every guard and meets no interceptor skips Nest's
 * observable pipeline altogether.
 */
@Injectable()
export class StrictInputGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    if (context.getType() !== 'http') return true;
    const inputs = declaredInputs(context);
    const req = context.switchToHttp().getRequest<{ query?: Record<string, unknown>; body?: unknown }>();
    if (!inputs.query) {
      const names = Object.keys(req.query ?? {});
      if (names.length > 0) throw new ZiggieError('VALIDATION_FAILED', `this route takes no query parameters (got ${names.slice(0, 5).join(', ')})`);
    }
    if (!inputs.body && hasBody(req.body)) throw new ZiggieError('VALIDATION_FAILED', 'this route takes no request body');
    return true;
  }
}

/**
 * StrictInputGuard for every route. Global guards run in the order their modules are imported:
 * import this after AuthModule (and any limits), so who may call is answered before what was sent.
 */
@Module({ providers: [{ provide: APP_GUARD, useClass: StrictInputGuard }] })
export class StrictInputModule {}
