import { NodeSDK } from '@opentelemetry/sdk-node';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { BatchSpanProcessor, NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';

let sdk: NodeSDK | undefined;

/**
 * Starts OpenTelemetry. Call it from a service's tracing.ts, imported first in main.ts, so
 * http and grpc are patched before anything loads them. It runs before configuration is
 * validated, so it reads only the standard OTEL_* variables (the SDK reads them too).
 * Without an OTLP endpoint spans are still created, so trace ids reach logs and propagate.
 * The batch processor takes OTEL_BSP_* (e.g. OTEL_BSP_SCHEDULE_DELAY); stopTelemetry flushes it.
 * Only traces are exported: metrics are Prometheus' (/metrics), logs are JSON lines. The SDK would
 * otherwise push OTLP metrics and logs by default; OTEL_METRICS_EXPORTER / OTEL_LOGS_EXPORTER
 * still turn them on explicitly.
 */
export function startTelemetry(serviceName: string): void {
  if (sdk) return;
  const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  sdk = new NodeSDK({
    resource: resourceFromAttributes({ 'service.name': `ziggie-${serviceName}`, 'service.namespace': 'ziggie' }),
    // The SDK registers no tracer provider for an empty list, and then no span gets an id of its
    // own: a processor that drops everything keeps spans real without an endpoint.
    spanProcessors: [
      endpoint
        ? new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint.replace(/\/$/, '')}/v1/traces` }))
        : new NoopSpanProcessor(),
    ],
    ...(process.env.OTEL_METRICS_EXPORTER?.trim() ? {} : { metricReaders: [] }),
    ...(process.env.OTEL_LOGS_EXPORTER?.trim() ? {} : { logRecordProcessors: [] }),
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => ['/healthz', '/readyz', '/metrics'].includes(req.url ?? ''),
      }),
      new GrpcInstrumentation(),
    ],
  });
  sdk.start();
}

export async function stopTelemetry(): Promise<void> {
  const s = sdk;
  sdk = undefined;
  await s?.shutdown();
}
