import type { Server, ServerResponse } from 'node:http';
import { closeServer, listen, portOf, sendJson, type ReceivedRequest } from './http-double';

/**
 * A test double of the Ollama REST API (Ollama cannot run here): GET /api/tags and
 * POST /api/chat, /api/generate, /api/embed as documented, including their default of
 * streaming NDJSON unless the request says `"stream": false`. The "model" answers
 * "You said: <last user message or prompt>", streamed a word per chunk.
 */
export class OllamaDouble {
  readonly models = ['llama3.2:latest', 'nomic-embed-text:latest'];

  private constructor(
    private readonly server: Server,
    /** Every HTTP request received, in order. */
    readonly requests: ReceivedRequest[],
  ) {}

  static async start(port = 0): Promise<OllamaDouble> {
    const requests: ReceivedRequest[] = [];
    const server = await listen((req, res) => self.route(req, res), requests, port);
    const self = new OllamaDouble(server, requests);
    return self;
  }

  get url(): string {
    return `http://127.0.0.1:${portOf(this.server)}`;
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private known(model: unknown): string | undefined {
    const name = String(model);
    return this.models.find((m) => m === name || m === `${name}:latest`);
  }

  private route(req: ReceivedRequest, res: ServerResponse): void {
    const key = `${req.method} ${req.path}`;
    if (key === 'GET /api/tags') {
      return sendJson(res, 200, {
        models: this.models.map((name) => ({
          name,
          model: name,
          modified_at: '2025-05-01T10:00:00.000000000Z',
          size: 2_019_393_189,
          digest: 'a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72',
          details: { parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '3.2B', quantization_level: 'Q4_K_M' },
        })),
      });
    }
    if (!['POST /api/chat', 'POST /api/generate', 'POST /api/embed'].includes(key)) return sendJson(res, 404, { error: 'not found' });
    const body = req.body ?? {};
    const model = this.known(body.model);
    if (!model) return sendJson(res, 404, { error: `model "${String(body.model)}" not found, try pulling it first` });
    if (key === 'POST /api/embed') {
      const inputs: string[] = Array.isArray(body.input) ? body.input : [body.input];
      return sendJson(res, 200, {
        model,
        embeddings: inputs.map((t) => [t.length / 100, 0.5, -0.25, 0.125]),
        total_duration: 14_143_917,
        load_duration: 1_019_500,
        prompt_eval_count: inputs.length * 4,
      });
    }
    const chat = key === 'POST /api/chat';
    if (chat && !Array.isArray(body.messages)) return sendJson(res, 400, { error: 'messages is required' });
    const said = chat ? String((body.messages as { content?: unknown }[]).at(-1)?.content ?? '') : String(body.prompt ?? '');
    const reply = `You said: ${said}`;
    const stats = { total_duration: 4_883_583_458, load_duration: 1_334_875, prompt_eval_count: 26, prompt_eval_duration: 342_546_000, eval_count: 4, eval_duration: 4_535_599_000 };
    const piece = (text: string): Record<string, unknown> => (chat ? { message: { role: 'assistant', content: text } } : { response: text });
    const created_at = new Date().toISOString();
    const final = { model, created_at, ...piece(''), done: true, done_reason: 'stop', ...(chat ? {} : { context: [1, 2, 3] }), ...stats };
    if (body.stream === false) return sendJson(res, 200, { ...final, ...piece(reply) });
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for (const word of reply.match(/\S+\s*/g) ?? []) res.write(`${JSON.stringify({ model, created_at, ...piece(word), done: false })}\n`);
    res.end(`${JSON.stringify(final)}\n`);
  }
}
