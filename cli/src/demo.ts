/**
 * The demo: one four-step task through the whole stack (gateway → orchestrator → agents →
 * mcp-gateway → the bundled "everything" MCP server), or a blueprint run with inputs, followed
 * live over server-sent events.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BLUEPRINT_NAME, parseBlueprintRef, TaskEventPayload, type pb, type StepView, type TaskView } from '@ziggie/contracts';
import { createParser } from 'eventsource-parser';
import pc from 'picocolors';
import { ApiClient, ApiError, problemToError, type TaskEvent } from './api';
import { CliError, UsageError } from './errors';
import {
  applyTaskEvent,
  describeTransitions,
  formatDuration,
  isTerminalTask,
  pendingView,
  renderTaskBlock,
  stepErrorMessage,
  taskViewFromTask,
  type TaskProgress,
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
/** Blueprints may render on a real GPU backend: minutes, not seconds. */
export const BLUEPRINT_DEMO_TIMEOUT_MS = 600_000;
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

export interface BlueprintDemoOptions extends RunDemoOptions {
  /** `name` (its latest version) or `name@version`. */
  blueprint: string;
  /** `--input key=value` arguments, in order. */
  inputArgs?: readonly string[];
  /** `--inputs '<json object>'`; `--input` values win over it. */
  inputsJson?: string;
  /** Root of the local stack's `files` MCP server, to print where a bundle landed. */
  artifactsDir?: string;
}

export class DemoError extends CliError {
  constructor(
    message: string,
    readonly task?: TaskView,
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
    private readonly view: () => TaskProgress,
  ) {
    if (opts.interactive) {
      this.block = new LiveBlock(opts.out, (now) =>
        renderTaskBlock(this.view(), now, { color, width: terminalWidth(opts.out) }),
      ).start();
    }
  }

