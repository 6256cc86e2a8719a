import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { context, propagation, trace } from '@opentelemetry/api';
import { AlwaysOffSampler, BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { setPlatformCarriesTraces } from './trace';

let provider: NodeTracerProvider | undefined;
let unregister: (() => void) | undefined;

/**
 * Starts OpenTelemetry tracing. Call it from a service's tracing.ts, imported first in main.ts, so
 * http and grpc are patched before anything loads them. It runs before configuration is
 * validated, so it reads only the standard OTEL_* variables.
 * Without an OTLP endpoint nothing is recorded: every span is a non-recording one (the
 * AlwaysOff sampler), which still has its trace and span ids, so trace ids reach logs and
 * propagate (W3C trace context and baggage), but no span object, attribute, event or timestamp
 * is built for nothing to export, and http and grpc are not patched: the platform's HTTP
 * middleware and gRPC wrappers carry trace context in and out (platformCarriesTraces). With an endpoint the sampler is the SDK's default or
 * OTEL_TRACES_SAMPLER. The batch processor takes OTEL_BSP_* (e.g. OTEL_BSP_SCHEDULE_DELAY);
 * stopTelemetry flushes it.
 * Only traces are exported: metrics are Prometheus' (/metrics), logs are JSON lines. This is the
 * tracer provider and the two instrumentations rather than @opentelemetry/sdk-node, which also
 * loads the metrics and logs SDKs, every exporter and a YAML configuration reader (a fifth of a
 * service's start-up), and the OTLP exporter is loaded only when there is an endpoint.
 */
export function startTelemetry(serviceName: string): void {
  if (provider || process.env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return;
  const exporting = otlpProcessor();
  provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `ziggie-${serviceName}`, 'service.namespace': 'ziggie' }),
    ...(exporting ? { spanProcessors: [exporting] } : { sampler: new AlwaysOffSampler() }),
  });
  provider.register();
  if (!exporting) {
    // Nothing to export: the http and grpc instrumentations would wrap every request, response
    // and call (a tenth of the gateway's CPU per request) to build spans nobody records. The
    // platform's HTTP middleware and gRPC wrappers carry trace context instead.
    setPlatformCarriesTraces(true);
    return;
  }
  unregister = registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => ['/healthz', '/readyz', '/metrics'].includes(req.url ?? ''),
      }),
      new GrpcInstrumentation(),
    ],
  });
}

function otlpProcessor(): SpanProcessor | undefined {
  const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!endpoint) return undefined;
  // Loaded here: without an endpoint nothing of the exporter is needed.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
  return new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint.replace(/\/$/, '')}/v1/traces` }));
}

export async function stopTelemetry(): Promise<void> {
  const p = provider;
  provider = undefined;
  unregister?.();
  unregister = undefined;
  setPlatformCarriesTraces(false);
  await p?.shutdown();
  if (p) {
    // So that a later startTelemetry in the same process can register again.
    trace.disable();
    context.disable();
    propagation.disable();
  }
}
