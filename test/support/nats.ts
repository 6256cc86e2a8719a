// A throwaway nats-server with JetStream for integration tests (port from freePort, store in a
// temp dir). `restart()` keeps port and store dir, for durability tests.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports';
import { stopProcess, type TrackedProcess } from './processes';
import { findServerBinary, launchServer } from './servers';

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
  return findServerBinary('nats-server', 'NATS_SERVER_BIN', FALLBACK_PATHS);
}

function launch(bin: string, port: number, storeDir: string, extraArgs: string[], timeoutMs: number): Promise<TrackedProcess> {
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir, ...extraArgs];
  return launchServer('nats-server', bin, args, { cwd: storeDir, port, ready: /Server is ready/, timeoutMs });
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
