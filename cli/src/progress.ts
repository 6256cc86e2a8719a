/**
 * Pure views and renderers for the two live displays (stack start-up and task waves).
 * Everything here is a function of (state, event) or (state, now): the terminal code in
 * terminal.ts only decides when to draw, so all formatting can be tested without a TTY.
 */
import { stripVTControlCharacters } from 'node:util';
import pc from 'picocolors';
import type { TaskView } from '@ziggie/contracts';
import type { StepStatus, TaskEvent, TaskStatus } from './api';
import type { StackDatabase, StackPorts, StackProgressEvent } from './stack';

type Colors = ReturnType<typeof pc.createColors>;
const createColors = pc.createColors;
type Paint = (s: string) => string;

export interface RenderOptions {
  color: boolean;
  /** Terminal width; lines are cut to it so a redraw never wraps (wrapping breaks cursor-up). */
  width?: number;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const BAR_WIDTH = 20;

export function formatDuration(ms: number): string {
  const v = Math.max(0, Math.round(ms));
  if (v < 1000) return `${v} ms`;
  if (v < 60_000) return `${(v / 1000).toFixed(1)} s`;
  const m = Math.floor(v / 60_000);
  const s = Math.floor((v % 60_000) / 1000);
  return `${m}m ${String(s).padStart(2, '0')}s`;
}

function spinner(now: number): string {
  return SPINNER[Math.floor(now / 100) % SPINNER.length];
}

function cut(line: string, width: number | undefined): string {
  if (!width || width <= 0) return line;
  // Count visible characters only: colour escapes take no columns.
  let visible = 0;
  let out = '';
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '\u001b' && line[i + 1] === '[') {
      const end = line.indexOf('m', i);
      if (end !== -1) {
        out += line.slice(i, end + 1);
        i = end;
        continue;
      }
    }
    if (visible >= width - 1) {
      // Reset colours in case the cut happened inside a coloured span.
      return out + (out.includes('\u001b[') ? '\u001b[0m' : '');
    }
    out += line[i];
    visible++;
  }
  return out;
}


function pad(s: string, n: number): string {
  const len = stripVTControlCharacters(s).length;
  return len >= n ? s : s + ' '.repeat(n - len);
}

