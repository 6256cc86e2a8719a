// A throwaway redis-server for integration tests: loopback only, a free port, no persistence
// (--save '' --appendonly no), so nothing is written to disk.
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { canConnect, freePort, isExecutable } from './ports';
import { spawnTracked, stopProcess, waitFor, type TrackedProcess } from './processes';

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
  const override = process.env.REDIS_SERVER_BIN;
  if (override) {
    if (isExecutable(override)) return override;
    throw new Error(`REDIS_SERVER_BIN=${override} is not an executable file`);
  }
  const candidates = [
    ...(process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((dir) => join(dir, 'redis-server')),
    ...FALLBACK_PATHS,
  ];
  const found = candidates.find(isExecutable);
  if (!found) {
    throw new Error(
      'redis-server not found on PATH or in /usr/bin, /usr/sbin: install it with ' +
        '`apt-get install redis-server` (or run scripts/install-deps.sh), or set REDIS_SERVER_BIN',
    );
  }
  return found;
}

async function launch(bin: string, port: number, extraArgs: string[], timeoutMs: number): Promise<TrackedProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs];
  const proc = await spawnTracked(bin, args, { cwd: tmpdir() });
  try {
    // Both the log line and a TCP accept: the port alone could belong to another server.
    const ready = (): boolean => /Ready to accept connections/.test(proc.output());
    await waitFor(async () => proc.exited || (ready() && (await canConnect(port, '127.0.0.1', 500))), {
      timeoutMs,
      intervalMs: 50,
      what: `redis-server to accept connections on 127.0.0.1:${port}`,
    });
  } catch (err) {
    await stopProcess(proc, 'SIGKILL');
    throw new Error(`${(err as Error).message}\n$ ${proc.command}\n${proc.output()}`);
  }
  if (proc.exited) {
    const { code, signal } = await proc.exit;
    throw new Error(
      `redis-server exited during startup (code ${code}, signal ${signal})\n$ ${proc.command}\n${proc.output()}`,
    );
  }
  return proc;
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
