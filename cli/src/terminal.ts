/** The thin terminal shell around the pure renderers in progress.ts. */
import pc from 'picocolors';

export interface Output {
  stream: NodeJS.WritableStream;
  /** Redraw in place (a TTY) rather than append lines. */
  interactive: boolean;
  color: boolean;
}

/** Interactive when stdout is a real terminal that understands cursor movement. */
export function detectOutput(stream: NodeJS.WriteStream = process.stdout): Output {
  const interactive = Boolean(stream.isTTY) && process.env.TERM !== 'dumb' && !process.env.CI;
  return { stream, interactive, color: pc.isColorSupported && Boolean(stream.isTTY) };
}

export function terminalWidth(stream: NodeJS.WritableStream): number | undefined {
  const columns = (stream as Partial<NodeJS.WriteStream>).columns;
  return typeof columns === 'number' && columns > 0 ? columns : undefined;
}

/**
 * A block of lines redrawn in place on a timer. The render function gets the current time so
 * spinners and elapsed times move even when no event arrives.
 */
export class LiveBlock {
  private lines = 0;
  private last?: string;
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly render: (now: number) => string,
    private readonly intervalMs = 100,
  ) {}

  start(): this {
    this.stream.write('\u001b[?25l');
    this.draw();
    this.timer = setInterval(() => this.draw(), this.intervalMs);
    // A display must never keep the process alive on its own.
    this.timer.unref();
    process.once('exit', this.restoreCursor);
    return this;
  }

  /** Draws now (call after state changes so updates are not held back by the timer). */
  draw(): void {
    if (this.stopped) return;
    const text = this.render(Date.now());
    // Rewriting identical text is pure flicker (and noise in a recorded terminal).
    if (text === this.last) return;
    this.last = text;
    const up = this.lines > 0 ? `\u001b[${this.lines}F` : '';
    this.stream.write(`${up}\u001b[0J${text}\n`);
    this.lines = text.split('\n').length;
  }

  /** Final draw; the block stays on screen and later output continues below it. */
  stop(): void {
    if (this.stopped) return;
    this.draw();
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.restoreCursor();
    process.removeListener('exit', this.restoreCursor);
  }

  /** Writes a line above the block without disturbing it. */
  log(line: string): void {
    if (this.stopped) {
      this.stream.write(`${line}\n`);
      return;
    }
    const up = this.lines > 0 ? `\u001b[${this.lines}F\u001b[0J` : '';
    this.stream.write(`${up}${line}\n`);
    this.lines = 0;
    this.last = undefined;
    this.draw();
  }

  private readonly restoreCursor = (): void => {
    this.stream.write('\u001b[?25h');
  };
}
