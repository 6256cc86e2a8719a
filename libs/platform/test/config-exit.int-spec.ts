import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../../..');
const ENTRY = join(ROOT, 'services/workspace-coord/dist/main.js');
/** What the built entry loads at run time (through the workspace symlinks). */
const BUILT = [ENTRY, join(ROOT, 'libs/platform/dist/index.js'), join(ROOT, 'libs/contracts/dist/index.js')];
const EXIT_WAIT_MS = 15_000;

/** Every variable here is wrong; ZIGGIE_JWT_SECRET is wrong by being absent. */
const BAD_ENV = {
  HTTP_PORT: 'abc',
  LOG_LEVEL: 'loud',
  DATABASE_URL: 'mysql://x',
  ZIGGIE_SEED: 'maybe',
};
const BAD_NAMES = ['HTTP_PORT', 'LOG_LEVEL', 'DATABASE_URL', 'ZIGGIE_JWT_SECRET', 'ZIGGIE_SEED'];

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

describe('a service started with a bad environment (built workspace-coord entry)', () => {
  let child: ChildProcess | undefined;
  let exit: Exit;

  beforeAll(async () => {
    if (BUILT.some((f) => !existsSync(f))) {
      execFileSync('npx', ['tsc', '-b', 'services/workspace-coord'], { cwd: ROOT, stdio: 'inherit', timeout: 170_000 });
    }
    // Only PATH from the developer's environment: nothing else may leak in (a real ZIGGIE_JWT_SECRET, say).
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', ...BAD_ENV };
    const started = Date.now();
    const proc = spawn(process.execPath, [ENTRY], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    exit = await new Promise<Exit>((resolveExit, reject) => {
      const timer = setTimeout(() => reject(new Error(`service did not exit within ${EXIT_WAIT_MS} ms; stderr so far:\n${stderr}`)), EXIT_WAIT_MS);
      proc.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      // 'close' (not 'exit'): every byte of stdout/stderr has been read by then.
      proc.once('close', (code, signal) => {
        clearTimeout(timer);
        resolveExit({ code, signal, stdout, stderr, ms: Date.now() - started });
      });
    });
  }, 200_000);

  afterAll(() => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  it('exits with code 1 on its own, within the bounded wait', () => {
    expect(exit.signal).toBeNull();
    expect(exit.code).toBe(1);
    expect(exit.ms).toBeLessThan(EXIT_WAIT_MS);
  });

  it('lists every bad variable in one configuration message on stderr', () => {
    const headers = exit.stderr.match(/invalid configuration:/g) ?? [];
    expect(headers).toHaveLength(1);
    const message = exit.stderr.slice(exit.stderr.indexOf('ziggie-workspace-coord: invalid configuration:'));
    expect(message.startsWith('ziggie-workspace-coord: invalid configuration:')).toBe(true);
    const listed = message
      .split('\n')
      .filter((line) => line.startsWith('  - '))
      .map((line) => line.slice(4).split(':')[0]);
    expect([...listed].sort()).toEqual([...BAD_NAMES].sort());
  });

  it('fails before starting anything and without a stack trace', () => {
    expect(exit.stderr).not.toMatch(/\n\s+at /);
    expect(exit.stderr).not.toContain('failed to start');
    expect(exit.stdout).not.toContain('ready');
  });
});

describe('a stateful service started without DATABASE_URL (built workspace-coord entry)', () => {
  it('exits 1 at start-up with one configuration error naming DATABASE_URL as required', async () => {
    if (BUILT.some((f) => !existsSync(f))) {
      execFileSync('npx', ['tsc', '-b', 'services/workspace-coord'], { cwd: ROOT, stdio: 'inherit', timeout: 170_000 });
    }
    // Everything else valid: the missing database is the only problem.
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', ZIGGIE_JWT_SECRET: 'config-exit-secret-0123456789', HTTP_PORT: '0', GRPC_PORT: '0' };
    const proc = spawn(process.execPath, [ENTRY], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`service did not exit within ${EXIT_WAIT_MS} ms; stderr so far:\n${stderr}`));
      }, EXIT_WAIT_MS);
      proc.once('close', (code, signal) => {
        clearTimeout(timer);
        resolveExit({ code, signal });
      });
    });
    expect(result).toEqual({ code: 1, signal: null });
    const message = stderr.slice(stderr.indexOf('ziggie-workspace-coord: invalid configuration:'));
    expect(message.startsWith('ziggie-workspace-coord: invalid configuration:')).toBe(true);
    const listed = message.split('\n').filter((line) => line.startsWith('  - '));
    expect(listed).toEqual([expect.stringMatching(/^ {2}- DATABASE_URL: required: workspace-coord keeps its state in PostgreSQL/)]);
    expect(stdout).not.toContain('ready');
  }, 200_000);
});
