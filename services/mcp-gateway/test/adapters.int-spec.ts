import { ZiggieError } from '@ziggie/contracts';
import type { UpstreamConfig } from '../src/config';
import type { AdapterOptions } from '../src/adapters/base';
import { ComfyUiAdapter } from '../src/adapters/comfyui';
import { OllamaAdapter } from '../src/adapters/ollama';
import { OpenAiPoolAdapter } from '../src/adapters/openai-pool';
import type { CallOptions, ProgressUpdate, ProviderStatus, ToolProvider } from '../src/providers/provider';
import { waitFor } from '../../../test/support/processes';
import { ComfyUiDouble } from './doubles/comfyui-double';
import { OllamaDouble } from './doubles/ollama-double';
import { OpenAiDouble } from './doubles/openai-double';

type Config<T extends string> = Extract<UpstreamConfig, { transport: T }>;

/** Everything a test starts is stopped after it, adapters first (they hold connections to the doubles). */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function track<T extends { close(): Promise<void> }>(double: T): T {
  cleanups.push(() => double.close());
  return double;
}

const call = (over: Partial<CallOptions> = {}): CallOptions => ({ timeoutMs: 10_000, maxResponseBytes: 1024 * 1024, ...over });

interface Started<A extends ToolProvider> {
  adapter: A;
  statuses: ProviderStatus[];
  breakerChanges: [string, string][];
}

