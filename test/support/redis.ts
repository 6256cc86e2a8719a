// A throwaway redis-server for integration tests: loopback only, a free port, no persistence
// (--save '' --appendonly no), so nothing is written to disk.
import { tmpdir } from 'node:os';
import { freePort } from './ports';
import { stopProcess, type TrackedProcess } from './processes';
import { findServerBinary, launchServer } from './servers';

export interface StartRedisOptions {
  /** Extra redis-server arguments. */
  args?: string[];
  /** How long to wait for the port to accept connections (default 10 s). */
  startTimeoutMs?: number;
}

export interface RedisServerHandle {
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** SIGTERM, wait for exit (SIGKILL after 5 s). Idempotent. */
  stop(): Promise<void>;
}

const FALLBACK_PATHS = ['/usr/bin/redis-server', '/usr/sbin/redis-server', '/usr/local/bin/redis-server'];

/** Path of the redis-server binary ($REDIS_SERVER_BIN, PATH, /usr/bin, /usr/sbin, /usr/local/bin). */
export function findRedisServer(): string {
  return findServerBinary('redis-server', 'REDIS_SERVER_BIN', FALLBACK_PATHS);
}

function launch(bin: string, port: number, extraArgs: string[], timeoutMs: number): Promise<TrackedProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs];
  return launchServer('redis-server', bin, args, { cwd: tmpdir(), port, ready: /Ready to accept connections/, timeoutMs });
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServerHandle> {
  const bin = findRedisServer();
  const extraArgs = opts.args ?? [];
  const timeoutMs = opts.startTimeoutMs ?? 10_000;

  let port = 0;
  let proc: TrackedProcess | undefined;
  // A port from freePort can be grabbed by someone else before redis binds it: retry a few times.
  for (let attempt = 1; proc === undefined; attempt++) {
    port = await freePort();
    try {
      proc = await launch(bin, port, extraArgs, timeoutMs);
    } catch (err) {
      if (attempt >= 3 || !/address already in use/i.test(String(err))) throw err;
    }
  }

  const server: TrackedProcess = proc;
  let stopped = false;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: server.pid,
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopProcess(server, 'SIGTERM', 5_000);
    },
  };
}