function parseTime(v: string | null | undefined): number | undefined {
  if (!v) return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

// ---------------------------------------------------------------------------------------------
// Task waves

export interface StepProgress {
  id: string;
  capability?: string;
  wave: number;
  status: StepStatus;
  agentId?: string;
  startedAt?: number;
  finishedAt?: number;
  message?: string;
}

export interface WaveProgress {
  index: number;
  status: string;
  stepIds: string[];
}

export interface TaskProgress {
  id: string;
  title: string;
  status: TaskStatus;
  createdAt: number;
  finishedAt?: number;
  message?: string;
  waves: WaveProgress[];
  steps: Record<string, StepProgress>;
}

const TERMINAL_STEP = new Set<string>(['succeeded', 'failed', 'cancelled']);
const TERMINAL_TASK = new Set<string>(['succeeded', 'failed', 'cancelled']);

export function isTerminalStep(status: string): boolean {
  return TERMINAL_STEP.has(status);
}

export function isTerminalTask(status: string): boolean {
  return TERMINAL_TASK.has(status);
}

/** The view of a task as the REST API returns it (used at submit time and when polling). */
export function taskViewFromTask(task: TaskView): TaskProgress {
  const steps: Record<string, StepProgress> = {};
  const waves: WaveProgress[] = [...(task.waves ?? [])]
    .sort((a, b) => a.index - b.index)
    .map((w) => {
      for (const s of w.steps ?? []) {
        steps[s.id] = {
          id: s.id,
          capability: s.capability ?? undefined,
          wave: s.wave ?? w.index,
          // The REST type carries statuses as strings; the orchestrator only ever sets StepStatus values.
          status: s.status as StepStatus,
          agentId: s.agentId ?? undefined,
          startedAt: parseTime(s.startedAt),
          finishedAt: parseTime(s.finishedAt),
          message: stepErrorMessage(s.error),
        };
      }
      return { index: w.index, status: w.status, stepIds: (w.steps ?? []).map((s) => s.id) };
    });
  return {
    id: task.id,
    title: task.title ?? task.id,
    status: task.status as TaskStatus,
    createdAt: parseTime(task.createdAt) ?? Date.now(),
    finishedAt: parseTime(task.finishedAt),
    message: task.errorMessage ?? undefined,
    waves,
    steps,
  };
}

/** The same task before anything happened: describeTransitions from it tells the story so far. */
export function pendingView(view: TaskProgress): TaskProgress {
  const steps: Record<string, StepProgress> = {};
  for (const [id, s] of Object.entries(view.steps)) steps[id] = { id, capability: s.capability, wave: s.wave, status: 'pending' };
  return {
    ...view,
    status: 'queued',
    finishedAt: undefined,
    message: undefined,
    waves: view.waves.map((w) => ({ ...w, status: 'pending' })),
    steps,
  };
}

export function stepErrorMessage(error: unknown): string | undefined {
  if (error === null || error === undefined) return undefined;
  if (typeof error === 'string') return error;
  if (typeof error === 'object') {
    const e = error as { code?: unknown; message?: unknown };
    const parts = [e.code, e.message].filter((p): p is string => typeof p === 'string' && p !== '');
    if (parts.length > 0) return parts.join(': ');
  }
  return JSON.stringify(error);
}

function suffix(type: string): string {
  return type.slice(type.indexOf('.') + 1);
}

function ensureWave(waves: WaveProgress[], index: number): WaveProgress[] {
  if (waves.some((w) => w.index === index)) return waves;
  return [...waves, { index, status: 'pending', stepIds: [] }].sort((a, b) => a.index - b.index);
}

function setWave(waves: WaveProgress[], index: number, patch: Partial<WaveProgress>): WaveProgress[] {
  return waves.map((w) => (w.index === index ? { ...w, ...patch } : w));
}

const TASK_RANK: Record<string, number> = { queued: 0, running: 1, succeeded: 2, failed: 2, cancelled: 2 };
const WAVE_RANK: Record<string, number> = { pending: 0, running: 1, succeeded: 2, failed: 2, cancelled: 2 };
const STEP_RANK: Record<string, number> = {
  pending: 0,
  dispatched: 1,
  running: 2,
  waiting_approval: 2,
  succeeded: 3,
  failed: 3,
  cancelled: 3,
};

/**
 * Folds one server-sent event into the view. Never mutates its input.
 * The stream starts with the task's history, which is older than the task the POST returned,
 * so an event that would move a status backwards is history and is skipped; the one exception
 * is a failed step dispatched again (a retry).
 */
export function applyTaskEvent(view: TaskProgress, ev: TaskEvent): TaskProgress {
  const at = parseTime(ev.at);
  const kind = suffix(ev.type);
  const next: TaskProgress = { ...view };

  if (ev.type.startsWith('task.')) {
    if ((TASK_RANK[kind] ?? 0) < (TASK_RANK[view.status] ?? 0)) return view;
    next.status = kind as TaskStatus;
    if (isTerminalTask(kind)) next.finishedAt = at ?? next.finishedAt;
    if (ev.message) next.message = ev.message;
    return next;
  }

  if (ev.type.startsWith('wave.') && ev.wave !== undefined) {
    const status = kind === 'started' ? 'running' : kind;
    const current = view.waves.find((w) => w.index === ev.wave)?.status ?? 'pending';
    if ((WAVE_RANK[status] ?? 0) < (WAVE_RANK[current] ?? 0)) return view;
    next.waves = setWave(ensureWave(next.waves, ev.wave), ev.wave, { status });
    if (next.status === 'queued') next.status = 'running';
    return next;
  }

  if (ev.type.startsWith('step.') && ev.stepId) {
    const existing = next.steps[ev.stepId];
    const retry = kind === 'dispatched' && existing?.status === 'failed';
    if (existing && !retry && (STEP_RANK[kind] ?? 0) < (STEP_RANK[existing.status] ?? 0)) return view;
    const waveIndex = ev.wave ?? existing?.wave ?? 1;
    const step: StepProgress = existing
      ? { ...existing }
      : { id: ev.stepId, wave: waveIndex, status: 'pending' };
    step.status = kind as StepStatus;
    if (ev.agentId) step.agentId = ev.agentId;
    // Elapsed time counts from dispatch: queueing for an agent is part of what the operator waits for.
    if ((kind === 'dispatched' || kind === 'running') && step.startedAt === undefined) step.startedAt = at;
    if (retry) {
      // The clock restarts with the new attempt.
      step.startedAt = at;
      step.finishedAt = undefined;
      step.message = undefined;
    }
    if (isTerminalStep(kind)) step.finishedAt = at;
    if (ev.message && kind === 'failed') step.message = ev.message;
    next.steps = { ...next.steps, [step.id]: step };
    if (!existing) {
      next.waves = ensureWave(next.waves, waveIndex).map((w) =>
        w.index === waveIndex ? { ...w, stepIds: [...w.stepIds, step.id] } : w,
      );
    }
    const wave = next.waves.find((w) => w.index === step.wave);
    if (wave && wave.status === 'pending') next.waves = setWave(next.waves, wave.index, { status: 'running' });
    if (next.status === 'queued') next.status = 'running';
    return next;
  }
  return next;
}

export function waveCounts(view: TaskProgress, wave: WaveProgress): { done: number; total: number; failed: number } {
  let done = 0;
  let failed = 0;
  for (const id of wave.stepIds) {
    const s = view.steps[id];
    if (s && isTerminalStep(s.status)) done++;
    if (s && s.status !== 'succeeded' && isTerminalStep(s.status)) failed++;
  }
  return { done, total: wave.stepIds.length, failed };
}

function stepElapsed(step: StepProgress, now: number): number | undefined {
  if (step.startedAt === undefined) return undefined;
  return (step.finishedAt ?? now) - step.startedAt;
}

function taskElapsed(view: TaskProgress, now: number): number {
  return (view.finishedAt ?? now) - view.createdAt;
}

function statusPaint(c: Colors, status: string): Paint {
  switch (status) {
    case 'succeeded':
      return c.green;
    case 'failed':
      return c.red;
    case 'cancelled':
    case 'waiting_approval':
      return c.yellow;
    case 'running':
    case 'dispatched':
      return c.cyan;
    default:
      return c.dim;
  }
}

function stepSymbol(c: Colors, status: string, now: number): string {
  switch (status) {
    case 'succeeded':
      return c.green('✔');
    case 'failed':
      return c.red('✖');
    case 'cancelled':
      return c.yellow('⊘');
    case 'waiting_approval':
      return c.yellow('⏸');
    case 'running':
      return c.cyan(spinner(now));
    case 'dispatched':
      return c.cyan('◌');
    default:
      return c.dim('·');
  }
}

function bar(c: Colors, done: number, total: number, status: string): string {
  const filled = total === 0 ? 0 : Math.round((done / total) * BAR_WIDTH);
  const paint = statusPaint(c, status === 'pending' ? 'pending' : status);
  return paint('█'.repeat(filled)) + c.dim('░'.repeat(BAR_WIDTH - filled));
}

/** The block drawn in place in a terminal: a header, then one bar per wave and one line per step. */
export function renderTaskBlock(view: TaskProgress, now: number, opts: RenderOptions): string {
  const c = createColors(opts.color);
  const steps = Object.values(view.steps);
  const idWidth = Math.max(4, ...steps.map((s) => s.id.length));
  const capWidth = Math.max(0, ...steps.map((s) => (s.capability ?? '').length));
  const agentWidth = Math.max(1, ...steps.map((s) => (s.agentId ?? '').length));
  const lines: string[] = [];
  lines.push(
    `${c.bold(view.title)}  ${statusPaint(c, view.status)(view.status)}  ${c.dim(formatDuration(taskElapsed(view, now)))}`,
  );
  for (const wave of view.waves) {
    const { done, total } = waveCounts(view, wave);
    lines.push(
      `${pad(`wave ${wave.index}`, 7)} ${bar(c, done, total, wave.status)} ${done}/${total}  ${statusPaint(c, wave.status)(wave.status)}`,
    );
    for (const id of wave.stepIds) {
      const s = view.steps[id];
      if (!s) continue;
      const elapsed = stepElapsed(s, now);
      const cols = [
        `  ${stepSymbol(c, s.status, now)} ${pad(s.id, idWidth)}`,
        capWidth > 0 ? pad(c.dim(s.capability ?? ''), capWidth) : '',
        pad(s.agentId ?? c.dim('—'), agentWidth),
        pad(elapsed === undefined ? '' : formatDuration(elapsed), 8),
      ].filter((col) => col !== '');
      let line = cols.join('  ').trimEnd();
      if (s.status === 'failed' && s.message) line += `  ${c.red(s.message)}`;
      lines.push(line);
    }
  }
  if (isTerminalTask(view.status) && view.status !== 'succeeded' && view.message) {
    lines.push(c.red(view.message));
  }
  return lines.map((l) => cut(l, opts.width)).join('\n');
}

/**
 * What changed between two views, one short line per transition: the output when stdout is
 * not a terminal. Lines come in reading order: task start, then per wave its start, its
 * steps and its end, then the task's end.
 */
export function describeTransitions(prev: TaskProgress, next: TaskProgress, opts: RenderOptions): string[] {
  const c = createColors(opts.color);
  const lines: string[] = [];
  const taskChanged = prev.status !== next.status;
  if (taskChanged && !isTerminalTask(next.status)) lines.push(`task ${next.status}`);
  for (const wave of next.waves) {
    const before = prev.waves.find((w) => w.index === wave.index);
    const waveChanged = (before?.status ?? 'pending') !== wave.status;
    const { done, total } = waveCounts(next, wave);
    if (waveChanged && wave.status === 'running') {
      lines.push(`wave ${wave.index} started: ${total} step${total === 1 ? '' : 's'}`);
    }
    for (const id of wave.stepIds) {
      const s = next.steps[id];
      const b = prev.steps[id];
      if (!s) continue;
      if (b && b.status === s.status && b.agentId === s.agentId) continue;
      if (!b && s.status === 'pending') continue;
      const parts = [`  ${stepSymbolPlain(s.status)} ${s.id}`, statusPaint(c, s.status)(s.status)];
      if (s.agentId && (s.status === 'dispatched' || b?.agentId !== s.agentId)) parts.push(`agent ${s.agentId}`);
      if (isTerminalStep(s.status) && s.startedAt !== undefined && s.finishedAt !== undefined) {
        parts.push(formatDuration(s.finishedAt - s.startedAt));
      }
      if (s.status === 'failed' && s.message) parts.push(`— ${s.message}`);
      lines.push(parts.join(' '));
    }
    if (waveChanged && wave.status !== 'running' && wave.status !== 'pending') {
      lines.push(`wave ${wave.index} ${statusPaint(c, wave.status)(wave.status)} (${done}/${total})`);
    }
  }
  if (taskChanged && isTerminalTask(next.status)) {
    let line = `task ${statusPaint(c, next.status)(next.status)}`;
    if (next.finishedAt !== undefined) line += ` in ${formatDuration(next.finishedAt - next.createdAt)}`;
    if (next.status !== 'succeeded' && next.message) line += ` — ${next.message}`;
    lines.push(line);
  }
  return lines;
}

function stepSymbolPlain(status: string): string {
  switch (status) {
    case 'succeeded':
      return '✔';
    case 'failed':
      return '✖';
    case 'cancelled':
      return '⊘';
    case 'waiting_approval':
      return '⏸';
    case 'running':
      return '▶';
    case 'dispatched':
      return '→';
    default:
      return '·';
  }
}

// ---------------------------------------------------------------------------------------------
// Stack start-up

export type StackItemStatus =
  | 'waiting'
  | 'installing'
  | 'starting'
  | 'ready'
  | 'failed'
  | 'stopping'
  | 'stopped'
  | 'exited';

export interface StackItem {
  name: string;
  status: StackItemStatus;
  since: number;
  ms?: number;
  message?: string;
}

export interface StackView {
  items: StackItem[];
}

export function stackViewInit(names: readonly string[], now: number): StackView {
  return { items: names.map((name) => ({ name, status: 'waiting', since: now })) };
}

export function applyStackEvent(view: StackView, ev: StackProgressEvent, now: number): StackView {
  const known = view.items.some((i) => i.name === ev.name);
  const items = known ? view.items : [...view.items, { name: ev.name, status: 'waiting' as const, since: now }];
  return {
    items: items.map((i) =>
      i.name === ev.name ? { ...i, status: ev.kind, since: now, ms: ev.ms, message: ev.message } : i,
    ),
  };
}

function stackSymbol(c: Colors, status: StackItemStatus, now: number): string {
  switch (status) {
    case 'ready':
    case 'stopped':
      return c.green('✔');
    case 'failed':
    case 'exited':
      return c.red('✖');
    case 'installing':
    case 'starting':
    case 'stopping':
      return c.cyan(spinner(now));
    default:
      return c.dim('·');
  }
}

export function renderStackBlock(view: StackView, now: number, opts: RenderOptions): string {
  const c = createColors(opts.color);
  const nameWidth = Math.max(...view.items.map((i) => i.name.length));
  return view.items
    .map((i) => {
      const busy = i.status === 'starting' || i.status === 'installing' || i.status === 'stopping';
      const ms = busy ? now - i.since : i.ms;
      const paint =
        i.status === 'ready' || i.status === 'stopped'
          ? c.green
          : i.status === 'failed' || i.status === 'exited'
            ? c.red
            : busy
              ? c.cyan
              : c.dim;
      let line = `  ${stackSymbol(c, i.status, now)} ${pad(i.name, nameWidth)}  ${pad(paint(i.status), 10)}`;
      if (ms !== undefined) line += ` ${formatDuration(ms).padStart(8)}`;
      if (i.message && (i.status === 'failed' || i.status === 'installing')) line += `  ${c.dim(firstLine(i.message))}`;
      return cut(line.trimEnd(), opts.width);
    })
    .join('\n');
}

/** One line per event, for when stdout is not a terminal. */
export function describeStackEvent(ev: StackProgressEvent): string {
  let line = `${ev.name} ${ev.kind}`;
  if (ev.ms !== undefined) line += ` (${formatDuration(ev.ms)})`;
  if (ev.message) line += `: ${firstLine(ev.message)}`;
  return line;
}

function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i === -1 ? s : s.slice(0, i);
}

