// Child processes started by test helpers: every pid is recorded so afterAll (and, as a last
// resort, process exit) can kill whatever a failing test left behind.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface TrackedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly command: string;
  /** Last ~64 KiB of combined stdout/stderr (only when stdio is piped). */
  output(): string;
  /** True once the process has exited (or failed to spawn). */
  readonly exited: boolean;
  /** Resolves with the exit code / signal once the process is gone. */
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const tracked = new Map<number, TrackedProcess>();
const OUTPUT_LIMIT = 64 * 1024;

function killAllSync(): void {
  for (const pid of tracked.keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

let exitHookInstalled = false;
function syncExitHook(): void {
  // Installed only while something is tracked, so repeated module loads (one per jest test file)
  // never pile up listeners.
  if (tracked.size > 0 && !exitHookInstalled) {
    process.on('exit', killAllSync);
    exitHookInstalled = true;
  } else if (tracked.size === 0 && exitHookInstalled) {
    process.removeListener('exit', killAllSync);
    exitHookInstalled = false;
  }
}

/** Spawns a process, records its pid and captures its output. Rejects if it cannot be spawned. */
export async function spawnTracked(
  cmd: string,
  args: readonly string[] = [],
  opts: SpawnOptions = {},
): Promise<TrackedProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let buffer = '';
  const append = (chunk: Buffer | string): void => {
    buffer += chunk.toString();
    if (buffer.length > OUTPUT_LIMIT) buffer = buffer.slice(buffer.length - OUTPUT_LIMIT);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);

  let exited = false;
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      if (child.pid !== undefined) tracked.delete(child.pid);
      syncExitHook();
      resolve({ code, signal });
    });
  });

  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (err) => {
      exited = true;
      reject(new Error(`failed to spawn ${cmd}: ${err.message}`, { cause: err }));
    });
  });
  const pid = child.pid!;
  const proc: TrackedProcess = {
    child,
    pid,
    command: [cmd, ...args].join(' '),
    output: () => buffer,
    get exited() {
      return exited;
    },
    exit,
  };
  tracked.set(pid, proc);
  syncExitHook();
  return proc;
}

/** Sends `signal`, waits for exit, escalates to SIGKILL after `killAfterMs`. */
export async function stopProcess(
  proc: TrackedProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  killAfterMs = 5_000,
): Promise<void> {
  if (proc.exited) return;
  try {
    proc.child.kill(signal);
  } catch {
    // already gone
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    proc.exit.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), killAfterMs);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut && !proc.exited) {
    proc.child.kill('SIGKILL');
    await proc.exit;
  }
}

/** Pids of tracked processes that are still running. */
export function trackedPids(): number[] {
  return [...tracked.keys()];
}

/** Stops every tracked process (SIGTERM, then SIGKILL after `killAfterMs`). Use in afterAll. */
export async function killAllTracked(signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 5_000): Promise<void> {
  await Promise.all([...tracked.values()].map((p) => stopProcess(p, signal, killAfterMs)));
}

/** True while a process with this pid exists (signal 0 probe). */
export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: exists but owned by someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** What is being waited for, used in the timeout error ("NATS to accept connections"). */
  what?: string;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `predicate` until it returns true. A throwing predicate counts as "not yet"; the last
 * error is included in the timeout message.
 */
export async function waitFor(
  predicate: () => Promise<boolean> | boolean,
  { timeoutMs = 10_000, intervalMs = 100, what = 'condition' }: WaitForOptions = {},
): Promise<void> {
  const started = Date.now();
  let lastError: unknown;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      if (await predicate()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const elapsed = Date.now() - started;
    if (elapsed >= timeoutMs) {
      const detail = lastError === undefined ? '' : `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
      throw new Error(`Timed out after ${elapsed} ms (${attempts} attempts) waiting for ${what}${detail}`, {
        cause: lastError,
      });
    }
    await sleep(Math.min(intervalMs, Math.max(0, timeoutMs - elapsed)));
  }
}