  changed(prev: TaskProgress, next: TaskProgress): void {
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
  onTask: (t: TaskView) => void,
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

function outputText(step: StepView): string {
  const out = step.output;
  // A step with candidate tools says which one ran (e.g. ComfyUI, or the bundled fallback).
  const via = out && typeof (out as { tool?: unknown }).tool === 'string' ? `[${(out as { tool: string }).tool}] ` : '';
  if (out && typeof out.text === 'string' && out.text !== '') return via + out.text;
  if (out && Array.isArray(out.content)) {
    const texts = out.content
      .map((c) => (c && typeof c === 'object' && 'text' in c && typeof c.text === 'string' ? c.text : undefined))
      .filter((t): t is string => t !== undefined);
    if (texts.length > 0) return texts.join('\n');
  }
  return out ? JSON.stringify(out) : '';
}

/** The closing report: every step's output text, the duration and the status. */
export function formatTaskResult(task: TaskView, opts: { color: boolean; clientElapsedMs?: number }): string {
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

type Submit = (client: ApiClient, signal: AbortSignal, write: (line: string) => void) => Promise<TaskView>;

/** Submits a task, shows its waves live, prints the result (and `extra`, if any) and returns the final task. */
async function runLive(opts: RunDemoOptions, defaultTimeoutMs: number, submit: Submit, extra?: (task: TaskView) => string | undefined): Promise<TaskView> {
  const color = opts.color ?? false;
  const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
  const client = new ApiClient({ baseUrl: opts.gatewayUrl, token: opts.token });
  const write = (line: string): void => void opts.out.write(`${line}\n`);
  const t0 = Date.now();

  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  timer.unref();
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline.signal]) : deadline.signal;
  const timedOut = (): boolean => deadline.signal.aborted && !opts.signal?.aborted;

  let task: TaskView | undefined;
  let display: DemoDisplay | undefined;
  try {
    task = await submit(client, signal, write);
    const stepCount = task.waves.reduce((n, w) => n + w.steps.length, 0);
    write(`Task ${task.id}: ${stepCount} steps in ${task.waves.length} waves\n`);

    let view = taskViewFromTask(task);
    display = new DemoDisplay(opts, color, () => view);
    // The task may be well under way by the time POST answers (wave 1 dispatched, say).
    display.changed(pendingView(view), view);
    const update = (next: TaskProgress): void => {
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
  const more = extra?.(final);
  if (more) write(more);
  return final;
}

/** Submits the demo task, shows its waves live, prints the result and returns the final task. */
export function runDemo(opts: RunDemoOptions): Promise<TaskView> {
  return runLive(opts, DEMO_TIMEOUT_MS, (client, signal, write) => {
    write(`Submitting the demo task to ${opts.gatewayUrl} (workspace ${DEMO_WORKSPACE})`);
    return client.submitTask(DEMO_TASK, signal);
  });
}

// ---------------------------------------------------------------------------------------------
// Blueprints

/** `name` or `name@version`, as the command line takes it. */
export function parseBlueprintArg(arg: string): { name: string; version?: string } {
  const text = arg.trim();
  const parsed = text.includes('@') ? parseBlueprintRef(text) : BLUEPRINT_NAME.test(text) ? { name: text } : undefined;
  if (!parsed) throw new UsageError(`a blueprint is a name or name@version (e.g. comic-strip or comic-strip@1.0.0), got "${arg}"`);
  return parsed;
}

type JsonSchema = Record<string, unknown>;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function propertiesOf(schema: JsonSchema | undefined): Record<string, JsonSchema> {
  const props = schema?.properties;
  if (!isObject(props)) return {};
  return Object.fromEntries(Object.entries(props).filter((e): e is [string, JsonSchema] => isObject(e[1])));
}

const TYPE_WORDS: Record<string, string> = {
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  null: 'null',
  array: 'a JSON array',
  object: 'a JSON object',
  string: 'text',
};

/**
 * A `--input` value as the input schema types it: integers, numbers and booleans from their
 * text, arrays and objects as JSON, anything else as text. Text is tried last, so a property
 * typed ["integer", "string"] gets 3 for "3".
 */
export function coerceInput(key: string, raw: string, property: JsonSchema | undefined): unknown {
  const declared = Array.isArray(property?.type) ? property.type : [property?.type];
  const types = declared.filter((t): t is string => typeof t === 'string').sort((a, b) => Number(a === 'string') - Number(b === 'string'));
  if (types.length === 0) return raw;
  for (const type of types) {
    switch (type) {
      case 'integer':
        if (/^[+-]?\d+$/.test(raw.trim())) return Number(raw);
        break;
      case 'number':
        if (raw.trim() !== '' && Number.isFinite(Number(raw))) return Number(raw);
        break;
      case 'boolean':
        if (raw === 'true' || raw === 'false') return raw === 'true';
        break;
      case 'null':
        if (raw === 'null') return null;
        break;
      case 'array':
      case 'object':
        try {
          const v: unknown = JSON.parse(raw);
          if (type === 'array' ? Array.isArray(v) : isObject(v)) return v;
        } catch {
          // Not JSON: the error below says what is expected.
        }
        break;
      case 'string':
        return raw;
    }
  }
  throw new UsageError(`--input ${key}=${raw}: ${key} takes ${types.map((t) => TYPE_WORDS[t] ?? t).join(' or ')}`);
}

/**
 * The inputs to submit: `--inputs` JSON, then each `--input key=value` on top (typed by the
 * blueprint's input schema). Required inputs still missing take the schema's first example, so
 * `ziggie demo <blueprint>` runs without arguments; `fromExamples` names them.
 */
export function blueprintInputs(
  bp: Pick<pb.Blueprint, 'name' | 'version' | 'inputSchema'>,
  args: { inputArgs?: readonly string[]; inputsJson?: string },
): { inputs: Record<string, unknown>; fromExamples: string[] } {
  let inputs: Record<string, unknown> = {};
  if (args.inputsJson !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(args.inputsJson);
    } catch (err) {
      throw new UsageError(`--inputs must be a JSON object: ${(err as Error).message}`);
    }
    if (!isObject(parsed)) throw new UsageError(`--inputs must be a JSON object, got ${args.inputsJson}`);
    inputs = parsed;
  }
  const props = propertiesOf(bp.inputSchema);
  const closed = bp.inputSchema?.additionalProperties === false;
  for (const arg of args.inputArgs ?? []) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new UsageError(`--input takes key=value, got "${arg}"`);
    const key = arg.slice(0, eq).trim();
    if (closed && !Object.prototype.hasOwnProperty.call(props, key)) {
      throw new UsageError(`${bp.name}@${bp.version} has no input "${key}"; its inputs are: ${Object.keys(props).join(', ') || '(none)'}`);
    }
    inputs[key] = coerceInput(key, arg.slice(eq + 1), props[key]);
  }
  const required = Array.isArray(bp.inputSchema?.required) ? bp.inputSchema.required.filter((r): r is string => typeof r === 'string') : [];
  const fromExamples: string[] = [];
  for (const key of required) {
    const examples = props[key]?.examples;
    if (inputs[key] === undefined && Array.isArray(examples) && examples.length > 0) {
      inputs[key] = examples[0];
      fromExamples.push(key);
    }
  }
  return { inputs, fromExamples };
}

/** The blueprint, or a DemoError naming the ones there are. */
async function findBlueprint(client: ApiClient, wanted: { name: string; version?: string }, signal: AbortSignal): Promise<pb.Blueprint> {
  try {
    return await client.getBlueprint(wanted.name, wanted.version, signal);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
  }
  const label = wanted.version ? `${wanted.name}@${wanted.version}` : wanted.name;
  let available: string;
  try {
    const page = await client.listBlueprints(signal);
    available = [...new Set(page.items.map((b) => `${b.name}@${b.version}`))].sort().join(', ') || '(none)';
  } catch (err) {
    if (signal.aborted) throw err;
    available = `unknown (GET /v1/blueprints failed: ${err instanceof Error ? err.message : String(err)})`;
  }
  throw new DemoError(`blueprint ${label} not found; available: ${available}`);
}

const LONG_STRING = 200;

/** Long strings (base64 images, say) cut short for the terminal. */
function shorten(value: unknown): unknown {
  if (typeof value === 'string') return value.length > LONG_STRING ? `${value.slice(0, 60)}… (${value.length} characters)` : value;
  if (Array.isArray(value)) return value.map(shorten);
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shorten(v)]));
  return value;
}

