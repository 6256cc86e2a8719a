// A throwaway nats-server with JetStream for integration tests (port from freePort, store in a
// temp dir). `restart()` keeps port and store dir, for durability tests.
import { isExecutable } from './ports';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { canConnect, freePort } from './ports';
import { spawnTracked, stopProcess, waitFor, type TrackedProcess } from './processes';

export interface StartNatsOptions {
  /** Fixed port; default: a free one. */
  port?: number;
  /** Existing JetStream store dir (kept on stop); default: a fresh temp dir (removed on stop). */
  storeDir?: string;
  /** Extra nats-server arguments. */
  args?: string[];
  /** How long to wait for the port to accept connections (default 10 s). */
  startTimeoutMs?: number;
}

export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  /** Pid of the current nats-server process (changes on restart). */
  readonly pid: number;
  readonly storeDir: string;
  /** SIGTERM, wait for exit (SIGKILL after 5 s), remove the temp store dir. Idempotent. */
  stop(): Promise<void>;
  /** Sends a signal to the current process without waiting (crash tests). */
  kill(signal?: NodeJS.Signals): void;
  /** Stops (if still running) and starts again on the same port and store dir. */
  restart(): Promise<void>;
}

const FALLBACK_PATHS = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

/** Path of the nats-server binary ($NATS_SERVER_BIN, PATH, /usr/sbin, /usr/bin). */
export function findNatsServer(): string {
  const override = process.env.NATS_SERVER_BIN;
  if (override) {
    if (isExecutable(override)) return override;
    throw new Error(`NATS_SERVER_BIN=${override} is not an executable file`);
  }
  const candidates = [
    ...(process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((dir) => join(dir, 'nats-server')),
    ...FALLBACK_PATHS,
  ];
  const found = candidates.find(isExecutable);
  if (!found) {
    throw new Error(
      'nats-server not found on PATH or in /usr/sbin, /usr/bin: install it with ' +
        '`apt-get install nats-server` (or run scripts/install-deps.sh), or set NATS_SERVER_BIN',
    );
  }
  return found;
}

async function launch(
  bin: string,
  port: number,
  storeDir: string,
  extraArgs: string[],
  timeoutMs: number,
): Promise<TrackedProcess> {
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir, ...extraArgs];
  const proc = await spawnTracked(bin, args, { cwd: storeDir });
  try {
    // Both the log line and a TCP accept: the port alone could belong to another server.
    const ready = (): boolean => /Server is ready/.test(proc.output());
    await waitFor(async () => proc.exited || (ready() && (await canConnect(port, '127.0.0.1', 500))), {
      timeoutMs,
      intervalMs: 50,
      what: `nats-server to accept connections on 127.0.0.1:${port}`,
    });
  } catch (err) {
    await stopProcess(proc, 'SIGKILL');
    throw new Error(`${(err as Error).message}\n$ ${proc.command}\n${proc.output()}`);
  }
  if (proc.exited) {
    const { code, signal } = await proc.exit;
    throw new Error(
      `nats-server exited during startup (code ${code}, signal ${signal})\n$ ${proc.command}\n${proc.output()}`,
    );
  }
  return proc;
}

export async function startNats(opts: StartNatsOptions = {}): Promise<NatsServerHandle> {
  const bin = findNatsServer();
  const ownsStore = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? (await mkdtemp(join(tmpdir(), 'ziggie-nats-')));
  const extraArgs = opts.args ?? [];
  const timeoutMs = opts.startTimeoutMs ?? 10_000;

  let port = opts.port ?? 0;
  let proc: TrackedProcess | undefined;
  // A port from freePort can be grabbed by someone else before nats binds it: retry a few times.
  for (let attempt = 1; proc === undefined; attempt++) {
    if (opts.port === undefined) port = await freePort();
    try {
      proc = await launch(bin, port, storeDir, extraArgs, timeoutMs);
    } catch (err) {
      const retryable = opts.port === undefined && attempt < 3 && /address already in use/i.test(String(err));
      if (!retryable) {
        if (ownsStore) await rm(storeDir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  let current: TrackedProcess = proc;
  let stopped = false;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return current.pid;
    },
    storeDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopProcess(current, 'SIGTERM', 5_000);
      if (ownsStore) await rm(storeDir, { recursive: true, force: true });
    },
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (!current.exited) current.child.kill(signal);
    },
    async restart() {
      if (stopped) throw new Error('nats-server handle was stopped; cannot restart');
      await stopProcess(current, 'SIGTERM', 5_000);
      current = await launch(bin, port, storeDir, extraArgs, timeoutMs);
    },
  };
}
