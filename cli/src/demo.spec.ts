import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { pb, TaskView } from '@ziggie/contracts';
import { restStep, restTask } from '../../test/support/rest-views';
import { ApiError } from './api';
import {
  blueprintInputs,
  coerceInput,
  DEMO_TASK,
  DemoError,
  formatTaskOutput,
  formatTaskResult,
  parseBlueprintArg,
  runBlueprintDemo,
  runDemo,
} from './demo';
import { UsageError } from './errors';
import { buildProgram, main } from './main';

const T0 = Date.parse('2026-01-01T10:00:00.000Z');
const at = (ms: number): string => new Date(T0 + ms).toISOString();

function task(status: TaskView['status'], stepStatus: 'pending' | 'succeeded'): TaskView {
  const s = (id: string, capability: string, wave: number, text: string) => restStep({
    id,
    capability,
    action: 'tool',
    workspace: 'ziggie',
    status: stepStatus,
    wave,
    agentId: stepStatus === 'pending' ? null : `agent-${id}`,
    attempt: 1,
    output: stepStatus === 'pending' ? null : { text, content: [{ type: 'text', text }], isError: false },
    startedAt: stepStatus === 'pending' ? null : at(10),
    finishedAt: stepStatus === 'pending' ? null : at(90),
  });
  return restTask({
    id: 't1',
    title: DEMO_TASK.title,
    workspace: 'ziggie',
    priority: 'P1',
    status,
    createdAt: at(0),
    finishedAt: status === 'succeeded' ? at(4200) : null,
    waves: [
      { index: 1, status: 'pending', steps: [s('brief', 'research', 1, 'Echo: Ziggie demo brief'), s('numbers', 'data', 1, 'The sum of 19 and 23 is 42.')] },
      { index: 2, status: 'pending', steps: [s('render', 'art', 2, 'Long running operation completed.')] },
      { index: 3, status: 'pending', steps: [s('summary', 'qa', 3, 'Echo: brief=Echo: Ziggie demo brief\nsum=The sum of 19 and 23 is 42.')] },
    ],
  });
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** A stand-in for the gateway's REST API: a real HTTP server answering from the test's handler. */
async function startGatewayDouble(handler: Handler): Promise<{ url: string; server: Server; requests: Array<{ method?: string; url?: string; auth?: string; body: string }> }> {
  const requests: Array<{ method?: string; url?: string; auth?: string; body: string }> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push({ method: req.method, url: req.url, auth: req.headers.authorization, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, requests };
}

function json(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  res.writeHead(status, { 'content-type': type });
  res.end(JSON.stringify(body));
}

function sse(res: ServerResponse, events: Array<Record<string, unknown>>, close: boolean): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  events.forEach((e, i) => {
    const payload = { taskId: 't1', seq: i + 1, status: String(e.type).split('.')[1], ...e };
    // Split a frame across writes: the parser must not depend on chunk boundaries.
    const frame = `id: ${i + 1}\nevent: ${String(e.type)}\ndata: ${JSON.stringify(payload)}\n\n`;
    res.write(frame.slice(0, 10));
    res.write(frame.slice(10));
  });
  if (close) res.end();
}

const happyEvents = [
  { type: 'task.running', at: at(5) },
  { type: 'wave.started', at: at(6), wave: 1 },
  { type: 'step.dispatched', at: at(10), wave: 1, stepId: 'brief', agentId: 'agent-brief' },
  { type: 'step.succeeded', at: at(90), wave: 1, stepId: 'brief', agentId: 'agent-brief' },
  { type: 'not-an-event', at: at(91) },
  { type: 'task.succeeded', at: at(4200) },
];

function collect(): { out: PassThrough; text: () => string } {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString()));
  return { out, text: () => text };
}

