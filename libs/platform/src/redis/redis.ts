import type { Redis } from 'ioredis';

export interface FailFastRedisOptions {
  connectTimeoutMs: number;
  commandTimeoutMs: number;
}

/**
 * A Redis client for counters that must never hold a request up: while disconnected a command
 * rejects at once (no offline queue, one retry at most) so the caller can fall back, a hung
 * server costs one bounded wait, and closing it while the server is gone does not keep the
 * process alive for a dead socket. Attach an 'error' listener: ioredis reports connection
 * errors as 'error' events.
 */
export function createFailFastRedis(url: string, opts: FailFastRedisOptions): Redis {
  // Loaded on first use: without REDIS_URL no service needs ioredis.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Redis: RedisClient } = require('ioredis') as typeof import('ioredis');
  return new RedisClient(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: opts.connectTimeoutMs,
    commandTimeout: opts.commandTimeoutMs,
    disconnectTimeout: 200,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
}
