import { context, propagation, trace, TraceFlags } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ConsumerSpec, PayloadOf, StreamSpec, Subject, subjectFor } from '@ziggie/contracts';
import { headers, StringCodec } from 'nats';
import { HealthRegistry, loadConfig, NatsService, runWithContext, currentCorrelationId } from '../src';
import { NatsServerHandle, startNats, waitFor } from '../../../test/support';

const stream: StreamSpec = { name: 'TEST_RESULTS', subjects: [Subject.StepResult], retention: 'limits', maxAgeSeconds: 60, duplicateWindowSeconds: 60 };
const consumer: ConsumerSpec = { stream: 'TEST_RESULTS', durable: 'test-recorder', filterSubject: Subject.StepResult, ackWaitSeconds: 5, maxDeliver: 3, backoffSeconds: [1], maxAckPending: 100 };

const result = (attemptId: string): PayloadOf<Subject.StepResult> => ({
  taskId: 'tsk_1',
  stepId: 'a',
  attemptId,
  agentId: 'l3-x',
  status: 'succeeded',
  output: { text: 'ok' },
  startedAt: new Date().toISOString(),
  finishedAt: new Date().toISOString(),
});

describe('NatsService against a real nats-server with JetStream', () => {
  let server: NatsServerHandle;
  let nats: NatsService;
  let health: HealthRegistry;

  beforeAll(async () => {
    // What the telemetry SDK registers in a running service.
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    server = await startNats();
    const config = loadConfig('orchestrator', undefined, { ZIGGIE_JWT_SECRET: 'integration-secret-0123', NATS_URL: server.url });
    health = new HealthRegistry();
    nats = new NatsService(config, { streams: [stream], consumers: [consumer] }, health);
    await nats.start();
  }, 30_000);

  afterAll(async () => {
    await nats?.onApplicationShutdown();
    await server?.stop();
  });

  it('creates the streams and durable consumers it is given, idempotently', async () => {
    const info = await nats.manager.consumers.info(consumer.stream, consumer.durable);
    expect(info.config.max_deliver).toBe(3);
    expect(info.config.filter_subject).toBe(Subject.StepResult);
    const again = new NatsService(nats['config'], { streams: [stream], consumers: [consumer] }, new HealthRegistry());
    await again.start();
    await again.onApplicationShutdown();
    expect((await nats.manager.streams.info(stream.name)).config.subjects).toEqual([Subject.StepResult]);
    expect((await health.readiness()).checks.nats).toEqual({ ok: true });
  });

  it('de-duplicates publishes by message id and delivers valid payloads with correlation and trace context', async () => {
    const seen: Array<{ attemptId: string; correlationId?: string; traceparent?: string }> = [];
    const handle = await nats.consume({
      spec: consumer,
      subject: Subject.StepResult,
      handler: async (payload, msg) => {
        seen.push({ attemptId: payload.attemptId, correlationId: currentCorrelationId(), traceparent: msg.headers?.get('traceparent') });
      },
    });
    const spanContext = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED };
    await context.with(trace.setSpanContext(context.active(), spanContext), () =>
      runWithContext({ correlationId: 'corr-123' }, async () => {
        await nats.publish(Subject.StepResult, undefined, result('tsk_1.a.1'), { msgId: 'tsk_1.a.1' });
        const dup = await nats.publish(Subject.StepResult, undefined, result('tsk_1.a.1'), { msgId: 'tsk_1.a.1' });
        expect(dup.duplicate).toBe(true);
      }),
    );
    await waitFor(() => seen.length >= 1, { timeoutMs: 5000, what: 'delivery' });
    await new Promise((r) => setTimeout(r, 300));
    await handle.stop();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ attemptId: 'tsk_1.a.1', correlationId: 'corr-123' });
    expect(seen[0]!.traceparent).toContain('0af7651916cd43dd8448eb211c80319c');
  }, 15_000);

  it('refuses to publish a payload that does not match its schema', async () => {
    await expect(nats.publish(Subject.StepResult, undefined, { ...result('x'), status: 'maybe' } as never)).rejects.toThrow();
  });

  it('terminates a message that does not parse, retries a failing handler, and hands the last delivery to onExhausted', async () => {
    const sc = StringCodec();
    const h = headers();
    h.set('Nats-Msg-Id', 'garbage-1');
    await nats.jetstream.publish(Subject.StepResult, sc.encode('{"not":"a result"}'), { headers: h });
    await nats.publish(Subject.StepResult, undefined, result('tsk_1.a.2'), { msgId: 'tsk_1.a.2' });
    const deliveries: string[] = [];
    const exhausted: string[] = [];
    const handle = await nats.consume({
      spec: consumer,
      subject: Subject.StepResult,
      handler: async (payload) => {
        deliveries.push(payload.attemptId);
        throw new Error('downstream unavailable');
      },
      onExhausted: async (payload) => {
        exhausted.push(payload.attemptId);
      },
    });
    await waitFor(() => exhausted.length === 1, { timeoutMs: 15_000, what: 'exhaustion' });
    await handle.stop();
    expect(deliveries).toEqual(['tsk_1.a.2', 'tsk_1.a.2', 'tsk_1.a.2']);
    expect(exhausted).toEqual(['tsk_1.a.2']);
    // The final term/ack is a fire-and-forget publish the server applies to the consumer shortly after.
    let open = -1;
    await waitFor(
      async () => {
        const info = await nats.manager.consumers.info(consumer.stream, consumer.durable);
        open = info.num_pending + info.num_ack_pending;
        return open === 0;
      },
      { timeoutMs: 5_000, what: 'no message left pending or unacknowledged' },
    );
    expect(open).toBe(0);
  }, 30_000);

  it('keeps a message that takes longer than the ack wait to handle: progress acks, no redelivery', async () => {
    const slowStream: StreamSpec = { ...stream, name: 'TEST_SLOW', subjects: ['test.slow.result'] };
    const slowConsumer: ConsumerSpec = { ...consumer, stream: 'TEST_SLOW', durable: 'test-slow', filterSubject: 'test.slow.result', ackWaitSeconds: 1 };
    const slow = new NatsService(nats['config'], { streams: [slowStream], consumers: [slowConsumer] }, new HealthRegistry());
    await slow.start();
    try {
      await slow.jetstream.publish('test.slow.result', new TextEncoder().encode(JSON.stringify(result('tsk_1.a.9'))));
      const deliveries: number[] = [];
      let done = false;
      const handle = await slow.consume({
        spec: slowConsumer,
        subject: Subject.StepResult,
        handler: async (_payload, msg) => {
          deliveries.push(msg.info.deliveryCount);
          // Three ack waits: without progress acks JetStream would have redelivered it twice meanwhile.
          await new Promise((r) => setTimeout(r, 3_000));
          done = true;
        },
      });
      await waitFor(() => done, { timeoutMs: 10_000, what: 'the slow handling' });
      await new Promise((r) => setTimeout(r, 1_500));
      await handle.stop();
      expect(deliveries).toEqual([1]);
      const info = await slow.manager.consumers.info(slowConsumer.stream, slowConsumer.durable);
      expect(info.num_redelivered).toBe(0);
    } finally {
      await slow.onApplicationShutdown();
    }
  }, 30_000);

  it('validates core-NATS messages and drops the ones that do not parse', async () => {
    const beats: string[] = [];
    const sub = nats.subscribeCore(Subject.AgentHeartbeat, (beat) => beats.push(beat.agentId));
    nats.connection.publish(subjectFor(Subject.AgentHeartbeat, 'bad'), StringCodec().encode('{"agentId":1}'));
    nats.publishCore(Subject.AgentHeartbeat, 'l3-a', { agentId: 'l3-a', status: 'busy', load: 1, runtimeId: 'r', at: new Date().toISOString() });
    await waitFor(() => beats.length === 1, { timeoutMs: 3000, what: 'heartbeat' });
    await nats.connection.flush();
    sub.unsubscribe();
    expect(beats).toEqual(['l3-a']);
  });
});
