import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { Logger } from '@nestjs/common';
import { ErrorCode, GRPC_ERROR_CODE_KEY, isErrorCode, ZiggieError } from '@ziggie/contracts';
import { TlsFiles } from '../config/config';
import { correlationIdFrom, currentCorrelationId, runWithContext } from '../context';
import { toZiggieError } from '../http/problem';
import type { MetricsService } from '../health/metrics';
import { inIncomingTrace, platformCarriesTraces, traceCarrier } from '../telemetry/trace';
import { grpcServerMetrics } from './metrics';

const CORRELATION_KEY = 'x-correlation-id';
const logger = new Logger('grpc');

function read(file?: string): Buffer | null {
  return file ? readFileSync(file) : null;
}

/** Server credentials: TLS when a certificate is configured, mutual TLS when a CA is too. */
export function serverCredentials(tls?: TlsFiles): grpc.ServerCredentials {
  if (!tls?.certFile || !tls.keyFile) return grpc.ServerCredentials.createInsecure();
  const ca = read(tls.caFile);
  return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: read(tls.certFile)!, private_key: read(tls.keyFile)! }], ca !== null);
}

/** Client credentials: TLS when a CA is configured, with a client certificate for mTLS when given. */
export function channelCredentials(tls?: TlsFiles): grpc.ChannelCredentials {
  if (!tls?.caFile) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(read(tls.caFile), read(tls.keyFile), read(tls.certFile));
}

function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  const { error, unexpected } = toZiggieError(err);
  if (unexpected) logger.error({ err }, 'unexpected error in gRPC handler');
  const metadata = new grpc.Metadata();
  metadata.set(GRPC_ERROR_CODE_KEY, error.code);
  if (Object.keys(error.extras).length > 0) metadata.set('ziggie-error-extras-bin', Buffer.from(JSON.stringify(error.extras)));
  return { code: error.grpcStatus, details: error.message, metadata };
}

function contextOf(metadata: grpc.Metadata): { correlationId: string } {
  return { correlationId: correlationIdFrom(metadata.get(CORRELATION_KEY)[0]) };
}

/**
 * Runs a handler in the call's correlation context and, when no instrumentation patches grpc,
 * in the caller's trace (traceparent in the metadata).
 */
function inCallContext(call: { metadata: grpc.Metadata; getPath(): string }, fn: () => void): void {
  const run = () => runWithContext(contextOf(call.metadata), fn);
  if (!platformCarriesTraces()) return run();
  inIncomingTrace(call.getPath(), (key) => {
    const v = call.metadata.get(key)[0];
    return typeof v === 'string' ? v : undefined;
  }, run);
}

/** Wraps a unary handler: correlation context in, ZiggieError → status + code out. */
export function unary<Req, Res>(fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    inCallContext(call, () => {
      Promise.resolve()
        .then(() => fn(call.request, call))
        .then(
        (res) => callback(null, res),
        (err: unknown) => callback(toServiceError(err)),
      );
    });
  };
}

/** Wraps an async server-streaming handler: write events, return when done. */
export function serverStream<Req, Res>(
  fn: (req: Req, call: grpc.ServerWritableStream<Req, Res>) => Promise<void>,
): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => {
    inCallContext(call, () => {
      Promise.resolve()
        .then(() => fn(call.request, call))
        .then(
        () => call.end(),
        // Emitting 'error' is how grpc-js ends a server stream with a status.
        (err: unknown) => call.emit('error', toServiceError(err)),
      );
    });
  };
}

