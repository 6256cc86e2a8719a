/**
 * The demo: one four-step task through the whole stack (gateway → orchestrator → agents →
 * mcp-gateway → the bundled "everything" MCP server), followed live over server-sent events.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { TaskEventPayload } from '@ziggie/contracts';
import { createParser } from 'eventsource-parser';
import pc from 'picocolors';
import { ApiClient, ApiError, problemToError, type Task, type TaskEvent } from './api';
import { CliError } from './errors';
import {
  applyTaskEvent,
  describeTransitions,
  formatDuration,
  isTerminalTask,
  pendingView,
  renderTaskBlock,
  stepErrorMessage,
  taskViewFromTask,
  type TaskView,
} from './progress';
import { LiveBlock, terminalWidth } from './terminal';

export const DEMO_WORKSPACE = 'ziggie';

export const DEMO_TASK = {
  title: 'Demo: brief, sum, long operation, summary',
  workspace: DEMO_WORKSPACE,
  priority: 'P1',
  plan: {
    steps: [
      {
        id: 'brief',
        capability: 'research',
        action: 'tool',
        input: { tool: 'everything.echo', arguments: { message: 'Ziggie demo brief' } },
      },
      {
        id: 'numbers',
        capability: 'data',
        action: 'tool',
        input: { tool: 'everything.get-sum', arguments: { a: 19, b: 23 } },
      },
      {
        id: 'render',
        capability: 'art',
        action: 'tool',
        dependsOn: ['brief'],
        input: { tool: 'everything.trigger-long-running-operation', arguments: { duration: 2, steps: 4 } },
      },
      {
        id: 'summary',
        capability: 'qa',
        action: 'tool',
        dependsOn: ['numbers', 'render'],
        input: {
          tool: 'everything.echo',
          arguments: { message: 'brief={{steps.brief.output.text}} sum={{steps.numbers.output.text}}' },
        },
      },
    ],
  },
} as const;

export const DEMO_TIMEOUT_MS = 120_000;
export const POLL_INTERVAL_MS = 500;
/** Polling stops early when the gateway keeps failing this long: the stack is probably gone. */
export const UNREACHABLE_GIVE_UP_MS = 10_000;

export interface RunDemoOptions {
  gatewayUrl: string;
  token: string;
  out: NodeJS.WritableStream;
  /** Redraw a live block in place (a TTY); otherwise one line per transition. */
  interactive: boolean;
  color?: boolean;
  timeoutMs?: number;
  pollIntervalMs?: number;
  signal?: AbortSignal;
}

export class DemoError extends CliError {
  constructor(
    message: string,
    readonly task?: Task,
  ) {
    super(message, 1);
    this.name = 'DemoError';
  }
}

/** Where the live view goes: a block redrawn in place, or appended transition lines. */
class DemoDisplay {
  private readonly block?: LiveBlock;

  constructor(
    private readonly opts: RunDemoOptions,
    private readonly color: boolean,
    private readonly view: () => TaskView,
  ) {
    if (opts.interactive) {
      this.block = new LiveBlock(opts.out, (now) =>
        renderTaskBlock(this.view(), now, { color, width: terminalWidth(opts.out) }),
      ).start();
    }
  }

  changed(prev: TaskView, next: TaskView): void {
    if (this.block) {
      this.block.draw();
      return;
    }
    for (const line of describeTransitions(prev, next, { color: this.color })) this.opts.out.write(`${line}\n`);
  }

  note(line: string): void {
    if (this.block) this.block.log(line);
    else this.opts.out.write(`${line}\n`);
  }

  stop(): void {
    this.block?.stop();
  }
}

type StreamOutcome = { terminal: true } | { terminal: false; reason: string };

function causeOf(err: unknown): string {
  if (err instanceof Error && err.cause instanceof Error) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

/** Follows the task's SSE stream until a terminal task event, or reports why it stopped early. */
async function followEvents(
  client: ApiClient,
  taskId: string,
  onEvent: (ev: TaskEvent) => void,
  signal: AbortSignal,
): Promise<StreamOutcome> {
  let res: Response;
  try {
    res = await fetch(client.url(`/v1/tasks/${encodeURIComponent(taskId)}/events`), {
      headers: client.headers({ accept: 'text/event-stream' }),
      signal,
    });
  } catch (err) {
    if (signal.aborted) throw err;
    return { terminal: false, reason: causeOf(err) };
  }
  if (!res.ok || !res.body) {
    const body = await res.text().catch(() => '');
    // Credentials that do not work will not work for polling either.
    if (res.status === 401 || res.status === 403) throw problemToError(res.status, body);
    return { terminal: false, reason: `the event stream answered ${res.status}` };
  }

  let terminal = false;
  const parser = createParser({
    onEvent: (msg) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(msg.data);
      } catch {
        return;
      }
      // Shapes are validated on arrival, like every consumer of contracts does.
      const ev = TaskEventPayload.safeParse(parsed);
      if (!ev.success || ev.data.taskId !== taskId) return;
      onEvent(ev.data);
      if (ev.data.type.startsWith('task.') && isTerminalTask(ev.data.type.slice(5))) terminal = true;
    },
  });
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body) {
      parser.feed(decoder.decode(chunk, { stream: true }));
      if (terminal) break;
    }
  } catch (err) {
    if (signal.aborted) throw err;
    if (!terminal) return { terminal: false, reason: causeOf(err) };
  }
  return terminal ? { terminal: true } : { terminal: false, reason: 'the server closed the stream early' };
}

