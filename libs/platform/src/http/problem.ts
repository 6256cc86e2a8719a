import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Injectable, Logger, Optional } from '@nestjs/common';
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Request, Response } from 'express';
import { ErrorCode, ErrorCodes, ZiggieError } from '@ziggie/contracts';
import { ZodError } from 'zod';

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
  if (err instanceof HttpException) {
    const status = err.getStatus();
    if (status === 404) return { error: new ZiggieError('NOT_FOUND', 'no such route'), unexpected: false };
    if (status === 413) return { error: new ZiggieError('PAYLOAD_TOO_LARGE', 'request body too large'), unexpected: false };
    if (status >= 400 && status < 500) {
      return { error: new ZiggieError('VALIDATION_FAILED', err.message), unexpected: false };
    }
  }
  const e = err as { type?: string; status?: number };
  // body-parser errors (bad JSON, too large) reach the filter as plain errors with a status
  if (e?.type === 'entity.parse.failed') {
    return { error: new ZiggieError('VALIDATION_FAILED', 'request body is not valid JSON'), unexpected: false };
  }
  if (e?.type === 'entity.too.large') {
    return { error: new ZiggieError('PAYLOAD_TOO_LARGE', 'request body too large (limit 2 MB)'), unexpected: false };
  }
  // Other body-parser refusals (unsupported charset or encoding, aborted upload) are the client's.
  if (typeof e?.type === 'string' && typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    return { error: new ZiggieError('VALIDATION_FAILED', `request body refused (${e.type})`), unexpected: false };
  }
  return { error: new ZiggieError('INTERNAL', 'internal error'), unexpected: true };
}

export type ProblemListener = (request: Request, problem: Problem, status: number) => void | Promise<void>;

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

  emit(request: Request, problem: Problem, status: number): void {
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

/** The one place errors become responses: problem+json with a stable code and the correlation id. */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger('errors');

  // Optional: an app built without the PlatformModule (unit tests) has no subscribers to tell.
  constructor(@Optional() private readonly events?: ProblemEvents) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const res = ctx.getResponse<Response>();
    const req = ctx.getRequest<Request & { id?: string }>();
    const { error, unexpected } = toZiggieError(exception);
    if (unexpected) {
      this.logger.error({ err: exception, url: req.url }, 'unexpected error');
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    // The id the middleware echoed in X-Request-ID, so the body and the header always agree.
    const echoed = res.getHeader('X-Request-ID');
    const correlationId = typeof echoed === 'string' ? echoed : typeof req.id === 'string' ? req.id : undefined;
    const retryAfter = error.extras.retryAfterSeconds;
    if (typeof retryAfter === 'number') res.setHeader('Retry-After', String(Math.ceil(retryAfter)));
    const problem = problemOf(error, req.originalUrl ?? req.url, correlationId);
    res.status(error.httpStatus).type('application/problem+json').send(JSON.stringify(problem));
    this.events?.emit(req, problem, error.httpStatus);
  }
}

/** Parses input with a zod schema; failures become VALIDATION_FAILED (or the given code) listing every issue. */
export function parseInput<T>(schema: { safeParse(value: unknown): { success: true; data: T } | { success: false; error: ZodError } }, value: unknown, code: ErrorCode = 'VALIDATION_FAILED'): T {
  const r = schema.safeParse(value);
  if (!r.success) throw zodToZiggie(r.error, code);
  return r.data;
}

/**
 * Requests Node's HTTP parser refuses before any route runs (a request line or headers over
 * the 16 KB limit, a malformed request) get problem+json too, instead of Node's bare status line.
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
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
  });
}
