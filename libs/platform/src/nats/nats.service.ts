import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import {
  AckPolicy,
  connect,
  ConsumerConfig,
  DeliverPolicy,
  headers as natsHeaders,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
  MsgHdrs,
  nanos,
  NatsConnection,
  PubAck,
  RetentionPolicy,
  StorageType,
  StreamConfig,
  Subscription,
} from 'nats';
import {
  ConsumerSpec,
  PayloadOf,
  StreamSpec,
  Subject,
  SubjectSchemas,
  subjectFor,
  subjectWildcard,
} from '@ziggie/contracts';
import { PlatformConfig } from '../config/config';
import { CONFIG } from '../config/config.module';
import { correlationIdFrom, currentCorrelationId, runWithContext } from '../context';
import { HealthRegistry } from '../health/health';
import { injectTraceContext, inSpan, SpanKind, SpanStatusCode, tracer, withExtractedTraceContext } from '../telemetry/trace';

export const NATS_OPTIONS = Symbol('ZIGGIE_NATS_OPTIONS');

export interface NatsModuleOptions {
  /** Streams and durable consumers this service relies on; created or updated at start. */
  streams: StreamSpec[];
  consumers: ConsumerSpec[];
}

export interface ConsumeOptions<S extends Subject> {
  spec: ConsumerSpec;
  subject: S;
  /** Resolve to ack. Throw to nak with backoff; after the last delivery, onExhausted runs and the message is terminated. */
  handler: (payload: PayloadOf<S>, msg: JsMsg) => Promise<void>;
  onExhausted?: (payload: PayloadOf<S>, msg: JsMsg, error: unknown) => Promise<void>;
  /** Messages handled at once. */
  concurrency?: number;
}

export interface ConsumeHandle {
  stop(): Promise<void>;
}

const CORRELATION = 'Ziggie-Correlation-Id';
const codec = { encode: (v: unknown) => Buffer.from(JSON.stringify(v)), decode: (b: Uint8Array) => JSON.parse(Buffer.from(b).toString('utf8')) as unknown };

/**
 * The one NATS/JetStream wrapper: connection with endless reconnect, stream and consumer
 * set-up, schema validation on both ends, and trace context plus correlation id in headers.
 */
@Injectable()
export class NatsService implements OnApplicationShutdown {
  private readonly logger = new Logger('nats');
  private nc?: NatsConnection;
  private jsClient?: JetStreamClient;
  private jsManager?: JetStreamManager;
  private connected = false;
  private readonly consumers: ConsumeHandle[] = [];

  constructor(
    @Inject(CONFIG) private readonly config: PlatformConfig,
    @Inject(NATS_OPTIONS) private readonly options: NatsModuleOptions,
    health: HealthRegistry,
  ) {
    health.register({
      name: 'nats',
      check: async () => {
        if (!this.nc || this.nc.isClosed() || !this.connected) return { ok: false, detail: 'not connected' };
        await this.nc.flush();
        return { ok: true };
      },
    });
  }