/** The task output of a blueprint run, and where its bundle is when it wrote one. */
export function formatTaskOutput(task: TaskView, opts: { color: boolean; artifactsDir?: string }): string | undefined {
  const out = task.output;
  if (!out || Object.keys(out).length === 0) return undefined;
  const c = pc.createColors(opts.color);
  const lines = ['', c.bold('Output'), ...JSON.stringify(shorten(out), null, 2).split('\n').map((l) => `  ${l}`)];
  if (typeof out.bundle === 'string') {
    const local = opts.artifactsDir ? join(opts.artifactsDir, out.bundle) : undefined;
    lines.push('', `Bundle: ${c.cyan(local && existsSync(local) ? local : out.bundle)}`);
  }
  return lines.join('\n');
}

/** Runs a blueprint: looks it up, submits it with the inputs, follows it live and prints its output. */
export function runBlueprintDemo(opts: BlueprintDemoOptions): Promise<TaskView> {
  const color = opts.color ?? false;
  return runLive(
    opts,
    BLUEPRINT_DEMO_TIMEOUT_MS,
    async (client, signal, write) => {
      const bp = await findBlueprint(client, parseBlueprintArg(opts.blueprint), signal);
      const { inputs, fromExamples } = blueprintInputs(bp, opts);
      const ref = `${bp.name}@${bp.version}`;
      if (fromExamples.length > 0) {
        const given = fromExamples.map((k) => `${k}=${JSON.stringify(inputs[k])}`).join(' ');
        write(c(color).dim(`Example inputs: ${given} (choose your own with --input)`));
      }
      write(`Submitting blueprint ${ref} to ${opts.gatewayUrl} (workspace ${DEMO_WORKSPACE})`);
      return client.submitTask({ title: `Blueprint ${ref}`, workspace: DEMO_WORKSPACE, blueprint: ref, inputs }, signal);
    },
    (final) => formatTaskOutput(final, { color, artifactsDir: opts.artifactsDir }),
  );
}

function c(color: boolean): ReturnType<typeof pc.createColors> {
  return pc.createColors(color);
}
