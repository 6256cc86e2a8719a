import { Controller, Get, INestApplication, Logger as NestLogger, Module, Req } from '@nestjs/common';
import { Logger as PinoNestLogger } from 'nestjs-pino';
import { __resetOutOfContextForTests } from 'nestjs-pino/PinoLogger';
import pino from 'pino';
import { Writable } from 'node:stream';
import { LoggingModule } from './logging.module';
import { createHttpApplication } from '../http/http-server';

@Controller('hello')
class HelloController {
  private readonly log = new NestLogger('hello');

  @Get()
  hello(@Req() req: { raw: object }): { perRequestLogger: boolean } {
    this.log.warn('inside a request');
    // pino-http gives each request (as Node received it) a child logger of its own.
    return { perRequestLogger: 'log' in req.raw };
  }
}

/** A Nest app with the platform's logging at `level`, writing JSON lines into `lines`. */
async function appLoggingAt(level: string, lines: Array<Record<string, unknown>>): Promise<{ app: INestApplication; url: string }> {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level }, sink);
  // nestjs-pino keeps the first root logger of the process for log lines outside a request's store.
  __resetOutOfContextForTests();
  @Module({ imports: [LoggingModule.forRoot(logger)], controllers: [HelloController] })
  class AppModule {}
  const app = await createHttpApplication(AppModule, { nest: { bufferLogs: true } });
  app.useLogger(app.get(PinoNestLogger));
  await app.listen(0, '127.0.0.1');
  return { app, url: `${await app.getUrl()}/hello` };
}

describe('LoggingModule', () => {
  it.each([
    ['info', 1],
    ['warn', 0],
  ])('at %s logs %i line(s) per request (no per-request logger without), and log lines inside a request are written either way', async (level, perRequest) => {
    const lines: Array<Record<string, unknown>> = [];
    const { app, url } = await appLoggingAt(level, lines);
    try {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(url, { headers: { 'x-request-id': `req-${i}` } });
        expect(await res.json()).toEqual({ perRequestLogger: perRequest === 1 });
      }
      await new Promise((r) => setImmediate(r));
      const completed = lines.filter((l) => l.msg === 'request completed');
      expect(completed).toHaveLength(3 * perRequest);
      if (perRequest) expect(completed.map((l) => (l.req as { id: string }).id)).toEqual(['req-0', 'req-1', 'req-2']);
      expect(lines.filter((l) => l.msg === 'inside a request')).toHaveLength(3);
    } finally {
      await app.close();
    }
  });
});
