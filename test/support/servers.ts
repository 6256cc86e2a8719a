// Shared by the throwaway servers of the test support (nats-server, redis-server): finding the
// binary, and starting it until it is really ready.
import { delimiter, join } from 'node:path';
import { canConnect, isExecutable } from './ports';
import { spawnTracked, stopProcess, waitFor, type TrackedProcess } from './processes';

/** Path of a server binary: `$<envVar>` when set, else PATH, else the fallback paths. */
export function findServerBinary(name: string, envVar: string, fallbacks: readonly string[]): string {
  const override = process.env[envVar];
  if (override) {
    if (isExecutable(override)) return override;
    throw new Error(`${envVar}=${override} is not an executable file`);
  }
  const candidates = [
    ...(process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((dir) => join(dir, name)),
    ...fallbacks,
  ];
  const found = candidates.find(isExecutable);
  if (!found) {
    throw new Error(
      `${name} not found on PATH or in ${fallbacks.map((p) => p.slice(0, p.lastIndexOf('/'))).join(', ')}: install it with ` +
        `\`apt-get install ${name}\` (or run scripts/install-deps.sh), or set ${envVar}`,
    );
  }
  return found;
}

/**
 * Spawns a server and waits until its log shows `ready` and the loopback port accepts (the
 * port alone could belong to another server). On failure it is killed and the error carries
 * its command line and output.
 */
export async function launchServer(
  name: string,
  bin: string,
  args: string[],
  opts: { cwd: string; port: number; ready: RegExp; timeoutMs: number },
): Promise<TrackedProcess> {
  const proc = await spawnTracked(bin, args, { cwd: opts.cwd });
  try {
    await waitFor(async () => proc.exited || (opts.ready.test(proc.output()) && (await canConnect(opts.port, '127.0.0.1', 500))), {
      timeoutMs: opts.timeoutMs,
      intervalMs: 50,
      what: `${name} to accept connections on 127.0.0.1:${opts.port}`,
    });
  } catch (err) {
    await stopProcess(proc, 'SIGKILL');
    throw new Error(`${(err as Error).message}\n$ ${proc.command}\n${proc.output()}`);
  }
  if (proc.exited) {
    const { code, signal } = await proc.exit;
    throw new Error(`${name} exited during startup (code ${code}, signal ${signal})\n$ ${proc.command}\n${proc.output()}`);
  }
  return proc;
}
