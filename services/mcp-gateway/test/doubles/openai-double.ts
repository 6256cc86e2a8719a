import { randomUUID } from 'node:crypto';
import type { Server, ServerResponse } from 'node:http';
import { closeServer, listen, portOf, sendJson, type ReceivedRequest } from './http-double';

/**
 * A test double of an OpenAI-compatible inference server such as vLLM (no GPU here):
 * GET /v1/models and non-streaming POST /v1/chat/completions as documented by the OpenAI API,
 * with errors in its `{error: {message, type, param, code}}` shape. How it answers chat
 * completions is set per test: normally, with HTTP 500, never, or with an oversized reply.
 */
export type OpenAiDoubleMode = 'ok' | 'error500' | 'hang' | 'huge';

export class OpenAiDouble {
  readonly model = 'meta-llama/Llama-3.1-8B-Instruct';
  mode: OpenAiDoubleMode = 'ok';
  /** Size of the reply text in 'huge' mode. */
  hugeChars = 64 * 1024;
  private held: (() => void)[] | undefined;

  private constructor(
    private readonly server: Server,
    /** Every HTTP request received, in order. */
    readonly requests: ReceivedRequest[],
  ) {}

  static async start(port = 0): Promise<OpenAiDouble> {
    const requests: ReceivedRequest[] = [];
    const server = await listen((req, res) => self.route(req, res), requests, port);
    const self = new OpenAiDouble(server, requests);
    return self;
  }

  get port(): number {
    return portOf(this.server);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Chat completions received so far. */
  get completions(): ReceivedRequest[] {
    return this.requests.filter((r) => r.path === '/v1/chat/completions');
  }

  /** Holds chat completion answers until release(), so that calls pile up as outstanding. */
  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const answer of held) answer();
  }

  close(): Promise<void> {
    this.held = undefined;
    return closeServer(this.server);
  }

  private route(req: ReceivedRequest, res: ServerResponse): void {
    const key = `${req.method} ${req.path}`;
    if (key === 'GET /v1/models') {
      return sendJson(res, 200, { object: 'list', data: [{ id: this.model, object: 'model', created: 1_715_000_000, owned_by: 'vllm', max_model_len: 8192 }] });
    }
    if (key !== 'POST /v1/chat/completions') return sendJson(res, 404, { error: { message: `no route ${key}`, type: 'NotFoundError', param: null, code: 404 } });
    const answer = (): void => this.complete(req, res);
    if (this.held) this.held.push(answer);
    else answer();
  }

  private complete(req: ReceivedRequest, res: ServerResponse): void {
    if (this.mode === 'hang') return; // never answers; close() drops the connection
    if (this.mode === 'error500') return sendJson(res, 500, { error: { message: 'CUDA error: out of memory', type: 'InternalServerError', param: null, code: 500 } });
    const body = req.body ?? {};
    if (body.model !== this.model) {
      return sendJson(res, 404, { error: { message: `The model \`${String(body.model)}\` does not exist.`, type: 'NotFoundError', param: 'model', code: 404 } });
    }
    const said = String((body.messages as { content?: unknown }[] | undefined)?.at(-1)?.content ?? '');
    const content = this.mode === 'huge' ? 'x'.repeat(this.hugeChars) : `You said: ${said}`;
    sendJson(res, 200, {
      id: `chatcmpl-${randomUUID()}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: this.model,
      choices: [{ index: 0, message: { role: 'assistant', content }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
    });
  }
}
