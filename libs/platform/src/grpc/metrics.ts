import * as grpc from '@grpc/grpc-js';
import type { MetricsService } from '../health/metrics';

/**
 * gRPC RED metrics, both ends. The registry's `service` label names this process, so the client
 * counter's `target` gives the caller → callee edges of the service dependency graph. Labels stay
 * bounded: the peer service name, the method name from the proto, the status code name.
 */
export const GRPC_SERVER_REQUESTS = 'ziggie_grpc_server_requests_total';
export const GRPC_SERVER_DURATION = 'ziggie_grpc_server_request_duration_seconds';
export const GRPC_CLIENT_REQUESTS = 'ziggie_grpc_client_requests_total';
export const GRPC_CLIENT_DURATION = 'ziggie_grpc_client_request_duration_seconds';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

type Registry = Pick<MetricsService, 'counter' | 'histogram'>;

/** `/ziggie.v1.Orchestrator/SubmitTask` → `SubmitTask`. */
export function grpcMethodName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1) || 'unknown';
}

function codeName(code: number): string {
  return grpc.status[code] ?? 'UNKNOWN';
}

/** Counts and times every call this client makes to `target`, ending in whatever status. */
export function grpcClientMetrics(metrics: Registry, target: string): grpc.Interceptor {
  const requests = metrics.counter(GRPC_CLIENT_REQUESTS, 'Outgoing gRPC calls by peer service, method and status code', ['target', 'method', 'code']);
  const duration = metrics.histogram(GRPC_CLIENT_DURATION, 'Outgoing gRPC call duration by peer service and method', ['target', 'method'], BUCKETS);
  return (options, nextCall) => {
    const method = grpcMethodName(options.method_definition.path);
    const end = duration.startTimer({ target, method });
    const requester = new grpc.RequesterBuilder()
      .withStart((metadata, _listener, next) => {
        next(
          metadata,
          new grpc.ListenerBuilder()
            .withOnReceiveStatus((status, nextStatus) => {
              end();
              requests.inc({ target, method, code: codeName(status.code) });
              nextStatus(status);
            })
            .build(),
        );
      })
      .build();
    return new grpc.InterceptingCall(nextCall(options), requester);
  };
}

/**
 * Counts and times every call the server answers. A call the client cancels ends without a
 * status being sent, so it is recorded as CANCELLED when the cancellation arrives.
 */
export function grpcServerMetrics(metrics: Registry, definitions: grpc.ServiceDefinition[]): grpc.ServerInterceptor {
  const requests = metrics.counter(GRPC_SERVER_REQUESTS, 'gRPC calls served by method and status code', ['method', 'code']);
  const duration = metrics.histogram(GRPC_SERVER_DURATION, 'gRPC call duration by method', ['method'], BUCKETS);
  // Known methods start at zero, so the first call of each is counted by rate() and panels list them.
  for (const d of definitions) for (const m of Object.values(d)) requests.inc({ method: grpcMethodName(m.path), code: 'OK' }, 0);
  return (descriptor, call) => {
    const method = grpcMethodName(descriptor.path);
    const end = duration.startTimer({ method });
    let recorded = false;
    const record = (code: number): void => {
      if (recorded) return;
      recorded = true;
      end();
      requests.inc({ method, code: codeName(code) });
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => next({ onCancel: () => record(grpc.status.CANCELLED) }),
      sendStatus: (status, next) => {
        record(status.code);
        next(status);
      },
    });
  };
}
