import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Logger } from '@nestjs/common';
import { headers as natsHeaders, type JsMsg, type MsgHdrs } from 'nats';
import { Consumers, PayloadOf, Subject } from '@ziggie/contracts';
import type { PlatformConfig } from '../config/config';
import type { HealthRegistry } from '../health/health';
import { tracer } from '../telemetry/trace';
import { NatsService } from './nats.service';

// Trace context across NATS: producer spans whose context rides in the headers, consumer spans
// that continue it. The connection is a double; the spans are the SDK's, kept in memory.

const exporter = new InMemorySpanExporter();

beforeAll(() => {
  Logger.overrideLogger(false);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
});

afterAll(() => {
  trace.disable();
  propagation.disable();
  context.disable();
});

beforeEach(() => exporter.reset());

const result: PayloadOf<Subject.StepResult> = {
  taskId: 'tsk_1',
  stepId: 'a',
  attemptId: 'tsk_1.a.1',
  agentId: 'l3-agent',
  status: 'succeeded',
  startedAt: new Date(0).toISOString(),
};

function service() {
  const sent: Array<{ subject: string; msgID?: string; headers: MsgHdrs }> = [];
  const nats = new NatsService({} as PlatformConfig, { streams: [], consumers: [] }, { register: () => undefined } as unknown as HealthRegistry);
  const internals = nats as unknown as { jsClient: unknown; nc: unknown };
  internals.jsClient = {
    publish: (subject: string, _data: Uint8Array, opts: { msgID?: string; headers: MsgHdrs }) => {
      sent.push({ subject, msgID: opts.msgID, headers: opts.headers });
      return Promise.resolve({ stream: 'S', seq: sent.length, duplicate: false });
    },
  };
  internals.nc = {
    publish: (subject: string, _data: Uint8Array, opts: { headers: MsgHdrs }) => {
      if (subject.includes('refused')) throw new Error('connection closed');
      sent.push({ subject, headers: opts.headers });
    },
  };
  return { nats, sent };
}

function message(headers: MsgHdrs): JsMsg & { acked: number; naked: number } {
  const msg = {
    subject: `${Subject.StepResult}`,
    data: Buffer.from(JSON.stringify(result)),
    headers,
    seq: 1,
    info: { deliveryCount: 1 },
    acked: 0,
    naked: 0,
    ack() {
      msg.acked++;
    },
    nak() {
      msg.naked++;
    },
    term() {},
  };
  return msg as unknown as JsMsg & { acked: number; naked: number };
}

describe('NatsService trace context', () => {
  it('publishes in a producer span whose context is what the headers carry', async () => {
    const { nats, sent } = service();
    await tracer().startActiveSpan('request', async (request) => {
      await nats.publish(Subject.StepResult, undefined, result, { msgId: result.attemptId });
      request.end();
    });
    const [producer] = exporter.getFinishedSpans().filter((s) => s.name === `publish ${Subject.StepResult}`);
    expect(producer!.kind).toBe(SpanKind.PRODUCER);
    expect(producer!.parentSpanContext?.spanId).toBe(exporter.getFinishedSpans().find((s) => s.name === 'request')!.spanContext().spanId);
    expect(producer!.attributes).toMatchObject({
      'messaging.system': 'nats',
      'messaging.destination.name': Subject.StepResult,
      'messaging.operation.type': 'send',
      'messaging.message.id': result.attemptId,
    });
    const { traceId, spanId } = producer!.spanContext();
    expect(sent[0]!.headers.get('traceparent')).toBe(`00-${traceId}-${spanId}-01`);
  });

  it('starts no trace for a publish outside one (heartbeats, timers)', async () => {
    const { nats, sent } = service();
    await context.with(ROOT_CONTEXT, () => nats.publish(Subject.StepResult, undefined, result));
    context.with(ROOT_CONTEXT, () => nats.publishCore(Subject.AgentHeartbeat, 'l3-agent', { agentId: 'l3-agent', status: 'idle', load: 0, runtimeId: 'rt', at: new Date(0).toISOString() }));
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    expect(sent.map((m) => m.headers.has('traceparent'))).toEqual([false, false]);
  });

  it('still throws synchronously from a failed core publish, and marks its span failed', () => {
    const { nats } = service();
    tracer().startActiveSpan('request', (request) => {
      expect(() => nats.publishCore(Subject.StepCancel, 'refused', { taskId: 'refused', attemptIds: [], reason: 'x' })).toThrow('connection closed');
      request.end();
    });
    const [producer] = exporter.getFinishedSpans().filter((s) => s.name === `publish ${Subject.StepCancel}`);
    expect(producer!.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('handles a message in a consumer span that continues the producer\'s trace', async () => {
    const { nats } = service();
    const producerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const producerSpan = '00f067aa0ba902b7';
    const h = natsHeaders();
    h.set('traceparent', `00-${producerTrace}-${producerSpan}-01`);
    h.set('Nats-Msg-Id', result.attemptId);
    let seenInHandler: string | undefined;
    const msg = message(h);
    const handle = (nats as unknown as { handle(opts: unknown, msg: JsMsg): Promise<void> }).handle.bind(nats);
    await handle(
      {
        spec: Consumers.resultRecorder,
        subject: Subject.StepResult,
        handler: () => {
          seenInHandler = trace.getActiveSpan()?.spanContext().traceId;
          return Promise.resolve();
        },
      },
      msg,
    );
    expect(msg.acked).toBe(1);
    expect(seenInHandler).toBe(producerTrace);
    const [consumer] = exporter.getFinishedSpans();
    expect(consumer!.name).toBe(`process ${Subject.StepResult}`);
    expect(consumer!.kind).toBe(SpanKind.CONSUMER);
    expect(consumer!.parentSpanContext?.spanId).toBe(producerSpan);
    expect(consumer!.attributes).toMatchObject({
      'messaging.system': 'nats',
      'messaging.operation.type': 'process',
      'messaging.message.id': result.attemptId,
      'messaging.consumer.group.name': Consumers.resultRecorder.durable,
    });
  });

  it('marks the consumer span failed when the handler throws (and the message is retried)', async () => {
    const { nats } = service();
    const msg = message(natsHeaders());
    const handle = (nats as unknown as { handle(opts: unknown, msg: JsMsg): Promise<void> }).handle.bind(nats);
    await handle({ spec: { ...Consumers.resultRecorder, maxDeliver: 5 }, subject: Subject.StepResult, handler: () => Promise.reject(new Error('db down')) }, msg);
    expect(msg.naked).toBe(1);
    const [consumer] = exporter.getFinishedSpans();
    expect(consumer!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'Error: db down' });
    // No context in the headers: the consumer span starts a trace of its own.
    expect(consumer!.parentSpanContext).toBeUndefined();
  });
});
