import pino, { Logger } from 'pino';
import { PlatformConfig } from '../config/config';
import { currentCorrelationId } from '../context';
import { activeTraceIds } from '../telemetry/trace';

/**
 * The one pino logger of a process: JSON lines with service, trace id and correlation id.
 * Secrets that could ride along in objects are redacted.
 */
export function createRootLogger(config: Pick<PlatformConfig, 'service' | 'logLevel'>): Logger {
  return pino({
    level: config.logLevel,
    base: { service: config.service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', '*.token', '*.secret', '*.password'],
      censor: '[redacted]',
    },
    mixin() {
      const { traceId, spanId } = activeTraceIds();
      const correlationId = currentCorrelationId();
      return {
        ...(traceId ? { traceId, spanId } : {}),
        ...(correlationId ? { correlationId } : {}),
      };
    },
  });
}
