import { startOtlpReceiver } from '../../../../test/support/otlp-receiver';
import { activeTraceIds, inSpan, traceCarrier, withExtractedTraceContext } from './trace';
import { startTelemetry, stopTelemetry } from './telemetry';

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
    const caller = '0af7651916cd43dd8448eb211c80319c';
    const child = withExtractedTraceContext(
      (k) => (k === 'traceparent' ? `00-${caller}-b7ad6b7169203331-01` : undefined),
      () => inSpan('child', {}, () => activeTraceIds()),
    );
    expect(child.traceId).toBe(caller);
  });

  it('with an OTLP endpoint records, samples and exports spans', async () => {
    const receiver = await startOtlpReceiver();
    try {
      process.env[ENDPOINT] = receiver.url;
      startTelemetry('spec');

      const seen = inSpan('work', {}, (span) => ({ recording: span!.isRecording(), ids: activeTraceIds(), carrier: traceCarrier() }));
      expect(seen.recording).toBe(true);
      expect(seen.carrier.traceparent).toBe(`00-${seen.ids.traceId}-${seen.ids.spanId}-01`);
      // Stopping flushes the batch to the receiver.
      await stopTelemetry();
      expect(receiver.spansOf(seen.ids.traceId!).map((x) => x.name)).toEqual(['work']);
    } finally {
      await receiver.close();
    }
  });
});
