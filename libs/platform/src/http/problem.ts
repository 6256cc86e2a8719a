import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Injectable, Logger, Optional } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode, ErrorCodes, ZiggieError } from '@ziggie/contracts';
import { ZodError } from 'zod';
import { bodyRefusalOf } from './body';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance?: string;
  correlationId?: string;
  [extra: string]: unknown;
}

/** RFC 9457 problem for a ZiggieError. */
export function problemOf(err: ZiggieError, instance?: string, correlationId?: string): Problem {
  return {
    ...err.extras,
    type: `https://ziggie.dev/problems/${err.code.toLowerCase().replace(/_/g, '-')}`,
    title: ErrorCodes[err.code].title,
    status: err.httpStatus,
    detail: err.message,
    code: err.code,
    instance,
    correlationId,
  };
}

export function zodToZiggie(err: ZodError, code: ErrorCode = 'VALIDATION_FAILED'): ZiggieError {
  const errors = err.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
  const detail = errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join('; ');
  return new ZiggieError(code, detail, { errors });
}

/** Maps whatever was thrown to a ZiggieError; unknown errors become a safe INTERNAL. */
export function toZiggieError(err: unknown): { error: ZiggieError; unexpected: boolean } {
  if (err instanceof ZiggieError) return { error: err, unexpected: false };
  if (err instanceof ZodError) return { error: zodToZiggie(err), unexpected: false };
  // Refusals of the body while it was read (too large, not JSON, not application/json).
  const refused = bodyRefusalOf(err);
  if (refused) return { error: refused, unexpected: false };
  if (err instanceof HttpException) {
    const status = err.getStatus();
    if (status === 404) return { error: new ZiggieError('NOT_FOUND', 'no such route'), unexpected: false };
    if (status >= 400 && status < 500) {
      return { error: new ZiggieError('VALIDATION_FAILED', err.message), unexpected: false };
    }
  }
  // Any other refusal Fastify raises before a route runs (a bad URL, an aborted upload) is the client's.
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e?.code === 'string' && e.code.startsWith('FST_') && typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return { error: new ZiggieError('VALIDATION_FAILED', `request refused (${e.code})`), unexpected: false };
  }
  return { error: new ZiggieError('INTERNAL', 'internal error'), unexpected: true };
}

export type ProblemListener = (request: FastifyRequest, problem: Problem, status: number) => void | Promise<void>;

/**
 * Tells subscribers about every problem response (the gateway audits denials this way: guards
 * throw before any interceptor runs). A subscriber that throws or rejects is logged and never
 * changes the response.
 */
@Injectable()
export class ProblemEvents {
  private readonly logger = new Logger('errors');
  private readonly listeners = new Set<ProblemListener>();

  /** Returns the unsubscribe function. */
  subscribe(listener: ProblemListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(request: FastifyRequest, problem: Problem, status: number): void {
    for (const listener of this.listeners) {
      try {
        const result = listener(request, problem, status);
        if (result instanceof Promise) result.catch((err: unknown) => this.logger.warn({ err }, 'problem listener failed'));
      } catch (err) {
        this.logger.warn({ err }, 'problem listener failed');
      }
    }
  }
}

/** Answers an error in a protocol's own format instead of problem+json. */
export type ErrorFormat = (error: unknown, request: FastifyRequest, reply: FastifyReply) => void;

/**
 * Paths whose errors are not REST problems: /mcp answers JSON-RPC errors, also for refusals
 * raised before its handler runs (a body that is not JSON, too large).
 */
@Injectable()
export class ErrorFormats {
  private readonly byPath = new Map<string, ErrorFormat>();

  /** `path` is matched exactly, without the query string. */
  register(path: string, format: ErrorFormat): void {
    this.byPath.set(path, format);
  }

  of(url: string): ErrorFormat | undefined {
    if (this.byPath.size === 0) return undefined;
    const query = url.indexOf('?');
    return this.byPath.get(query >= 0 ? url.slice(0, query) : url);
  }
}

/** The one place errors become responses: problem+json with a stable code and the correlation id. */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger('errors');

  // Optional: an app built without the PlatformModule (unit tests) has no subscribers to tell.
  constructor(
    @Optional() private readonly events?: ProblemEvents,
    @Optional() private readonly formats?: ErrorFormats,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const reply = ctx.getResponse<FastifyReply>();
    const req = ctx.getRequest<FastifyRequest>();
    const format = this.formats?.of(req.url);
    if (format) return format(exception, req, reply);
    const { error, unexpected } = toZiggieError(exception);
    if (unexpected) {
      this.logger.error({ err: exception, url: req.url }, 'unexpected error');
    }
    // A streamed response that already started (SSE) can only be ended.
    if (reply.sent || reply.raw.headersSent) {
      if (!reply.raw.writableEnded) reply.raw.end();
      return;
    }
    // The request id is the correlation id echoed in X-Request-ID: the body and the header agree.
    const retryAfter = error.extras.retryAfterSeconds;
    if (typeof retryAfter === 'number') reply.header('Retry-After', String(Math.ceil(retryAfter)));
    // Fastify closes the connection after a body it could not read; one read to its end (the
    // platform's JSON reader drains what it refuses) leaves the connection usable.
    if (req.raw.complete && reply.getHeader('connection') === 'close') reply.removeHeader('connection');
    const problem = problemOf(error, req.originalUrl ?? req.url, req.id);
    reply.code(error.httpStatus).type('application/problem+json').send(JSON.stringify(problem));
    this.events?.emit(req, problem, error.httpStatus);
  }
}

/** Parses input with a zod schema; failures become VALIDATION_FAILED (or the given code) listing every issue. */
export function parseInput<T>(schema: { safeParse(value: unknown): { success: true; data: T } | { success: false; error: ZodError } }, value: unknown, code: ErrorCode = 'VALIDATION_FAILED'): T {
  const r = schema.safeParse(value);
  if (!r.success) throw zodToZiggie(r.error, code);
  return r.data;
}
