import type * as grpc from '@grpc/grpc-js';
import { pb } from '@ziggie/contracts';
import { startOtlpReceiver } from '../../../../test/support/otlp-receiver';
import { callUnary, createGrpcClient, startGrpcServer, stopGrpcServer, unary } from '../grpc/grpc';
import { MetricsService } from '../health/metrics';
import Fastify from 'fastify';
import { installRequestHooks } from '../http/http-server';
import { activeTraceIds, inSpan, platformCarriesTraces, traceCarrier, withExtractedTraceContext } from './trace';
import { startTelemetry, stopTelemetry } from './telemetry';

const CALLER_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CALLER_SPAN = 'b7ad6b7169203331';

/** A real gRPC server whose GetWorkspace answers with the trace ids its handler ran in. */
async function traceEchoServer(): Promise<{ client: pb.WorkspaceCoordClient; stop(): Promise<void> }> {
  const impl: grpc.UntypedServiceImplementation = {
    getWorkspace: unary(() => {
      const ids = activeTraceIds();
      return { ...pb.Workspace.fromPartial({ id: ids.traceId ?? '', name: ids.spanId ?? '' }) };
    }) as grpc.UntypedHandleCall,
  };
  const { server, port } = await startGrpcServer({ host: '127.0.0.1', port: 0 }, [{ definition: pb.WorkspaceCoordService, implementation: impl }]);
  const client = createGrpcClient(pb.WorkspaceCoordClient, `127.0.0.1:${port}`);
  return {
    client,
    stop: async () => {
      client.close();
      await stopGrpcServer(server, 1000);
    },
  };
}

const ENDPOINT = 'OTEL_EXPORTER_OTLP_ENDPOINT';

describe('startTelemetry', () => {
  const saved = process.env[ENDPOINT];

  afterEach(async () => {
    await stopTelemetry();
    if (saved === undefined) delete process.env[ENDPOINT];
    else process.env[ENDPOINT] = saved;
  });

  it('without an OTLP endpoint records nothing, yet every span has ids that reach logs and propagate', async () => {
    delete process.env[ENDPOINT];
    startTelemetry('spec');

    const seen = inSpan('work', {}, (span) => ({ recording: span!.isRecording(), ids: activeTraceIds(), carrier: traceCarrier() }));
    expect(seen.recording).toBe(false);
    expect(seen.ids.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(seen.ids.spanId).toMatch(/^[0-9a-f]{16}$/);
    // Not sampled: a service downstream does not record it either.
    expect(seen.carrier.traceparent).toBe(`00-${seen.ids.traceId}-${seen.ids.spanId}-00`);

    // A caller's trace continues through the service unchanged.
    const child = withExtractedTraceContext(
      (k) => (k === 'traceparent' ? `00-${CALLER_TRACE}-${CALLER_SPAN}-01` : undefined),
      () => inSpan('child', {}, () => activeTraceIds()),
    );
    expect(child.traceId).toBe(CALLER_TRACE);
  });

  it('without an OTLP endpoint patches neither http nor grpc: the platform\'s HTTP hooks and gRPC wrappers carry the caller\'s trace', async () => {
    delete process.env[ENDPOINT];
    startTelemetry('spec');
    expect(platformCarriesTraces()).toBe(true);

    // HTTP in (a real Fastify server with the platform's request hooks): the request runs in the caller's trace, in a span of its own.
    const http = Fastify();
    installRequestHooks(http, new MetricsService('spec'));
    http.get('/ids', async () => activeTraceIds());
    try {
      const inRequest = (await http.inject({ url: '/ids', headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } })).json<ReturnType<typeof activeTraceIds>>();
      expect(inRequest.traceId).toBe(CALLER_TRACE);
      expect(inRequest.spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(inRequest.spanId).not.toBe(CALLER_SPAN);
      // Without a traceparent a request starts a trace of its own.
      const fresh = (await http.inject({ url: '/ids' })).json<ReturnType<typeof activeTraceIds>>();
      expect(fresh.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(fresh.traceId).not.toBe(CALLER_TRACE);
    } finally {
      await http.close();
    }

    // gRPC out and in: a call made in a trace reaches the handler in that trace.
    const echo = await traceEchoServer();
    try {
      const { caller, answer } = await inSpan('caller', {}, async () => ({
        caller: activeTraceIds(),
        answer: await callUnary(echo.client.getWorkspace.bind(echo.client), { id: 'x' }),
      }));
      expect(answer.id).toBe(caller.traceId);
      expect(answer.name).toMatch(/^[0-9a-f]{16}$/);
      expect(answer.name).not.toBe(caller.spanId);
    } finally {
      await echo.stop();
    }
  });

  it('with an OTLP endpoint records, samples and exports spans', async () => {
    const receiver = await startOtlpReceiver();
    try {
      process.env[ENDPOINT] = receiver.url;
      startTelemetry('spec');

      const seen = inSpan('work', {}, (span) => ({ recording: span!.isRecording(), ids: activeTraceIds(), carrier: traceCarrier() }));
      expect(seen.recording).toBe(true);
      expect(platformCarriesTraces()).toBe(false);
      expect(seen.carrier.traceparent).toBe(`00-${seen.ids.traceId}-${seen.ids.spanId}-01`);
      // Stopping flushes the batch to the receiver.
      await stopTelemetry();
      expect(receiver.spansOf(seen.ids.traceId!).map((x) => x.name)).toEqual(['work']);
    } finally {
      await receiver.close();
    }
  });
});
