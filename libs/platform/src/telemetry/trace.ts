import { context, propagation, trace } from '@opentelemetry/api';

/** Trace and span ids of the active span, for log lines. */
export function activeTraceIds(): { traceId?: string; spanId?: string } {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const ctx = span.spanContext();
  return { traceId: ctx.traceId, spanId: ctx.spanId };
}

/** Writes W3C trace context (traceparent) into a carrier, e.g. NATS headers. */
export function injectTraceContext(set: (key: string, value: string) => void): void {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  for (const [k, v] of Object.entries(carrier)) set(k, v);
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
