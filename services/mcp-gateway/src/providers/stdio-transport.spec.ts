import childProcess, { type ChildProcess } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { BatchingStdioClientTransport } from './stdio-transport';

/**
 * Answers every request with how many lines it has read so far, its cwd and $ECHO_VAR; exits 3 on
 * method "exit"; reports the lines it read on stderr at EOF and exits 0. With SLOW_MS it waits
 * that long before reading and after every chunk (a slow reader, so the pipe fills).
 */
const ECHO = String.raw`
let lines = 0, buf = '';
const slow = Number(process.env.SLOW_MS || 0);
process.stderr.write('echo child up\n');
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
    const m = JSON.parse(buf.slice(0, i));
    buf = buf.slice(i + 1);
    lines++;
    if (m.method === 'exit') process.exit(3);
    if (m.id !== undefined) process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { lines, cwd: process.cwd(), env: process.env.ECHO_VAR ?? null } }) + '\n');
  }
  if (slow) { process.stdin.pause(); setTimeout(() => process.stdin.resume(), slow); }
});
if (slow) { process.stdin.pause(); setTimeout(() => process.stdin.resume(), slow * 50); }
process.stdin.on('end', () => { process.stderr.write('received ' + lines + ' then EOF\n'); process.exit(0); });
`;
/** Never reads its stdin; exits 3 after 500 ms. */
const DEAF = `setTimeout(() => process.exit(3), 500);`;
/** Ignores stdin's EOF and SIGTERM: only SIGKILL ends it. */
const STUBBORN = `process.on('SIGTERM', () => process.stderr.write('ignoring SIGTERM\\n')); process.stdin.resume(); process.stdin.on('end', () => undefined); setInterval(() => undefined, 1000); process.stderr.write('up\\n');`;