export interface GrpcBinding {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

/** Binds and starts a gRPC server; returns it with the bound port. With `metrics`, every call is counted and timed. */
export async function startGrpcServer(
  address: { host: string; port: number },
  bindings: GrpcBinding[],
  tls?: TlsFiles,
  metrics?: MetricsService,
): Promise<{ server: grpc.Server; port: number }> {
  const interceptors = metrics ? [grpcServerMetrics(metrics, bindings.map((b) => b.definition))] : [];
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024, interceptors });
  for (const b of bindings) server.addService(b.definition, b.implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${address.host}:${address.port}`, serverCredentials(tls), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port };
}

export async function stopGrpcServer(server: grpc.Server, graceMs: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

type Callback<Res> = (err: grpc.ServiceError | null, res: Res) => void;
export type UnaryMethod<Req, Res> = (req: Req, metadata: grpc.Metadata, options: Partial<grpc.CallOptions>, cb: Callback<Res>) => grpc.ClientUnaryCall;
type StreamMethod<Req, Res> = (req: Req, metadata?: grpc.Metadata, options?: Partial<grpc.CallOptions>) => grpc.ClientReadableStream<Res>;

function outgoingMetadata(): grpc.Metadata {
  const md = new grpc.Metadata();
  const correlationId = currentCorrelationId();
  if (correlationId) md.set(CORRELATION_KEY, correlationId);
  if (platformCarriesTraces()) for (const [k, v] of Object.entries(traceCarrier())) md.set(k, v);
  return md;
}

/** Turns a gRPC error back into the ZiggieError the peer threw. */
export function fromServiceError(err: grpc.ServiceError, peer: string): ZiggieError {
  const code = err.metadata?.get(GRPC_ERROR_CODE_KEY)[0];
  const extrasRaw = err.metadata?.get('ziggie-error-extras-bin')[0];
  let extras: Record<string, unknown> = {};
  if (Buffer.isBuffer(extrasRaw)) {
    try {
      extras = JSON.parse(extrasRaw.toString('utf8')) as Record<string, unknown>;
    } catch {
      extras = {};
    }
  }
  if (isErrorCode(code)) return new ZiggieError(code, err.details, extras);
  const byStatus: Partial<Record<number, ErrorCode>> = {
    [grpc.status.UNAVAILABLE]: 'SERVICE_UNAVAILABLE',
    [grpc.status.DEADLINE_EXCEEDED]: 'UPSTREAM_TIMEOUT',
    [grpc.status.UNIMPLEMENTED]: 'UNIMPLEMENTED',
    [grpc.status.NOT_FOUND]: 'NOT_FOUND',
  };
  return new ZiggieError(byStatus[err.code] ?? 'INTERNAL', `${peer}: ${err.details || grpc.status[err.code]}`);
}

/** Promise form of a generated unary client method, with correlation id and deadline. */
export function callUnary<Req, Res>(method: UnaryMethod<Req, Res>, req: Req, opts: { timeoutMs?: number; peer?: string } = {}): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    method(req, outgoingMetadata(), { deadline: Date.now() + (opts.timeoutMs ?? 10_000) }, (err, res) =>
      err ? reject(fromServiceError(err, opts.peer ?? 'peer')) : resolve(res),
    );
  });
}

/** callUnary of the client's method `name`, called on the client (nothing bound per call). */
export function callUnaryOn<Res>(client: object, name: string, req: unknown, opts: { timeoutMs: number; peer: string }): Promise<Res> {
  const method = (client as Record<string, UnaryMethod<unknown, Res>>)[name]!;
  return new Promise<Res>((resolve, reject) => {
    method.call(client, req, outgoingMetadata(), { deadline: Date.now() + opts.timeoutMs }, (err, res) => (err ? reject(fromServiceError(err, opts.peer)) : resolve(res)));
  });
}

/** Async iterator over a server-streaming call, with errors mapped to ZiggieError. */
export async function* callStream<Req, Res>(
  method: StreamMethod<Req, Res>,
  req: Req,
  opts: { timeoutMs?: number; peer?: string; signal?: AbortSignal } = {},
): AsyncGenerator<Res> {
  const call = method(req, outgoingMetadata(), { deadline: Date.now() + (opts.timeoutMs ?? 60_000) });
  const onAbort = () => call.cancel();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const item of call as AsyncIterable<Res>) yield item;
  } catch (err) {
    throw fromServiceError(err as grpc.ServiceError, opts.peer ?? 'peer');
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    // A caller that stops reading early must not leave the server streaming; no-op when done.
    call.cancel();
  }
}

export type GrpcClientConstructor<C> = new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>) => C;

export function createGrpcClient<C>(Ctor: GrpcClientConstructor<C>, address: string, tls?: TlsFiles, interceptors: grpc.Interceptor[] = []): C {
  return new Ctor(address, channelCredentials(tls), {
    'grpc.keepalive_time_ms': 30_000,
    // A peer that starts later or restarts is reached within 2 s; grpc-js would back off up to 120 s.
    'grpc.initial_reconnect_backoff_ms': 250,
    'grpc.max_reconnect_backoff_ms': 2_000,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    interceptors,
  });
}