async function startAdapter<A extends ToolProvider>(make: (onChange: (p: ToolProvider) => void, opts: AdapterOptions) => A, breakerFailures = 3): Promise<Started<A>> {
  const statuses: ProviderStatus[] = [];
  const breakerChanges: [string, string][] = [];
  const adapter = make((p) => statuses.push(p.status), {
    // Long enough that no breaker half-opens during a test.
    breaker: { failures: breakerFailures, halfOpenAfterMs: 600_000 },
    onBreakerChange: (id, state) => breakerChanges.push([id, state]),
  });
  // Pushed before start so that a failing start is still cleaned up after it.
  cleanups.push(() => adapter.stop());
  await adapter.start();
  return { adapter, statuses, breakerChanges };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

function text(result: { content: unknown[] }): string {
  return (result.content as { type: string; text?: string }[]).map((c) => c.text ?? '').join('\n');
}

describe('ComfyUI adapter against a ComfyUI API test double', () => {
  const workflow = (ckpt = 'sd15.safetensors') => ({
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: ckpt } },
    '3': { class_type: 'KSampler', inputs: { seed: 42, steps: 3, cfg: 7, sampler_name: 'euler', scheduler: 'normal', denoise: 1, model: ['4', 0] } },
    '9': { class_type: 'SaveImage', inputs: { filename_prefix: 'ComfyUI', images: ['3', 0] } },
  });

  async function setup(headers: Config<'comfyui'>['headers'] = {}) {
    const double = track(await ComfyUiDouble.start());
    const config: Config<'comfyui'> = { name: 'comfy', transport: 'comfyui', urls: [double.url], headers };
    const started = await startAdapter((onChange, opts) => new ComfyUiAdapter(config, onChange, opts));
    return { double, ...started };
  }

  it('exposes static tool definitions with closed input schemas', async () => {
    const { adapter } = await setup();
    expect(adapter.tools.map((t) => t.name)).toEqual(['run_workflow', 'queue_status']);
    for (const tool of adapter.tools) {
      expect(tool.inputSchema).toMatchObject({ type: 'object', additionalProperties: false });
      expect(tool.title).toBeTruthy();
      expect(tool.annotations).toBeDefined();
    }
    expect(adapter.resources).toEqual([]);
    expect(adapter.prompts).toEqual([]);
  });

  it('runs a workflow: relays its 3 progress messages in order, then returns the output file references', async () => {
    process.env.COMFY_TEST_TOKEN = 'Bearer comfy-secret';
    const { double, adapter, statuses } = await setup({ authorization: { secretEnv: 'COMFY_TEST_TOKEN' } });
    expect(adapter.status).toBe('ready');
    expect(statuses).toEqual(['ready']);

    const progress: ProgressUpdate[] = [];
    const result = await adapter.callTool('run_workflow', { workflow: workflow() }, call({ onProgress: (p) => progress.push(p) }));

    expect(result.isError).toBeFalsy();
    expect(progress).toEqual([
      { progress: 1, message: 'node 3 1/3' },
      { progress: 2, message: 'node 3 2/3' },
      { progress: 3, message: 'node 3 3/3' },
    ]);
    const posted = double.requests.find((r) => r.path === '/prompt')!;
    expect(posted.body!.prompt).toEqual(workflow());
    // The prompt names the client id the WebSocket was opened with, so progress reaches this socket.
    expect(double.sockets).toHaveLength(1);
    expect(posted.body!.client_id).toBe(double.sockets[0]!.clientId);
    expect(double.sockets[0]!.headers.authorization).toBe('Bearer comfy-secret');
    expect(posted.headers.authorization).toBe('Bearer comfy-secret');

    const promptId = (result.structuredContent as { promptId: string }).promptId;
    const url = `${double.url}/view?filename=ComfyUI_00001_.png&subfolder=&type=output`;
    expect(result.structuredContent).toEqual({ promptId, files: [{ filename: 'ComfyUI_00001_.png', subfolder: '', type: 'output', node: '9', url }] });
    expect(double.requests.some((r) => r.path === `/history/${promptId}`)).toBe(true);
    expect(text(result)).toContain(url);
    // The reference is a URL the backend serves.
    expect((await fetch(url)).status).toBe(200);
    await waitFor(() => double.openSockets === 0, { what: 'the WebSocket closed' });
  });

  it('does not lose WebSocket messages that arrive before POST /prompt answers', async () => {
    const { double, adapter } = await setup();
    double.behaviour = { runBeforeAnswer: true };
    const progress: ProgressUpdate[] = [];
    const result = await adapter.callTool('run_workflow', { workflow: workflow() }, call({ onProgress: (p) => progress.push(p) }));
    expect(result.isError).toBeFalsy();
    expect(progress.map((p) => p.progress)).toEqual([1, 2, 3]);
    expect((result.structuredContent as { files: unknown[] }).files).toHaveLength(1);
  });

  it('answers node_errors from POST /prompt (HTTP 400) with an error result, not a breaker failure', async () => {
    const { adapter } = await setup();
    const result = await adapter.callTool('run_workflow', { workflow: workflow('missing.safetensors') }, call());
    expect(result.isError).toBe(true);
    expect(text(result)).toContain('Prompt outputs failed validation');
    expect(text(result)).toContain("node 4 (CheckpointLoaderSimple): Value not in list: ckpt_name: 'missing.safetensors'");
    expect(result.structuredContent).toMatchObject({ node_errors: { '4': { class_type: 'CheckpointLoaderSimple' } } });
    expect(adapter.replicas()).toEqual([expect.objectContaining({ up: true, breaker: 'closed', outstanding: 0 })]);
  });

  it('answers execution_error with an error result', async () => {
    const { double, adapter } = await setup();
    double.behaviour = { failNode: '3' };
    const result = await adapter.callTool('run_workflow', { workflow: workflow() }, call());
    expect(result.isError).toBe(true);
    expect(text(result)).toContain('node 3 (KSampler) failed: torch.OutOfMemoryError: CUDA out of memory');
    expect(result.structuredContent).toMatchObject({ error: { node_id: '3', exception_type: 'torch.OutOfMemoryError' } });
  });

  it('on cancellation interrupts the running prompt and closes the socket', async () => {
    const { double, adapter } = await setup();
    double.behaviour = { hold: true };
    const controller = new AbortController();
    const progress: ProgressUpdate[] = [];
    const running = adapter.callTool(
      'run_workflow',
      { workflow: workflow() },
      call({
        signal: controller.signal,
        onProgress: (p) => {
          progress.push(p);
          if (progress.length === 3) controller.abort(new Error('caller went away'));
        },
      }),
    );
    const err = await rejection(running);
    expect((err as Error).message).toBe('caller went away');
    // The adapter looked the prompt up in the queue, found it running, and interrupted exactly it.
    expect(double.queued).toHaveLength(1);
    expect(double.requests.some((r) => r.method === 'GET' && r.path === '/queue')).toBe(true);
    expect(double.interrupts).toEqual([{ prompt_id: double.queued[0] }]);
    await waitFor(() => double.openSockets === 0, { what: 'the WebSocket closed' });
    // A cancelled call is not an upstream failure.
    expect(adapter.replicas()[0]).toMatchObject({ up: true, breaker: 'closed', outstanding: 0 });
  });

  it('stop() ends a running call and closes its WebSocket', async () => {
    const { double, adapter } = await setup();
    double.behaviour = { hold: true };
    let progressed = 0;
    const running = adapter.callTool('run_workflow', { workflow: workflow() }, call({ onProgress: () => progressed++ }));
    await waitFor(() => progressed === 3, { what: 'the run to report progress' });
    const queue = await adapter.callTool('queue_status', {}, call());
    expect(queue.structuredContent).toMatchObject({ running: 1, pending: 0 });
    await adapter.stop();
    const err = await rejection(running);
    expect((err as ZiggieError).code).toBe('UPSTREAM_UNAVAILABLE');
    await waitFor(() => double.openSockets === 0, { what: 'the WebSocket closed' });
  });

  it('reports the queue of an endpoint', async () => {
    const { adapter, double } = await setup();
    const result = await adapter.callTool('queue_status', {}, call());
    expect(result.structuredContent).toEqual({ running: 0, pending: 0, endpoint: double.url });
  });

  it('answers arguments that do not match the schema with an error result', async () => {
    const { adapter, double } = await setup();
    const result = await adapter.callTool('run_workflow', { workflow: { '1': { inputs: {} } }, extra: 1 }, call());
    expect(result.isError).toBe(true);
    expect(double.requests.filter((r) => r.path === '/prompt')).toHaveLength(0);
  });
});