export interface StackSummaryInfo {
  gatewayUrl: string;
  mcpUrl: string;
  ports: StackPorts;
  dataDir: string;
  logsDir: string;
  adminToken: string;
  database?: StackDatabase;
}

/**
 * The web console's sign-in URL: the token rides in the fragment, which the browser never sends
 * (so it stays out of server and proxy logs); the page moves it to the tab's session storage.
 */
export function consoleUrl(gatewayUrl: string, token: string): string {
  return `${gatewayUrl.replace(/\/+$/, '')}/console/#token=${encodeURIComponent(token)}`;
}

/** What `ziggie up` prints once everything is ready. */
export function renderStackSummary(info: StackSummaryInfo, opts: { color: boolean; elapsedMs?: number }): string {
  const c = pc.createColors(opts.color);
  const label = (s: string): string => c.dim(s.padEnd(16));
  const names = Object.keys(info.ports.services) as Array<keyof StackPorts['services']>;
  const nameWidth = Math.max(...names.map((n) => n.length));
  const lines = [
    '',
    c.bold(c.green(`Ziggie Command Center is up${opts.elapsedMs === undefined ? '' : ` in ${formatDuration(opts.elapsedMs)}`}`)),
    '',
    `  ${label('Console')}${c.cyan(consoleUrl(info.gatewayUrl, info.adminToken))}`,
    `  ${label('Gateway (REST)')}${c.cyan(info.gatewayUrl)}  ${c.dim(`(API docs ${info.gatewayUrl}/docs)`)}`,
    `  ${label('MCP endpoint')}${c.cyan(info.mcpUrl)}  ${c.dim('(streamable HTTP, Bearer token)')}`,
    `  ${label('MCP tools')}${c.cyan(`${info.gatewayUrl}/v1/mcp/tools`)}`,
    `  ${label('NATS')}${c.cyan(`nats://127.0.0.1:${info.ports.nats}`)}  ${c.dim(`monitor http://127.0.0.1:${info.ports.natsMonitor}`)}`,
  ];
  names.forEach((name, i) => {
    const url = `http://127.0.0.1:${info.ports.services[name].http}/metrics`;
    lines.push(`  ${label(i === 0 ? 'Metrics' : '')}${name.padEnd(nameWidth)}  ${url}`);
  });
  const db = info.database;
  if (db?.kind === 'embedded') {
    lines.push(`  ${label('PostgreSQL')}${c.cyan(db.displayUrl)}  ${c.dim(`(password in ${db.passwordFile}; one database per service)`)}`);
  } else if (db) {
    lines.push(`  ${label('PostgreSQL')}${c.cyan(db.displayUrl)}  ${c.dim('(DATABASE_URL)')}`);
  }
  lines.push(`  ${label('Data')}${info.dataDir}  ${c.dim(`(logs in ${info.logsDir})`)}`);
  lines.push('', `  export ZIGGIE_TOKEN=${info.adminToken}`, '');
  return lines.join('\n');
}
