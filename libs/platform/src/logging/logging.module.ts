import { DynamicModule, Module } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { Logger } from 'pino';
import { CORRELATION_HEADER, correlationIdFrom, REQUEST_ID_HEADER } from '../context';

export const ROOT_LOGGER = Symbol('ZIGGIE_ROOT_LOGGER');

/**
 * nestjs-pino on top of the root logger: request logs carry the same correlation id as the response.
 * pino-http logs each request at info; above info it would still build a child logger and hook
 * every response for a line nobody writes, so it is left out (`useExisting`) and log lines from
 * inside a request use the root logger, whose mixin adds the correlation and trace ids anyway.
 */
@Module({})
export class LoggingModule {
  static forRoot(logger: Logger): DynamicModule {
    const logsRequests = logger.isLevelEnabled('info');
    return {
      module: LoggingModule,
      global: true,
      imports: [
        LoggerModule.forRoot({
          pinoHttp: {
            logger,
            // The HTTP server's request id (the correlation id it echoes), when it gave one.
            genReqId: (req) => (typeof (req as { id?: unknown }).id === 'string' ? (req as { id: string }).id : correlationIdFrom(req.headers[CORRELATION_HEADER] ?? req.headers[REQUEST_ID_HEADER])),
            customProps: (req) => ({ correlationId: req.id }),
            autoLogging: { ignore: (req) => ['/healthz', '/readyz', '/metrics'].includes(req.url ?? '') },
            serializers: {
              req: (req: { id: unknown; method: unknown; url: unknown }) => ({ id: req.id, method: req.method, url: req.url }),
              res: (res: { statusCode: unknown }) => ({ statusCode: res.statusCode }),
            },
          },
          // No middleware at all then: nestjs-pino's would put the HTTP server's own (silent)
          // request logger in context, and log lines inside a request would go nowhere.
          ...(logsRequests ? {} : { useExisting: true as const, forRoutes: [] }),
        }),
      ],
      providers: [{ provide: ROOT_LOGGER, useValue: logger }],
      exports: [ROOT_LOGGER, LoggerModule],
    };
  }
}