describe('runDemo', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((ok) => (server ? server.close(() => ok()) : ok()));
    server = undefined;
  });

  it('submits the plan, follows the event stream and prints the result', async () => {
    const gateway = await startGatewayDouble((req, res) => {
      if (req.method === 'POST' && req.url === '/v1/tasks') return json(res, 201, task('queued', 'pending'));
      if (req.url === '/v1/tasks/t1/events') return sse(res, happyEvents, true);
      if (req.url === '/v1/tasks/t1') return json(res, 200, task('succeeded', 'succeeded'));
      json(res, 404, {});
    });
    server = gateway.server;
    const { out, text } = collect();
    const result = await runDemo({ gatewayUrl: `${gateway.url}/`, token: 'tok', out, interactive: false });

    expect(result.status).toBe('succeeded');
    const post = gateway.requests[0];
    expect(post).toMatchObject({ method: 'POST', url: '/v1/tasks', auth: 'Bearer tok' });
    expect(JSON.parse(post.body)).toEqual(DEMO_TASK);
    expect(gateway.requests.map((r) => r.url)).toEqual(['/v1/tasks', '/v1/tasks/t1/events', '/v1/tasks/t1']);
    const lines = text().split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        'Task t1: 4 steps in 3 waves',
        'task running',
        'wave 1 started: 2 steps',
        '  → brief dispatched agent agent-brief',
        '  ✔ brief succeeded 80 ms',
        'task succeeded in 4.2 s',
        '  ✔ numbers  The sum of 19 and 23 is 42.',
        '  ✔ summary  Echo: brief=Echo: Ziggie demo brief',
        '             sum=The sum of 19 and 23 is 42.',
        'Task t1 succeeded in 4.2 s',
      ]),
    );
  });

  it('falls back to polling when the event stream drops', async () => {
    let polls = 0;
    const gateway = await startGatewayDouble((req, res) => {
      if (req.method === 'POST') return json(res, 201, task('queued', 'pending'));
      if (req.url === '/v1/tasks/t1/events') return sse(res, happyEvents.slice(0, 2), true);
      polls += 1;
      return json(res, 200, polls < 3 ? task('running', 'pending') : task('succeeded', 'succeeded'));
    });
    server = gateway.server;
    const { out, text } = collect();
    const result = await runDemo({ gatewayUrl: gateway.url, token: 'tok', out, interactive: false, pollIntervalMs: 20 });
    expect(result.status).toBe('succeeded');
    expect(text()).toContain('event stream lost (the server closed the stream early); polling GET /v1/tasks/t1 every 20 ms');
    expect(text()).toContain('task succeeded in 4.2 s');
    expect(polls).toBe(4);
  });

  it('reports problem+json errors with their code and detail', async () => {
    const gateway = await startGatewayDouble((_req, res) =>
      json(
        res,
        403,
        { type: 'about:blank', title: 'Forbidden', status: 403, code: 'AUTH_FORBIDDEN', detail: 'missing agent:dispatch', correlationId: 'c-1' },
        'application/problem+json',
      ),
    );
    server = gateway.server;
    const { out } = collect();
    const err = await runDemo({ gatewayUrl: gateway.url, token: 'tok', out, interactive: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 403, code: 'AUTH_FORBIDDEN', detail: 'missing agent:dispatch' });
    expect((err as Error).message).toBe('AUTH_FORBIDDEN: missing agent:dispatch (correlation id c-1)');
  });

  it('gives up after its time bound with a clear message', async () => {
    const gateway = await startGatewayDouble((req, res) => {
      if (req.method === 'POST') return json(res, 201, task('queued', 'pending'));
      if (req.url === '/v1/tasks/t1/events') return sse(res, happyEvents.slice(0, 1), false);
      json(res, 200, task('running', 'pending'));
    });
    server = gateway.server;
    const { out } = collect();
    const err = await runDemo({ gatewayUrl: gateway.url, token: 'tok', out, interactive: false, timeoutMs: 300 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DemoError);
    expect((err as Error).message).toMatch(/^gave up: task t1 did not finish within 0\.3 s\. It may still be running: GET http/);
  });

  it('says when the gateway is not reachable', async () => {
    const { out } = collect();
    await expect(runDemo({ gatewayUrl: 'http://127.0.0.1:1', token: 't', out, interactive: false })).rejects.toThrow(
      /cannot reach http:\/\/127\.0\.0\.1:1\/v1\/tasks: .*Is the stack running\?/,
    );
  });

  it('draws a live block when interactive', async () => {
    const gateway = await startGatewayDouble((req, res) => {
      if (req.method === 'POST') return json(res, 201, task('queued', 'pending'));
      if (req.url === '/v1/tasks/t1/events') return sse(res, happyEvents, true);
      json(res, 200, task('succeeded', 'succeeded'));
    });
    server = gateway.server;
    const { out, text } = collect();
    await runDemo({ gatewayUrl: gateway.url, token: 'tok', out, interactive: true });
    expect(text()).toContain('\u001b[?25l');
    expect(text()).toContain('\u001b[?25h');
    // Cursor up to the block's first line, clear below: the redraw in place.
    // eslint-disable-next-line no-control-regex
    expect(text()).toMatch(/\u001b\[\d+F\u001b\[0J/);
    expect(text()).toContain('wave 1  ');
  });
});

describe('formatTaskResult', () => {
  it('shows the failing step, its error and the task error', () => {
    const t = task('failed', 'succeeded');
    t.finishedAt = at(3100);
    t.errorCode = 'STEP_FAILED';
    t.errorMessage = 'step render failed';
    t.waves[1].steps[0] = { ...t.waves[1].steps[0], status: 'failed', output: null, error: { code: 'TOOL_TIMEOUT', message: 'no answer in 2 s' } };
    t.waves[2].steps[0] = { ...t.waves[2].steps[0], status: 'cancelled', output: null };
    const text = formatTaskResult(t, { color: false });
    expect(text.split('\n')).toEqual([
      '',
      'Result',
      '  ✔ brief    Echo: Ziggie demo brief',
      '  ✔ numbers  The sum of 19 and 23 is 42.',
      '  ✖ render   TOOL_TIMEOUT: no answer in 2 s',
      '  · summary  (cancelled)',
      '',
      'Task t1 failed in 3.1 s — STEP_FAILED: step render failed',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// Blueprints

describe('parseBlueprintArg', () => {
  it('takes a name or name@version', () => {
    expect(parseBlueprintArg('comic-strip')).toEqual({ name: 'comic-strip' });
    expect(parseBlueprintArg(' character-variations ')).toEqual({ name: 'character-variations' });
    expect(parseBlueprintArg('comic-strip@1.0.0')).toEqual({ name: 'comic-strip', version: '1.0.0' });
    expect(parseBlueprintArg('comic-strip@2-beta.1')).toEqual({ name: 'comic-strip', version: '2-beta.1' });
  });

  it.each(['Comic Strip', 'comic-strip@', '@1.0.0', 'comic-strip@v1', 'a/b'])('refuses %p', (arg) => {
    expect(() => parseBlueprintArg(arg)).toThrow(new UsageError(`a blueprint is a name or name@version (e.g. comic-strip or comic-strip@1.0.0), got "${arg}"`));
  });
});

const comicStrip: pb.Blueprint = {
  name: 'comic-strip',
  version: '1.0.0',
  description: 'A comic strip from a prompt',
  inputSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['prompt'],
    properties: {
      prompt: { type: 'string', minLength: 3, examples: ['A moody idol finds a puppy'] },
      panels: { type: 'integer', minimum: 1, maximum: 8, default: 3 },
      title: { type: 'string', default: 'Untitled comic' },
    },
  },
  outputSchema: undefined,
  template: { steps: [] },
  outputs: {},
  builtin: true,
  createdBy: 'system',
  createdAt: at(0),
};

describe('coerceInput', () => {
  it('types a value by the input schema, text last', () => {
    expect(coerceInput('n', '4', { type: 'integer' })).toBe(4);
    expect(coerceInput('n', '-12', { type: 'integer' })).toBe(-12);
    expect(coerceInput('r', '1.5', { type: 'number' })).toBe(1.5);
    expect(coerceInput('b', 'true', { type: 'boolean' })).toBe(true);
    expect(coerceInput('b', 'false', { type: 'boolean' })).toBe(false);
    expect(coerceInput('t', '["a",1]', { type: 'array' })).toEqual(['a', 1]);
    expect(coerceInput('o', '{"k":1}', { type: 'object' })).toEqual({ k: 1 });
    expect(coerceInput('s', '42', { type: 'string' })).toBe('42');
    expect(coerceInput('e', '3', { type: ['string', 'integer'] })).toBe(3);
    expect(coerceInput('e', 'three', { type: ['string', 'integer'] })).toBe('three');
    expect(coerceInput('m', 'null', { type: ['null', 'string'] })).toBeNull();
    expect(coerceInput('u', '7', undefined)).toBe('7');
    expect(coerceInput('u', '7', {})).toBe('7');
  });

  it.each([
    ['n', 'four', { type: 'integer' }, '--input n=four: n takes an integer'],
    ['n', '2.5', { type: 'integer' }, '--input n=2.5: n takes an integer'],
    ['r', '', { type: 'number' }, '--input r=: r takes a number'],
    ['b', 'yes', { type: 'boolean' }, '--input b=yes: b takes true or false'],
    ['t', '[oops', { type: 'array' }, '--input t=[oops: t takes a JSON array'],
    ['o', '[1]', { type: 'object' }, '--input o=[1]: o takes a JSON object'],
    ['x', 'z', { type: ['integer', 'boolean'] }, '--input x=z: x takes an integer or true or false'],
  ])('refuses %s=%p for %j', (key, raw, schema, message) => {
    expect(() => coerceInput(key, raw, schema)).toThrow(new UsageError(message));
  });
});

describe('blueprintInputs', () => {
  it('merges --inputs and --input (which wins), typed by the schema', () => {
    expect(blueprintInputs(comicStrip, { inputsJson: '{"prompt":"A robot","panels":2}', inputArgs: ['panels=5', 'title=Paint=Love'] })).toEqual({
      inputs: { prompt: 'A robot', panels: 5, title: 'Paint=Love' },
      fromExamples: [],
    });
  });

  it('takes the first example for a required input that was not given', () => {
    expect(blueprintInputs(comicStrip, { inputArgs: ['panels=2'] })).toEqual({ inputs: { panels: 2, prompt: 'A moody idol finds a puppy' }, fromExamples: ['prompt'] });
    expect(blueprintInputs({ name: 'x', version: '1', inputSchema: { required: ['a'], properties: { a: { type: 'string' } } } }, {})).toEqual({ inputs: {}, fromExamples: [] });
  });

  it('passes unknown inputs through when the schema allows them', () => {
    expect(blueprintInputs({ name: 'open', version: '1', inputSchema: undefined }, { inputArgs: ['anything=1'] }).inputs).toEqual({ anything: '1' });
  });

  it.each([
    [{ inputArgs: ['panels'] }, '--input takes key=value, got "panels"'],
    [{ inputArgs: ['=3'] }, '--input takes key=value, got "=3"'],
    [{ inputArgs: ['colour=red'] }, 'comic-strip@1.0.0 has no input "colour"; its inputs are: prompt, panels, title'],
    [{ inputArgs: ['panels=lots'] }, '--input panels=lots: panels takes an integer'],
    [{ inputsJson: '{prompt:' }, /^--inputs must be a JSON object: /],
    [{ inputsJson: '["prompt"]' }, '--inputs must be a JSON object, got ["prompt"]'],
  ])('refuses %j', (args, message) => {
    let err: unknown;
    try {
      blueprintInputs(comicStrip, args);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    if (typeof message === 'string') expect((err as Error).message).toBe(message);
    else expect((err as Error).message).toMatch(message);
  });
});

describe('formatTaskOutput', () => {
  const base = task('succeeded', 'succeeded');

  it('prints the output with long strings cut short, and the bundle where it is on disk', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ziggie-demo-'));
    try {
      await mkdir(join(dir, 'bundles', 't1'), { recursive: true });
      await writeFile(join(dir, 'bundles', 't1', 'metadata.json'), '{}');
      const text = formatTaskOutput({ ...base, output: { bundle: 'bundles/t1/metadata.json', image: 'A'.repeat(500) } }, { color: false, artifactsDir: dir })!;
      expect(text.split('\n')).toEqual([
        '',
        'Output',
        '  {',
        '    "bundle": "bundles/t1/metadata.json",',
        `    "image": "${'A'.repeat(60)}… (500 characters)"`,
        '  }',
        '',
        `Bundle: ${join(dir, 'bundles', 't1', 'metadata.json')}`,
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('prints the bundle path as given when it is not on this machine, and nothing without an output', () => {
    expect(formatTaskOutput({ ...base, output: { bundle: 'bundles/t1/metadata.json' } }, { color: false, artifactsDir: '/nonexistent' })).toMatch(
      /\nBundle: bundles\/t1\/metadata\.json$/,
    );
    expect(formatTaskOutput({ ...base, output: null }, { color: false })).toBeUndefined();
    expect(formatTaskOutput({ ...base, output: {} }, { color: false })).toBeUndefined();
  });
});

/** A comic-strip task as the gateway returns it: fan-out copies are ordinary steps. */
function comicTask(status: TaskView['status'], done: boolean): TaskView {
  const s = (id: string, capability: string, wave: number, text: string, tool?: string) => restStep({
    id,
    capability,
    action: 'tool',
    workspace: 'ziggie',
    status: done ? ('succeeded' as const) : ('pending' as const),
    wave,
    agentId: done ? `agent-${id}` : null,
    output: done ? { text, content: [{ type: 'text', text }], isError: false, ...(tool ? { tool } : {}) } : null,
    startedAt: done ? at(10) : null,
    finishedAt: done ? at(90) : null,
  });
  const output = { bundle: 'bundles/t1/metadata.json', metadata: { title: 'Untitled comic', panels: [[{ type: 'image' }], [{ type: 'image' }]] } };
  return restTask({
    id: 't1',
    title: 'Blueprint comic-strip@1.0.0',
    workspace: 'ziggie',
    status,
    createdAt: at(0),
    finishedAt: done ? at(3000) : null,
    blueprint: 'comic-strip@1.0.0',
    output: done ? output : null,
    waves: [
      { index: 1, status: 'pending', steps: [s('validate-prompt', 'qa', 1, 'Echo: A robot'), s('moderate', 'qa', 1, 'Echo: A robot')] },
      { index: 2, status: 'pending', steps: [s('storyboard', 'content', 2, 'Echo: Storyboard')] },
      {
        index: 3,
        status: 'pending',
        steps: [s('panels-1', 'art', 3, 'The image above is the MCP logo.', 'everything.get-tiny-image'), s('panels-2', 'art', 3, 'The image above is the MCP logo.', 'everything.get-tiny-image')],
      },
      { index: 4, status: 'pending', steps: [s('assemble', 'ops', 4, 'Successfully wrote to bundles/t1/metadata.json')] },
    ],
  });
}

const comicEvents = [
  { type: 'task.running', at: at(5) },
  { type: 'wave.started', at: at(6), wave: 1 },
  { type: 'wave.succeeded', at: at(100), wave: 1 },
  { type: 'wave.started', at: at(200), wave: 3 },
  { type: 'step.dispatched', at: at(210), wave: 3, stepId: 'panels-2', agentId: 'agent-p2' },
  { type: 'step.succeeded', at: at(900), wave: 3, stepId: 'panels-2', agentId: 'agent-p2' },
  { type: 'task.succeeded', at: at(3000) },
];

describe('runBlueprintDemo', () => {
  let server: Server | undefined;
  let artifacts: string | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((ok) => (server ? server.close(() => ok()) : ok()));
    server = undefined;
    if (artifacts) await rm(artifacts, { recursive: true, force: true });
    artifacts = undefined;
  });

  /** Answers the routes a blueprint run uses; any other request is recorded and fails the test. */
  async function blueprintGateway(routes: Record<string, (res: ServerResponse, body: string) => void>) {
    const unexpected: string[] = [];
    const gateway = await startGatewayDouble((req, res, body) => {
      const route = routes[`${req.method} ${req.url}`];
      if (route) return route(res, body);
      unexpected.push(`${req.method} ${req.url}`);
      json(res, 500, { code: 'UNEXPECTED', detail: `the double has no route for ${req.method} ${req.url}` });
    });
    server = gateway.server;
    return { ...gateway, unexpected };
  }

  it('fetches the latest version, submits it with typed inputs, follows the fan-out live and prints the bundle', async () => {
    artifacts = await mkdtemp(join(tmpdir(), 'ziggie-artifacts-'));
    await mkdir(join(artifacts, 'bundles', 't1'), { recursive: true });
    await writeFile(join(artifacts, 'bundles', 't1', 'metadata.json'), '{}');
    const gateway = await blueprintGateway({
      'GET /v1/blueprints/comic-strip': (res) => json(res, 200, comicStrip),
      'POST /v1/tasks': (res) => json(res, 201, comicTask('queued', false)),
      'GET /v1/tasks/t1/events': (res) => sse(res, comicEvents, true),
      'GET /v1/tasks/t1': (res) => json(res, 200, comicTask('succeeded', true)),
    });
    const { out, text } = collect();
    const result = await runBlueprintDemo({
      gatewayUrl: gateway.url,
      token: 'tok',
      out,
      interactive: false,
      blueprint: 'comic-strip',
      inputsJson: '{"prompt":"A robot learns to paint"}',
      inputArgs: ['panels=2'],
      artifactsDir: artifacts,
    });

    expect(result.status).toBe('succeeded');
    expect(gateway.unexpected).toEqual([]);
    expect(gateway.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /v1/blueprints/comic-strip', 'POST /v1/tasks', 'GET /v1/tasks/t1/events', 'GET /v1/tasks/t1']);
    expect(gateway.requests.every((r) => r.auth === 'Bearer tok')).toBe(true);
    expect(JSON.parse(gateway.requests[1]!.body)).toEqual({
      title: 'Blueprint comic-strip@1.0.0',
      workspace: 'ziggie',
      blueprint: 'comic-strip@1.0.0',
      inputs: { prompt: 'A robot learns to paint', panels: 2 },
    });
    const lines = text().split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        `Submitting blueprint comic-strip@1.0.0 to ${gateway.url} (workspace ziggie)`,
        'Task t1: 6 steps in 4 waves',
        'wave 3 started: 2 steps',
        '  → panels-2 dispatched agent agent-p2',
        '  ✔ panels-2 succeeded 690 ms',
        '  ✔ panels-1         [everything.get-tiny-image] The image above is the MCP logo.',
        '  ✔ assemble         Successfully wrote to bundles/t1/metadata.json',
        'Task t1 succeeded in 3.0 s',
        'Output',
        '    "bundle": "bundles/t1/metadata.json",',
        `Bundle: ${join(artifacts, 'bundles', 't1', 'metadata.json')}`,
      ]),
    );
    expect(lines.some((l) => l.startsWith('Example inputs'))).toBe(false);
  });

  it('fetches an explicit version and fills a missing required input from the schema example', async () => {
    const gateway = await blueprintGateway({
      'GET /v1/blueprints/comic-strip/versions/1.0.0': (res) => json(res, 200, comicStrip),
      'POST /v1/tasks': (res) => json(res, 201, comicTask('succeeded', true)),
      'GET /v1/tasks/t1': (res) => json(res, 200, comicTask('succeeded', true)),
    });
    const { out, text } = collect();
    await runBlueprintDemo({ gatewayUrl: gateway.url, token: 'tok', out, interactive: false, blueprint: 'comic-strip@1.0.0' });
    expect(gateway.unexpected).toEqual([]);
    expect(JSON.parse(gateway.requests[1]!.body).inputs).toEqual({ prompt: 'A moody idol finds a puppy' });
    expect(text()).toContain('Example inputs: prompt="A moody idol finds a puppy" (choose your own with --input)');
    // Without artifacts on this machine the bundle is shown as the server reported it.
    expect(text()).toContain('\nBundle: bundles/t1/metadata.json');
  });

  it('names the available blueprints when the one asked for does not exist, and submits nothing', async () => {
    const gateway = await blueprintGateway({
      'GET /v1/blueprints/nope': (res) => json(res, 404, { code: 'BLUEPRINT_NOT_FOUND', detail: 'blueprint nope not found' }, 'application/problem+json'),
      'GET /v1/blueprints?limit=500': (res) =>
        json(res, 200, { items: [comicStrip, { ...comicStrip, name: 'character-variations' }, { ...comicStrip, version: '0.9.0' }], total: 3 }),
    });
    const { out } = collect();
    const err = await runBlueprintDemo({ gatewayUrl: gateway.url, token: 'tok', out, interactive: false, blueprint: 'nope' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DemoError);
    expect((err as Error).message).toBe('blueprint nope not found; available: character-variations@1.0.0, comic-strip@0.9.0, comic-strip@1.0.0');
    expect(gateway.unexpected).toEqual([]);
    expect(gateway.requests.some((r) => r.method === 'POST')).toBe(false);
  });

  it('says so when even the list cannot be read', async () => {
    const gateway = await blueprintGateway({
      'GET /v1/blueprints/nope/versions/2': (res) => json(res, 404, { code: 'BLUEPRINT_NOT_FOUND', detail: 'no' }),
      'GET /v1/blueprints?limit=500': (res) => json(res, 403, { code: 'AUTH_FORBIDDEN', detail: 'not for you' }),
    });
    const { out } = collect();
    await expect(runBlueprintDemo({ gatewayUrl: gateway.url, token: 'tok', out, interactive: false, blueprint: 'nope@2' })).rejects.toThrow(
      'blueprint nope@2 not found; available: unknown (GET /v1/blueprints failed: AUTH_FORBIDDEN: not for you)',
    );
    expect(gateway.unexpected).toEqual([]);
  });

  it('refuses a badly typed input before submitting anything', async () => {
    const gateway = await blueprintGateway({ 'GET /v1/blueprints/comic-strip': (res) => json(res, 200, comicStrip) });
    const { out } = collect();
    await expect(
      runBlueprintDemo({ gatewayUrl: gateway.url, token: 'tok', out, interactive: false, blueprint: 'comic-strip', inputArgs: ['panels=three'] }),
    ).rejects.toThrow(new UsageError('--input panels=three: panels takes an integer'));
    expect(gateway.requests.map((r) => r.method)).toEqual(['GET']);
    expect(gateway.unexpected).toEqual([]);
  });

  it("reports the orchestrator's input errors as they come", async () => {
    const gateway = await blueprintGateway({
      'GET /v1/blueprints/comic-strip': (res) => json(res, 200, comicStrip),
      'POST /v1/tasks': (res) =>
        json(res, 400, { code: 'BLUEPRINT_INPUT_INVALID', detail: 'inputs of comic-strip@1.0.0 are invalid: /panels must be <= 8' }, 'application/problem+json'),
    });
    const { out } = collect();
    const err = await runBlueprintDemo({ gatewayUrl: gateway.url, token: 'tok', out, interactive: false, blueprint: 'comic-strip', inputArgs: ['panels=9'] }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: 'BLUEPRINT_INPUT_INVALID', detail: 'inputs of comic-strip@1.0.0 are invalid: /panels must be <= 8' });
    expect(JSON.parse(gateway.requests[1]!.body).inputs).toEqual({ panels: 9, prompt: 'A moody idol finds a puppy' });
  });
});

describe('ziggie demo (command line)', () => {
  function parseDemo(args: string[]): Promise<{ blueprint: unknown; options: Record<string, unknown> }> {
    const program = buildProgram().exitOverride();
    const demo = program.commands.find((cmd) => cmd.name() === 'demo')!;
    return new Promise((resolve, reject) => {
      demo.action((blueprint: unknown, options: Record<string, unknown>) => resolve({ blueprint, options }));
      program.parseAsync(['node', 'ziggie', 'demo', ...args]).catch(reject);
    });
  }

  it('takes an optional blueprint, repeatable --input and --inputs', async () => {
    await expect(parseDemo([])).resolves.toEqual({ blueprint: undefined, options: expect.objectContaining({ input: [], url: 'http://127.0.0.1:4000', dataDir: '.ziggie' }) });
    const parsed = await parseDemo(['comic-strip@1.0.0', '--input', 'panels=4', '--input', 'title=Tin Sailors', '--inputs', '{"prompt":"x"}', '--timeout', '30']);
    expect(parsed).toEqual({
      blueprint: 'comic-strip@1.0.0',
      options: expect.objectContaining({ input: ['panels=4', 'title=Tin Sailors'], inputs: '{"prompt":"x"}', timeout: '30' }),
    });
  });

  it.each([
    [['--input', 'panels=4'], '--input and --inputs are for a blueprint: ziggie demo <blueprint> --input key=value'],
    [['comic-strip', '--timeout', 'soon'], '--timeout must be a positive number of seconds, got "soon"'],
    [['comic-strip', '--url', 'ftp://x'], '--url must be an http(s) URL, got "ftp://x"'],
  ])('refuses %j before contacting anything', async (args, message) => {
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['node', 'ziggie', 'demo', ...args])).toBe(1);
      expect(stderr).toHaveBeenCalledWith(expect.stringContaining(message));
    } finally {
      stderr.mockRestore();
      process.exitCode = undefined;
    }
  });
});
