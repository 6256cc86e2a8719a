import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import type { Task } from './api';
import { ApiError } from './api';
import { DEMO_TASK, DemoError, formatTaskResult, runDemo } from './demo';

const T0 = Date.parse('2026-01-01T10:00:00.000Z');
const at = (ms: number): string => new Date(T0 + ms).toISOString();

function task(status: Task['status'], stepStatus: 'pending' | 'succeeded'): Task {
  const s = (id: string, capability: string, wave: number, text: string) => ({
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
  return {
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
  };
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

async function serve(handler: Handler): Promise<{ url: string; server: Server; requests: Array<{ method?: string; url?: string; auth?: string; body: string }> }> {
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
    const fake = await serve((req, res) => {
      if (req.method === 'POST' && req.url === '/v1/tasks') return json(res, 201, task('queued', 'pending'));
      if (req.url === '/v1/tasks/t1/events') return sse(res, happyEvents, true);
      if (req.url === '/v1/tasks/t1') return json(res, 200, task('succeeded', 'succeeded'));
      json(res, 404, {});
    });
    server = fake.server;
    const { out, text } = collect();
    const result = await runDemo({ gatewayUrl: `${fake.url}/`, token: 'tok', out, interactive: false });

    expect(result.status).toBe('succeeded');
    const post = fake.requests[0];
    expect(post).toMatchObject({ method: 'POST', url: '/v1/tasks', auth: 'Bearer tok' });
    expect(JSON.parse(post.body)).toEqual(DEMO_TASK);
    expect(fake.requests.map((r) => r.url)).toEqual(['/v1/tasks', '/v1/tasks/t1/events', '/v1/tasks/t1']);
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
    const fake = await serve((req, res) => {
      if (req.method === 'POST') return json(res, 201, task('queued', 'pending'));
      if (req.url === '/v1/tasks/t1/events') return sse(res, happyEvents.slice(0, 2), true);
      polls += 1;
      return json(res, 200, polls < 3 ? task('running', 'pending') : task('succeeded', 'succeeded'));
    });
    server = fake.server;
    const { out, text } = collect();
    const result = await runDemo({ gatewayUrl: fake.url, token: 'tok', out, interactive: false, pollIntervalMs: 20 });
    expect(result.status).toBe('succeeded');
    expect(text()).toContain('event stream lost (the server closed the stream early); polling GET /v1/tasks/t1 every 20 ms');
    expect(text()).toContain('task succeeded in 4.2 s');
    expect(polls).toBe(4);
  });

  it('reports problem+json errors with their code and detail', async () => {
    const fake = await serve((_req, res) =>
      json(
        res,
        403,
        { type: 'about:blank', title: 'Forbidden', status: 403, code: 'AUTH_FORBIDDEN', detail: 'missing agent:dispatch', correlationId: 'c-1' },
        'application/problem+json',
      ),
    );
    server = fake.server;
    const { out } = collect();
    const err = await runDemo({ gatewayUrl: fake.url, token: 'tok', out, interactive: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 403, code: 'AUTH_FORBIDDEN', detail: 'missing agent:dispatch' });
    expect((err as Error).message).toBe('AUTH_FORBIDDEN: missing agent:dispatch (correlation id c-1)');
  });

  it('gives up after its time bound with a clear message', async () => {
    const fake = await serve((req, res) => {
      if (req.method === 'POST') return json(res, 201, task('queued', 'pending'));
      if (req.url === '/v1/tasks/t1/events') return sse(res, happyEvents.slice(0, 1), false);
      json(res, 200, task('running', 'pending'));
    });
    server = fake.server;
    const { out } = collect();
    const err = await runDemo({ gatewayUrl: fake.url, token: 'tok', out, interactive: false, timeoutMs: 300 }).catch(
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
    const fake = await serve((req, res) => {
      if (req.method === 'POST') return json(res, 201, task('queued', 'pending'));
      if (req.url === '/v1/tasks/t1/events') return sse(res, happyEvents, true);
      json(res, 200, task('succeeded', 'succeeded'));
    });
    server = fake.server;
    const { out, text } = collect();
    await runDemo({ gatewayUrl: fake.url, token: 'tok', out, interactive: true });
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