const request = (id: number, pad = 0): JSONRPCMessage => ({ jsonrpc: '2.0', id, method: 'ping', params: pad ? { pad: 'x'.repeat(pad) } : {} });
const nextIteration = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('BatchingStdioClientTransport (real child processes)', () => {
  let spawned: ChildProcess[];
  let transports: BatchingStdioClientTransport[];

  beforeEach(() => {
    spawned = [];
    transports = [];
    const realSpawn = childProcess.spawn;
    // Calls through: only to get hold of the child, whose stdin writes the tests count.
    jest.spyOn(childProcess, 'spawn').mockImplementation(((...args: Parameters<typeof realSpawn>) => {
      const child = realSpawn(...args);
      spawned.push(child);
      return child;
    }) as typeof realSpawn);
  });

  afterEach(async () => {
    jest.restoreAllMocks();
    await Promise.all(transports.map((t) => t.close()));
    for (const c of spawned) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  /** A started transport on `script`, its received messages, close and error counts, and its child. */
  async function started(script: string, opts: { env?: Record<string, string>; cwd?: string; closeGraceMs?: number } = {}) {
    const t = new BatchingStdioClientTransport({ command: process.execPath, args: ['-e', script], env: opts.env, cwd: opts.cwd, stderr: 'pipe' }, { closeGraceMs: opts.closeGraceMs });
    transports.push(t);
    const seen = { messages: [] as JSONRPCMessage[], closes: 0, errors: [] as Error[], stderr: '' };
    t.onmessage = (m) => seen.messages.push(m);
    t.onclose = () => seen.closes++;
    t.onerror = (e) => seen.errors.push(e);
    t.stderr!.on('data', (chunk: Buffer) => (seen.stderr += chunk.toString('utf8')));
    await t.start();
    const child = spawned.at(-1)!;
    const write = jest.spyOn(child.stdin!, 'write');
    return { t, seen, child, write };
  }

  const ids = (messages: JSONRPCMessage[]): unknown[] => messages.map((m) => ('id' in m ? m.id : undefined));
  const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

  it('writes the messages of one event-loop iteration in one write, in order, and delivers the answers', async () => {
    const { t, seen, child, write } = await started(ECHO);
    expect(t.pid).toBe(child.pid);
    const sends = range(1, 200).map((id) => t.send(request(id)));
    expect(write).not.toHaveBeenCalled(); // queued until the end of the iteration
    await Promise.all(sends);
    expect(write).toHaveBeenCalledTimes(1);
    expect(String(write.mock.calls[0]![0]).split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: number }).id)).toEqual(range(1, 200));
    await until('200 answers', () => seen.messages.length === 200);
    expect(ids(seen.messages)).toEqual(range(1, 200));

    // The next iteration's messages are the next write.
    await Promise.all([t.send(request(201)), t.send(request(202))]);
    expect(write).toHaveBeenCalledTimes(2);
    await until('202 answers', () => seen.messages.length === 202);
    expect(seen.messages.at(-1)).toMatchObject({ id: 202, result: { lines: 202 } });
    expect(seen.errors).toEqual([]);
  });

  it('passes env and cwd, and its stderr is readable before start', async () => {
    const cwd = realpathSync(mkdtempSync(join(tmpdir(), 'stdio-transport-')));
    try {
      const { t, seen } = await started(ECHO, { env: { ECHO_VAR: 'from-config' }, cwd });
      await t.send(request(1));
      await until('an answer', () => seen.messages.length === 1);
      expect(seen.messages[0]).toMatchObject({ result: { cwd, env: 'from-config' } });
      await until('stderr', () => seen.stderr.includes('echo child up'));
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('rejects start() on a spawn error and reports it', async () => {
    const t = new BatchingStdioClientTransport({ command: '/nonexistent/mcp-server', stderr: 'pipe' });
    transports.push(t);
    const errors: Error[] = [];
    t.onerror = (e) => errors.push(e);
    await expect(t.start()).rejects.toThrow(/ENOENT/);
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/ENOENT/)]);
    await expect(t.start()).rejects.toThrow(/already started/);
  });

  it('loses nothing when the child reads slowly: the pipe fills, sends wait for drain, and everything arrives in order', async () => {
    const { t, seen, write } = await started(ECHO, { env: { SLOW_MS: '2' } });
    const sends: Promise<void>[] = [];
    for (let tick = 0; tick < 30; tick++) {
      for (const id of range(tick * 100 + 1, 100)) sends.push(t.send(request(id, 1500)));
      await nextIteration();
    }
    await Promise.all(sends);
    await until('3000 answers', () => seen.messages.length === 3000, 30_000);
    expect(ids(seen.messages)).toEqual(range(1, 3000));
    expect(seen.messages.at(-1)).toMatchObject({ result: { lines: 3000 } });
    // The pipe was full at times (write returned false), and what queued meanwhile went out together.
    expect(write.mock.results.some((r) => r.value === false)).toBe(true);
    expect(write.mock.calls.length).toBeLessThanOrEqual(30);
  });

  it('rejects the sends still waiting on the pipe and later ones when the child exits, and closes once', async () => {
    const { t, seen } = await started(DEAF);
    // 2 MB in one write: far beyond the pipe, so the senders wait for 'drain', which never comes.
    const first = range(1, 200).map((id) => t.send(request(id, 10_000)));
    await nextIteration();
    // Queued behind the full pipe.
    const second = range(201, 10).map((id) => t.send(request(id)));
    const settled = await Promise.allSettled([...first, ...second]);
    expect(settled.every((s) => s.status === 'rejected')).toBe(true);
    await until('onclose', () => seen.closes > 0);
    await expect(t.send(request(999))).rejects.toThrow('stdio server has exited');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seen.closes).toBe(1);
  });

  it('closes once when the child exits on its own, and rejects sends afterwards', async () => {
    const { t, seen, child } = await started(ECHO);
    await t.send({ jsonrpc: '2.0', method: 'exit' });
    await until('onclose', () => seen.closes > 0);
    expect(child.exitCode).toBe(3);
    await expect(t.send(request(1))).rejects.toThrow('stdio server has exited');
    await t.close();
    expect(seen.closes).toBe(1);
  });

  it('close() writes what was sent, ends stdin, and the child that exits on EOF is not signalled', async () => {
    const { t, seen, child } = await started(ECHO);
    const sends = [t.send({ jsonrpc: '2.0', method: 'notifications/a' }), t.send({ jsonrpc: '2.0', method: 'notifications/b' }), t.send(request(1))];
    await t.close();
    await Promise.all(sends);
    expect(child.exitCode).toBe(0);
    expect(child.signalCode).toBeNull();
    await until('stderr', () => seen.stderr.includes('received 3 then EOF'));
    expect(seen.closes).toBe(1);
    await expect(t.send(request(2))).rejects.toThrow('stdio transport is closed');
  });

  it('close() kills a child that ignores EOF and SIGTERM', async () => {
    const { t, seen, child } = await started(STUBBORN, { closeGraceMs: 200 });
    await until('the child is up', () => seen.stderr.includes('up'));
    await t.close();
    await until('onclose', () => seen.closes > 0);
    expect(seen.stderr).toContain('ignoring SIGTERM');
    expect(child.signalCode).toBe('SIGKILL');
    expect(seen.closes).toBe(1);
  });

  it('carries an MCP session with the real server-everything', async () => {
    const everything = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist/index.js');
    const t = new BatchingStdioClientTransport({ command: process.execPath, args: [everything, 'stdio'], stderr: 'pipe' }, { closeGraceMs: 1_000 });
    transports.push(t);
    const client = new Client({ name: 'stdio-transport-spec', version: '1.0.0' });
    await client.connect(t);
    const stdin = spawned.at(-1)!.stdin!;
    const write = jest.spyOn(stdin, 'write');
    const { tools } = await client.listTools();
    expect(tools.map((x) => x.name)).toContain('echo');
    const answers = await Promise.all(range(0, 32).map((i) => client.callTool({ name: 'echo', arguments: { message: `m${i}` } })));
    answers.forEach((a, i) => expect(JSON.stringify(a.content)).toContain(`m${i}`));
    // One write for tools/list, and far fewer than 32 for the concurrent calls.
    expect(write.mock.calls.length).toBeLessThan(8);
    await client.close();
  }, 30_000);
});
