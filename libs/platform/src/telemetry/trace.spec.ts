import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { activeTraceIds, injectTraceContext, inSpan, inTrace, traceCarrier, TraceContexts, tracer, withExtractedTraceContext, withTraceHeaders } from './trace';

const exporter = new InMemorySpanExporter();
const contextManager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
});

afterAll(() => {
  trace.disable();
  propagation.disable();
  context.disable();
});

beforeEach(() => exporter.reset());

const finished = (name: string) => exporter.getFinishedSpans().filter((s) => s.name === name);
const traceparentOf = (traceId: string, spanId: string) => `00-${traceId}-${spanId}-01`;

describe('trace context helpers', () => {
  it('reports no ids outside a trace, nor for an invalid span context', () => {
    expect(activeTraceIds()).toEqual({});
    expect(inTrace()).toBe(false);
    const invalid = trace.wrapSpanContext({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 });
    context.with(trace.setSpan(ROOT_CONTEXT, invalid), () => {
      expect(activeTraceIds()).toEqual({});
      expect(inTrace()).toBe(false);
      expect(traceCarrier()).toEqual({});
    });
  });

  it('gives the active span\'s ids and traceparent, and restores them from a carrier', () => {
    tracer().startActiveSpan('outer', (span) => {
      const { traceId, spanId } = span.spanContext();
      expect(activeTraceIds()).toEqual({ traceId, spanId });
      expect(traceCarrier()).toEqual({ traceparent: traceparentOf(traceId, spanId) });
      const headers = new Map<string, string>();
      injectTraceContext((k, v) => headers.set(k, v));
      span.end();
      // Elsewhere (another process): the carrier puts new spans into the same trace.
      context.with(ROOT_CONTEXT, () =>
        withExtractedTraceContext(
          (k) => headers.get(k),
          () => {
            const child = tracer().startSpan('child');
            expect(child.spanContext().traceId).toBe(traceId);
            child.end();
          },
        ),
      );
      expect(finished('child')[0]!.parentSpanContext?.spanId).toBe(spanId);
    });
  });
});

describe('inSpan', () => {
  it('ends the span when a synchronous fn returns, as a child of the active span', () => {
    tracer().startActiveSpan('parent', (parent) => {
      expect(inSpan('sync', { kind: SpanKind.PRODUCER, attributes: { a: 1 } }, () => 42)).toBe(42);
      parent.end();
    });
    const [span] = finished('sync');
    expect(span!.kind).toBe(SpanKind.PRODUCER);
    expect(span!.attributes).toEqual({ a: 1 });
    expect(span!.parentSpanContext?.spanId).toBe(finished('parent')[0]!.spanContext().spanId);
  });

  it('ends the span when a promise settles, with the span active inside', async () => {
    let inside: string | undefined;
    const pending = inSpan('async', {}, async (span) => {
      await new Promise((r) => setTimeout(r, 5));
      inside = activeTraceIds().spanId;
      expect(inside).toBe(span!.spanContext().spanId);
      return 'done';
    });
    expect(finished('async')).toHaveLength(0);
    await expect(pending).resolves.toBe('done');
    expect(finished('async')[0]!.spanContext().spanId).toBe(inside);
  });

  it('marks the span failed and passes the error on, thrown or rejected', async () => {
    expect(() =>
      inSpan('throws', {}, () => {
        throw new Error('sync boom');
      }),
    ).toThrow('sync boom');
    await expect(inSpan('rejects', {}, () => Promise.reject(new Error('async boom')))).rejects.toThrow('async boom');
    for (const [name, message] of [
      ['throws', 'sync boom'],
      ['rejects', 'async boom'],
    ]) {
      const [span] = finished(name!);
      expect(span!.status).toEqual({ code: SpanStatusCode.ERROR, message });
      expect(span!.events.map((e) => e.name)).toEqual(['exception']);
    }
  });

  it('with onlyInTrace, makes no span (and no trace) outside a trace', () => {
    expect(inSpan('background', { onlyInTrace: true }, (span) => span)).toBeUndefined();
    expect(finished('background')).toHaveLength(0);
    tracer().startActiveSpan('request', (span) => {
      inSpan('background', { onlyInTrace: true }, () => undefined);
      span.end();
    });
    expect(finished('background')[0]!.spanContext().traceId).toBe(finished('request')[0]!.spanContext().traceId);
  });
});

