// Ours, not the SDK's StdioClientTransport: that one writes each message to the child's stdin with its own write and exposes no way to batch them.
import { spawn, type ChildProcess } from 'node:child_process';
import { PassThrough, type Stream } from 'node:stream';
import { getDefaultEnvironment, type StdioServerParameters } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ReadBuffer, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/** How long close() waits for the child after ending its stdin, and again after SIGTERM (the SDK's 2 s). */
const CLOSE_GRACE_MS = 2_000;

interface Sender {
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * MCP over a child's stdin/stdout, client side: the SDK's StdioClientTransport (same spawn
 * options, stderr, pid, start and close), except that send() queues the message and the messages
 * of one event-loop iteration go to the child's stdin in one write. While the pipe is full the
 * queue keeps growing and is written in one piece on 'drain'; nothing is dropped or reordered.
 * send() resolves once its message is handed to the stream without backpressure (or on the
 * 'drain' after it), and rejects if the stream fails or the child exits before that.
 */
export class BatchingStdioClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private child?: ChildProcess;
  private started = false;
  private closed = false;
  private readonly readBuffer: ReadBuffer;
  private readonly stderrStream: PassThrough | null;
  /** Serialized messages not yet written, and their senders. */
  private queue: string[] = [];
  private queued: Sender[] = [];
  /** Senders whose batch was written while the pipe was full: they resolve on 'drain'. */
  private awaitingDrain: Sender[] = [];
  private flushScheduled = false;
  private readonly closeGraceMs: number;

  constructor(
    private readonly server: StdioServerParameters,
    opts: { closeGraceMs?: number } = {},
  ) {
    this.readBuffer = new ReadBuffer({ maxBufferSize: server.maxBufferSize });
    this.stderrStream = server.stderr === 'pipe' || server.stderr === 'overlapped' ? new PassThrough() : null;
    this.closeGraceMs = opts.closeGraceMs ?? CLOSE_GRACE_MS;
  }

  /** With stderr 'pipe', a stream available before start() so no early output is lost. */
  get stderr(): Stream | null {
    return this.stderrStream ?? this.child?.stderr ?? null;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  start(): Promise<void> {
    if (this.started) return Promise.reject(new Error('stdio transport already started'));
    this.started = true;
    return new Promise((resolve, reject) => {
      const child = spawn(this.server.command, this.server.args ?? [], {
        // The server needs a few variables (PATH, HOME, ...) beside its own.
        env: { ...getDefaultEnvironment(), ...this.server.env },
        stdio: ['pipe', 'pipe', this.server.stderr ?? 'inherit'],
        shell: false,
        windowsHide: process.platform === 'win32',
        cwd: this.server.cwd,
      });
      this.child = child;
      child.on('error', (err) => {
        reject(err);
        this.onerror?.(err);
      });
      child.on('spawn', () => resolve());
      child.on('close', (code, signal) => {
        this.child = undefined;
        this.failPending(new Error(`stdio server exited (${signal ? `signal ${signal}` : `code ${code}`})`));
        this.onclose?.();
      });
      child.stdin?.on('error', (err) => {
        this.onerror?.(err);
        this.failPending(err);
      });
      child.stdin?.on('drain', () => this.onDrain());
      child.stdout?.on('data', (chunk: Buffer) => {
        try {
          this.readBuffer.append(chunk);
        } catch (err) {
          this.onerror?.(err as Error);
          void this.close().catch(() => undefined);
          return;
        }
        this.readMessages();
      });
      child.stdout?.on('error', (err) => this.onerror?.(err));
      if (this.stderrStream && child.stderr) child.stderr.pipe(this.stderrStream);
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (this.closed) return Promise.reject(new Error('stdio transport is closed'));
    if (!this.child?.stdin) return Promise.reject(new Error(this.started ? 'stdio server has exited' : 'stdio transport not started'));
    let line: string;
    try {
      line = serializeMessage(message);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return new Promise((resolve, reject) => {
      this.queue.push(line);
      this.queued.push({ resolve, reject });
      this.scheduleFlush();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const child = this.child;
    if (!child) {
      this.readBuffer.clear();
      return;
    }
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const stdin = child.stdin;
    if (stdin?.writable) {
      // What was sent before close() still goes out, then EOF; its senders resolve once it is flushed.
      if (this.queue.length) this.write(stdin, true);
      stdin.end((err?: Error | null) => (err ? this.failPending(err) : this.settleWritten()));
    }
    const waitExit = (): Promise<void> => Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, this.closeGraceMs).unref())]);
    await waitExit();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await waitExit();
    }
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    this.readBuffer.clear();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.awaitingDrain.length) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (!this.queue.length || this.awaitingDrain.length) return;
    const stdin = this.child?.stdin;
    if (!stdin?.writable) {
      this.failPending(new Error('stdio server stdin is not writable'));
      return;
    }
    this.write(stdin, false);
  }

  /** Writes the queue as one chunk; its senders resolve now, or on 'drain' when the pipe is full (on 'finish' when closing). */
  private write(stdin: NonNullable<ChildProcess['stdin']>, closing: boolean): void {
    const batch = this.queue.length === 1 ? this.queue[0]! : this.queue.join('');
    const senders = this.queued;
    this.queue = [];
    this.queued = [];
    // A failed write emits 'error' on stdin, which rejects the senders still waiting.
    const ok = stdin.write(batch);
    if (ok && !closing) senders.forEach((s) => s.resolve());
    else this.awaitingDrain.push(...senders);
  }

  private onDrain(): void {
    this.settleWritten();
    // What queued up while the pipe was full goes out now, in one write.
    this.flush();
  }

  private settleWritten(): void {
    const senders = this.awaitingDrain;
    this.awaitingDrain = [];
    senders.forEach((s) => s.resolve());
  }

  private failPending(err: Error): void {
    const senders = [...this.awaitingDrain, ...this.queued];
    this.awaitingDrain = [];
    this.queue = [];
    this.queued = [];
    senders.forEach((s) => s.reject(err));
  }

  private readMessages(): void {
    for (;;) {
      let message: JSONRPCMessage | null;
      try {
        message = this.readBuffer.readMessage();
      } catch (err) {
        this.onerror?.(err as Error);
        continue;
      }
      if (message === null) return;
      this.onmessage?.(message);
    }
  }
}
