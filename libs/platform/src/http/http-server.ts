import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { DynamicModule, NestApplicationOptions, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ZiggieError } from '@ziggie/contracts';
import { BODY_LIMIT_BYTES, readJsonBody } from './body';
import { CORRELATION_HEADER, correlationIdFrom, REQUEST_ID_HEADER, runWithContext } from '../context';
import { MetricsService } from '../health/metrics';
import { inIncomingTrace, platformCarriesTraces } from '../telemetry/trace';
import { openApiPath } from './openapi';
import { problemOf } from './problem';
import { assertSafeInput } from './safe-input';

/** Which proxies to believe about the client's address (X-Forwarded-For): as Fastify's `trustProxy`. */
export type TrustProxy = boolean | number | string | string[];

export interface HttpServerOptions {
  trustProxy?: TrustProxy;
}

/**
 * Requests Node's HTTP parser refuses before any route runs (a request line or headers over the
 * 16 KB limit, a malformed request) get problem+json too, instead of a bare status line.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const error =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new ZiggieError('REQUEST_HEADERS_TOO_LARGE', 'the request line and headers exceed 16 KB')
      : new ZiggieError('REQUEST_MALFORMED', 'the request is not valid HTTP/1.1');
  const body = JSON.stringify(problemOf(error));
  const status = `${error.httpStatus} ${error.httpStatus === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}`;
  socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/**
 * The HTTP server every service runs on: Fastify under Nest. Routing as the API documents it
 * (a trailing slash is the same route, path parameters up to 1 KB), the request id is the
 * correlation id, and no logging of its own (the platform logs).
 */
export function createHttpAdapter(options: HttpServerOptions = {}): FastifyAdapter {
  return new FastifyAdapter({
    bodyLimit: BODY_LIMIT_BYTES,
    trustProxy: options.trustProxy ?? false,
    genReqId: (req: IncomingMessage) => correlationIdFrom(req.headers[CORRELATION_HEADER] ?? req.headers[REQUEST_ID_HEADER]),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 },
    clientErrorHandler: answerClientError,
    logger: false,
  });
}

const ROUTES = new WeakMap<object, Set<string>>();

/** Keeps `METHOD /path/{param}` of every route as it is added (Fastify lists none afterwards). */
function recordRoutes(fastify: FastifyInstance): void {
  const routes = new Set<string>();
  ROUTES.set(fastify, routes);
  fastify.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    // A route for every method (@All) is a protocol endpoint, not an operation; a HEAD route comes with each GET.
    if (methods.length > 1 || methods[0] === 'HEAD') return;
    // CORS answers preflights for every path with one route of its own.
    if (methods[0] === 'OPTIONS' && route.url === '*') return;
    routes.add(`${methods[0]} ${openApiPath(route.url)}`);
  });
}

/** `METHOD /path/{param}` of every route the application serves, sorted. */
export function servedRoutes(app: NestFastifyApplication): string[] {
  const routes = ROUTES.get(app.getHttpAdapter().getInstance());
  if (!routes) throw new Error('not an application on the platform\'s HTTP server');
  return [...routes].sort();
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * What every request goes through before its route, as Fastify hooks (cheaper than Nest
 * middleware, which Fastify runs through a compatibility layer):
 * - on arrival: echo the correlation id (X-Request-ID, X-Correlation-ID) and time the request
 *   by route template;
 * - once the body is read: refuse input no service can store (NUL, nesting), then run the
 *   handler with the correlation id in async context (logs, gRPC metadata, NATS headers) and,
 *   when no instrumentation patches http, in the caller's trace (traceparent).
 */
export function installRequestHooks(fastify: FastifyInstance, metrics?: MetricsService): void {
  recordRoutes(fastify);
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('application/json', readJsonBody);
  fastify.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const res = reply.raw;
    res.setHeader('X-Request-ID', request.id);
    res.setHeader('X-Correlation-ID', request.id);
    if (metrics) {
      const end = metrics.httpDuration.startTimer({ method: request.method });
      res.once('finish', () => end({ route: request.routeOptions.url ?? 'unmatched', status: String(res.statusCode) }));
    }
    done();
  });
  fastify.addHook('preHandler', (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
    try {
      assertSafeInput(request.body, 'body');
      assertSafeInput(request.query, 'query');
    } catch (err) {
      return done(err as Error);
    }
    const run = () => runWithContext({ correlationId: request.id }, done);
    if (platformCarriesTraces()) inIncomingTrace(request.method, (key) => headerValue(request.headers[key]), run);
    else run();
  });
}

/**
 * A Nest application on the platform's HTTP server, as every service runs (and as tests build
 * theirs): the platform reads bodies itself (JSON only, 2 MB), so Nest's own parsers stay off.
 * Request durations are recorded when the module provides the platform's MetricsService.
 */
export async function createHttpApplication(
  module: Type | DynamicModule,
  options: { http?: HttpServerOptions; nest?: Omit<NestApplicationOptions, 'bodyParser'> } = {},
): Promise<NestFastifyApplication> {
  const app = await NestFactory.create<NestFastifyApplication>(module, createHttpAdapter(options.http), { logger: false, abortOnError: false, ...options.nest, bodyParser: false });
  let metrics: MetricsService | undefined;
  try {
    metrics = app.get(MetricsService, { strict: false });
  } catch {
    metrics = undefined; // a test module without the platform's
  }
  installRequestHooks(app.getHttpAdapter().getInstance(), metrics);
  return app;
}