describe('withTraceHeaders', () => {
  const seen: Array<{ input: unknown; headers: Headers }> = [];
  const base = (input: string | URL | Request, init?: RequestInit) => {
    seen.push({ input, headers: new Headers(init?.headers) });
    return Promise.resolve(new Response('ok'));
  };
  const traced = withTraceHeaders(base);
  beforeEach(() => (seen.length = 0));

  it('sends the active traceparent along with the caller\'s headers', async () => {
    await tracer().startActiveSpan('call', async (span) => {
      await traced('http://upstream.test/mcp', { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer x' } });
      span.end();
      const { traceId, spanId } = span.spanContext();
      expect(seen[0]!.headers.get('traceparent')).toBe(traceparentOf(traceId, spanId));
      expect(seen[0]!.headers.get('authorization')).toBe('Bearer x');
      expect(seen[0]!.headers.get('content-type')).toBe('application/json');
    });
  });

  it('keeps a traceparent the caller set, and the headers of a Request', async () => {
    await tracer().startActiveSpan('call', async (span) => {
      await traced('http://upstream.test/mcp', { headers: { traceparent: traceparentOf('1'.repeat(32), '2'.repeat(16)) } });
      await traced(new Request('http://upstream.test/mcp', { headers: { 'x-upstream-key': 'k' } }));
      span.end();
    });
    expect(seen[0]!.headers.get('traceparent')).toBe(traceparentOf('1'.repeat(32), '2'.repeat(16)));
    expect(seen[1]!.headers.get('x-upstream-key')).toBe('k');
    expect(seen[1]!.headers.get('traceparent')).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('passes the request through untouched outside a trace', async () => {
    const init = { method: 'GET' };
    await traced('http://upstream.test/mcp', init);
    expect(seen[0]!.headers.has('traceparent')).toBe(false);
  });
});

describe('TraceContexts', () => {
  it('runs work for a key in the trace remembered for it, not in the active one', () => {
    const contexts = new TraceContexts();
    const a = tracer().startSpan('task a');
    const b = tracer().startSpan('task b');
    context.with(trace.setSpan(context.active(), a), () => contexts.remember('a'));
    context.with(trace.setSpan(context.active(), b), () => {
      // A batch started in b's trace does work for a: it goes to a's trace.
      expect(contexts.run('a', () => activeTraceIds().traceId)).toBe(a.spanContext().traceId);
      // An unknown key gets no trace rather than b's.
      expect(contexts.run('unknown', () => inTrace())).toBe(false);
    });
    a.end();
    b.end();
  });

  it('ignores contexts outside a trace, replaces older ones and forgets the oldest beyond its bound', () => {
    const contexts = new TraceContexts(2);
    contexts.remember('none');
    expect(contexts.size).toBe(0);
    const spans = ['one', 'two', 'three', 'two again'].map((n) => tracer().startSpan(n));
    const remember = (key: string, i: number) => context.with(trace.setSpan(ROOT_CONTEXT, spans[i]!), () => contexts.remember(key));
    remember('one', 0);
    remember('two', 1);
    remember('one', 0); // refreshed: now the newest
    remember('three', 2);
    expect(contexts.size).toBe(2);
    expect(contexts.run('two', () => inTrace())).toBe(false);
    expect(contexts.run('one', () => activeTraceIds().spanId)).toBe(spans[0]!.spanContext().spanId);
    remember('three', 3);
    expect(contexts.run('three', () => activeTraceIds().spanId)).toBe(spans[3]!.spanContext().spanId);
    contexts.forget('three');
    expect(contexts.run('three', () => inTrace())).toBe(false);
    for (const s of spans) s.end();
  });
});
