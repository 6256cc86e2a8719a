import {
  context,
  Context,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  Span,
  SpanContext,
  SpanKind,
  SpanOptions,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';

// Services use these through the platform, never their own copy of @opentelemetry/api: a copy of
// another version may not see the SDK's registration and would trace nothing.
export { SpanKind, SpanStatusCode };
export type { Span };

/** Trace and span ids of the active span, for log lines; empty outside a trace. */
export function activeTraceIds(): { traceId?: string; spanId?: string } {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const ctx = span.spanContext();
  if (!isSpanContextValid(ctx)) return {};
  return { traceId: ctx.traceId, spanId: ctx.spanId };
}

/** True when the context (the active one by default) is inside a trace. */
export function inTrace(ctx: Context = context.active()): boolean {
  const sc = trace.getSpanContext(ctx);
  return sc !== undefined && isSpanContextValid(sc);
}

/**
 * W3C trace context (traceparent, and tracestate when there is one) of the active span, as a
 * plain object: HTTP headers, MCP `_meta`. Empty outside a trace.
 */
export function traceCarrier(ctx: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier;
}

/** Writes W3C trace context (traceparent) into a carrier, e.g. NATS headers. */
export function injectTraceContext(set: (key: string, value: string) => void): void {
  for (const [k, v] of Object.entries(traceCarrier())) set(k, v);
}

/** Runs fn inside the trace context found in a carrier. */
export function withExtractedTraceContext<T>(get: (key: string) => string | undefined, fn: () => T): T {
  const carrier: Record<string, string> = {};
  for (const key of ['traceparent', 'tracestate']) {
    const v = get(key);
    if (v) carrier[key] = v;
  }
  return context.with(propagation.extract(context.active(), carrier), fn);
}

export const tracer = () => trace.getTracer('ziggie');

// A global, not a module variable: the telemetry entry point and the platform index may be
// loaded as separate copies of this file, and both must see the same answer.
const PLATFORM_CARRIES_TRACES = Symbol.for('ziggie.telemetry.platformCarriesTraces');

/**
 * Set by startTelemetry when it patches neither http nor grpc (nothing is exported): then the
 * platform's HTTP middleware and gRPC wrappers carry W3C trace context themselves.
 */
export function setPlatformCarriesTraces(on: boolean): void {
  (globalThis as Record<symbol, unknown>)[PLATFORM_CARRIES_TRACES] = on;
}

export function platformCarriesTraces(): boolean {
  return (globalThis as Record<symbol, unknown>)[PLATFORM_CARRIES_TRACES] === true;
}

/**
 * Runs fn as the server side of a request: in the caller's trace found in the carrier, or a new
 * one, with a span of its own (non-recording when nothing is sampled), so logs carry its ids and
 * calls made from fn propagate them. What the http and grpc instrumentations do on the server
 * side, for when they are not loaded.
 */
export function inIncomingTrace<T>(name: string, get: (key: string) => string | undefined, fn: () => T): T {
  const traceparent = get('traceparent');
  let parent = ROOT_CONTEXT;
  if (traceparent) {
    const tracestate = get('tracestate');
    parent = propagation.extract(ROOT_CONTEXT, tracestate ? { traceparent, tracestate } : { traceparent });
  }
  const span = tracer().startSpan(name, { kind: SpanKind.SERVER }, parent);
  return context.with(trace.setSpan(parent, span), fn);
}

/**
 * Runs fn in a new active span that ends when fn returns, or settles when it returns a promise;
 * an exception or rejection marks the span failed and is passed on unchanged. With
 * `onlyInTrace`, fn runs without a span when no trace is active, so background work
 * (heartbeats, timers) does not start a trace of its own per call.
 */
export function inSpan<T>(name: string, options: SpanOptions & { onlyInTrace?: boolean }, fn: (span?: Span) => T): T {
  const { onlyInTrace, ...spanOptions } = options;
  if (onlyInTrace && !inTrace()) return fn();
  return tracer().startActiveSpan(name, spanOptions, (span) => {
    const fail = (err: unknown): never => {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      if (err instanceof Error) span.recordException(err);
      span.end();
      throw err;
    };
    let result: T;
    try {
      result = fn(span);
    } catch (err) {
      return fail(err);
    }
    if (isPromiseLike(result)) {
      return result.then((value) => {
        span.end();
        return value;
      }, fail) as T;
    }
    span.end();
    return result;
  });
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

type FetchFn = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/**
 * fetch that sends the active trace context (traceparent, tracestate) with each request, for
 * outgoing HTTP that the http instrumentation does not see (Node's fetch is undici). Headers
 * the caller set win.
 */
export function withTraceHeaders<F extends FetchFn>(base: F): F {
  return ((input: string | URL | Request, init?: RequestInit) => {
    const carrier = traceCarrier();
    if (Object.keys(carrier).length === 0) return base(input, init);
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    for (const [k, v] of Object.entries(carrier)) if (!headers.has(k)) headers.set(k, v);
    return base(input, { ...init, headers });
  }) as F;
}

/**
 * The trace context each of many keys (e.g. task ids) belongs to, for work done in batches for
 * several of them at once: run(key, fn) puts fn in the key's trace instead of whichever trace
 * happened to start the batch. Bounded: the least recently remembered keys are forgotten first.
 */
export class TraceContexts {
  private readonly known = new Map<string, SpanContext>();

  constructor(private readonly max = 10_000) {}

  /** Remembers the active span's context for key (when in a trace). */
  remember(key: string, ctx: Context = context.active()): void {
    const sc = trace.getSpanContext(ctx);
    if (!sc || !isSpanContextValid(sc)) return;
    this.known.delete(key);
    this.known.set(key, sc);
    if (this.known.size > this.max) this.known.delete(this.known.keys().next().value!);
  }

  forget(key: string): void {
    this.known.delete(key);
  }

  get size(): number {
    return this.known.size;
  }

  /** Runs fn in key's trace; outside any trace when the key is unknown (never in another key's). */
  run<T>(key: string, fn: () => T): T {
    const sc = this.known.get(key);
    return context.with(sc ? trace.setSpanContext(ROOT_CONTEXT, sc) : ROOT_CONTEXT, fn);
  }
}