describe('Ollama adapter against an Ollama API test double', () => {
  async function setup() {
    const double = track(await OllamaDouble.start());
    const config: Config<'ollama'> = { name: 'ollama', transport: 'ollama', urls: [double.url], headers: { 'x-team': 'ziggie' } };
    const started = await startAdapter((onChange, opts) => new OllamaAdapter(config, onChange, opts));
    return { double, ...started };
  }
  const last = (double: OllamaDouble, path: string) => double.requests.filter((r) => r.path === path).at(-1)!;

  it('probes GET /api/tags on start and becomes ready', async () => {
    const { double, adapter, statuses } = await setup();
    expect(adapter.status).toBe('ready');
    expect(statuses).toEqual(['ready']);
    expect(double.requests[0]).toMatchObject({ method: 'GET', path: '/api/tags' });
    expect(double.requests[0]!.headers['x-team']).toBe('ziggie');
  });

  it('chat sends stream:false to /api/chat and returns the message with its counters', async () => {
    const { double, adapter } = await setup();
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hello there' },
    ];
    const result = await adapter.callTool('chat', { model: 'llama3.2', messages, options: { temperature: 0 } }, call());
    expect(last(double, '/api/chat').body).toEqual({ model: 'llama3.2', messages, options: { temperature: 0 }, stream: false });
    expect(text(result)).toBe('You said: hello there');
    expect(result.structuredContent).toMatchObject({ model: 'llama3.2:latest', message: { role: 'assistant', content: 'You said: hello there' }, done: true, done_reason: 'stop', eval_count: 4 });
  });

  it('generate sends stream:false to /api/generate and returns the response without the token context', async () => {
    const { double, adapter } = await setup();
    const result = await adapter.callTool('generate', { model: 'llama3.2', prompt: 'why is the sky blue?', system: 'You are a physicist.' }, call());
    expect(last(double, '/api/generate').body).toEqual({ model: 'llama3.2', prompt: 'why is the sky blue?', system: 'You are a physicist.', stream: false });
    expect(text(result)).toBe('You said: why is the sky blue?');
    expect(result.structuredContent).toMatchObject({ response: 'You said: why is the sky blue?', done_reason: 'stop', eval_count: 4 });
    expect(result.structuredContent).not.toHaveProperty('context');
  });

  it('embed posts the input to /api/embed and returns the embeddings', async () => {
    const { double, adapter } = await setup();
    const result = await adapter.callTool('embed', { model: 'nomic-embed-text', input: ['first text', 'second'] }, call());
    expect(last(double, '/api/embed').body).toEqual({ model: 'nomic-embed-text', input: ['first text', 'second'] });
    expect(result.structuredContent).toMatchObject({ model: 'nomic-embed-text:latest', embeddings: [[0.1, 0.5, -0.25, 0.125], [0.06, 0.5, -0.25, 0.125]] });
    expect(text(result)).toBe('2 embedding(s) of dimension 4 from nomic-embed-text:latest');
    const single = await adapter.callTool('embed', { model: 'nomic-embed-text', input: 'one' }, call());
    expect(last(double, '/api/embed').body).toEqual({ model: 'nomic-embed-text', input: 'one' });
    expect((single.structuredContent as { embeddings: unknown[] }).embeddings).toHaveLength(1);
  });

  it('list_models returns the models of GET /api/tags', async () => {
    const { adapter } = await setup();
    const result = await adapter.callTool('list_models', {}, call());
    expect(text(result)).toBe('llama3.2:latest\nnomic-embed-text:latest');
    expect((result.structuredContent as { models: { name: string; details: object }[] }).models[0]).toMatchObject({ name: 'llama3.2:latest', details: { family: 'llama' } });
  });

  it('streams chat and generate as NDJSON when the caller wants progress, counting chunks', async () => {
    const { double, adapter } = await setup();
    const chatProgress: ProgressUpdate[] = [];
    const chat = await adapter.callTool('chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'one two three' }] }, call({ onProgress: (p) => chatProgress.push(p) }));
    expect(last(double, '/api/chat').body).toMatchObject({ model: 'llama3.2', stream: true });
    expect(text(chat)).toBe('You said: one two three');
    expect(chat.structuredContent).toMatchObject({ message: { role: 'assistant', content: 'You said: one two three' }, done: true, done_reason: 'stop', eval_count: 4 });
    // Five word chunks and the final done chunk; the message is the answer's length so far.
    expect(chatProgress.map((p) => p.progress)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(chatProgress.at(-1)!.message).toBe(`${'You said: one two three'.length} characters`);

    const genProgress: ProgressUpdate[] = [];
    const gen = await adapter.callTool('generate', { model: 'llama3.2', prompt: 'stream me' }, call({ onProgress: (p) => genProgress.push(p) }));
    expect(last(double, '/api/generate').body).toMatchObject({ model: 'llama3.2', prompt: 'stream me', stream: true });
    expect(text(gen)).toBe('You said: stream me');
    expect(gen.structuredContent).toMatchObject({ response: 'You said: stream me', done: true });
    expect(gen.structuredContent).not.toHaveProperty('context');
    expect(genProgress.map((p) => p.progress)).toEqual([1, 2, 3, 4, 5]);
  });

  it('answers an unknown model (HTTP 404) with an error result carrying Ollama’s message', async () => {
    const { adapter } = await setup();
    const result = await adapter.callTool('chat', { model: 'nope', messages: [{ role: 'user', content: 'hi' }] }, call());
    expect(result.isError).toBe(true);
    expect(text(result)).toContain('model "nope" not found, try pulling it first');
    expect(adapter.replicas()[0]).toMatchObject({ up: true, breaker: 'closed' });
  });

  it('refuses a streamed answer larger than maxResponseBytes', async () => {
    const { adapter } = await setup();
    const err = await rejection(
      adapter.callTool('generate', { model: 'llama3.2', prompt: 'word '.repeat(2000) }, call({ maxResponseBytes: 4096, onProgress: () => undefined })),
    );
    expect(err).toBeInstanceOf(ZiggieError);
    expect((err as ZiggieError).code).toBe('UPSTREAM_RESPONSE_TOO_LARGE');
  });
});

describe('OpenAI-compatible pool adapter against inference-server test doubles', () => {
  async function setup(count: number, over: Partial<Config<'openai'>> = {}, breakerFailures = 3) {
    const doubles: OpenAiDouble[] = [];
    for (let i = 0; i < count; i++) doubles.push(track(await OpenAiDouble.start()));
    const config: Config<'openai'> = { name: 'pool', transport: 'openai', urls: doubles.map((d) => d.url), headers: {}, defaultModel: doubles[0]!.model, ...over };
    const started = await startAdapter((onChange, opts) => new OpenAiPoolAdapter(config, onChange, opts), breakerFailures);
    return { doubles, ...started };
  }
  const ask = (content = 'hi') => ({ messages: [{ role: 'user', content }] });

  it('runs a non-streaming chat completion with the default model and names the endpoint that served it', async () => {
    const { doubles, adapter } = await setup(1);
    const result = await adapter.callTool('chat_completion', { ...ask('hello'), temperature: 0.2, max_tokens: 16 }, call());
    expect(doubles[0]!.completions[0]!.body).toEqual({ model: doubles[0]!.model, ...ask('hello'), temperature: 0.2, max_tokens: 16, stream: false });
    expect(text(result)).toBe('You said: hello');
    expect(result.structuredContent).toMatchObject({
      model: doubles[0]!.model,
      choices: [{ index: 0, message: { role: 'assistant', content: 'You said: hello' }, finish_reason: 'stop' }],
      usage: { total_tokens: 17 },
      endpoint: doubles[0]!.url,
    });
    expect((result.structuredContent as { id: string }).id).toMatch(/^chatcmpl-/);

    const models = await adapter.callTool('list_models', {}, call());
    expect(text(models)).toBe(doubles[0]!.model);
  });

  it('accepts endpoints configured with the /v1 base that OpenAI clients use', async () => {
    const double = track(await OpenAiDouble.start());
    const config: Config<'openai'> = { name: 'pool', transport: 'openai', urls: [`${double.url}/v1`], headers: {}, defaultModel: double.model };
    const { adapter } = await startAdapter((onChange, opts) => new OpenAiPoolAdapter(config, onChange, opts));
    expect(adapter.status).toBe('ready');
    const result = await adapter.callTool('chat_completion', ask(), call());
    expect(result.isError).toBeFalsy();
    expect(double.completions).toHaveLength(1);
  });

  it('spreads 20 concurrent calls over both endpoints by least outstanding requests', async () => {
    const { doubles, adapter } = await setup(2);
    for (const d of doubles) d.hold();
    const calls = Array.from({ length: 20 }, (_, i) => adapter.callTool('chat_completion', ask(`call ${i}`), call()));
    await waitFor(() => doubles[0]!.completions.length + doubles[1]!.completions.length === 20, { what: '20 calls at the doubles' });
    expect(adapter.replicas().reduce((n, r) => n + r.outstanding, 0)).toBe(20);
    for (const d of doubles) d.release();
    const results = await Promise.all(calls);
    const served = results.map((r) => (r.structuredContent as { endpoint: string }).endpoint);
    const [a, b] = doubles.map((d) => served.filter((e) => e === d.url).length);
    expect(a! + b!).toBe(20);
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
    expect(Math.abs(a! - b!)).toBeLessThanOrEqual(2);
    expect(doubles.map((d) => d.completions.length)).toEqual([a, b]);
    expect(adapter.replicas().map((r) => r.outstanding)).toEqual([0, 0]);
  });

  it('opens the breaker of an endpoint that keeps answering 500 while the other keeps serving', async () => {
    const { doubles, adapter, breakerChanges } = await setup(2);
    const [good, bad] = doubles as [OpenAiDouble, OpenAiDouble];
    bad.mode = 'error500';
    const failures: unknown[] = [];
    for (let i = 0; i < 20 && adapter.replicas()[1]!.breaker !== 'open'; i++) {
      await adapter.callTool('chat_completion', ask(), call()).catch((err: unknown) => failures.push(err));
    }
    expect(adapter.replicas()).toEqual([
      { id: good.url, up: true, breaker: 'closed', outstanding: 0 },
      { id: bad.url, up: true, breaker: 'open', outstanding: 0 },
    ]);
    expect(breakerChanges).toEqual([[bad.url, 'open']]);
    expect(failures).toHaveLength(3);
    for (const err of failures) {
      expect(err).toBeInstanceOf(ZiggieError);
      expect((err as ZiggieError).code).toBe('TOOL_CALL_FAILED');
      expect((err as ZiggieError).message).toContain('CUDA error: out of memory');
    }
    const badBefore = bad.completions.length;
    for (let i = 0; i < 10; i++) {
      const result = await adapter.callTool('chat_completion', ask(), call());
      expect((result.structuredContent as { endpoint: string }).endpoint).toBe(good.url);
    }
    expect(bad.completions).toHaveLength(badBefore);
  });

  it('answers a refused request (HTTP 404 unknown model) with an error result that does not count against the breaker', async () => {
    const { adapter } = await setup(1, {}, 1);
    const result = await adapter.callTool('chat_completion', { model: 'gpt-nope', ...ask() }, call());
    expect(result.isError).toBe(true);
    expect(text(result)).toContain('The model `gpt-nope` does not exist.');
    expect(adapter.replicas()[0]).toMatchObject({ up: true, breaker: 'closed' });
  });

  it('answers a call without a model and without a default model with an error result', async () => {
    const { adapter, doubles } = await setup(1, { defaultModel: undefined });
    const result = await adapter.callTool('chat_completion', ask(), call());
    expect(result.isError).toBe(true);
    expect(text(result)).toContain('model is required');
    expect(doubles[0]!.completions).toHaveLength(0);
  });

  it('turns an endpoint that never answers into UPSTREAM_TIMEOUT', async () => {
    const { doubles, adapter } = await setup(1);
    doubles[0]!.mode = 'hang';
    const err = await rejection(adapter.callTool('chat_completion', ask(), call({ timeoutMs: 300 })));
    expect(err).toBeInstanceOf(ZiggieError);
    expect((err as ZiggieError).code).toBe('UPSTREAM_TIMEOUT');
    expect(doubles[0]!.completions).toHaveLength(1);
  });

  it('passes the caller’s cancellation through', async () => {
    const { doubles, adapter } = await setup(1);
    doubles[0]!.mode = 'hang';
    const controller = new AbortController();
    const running = adapter.callTool('chat_completion', ask(), call({ signal: controller.signal }));
    await waitFor(() => doubles[0]!.completions.length === 1, { what: 'the request at the double' });
    controller.abort(new Error('cancelled by the caller'));
    expect(((await rejection(running)) as Error).message).toBe('cancelled by the caller');
    expect(adapter.replicas()[0]).toMatchObject({ breaker: 'closed', outstanding: 0 });
  });

  it('refuses a response larger than maxResponseBytes with UPSTREAM_RESPONSE_TOO_LARGE', async () => {
    const { doubles, adapter } = await setup(1);
    doubles[0]!.mode = 'huge';
    const err = await rejection(adapter.callTool('chat_completion', ask(), call({ maxResponseBytes: 8 * 1024 })));
    expect(err).toBeInstanceOf(ZiggieError);
    expect((err as ZiggieError).code).toBe('UPSTREAM_RESPONSE_TOO_LARGE');
    expect(adapter.replicas()[0]).toMatchObject({ up: true, breaker: 'closed' });
  });

  it('reports failed when the backend is down at start, and becomes ready once it comes up', async () => {
    // A port that was just in use and is now free: start a double there, note the port, stop it.
    const probe = await OpenAiDouble.start();
    const port = probe.port;
    await probe.close();
    const config: Config<'openai'> = { name: 'pool', transport: 'openai', urls: [`http://127.0.0.1:${port}`], headers: {}, defaultModel: probe.model };
    const { adapter, statuses } = await startAdapter((onChange, opts) => new OpenAiPoolAdapter(config, onChange, opts));
    expect(adapter.status).toBe('failed');
    expect(adapter.lastError).toContain(`127.0.0.1:${port}`);
    expect(statuses).toEqual(['failed']);
    expect(adapter.replicas()).toEqual([{ id: `http://127.0.0.1:${port}`, up: false, breaker: 'closed', outstanding: 0 }]);
    expect(((await rejection(adapter.callTool('chat_completion', ask(), call()))) as ZiggieError).code).toBe('UPSTREAM_UNAVAILABLE');

    const double = track(await OpenAiDouble.start(port));
    await waitFor(() => adapter.status === 'ready', { timeoutMs: 15_000, what: 'the adapter to find the backend' });
    expect(statuses).toEqual(['failed', 'ready']);
    expect(adapter.lastError).toBe('');
    const result = await adapter.callTool('chat_completion', ask(), call());
    expect(result.isError).toBeFalsy();
    expect(double.completions).toHaveLength(1);
  });

  it('marks an endpoint down when it goes away and keeps serving from the other', async () => {
    const { doubles, adapter } = await setup(2);
    await doubles[1]!.close();
    const outcomes = await Promise.allSettled(Array.from({ length: 4 }, () => adapter.callTool('chat_completion', ask(), call())));
    const failed = outcomes.filter((o) => o.status === 'rejected');
    for (const f of failed) expect(((f as PromiseRejectedResult).reason as ZiggieError).code).toBe('UPSTREAM_UNAVAILABLE');
    expect(adapter.replicas()[1]).toMatchObject({ up: false });
    expect(adapter.status).toBe('ready');
    const result = await adapter.callTool('chat_completion', ask(), call());
    expect((result.structuredContent as { endpoint: string }).endpoint).toBe(doubles[0]!.url);
  });
});
