import { HttpException } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { ZiggieError, type ErrorCode } from '@ziggie/contracts';

/** The largest request body any service reads. */
export const BODY_LIMIT_BYTES = 2 * 1024 * 1024;

/** Why a request body was refused before any route saw it. */
export type BodyRefusal = 'invalid-json' | 'not-an-object' | 'too-large' | 'media-type';

/** A request body refused while it was read; routes that answer in their own format (/mcp) map `reason`. */
export class BodyRefusedError extends ZiggieError {
  constructor(
    readonly reason: BodyRefusal,
    code: ErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}

/**
 * The refusals the HTTP server raises itself while reading a body, as BodyRefusedErrors; anything
 * else undefined. They arrive as Fastify's errors (by code) or, passed through Nest's handler, as
 * HttpExceptions (by status).
 */
export function bodyRefusalOf(err: unknown): BodyRefusedError | undefined {
  if (err instanceof BodyRefusedError) return err;
  const status = err instanceof HttpException ? err.getStatus() : undefined;
  const code = (err as { code?: unknown } | undefined)?.code;
  if (status === 413 || code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new BodyRefusedError('too-large', 'PAYLOAD_TOO_LARGE', `request body too large (limit ${BODY_LIMIT_BYTES / 1024 / 1024} MB)`);
  }
  if (status === 415 || code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new BodyRefusedError('media-type', 'UNSUPPORTED_MEDIA_TYPE', 'request bodies must be application/json');
  }
  return undefined;
}

/** How much of a refused oversized body is read and dropped; beyond it the connection is closed instead. */
const DRAIN_LIMIT_BYTES = 8 * BODY_LIMIT_BYTES;

/**
 * Reads a JSON body as the API has always read it: empty is no body, the top level is an object
 * or an array, at most BODY_LIMIT_BYTES. Own reader rather than Fastify's, for two reasons:
 * Fastify's parser refuses `__proto__` members outright (the API's strict schemas refuse them
 * by name like any unknown member), and Fastify answers an oversized body before reading it,
 * so a client still sending it gets a broken pipe instead of the 413; this one reads and drops
 * the rest first (up to DRAIN_LIMIT_BYTES), then answers.
 */
export function readJsonBody(req: FastifyRequest, payload: IncomingMessage, done: (err: Error | null, body?: unknown) => void): void {
  const declared = Number(req.headers['content-length']);
  const chunks: Buffer[] = [];
  let received = 0;
  let finished = false;
  const finish = (err: Error | null, body?: unknown) => {
    if (finished) return;
    finished = true;
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onError);
    done(err, body);
  };
  const tooLarge = () => new BodyRefusedError('too-large', 'PAYLOAD_TOO_LARGE', `request body too large (limit ${BODY_LIMIT_BYTES / 1024 / 1024} MB)`);
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received > DRAIN_LIMIT_BYTES) {
      // Not worth reading on: answer now (Node closes a connection whose request was not read).
      payload.pause();
      finish(tooLarge());
    } else if (received <= BODY_LIMIT_BYTES) {
      chunks.push(chunk);
    } else {
      chunks.length = 0;
    }
  };
  const onEnd = () => {
    if (received > BODY_LIMIT_BYTES || declared > BODY_LIMIT_BYTES) return finish(tooLarge());
    const body = jsonOf(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8'));
    if (body instanceof BodyRefusedError) finish(body);
    else finish(null, body);
  };
  const onError = (err: Error) => finish(err);
  if (declared > DRAIN_LIMIT_BYTES) return finish(tooLarge());
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onError);
}

function jsonOf(source: string): unknown {
  if (source.trim() === '') return undefined;
  let body: unknown;
  try {
    body = JSON.parse(source);
  } catch {
    return new BodyRefusedError('invalid-json', 'VALIDATION_FAILED', 'request body is not valid JSON');
  }
  if (body === null || typeof body !== 'object') return new BodyRefusedError('not-an-object', 'VALIDATION_FAILED', 'request body must be a JSON object or array');
  return body;
}