async function pollUntilTerminal(
  client: ApiClient,
  taskId: string,
  onTask: (t: Task) => void,
  intervalMs: number,
  signal: AbortSignal,
): Promise<void> {
  let failures = 0;
  for (;;) {
    try {
      const task = await client.getTask(taskId, signal);
      failures = 0;
      onTask(task);
      if (isTerminalTask(task.status)) return;
    } catch (err) {
      if (signal.aborted) throw err;
      // Client errors will not go away by retrying; server and network errors may, for a while.
      if (err instanceof ApiError && err.status < 500 && err.status !== 429) throw err;
      if (++failures * intervalMs >= UNREACHABLE_GIVE_UP_MS) throw err;
    }
    await sleep(intervalMs, undefined, { signal });
  }
}

function outputText(step: Task['waves'][number]['steps'][number]): string {
  const out = step.output;
  if (out && typeof out.text === 'string' && out.text !== '') return out.text;
  if (out && Array.isArray(out.content)) {
    const texts = out.content
      .map((c) => (c && typeof c === 'object' && 'text' in c && typeof c.text === 'string' ? c.text : undefined))
      .filter((t): t is string => t !== undefined);
    if (texts.length > 0) return texts.join('\n');
  }
  return out ? JSON.stringify(out) : '';
}

/** The closing report: every step's output text, the duration and the status. */
export function formatTaskResult(task: Task, opts: { color: boolean; clientElapsedMs?: number }): string {
  const c = pc.createColors(opts.color);
  const steps = [...task.waves].sort((a, b) => a.index - b.index).flatMap((w) => w.steps);
  const idWidth = Math.max(4, ...steps.map((s) => s.id.length));
  const lines = ['', c.bold('Result')];
  for (const s of steps) {
    const ok = s.status === 'succeeded';
    const symbol = ok ? c.green('✔') : s.status === 'failed' ? c.red('✖') : c.yellow('·');
    const text = ok ? outputText(s) : (stepErrorMessage(s.error) ?? outputText(s));
    const textLines = (text || c.dim(`(${s.status})`)).split('\n');
    const prefix = `  ${symbol} ${s.id.padEnd(idWidth)}  `;
    const painted = ok && !s.output?.isError ? (t: string) => t : c.red;
    lines.push(prefix + painted(textLines[0]));
    for (const more of textLines.slice(1)) lines.push(' '.repeat(idWidth + 6) + painted(more));
  }
  const created = Date.parse(task.createdAt);
  const finished = task.finishedAt ? Date.parse(task.finishedAt) : Number.NaN;
  const ms = Number.isNaN(created) || Number.isNaN(finished) ? opts.clientElapsedMs : finished - created;
  const status =
    task.status === 'succeeded' ? c.green(task.status) : isTerminalTask(task.status) ? c.red(task.status) : c.yellow(task.status);
  let last = `Task ${task.id} ${status}`;
  if (ms !== undefined) last += ` in ${formatDuration(ms)}`;
  if (task.status !== 'succeeded' && (task.errorCode || task.errorMessage)) {
    last += ` — ${[task.errorCode, task.errorMessage].filter(Boolean).join(': ')}`;
  }
  lines.push('', last);
  return lines.join('\n');
}

/** Submits the demo task, shows its waves live, prints the result and returns the final task. */
export async function runDemo(opts: RunDemoOptions): Promise<Task> {
  const color = opts.color ?? false;
  const timeoutMs = opts.timeoutMs ?? DEMO_TIMEOUT_MS;
  const client = new ApiClient({ baseUrl: opts.gatewayUrl, token: opts.token });
  const write = (line: string): void => void opts.out.write(`${line}\n`);
  const t0 = Date.now();

  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  timer.unref();
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline.signal]) : deadline.signal;
  const timedOut = (): boolean => deadline.signal.aborted && !opts.signal?.aborted;

  let task: Task | undefined;
  let display: DemoDisplay | undefined;
  try {
    write(`Submitting the demo task to ${opts.gatewayUrl} (workspace ${DEMO_WORKSPACE})`);
    task = await client.submitTask(DEMO_TASK, signal);
    const stepCount = task.waves.reduce((n, w) => n + w.steps.length, 0);
    write(`Task ${task.id}: ${stepCount} steps in ${task.waves.length} waves\n`);

    let view = taskViewFromTask(task);
    display = new DemoDisplay(opts, color, () => view);
    // The task may be well under way by the time POST answers (wave 1 dispatched, say).
    display.changed(pendingView(view), view);
    const update = (next: TaskView): void => {
      const prev = view;
      view = next;
      display?.changed(prev, next);
    };

    if (!isTerminalTask(task.status)) {
      const streamed = await followEvents(client, task.id, (ev) => update(applyTaskEvent(view, ev)), signal);
      if (!streamed.terminal) {
        display.note(
          c(color).yellow(
            `event stream lost (${streamed.reason}); polling GET /v1/tasks/${task.id} every ${opts.pollIntervalMs ?? POLL_INTERVAL_MS} ms`,
          ),
        );
        await pollUntilTerminal(
          client,
          task.id,
          (t) => update(taskViewFromTask(t)),
          opts.pollIntervalMs ?? POLL_INTERVAL_MS,
          signal,
        );
      }
    }
  } catch (err) {
    display?.stop();
    if (timedOut()) {
      const where = task ? `task ${task.id} did not finish` : 'the gateway did not answer';
      throw new DemoError(
        `gave up: ${where} within ${timeoutMs / 1000} s.` +
          (task ? ` It may still be running: GET ${opts.gatewayUrl}/v1/tasks/${task.id}` : ''),
        task,
      );
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
  display?.stop();

  // The stream tells progress; the resource is the record of what happened.
  const final = await client.getTask(task.id, AbortSignal.timeout(10_000));
  write(formatTaskResult(final, { color, clientElapsedMs: Date.now() - t0 }));
  return final;
}

function c(color: boolean): ReturnType<typeof pc.createColors> {
  return pc.createColors(color);
}