  /** Connects and sets up streams; called by the platform before the app listens. */
  async start(): Promise<void> {
    const tls = this.config.nats.tls;
    this.nc = await connect({
      servers: this.config.nats.url.split(','),
      name: `ziggie-${this.config.service}`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      waitOnFirstConnect: true,
      // Every request and JetStream publish would otherwise build an Error for its stack (a tenth
      // of the nats client's time in the orchestrator's profile); our errors name the operation.
      noAsyncTraces: true,
      tls: tls
        ? {
            ca: tls.caFile ? readFileSync(tls.caFile, 'utf8') : undefined,
            cert: tls.certFile ? readFileSync(tls.certFile, 'utf8') : undefined,
            key: tls.keyFile ? readFileSync(tls.keyFile, 'utf8') : undefined,
          }
        : undefined,
    });
    this.connected = true;
    void this.watchStatus(this.nc);
    this.jsClient = this.nc.jetstream();
    this.jsManager = await this.nc.jetstreamManager();
    for (const s of this.options.streams) await this.ensureStream(s);
    for (const c of this.options.consumers) await this.ensureConsumer(c);
    this.logger.log(`connected to ${this.config.nats.url}`);
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        this.connected = false;
        this.logger.warn(`disconnected from NATS (${String(s.data)})`);
      } else if (s.type === 'reconnect') {
        this.connected = true;
        this.logger.log('reconnected to NATS');
      }
    }
  }

  get connection(): NatsConnection {
    if (!this.nc) throw new Error('NATS is not connected yet');
    return this.nc;
  }

  get jetstream(): JetStreamClient {
    if (!this.jsClient) throw new Error('NATS is not connected yet');
    return this.jsClient;
  }

  get manager(): JetStreamManager {
    if (!this.jsManager) throw new Error('NATS is not connected yet');
    return this.jsManager;
  }

  private async ensureStream(spec: StreamSpec): Promise<void> {
    const config: Partial<StreamConfig> & { name: string } = {
      name: spec.name,
      subjects: spec.subjects,
      retention: spec.retention === 'workqueue' ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(spec.maxAgeSeconds * 1000),
      duplicate_window: nanos(spec.duplicateWindowSeconds * 1000),
    };
    // Several services ensure the same streams at once: whoever loses the race updates instead.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.manager.streams.info(spec.name);
        await this.manager.streams.update(spec.name, config);
        return;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      try {
        await this.manager.streams.add(config);
        return;
      } catch (err) {
        if (!/already in use|exists/i.test(String(err))) throw err;
      }
    }
  }

  /**
   * Redelivery after a crash (no ack) waits ack_wait; a handler failure naks with the spec's
   * backoff delay. The server-side `backoff` list is not used: it would replace ack_wait by
   * its first value and cut short long steps between progress acks.
   */
  private async ensureConsumer(spec: ConsumerSpec): Promise<void> {
    const config: Partial<ConsumerConfig> = {
      durable_name: spec.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: spec.filterSubject,
      ack_wait: nanos(spec.ackWaitSeconds * 1000),
      max_deliver: spec.maxDeliver,
      max_ack_pending: spec.maxAckPending,
    };
    try {
      await this.manager.consumers.info(spec.stream, spec.durable);
      await this.manager.consumers.update(spec.stream, spec.durable, config);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.manager.consumers.add(spec.stream, config);
      } catch (addErr) {
        if (!/already (in use|exists)/i.test(String(addErr))) throw addErr;
      }
    }
  }

  private headersFor(): MsgHdrs {
    const h = natsHeaders();
    injectTraceContext((k, v) => h.set(k, v));
    const correlationId = currentCorrelationId();
    if (correlationId) h.set(CORRELATION, correlationId);
    return h;
  }

  private encode<S extends Subject>(subject: S, payload: PayloadOf<S>): Buffer {
    // Producers validate too: a bad message is a bug here, not a consumer's problem.
    return codec.encode(SubjectSchemas[subject].parse(payload));
  }

  /** Publishes to JetStream; `msgId` makes the publish idempotent within the duplicate window. */
  async publish<S extends Subject>(subject: S, suffix: string | undefined, payload: PayloadOf<S>, opts: { msgId?: string } = {}): Promise<PubAck> {
    const concrete = subjectFor(subject, suffix);
    const data = this.encode(subject, payload);
    // A producer span when in a trace: its context is what the headers carry to the consumer.
    return inSpan(`publish ${subject}`, { kind: SpanKind.PRODUCER, attributes: messagingAttributes(concrete, 'publish', opts.msgId), onlyInTrace: true }, () =>
      this.jetstream.publish(concrete, data, {
        msgID: opts.msgId,
        headers: this.headersFor(),
      }),
    );
  }

  /** Core NATS publish, for traffic that must not be persisted (heartbeats). */
  publishCore<S extends Subject>(subject: S, suffix: string | undefined, payload: PayloadOf<S>): void {
    const concrete = subjectFor(subject, suffix);
    const data = this.encode(subject, payload);
    inSpan(`publish ${subject}`, { kind: SpanKind.PRODUCER, attributes: messagingAttributes(concrete, 'publish'), onlyInTrace: true }, () =>
      this.connection.publish(concrete, data, { headers: this.headersFor() }),
    );
  }

  /** Core NATS subscription with validation; messages that do not parse are dropped and logged. */
  subscribeCore<S extends Subject>(subject: S, handler: (payload: PayloadOf<S>, concreteSubject: string) => void): Subscription {
    return this.connection.subscribe(subjectWildcard(subject), {
      callback: (err, msg) => {
        if (err) {
          this.logger.warn(`subscription ${subject} error: ${err.message}`);
          return;
        }
        const parsed = SubjectSchemas[subject].safeParse(safeDecode(msg.data));
        if (!parsed.success) {
          this.logger.warn(`dropped invalid ${subject} message: ${parsed.error.message}`);
          return;
        }
        handler(parsed.data as PayloadOf<S>, msg.subject);
      },
    });
  }

  /**
   * Pulls from a durable consumer. Each message is validated (invalid → terminated, never
   * retried), run in its trace and correlation context, acked on success, nak'ed with the
   * consumer's backoff on failure, and handed to onExhausted after its last delivery.
   */
  async consume<S extends Subject>(opts: ConsumeOptions<S>): Promise<ConsumeHandle> {
    const consumer = await this.jetstream.consumers.get(opts.spec.stream, opts.spec.durable);
    const concurrency = opts.concurrency ?? 16;
    const messages = await consumer.consume({ max_messages: concurrency * 2 });
    const inflight = new Set<Promise<void>>();
    const loop = (async () => {
      for await (const msg of messages) {
        const p = this.handle(opts, msg).finally(() => inflight.delete(p));
        inflight.add(p);
        if (inflight.size >= concurrency) await Promise.race(inflight);
      }
    })();
    const handle: ConsumeHandle = {
      stop: async () => {
        await messages.close();
        await loop.catch(() => undefined);
        await Promise.allSettled([...inflight]);
      },
    };
    this.consumers.push(handle);
    return handle;
  }

  private async handle<S extends Subject>(opts: ConsumeOptions<S>, msg: JsMsg): Promise<void> {
    const parsed = SubjectSchemas[opts.subject].safeParse(safeDecode(msg.data));
    if (!parsed.success) {
      this.logger.error(`rejected invalid ${msg.subject} message (seq ${msg.seq}): ${parsed.error.message}`);
      msg.term();
      return;
    }
    const payload = parsed.data as PayloadOf<S>;
    const correlationId = correlationIdFrom(msg.headers?.get(CORRELATION));
    const attributes = {
      ...messagingAttributes(msg.subject, 'process', msg.headers?.get('Nats-Msg-Id') || undefined),
      'messaging.consumer.group.name': opts.spec.durable,
      'messaging.nats.delivery_count': msg.info.deliveryCount,
    };
    await withExtractedTraceContext(
      (k) => msg.headers?.get(k) || undefined,
      () =>
        // The consumer span: a child of the producer's span when the message carried its context.
        tracer().startActiveSpan(`process ${opts.subject}`, { kind: SpanKind.CONSUMER, attributes }, (span) =>
          runWithContext({ correlationId }, async () => {
            // A handling that takes a while tells JetStream it is still at work, so a short ack
            // wait redelivers only what a crashed process held, not what a busy one is doing.
            const keepAlive = setInterval(() => msg.working(), Math.max(500, (opts.spec.ackWaitSeconds * 1000) / 3));
            try {
              await opts.handler(payload, msg);
              msg.ack();
            } catch (err) {
              span.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
              const delivery = msg.info.deliveryCount;
              if (delivery >= opts.spec.maxDeliver) {
                this.logger.error(`${msg.subject} exhausted after ${delivery} deliveries: ${String(err)}`);
                try {
                  await opts.onExhausted?.(payload, msg, err);
                  msg.term();
                } catch (deadLetterErr) {
                  this.logger.error(`dead-letter handling failed: ${String(deadLetterErr)}`);
                  msg.nak(5000);
                }
                return;
              }
              const delaySeconds = opts.spec.backoffSeconds[Math.min(delivery - 1, opts.spec.backoffSeconds.length - 1)] ?? 1;
              this.logger.warn(`${msg.subject} delivery ${delivery} failed, retrying in ${delaySeconds}s: ${String(err)}`);
              msg.nak(delaySeconds * 1000);
            } finally {
              clearInterval(keepAlive);
              span.end();
            }
          }),
        ),
    );
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled(this.consumers.map((c) => c.stop()));
    if (this.nc && !this.nc.isClosed()) await this.nc.drain().catch(() => undefined);
  }
}

/** OpenTelemetry messaging attributes of one NATS message (https://opentelemetry.io/docs/specs/semconv/messaging/). */
function messagingAttributes(subject: string, operation: 'publish' | 'process', messageId?: string): Record<string, string> {
  return {
    'messaging.system': 'nats',
    'messaging.destination.name': subject,
    'messaging.operation.name': operation,
    'messaging.operation.type': operation === 'publish' ? 'send' : 'process',
    ...(messageId ? { 'messaging.message.id': messageId } : {}),
  };
}

function safeDecode(data: Uint8Array): unknown {
  try {
    return codec.decode(data);
  } catch {
    return undefined;
  }
}

function isNotFound(err: unknown): boolean {
  return /not found/i.test(String((err as Error)?.message ?? err));
}
