import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import { ZiggieError } from '@ziggie/contracts';
import { z } from 'zod';
import type { CallOptions, CatalogChanged, ProgressUpdate } from '../providers/provider';
import type { AdapterConfig, AdapterOptions, CallContext } from './base';
import { defineTool, HttpAdapter, parseArgs, textResult } from './base';

export type OllamaConfig = Extract<AdapterConfig, { transport: 'ollama' }>;

const model = z.string().min(1).describe('Model name as Ollama knows it, e.g. "llama3.2" or "qwen2.5:7b".');
const options = z.record(z.string(), z.unknown()).describe('Model parameters (temperature, num_ctx, seed, …) as in the Ollama Modelfile.');
const format = z
  .union([z.literal('json'), z.record(z.string(), z.unknown())])
  .describe('"json", or a JSON Schema the answer must follow.');

const ChatArgs = z
  .object({
    model,
    messages: z
      .array(
        z
          .object({
            role: z.enum(['system', 'user', 'assistant', 'tool']),
            content: z.string(),
            images: z.array(z.string()).optional().describe('Base64-encoded images, for multimodal models.'),
          })
          .strict(),
      )
      .min(1),
    options: options.optional(),
    format: format.optional(),
  })
  .strict();

const GenerateArgs = z
  .object({
    model,
    prompt: z.string(),
    system: z.string().optional().describe('System message, overriding the one in the Modelfile.'),
    options: options.optional(),
  })
  .strict();

const EmbedArgs = z
  .object({
    model,
    input: z.union([z.string(), z.array(z.string()).min(1)]).describe('Text, or a list of texts, to embed.'),
  })
  .strict();

const ListModelsArgs = z.object({}).strict();

const local = { openWorldHint: false } as const;
const TOOLS: readonly Tool[] = [
  defineTool('chat', 'Chat with an Ollama model', 'Sends a conversation to a local Ollama model and returns its reply.', ChatArgs, { readOnlyHint: true, ...local }),
  defineTool('generate', 'Generate text with an Ollama model', 'Completes a prompt with a local Ollama model.', GenerateArgs, { readOnlyHint: true, ...local }),
  defineTool('embed', 'Embed text with an Ollama model', 'Returns embedding vectors for one or more texts.', EmbedArgs, { readOnlyHint: true, idempotentHint: true, ...local }),
  defineTool('list_models', 'List Ollama models', 'Lists the models available on the Ollama server.', ListModelsArgs, { readOnlyHint: true, idempotentHint: true, ...local }),
];

type Json = Record<string, unknown>;

/**
 * `context` (generate) is the deprecated token-id list for continuing a conversation: large,
 * and meaningless to an MCP client.
 */
function withoutContext(body: Json): Json {
  const { context: _context, ...rest } = body;
  return rest;
}

/** Ollama's REST API as MCP tools: /api/chat, /api/generate, /api/embed, /api/tags. */
export class OllamaAdapter extends HttpAdapter<OllamaConfig> {
  readonly tools = TOOLS;
  protected readonly probePath = 'api/tags';

  constructor(config: OllamaConfig, onChange: CatalogChanged, opts: AdapterOptions) {
    super(config, onChange, opts);
  }

  protected async invoke(tool: string, args: Record<string, unknown>, opts: CallOptions): Promise<CallToolResult> {
    switch (tool) {
      case 'chat': {
        const parsed = parseArgs(ChatArgs, args);
        if (!parsed.ok) return parsed.result;
        return this.run(opts, (ctx) => this.complete(ctx, 'api/chat', parsed.value, opts.onProgress));
      }
      case 'generate': {
        const parsed = parseArgs(GenerateArgs, args);
        if (!parsed.ok) return parsed.result;
        return this.run(opts, (ctx) => this.complete(ctx, 'api/generate', parsed.value, opts.onProgress));
      }
      case 'embed': {
        const parsed = parseArgs(EmbedArgs, args);
        if (!parsed.ok) return parsed.result;
        return this.run(opts, (ctx) => this.embed(ctx, parsed.value));
      }
      case 'list_models': {
        const parsed = parseArgs(ListModelsArgs, args);
        if (!parsed.ok) return parsed.result;
        return this.run(opts, (ctx) => this.listModels(ctx));
      }
      default:
        throw new ZiggieError('TOOL_NOT_FOUND', `${this.name} has no tool ${tool}`);
    }
  }

  /** chat and generate: one JSON answer, or NDJSON chunks when the caller wants progress. */
  private async complete(ctx: CallContext, path: 'api/chat' | 'api/generate', args: Json, onProgress?: (p: ProgressUpdate) => void): Promise<CallToolResult> {
    const stream = onProgress !== undefined;
    const res = await this.request(ctx, path, { body: { ...args, stream } });
    if (!res.ok) return this.clientError(ctx, res, `POST /${path}`);
    const body = stream ? await this.collect(ctx, res, path, onProgress) : await this.readJson<Json>(ctx, res);
    if (typeof body.error === 'string') {
      throw new ZiggieError('TOOL_CALL_FAILED', `${this.name} (${ctx.endpoint.id}) failed on /${path}: ${body.error}`, { endpoint: ctx.endpoint.id });
    }
    const text = path === 'api/chat' ? String((body.message as Json | undefined)?.content ?? '') : String(body.response ?? '');
    return textResult(text, withoutContext(body));
  }

  /**
   * Reads an NDJSON stream: each line is a chunk with a piece of the answer; the last one
   * (done: true) carries done_reason and the counters. Returns that last line with the whole
   * answer in place of its (empty) piece.
   */
  private async collect(ctx: CallContext, res: Response, path: string, onProgress: (p: ProgressUpdate) => void): Promise<Json> {
    const chat = path === 'api/chat';
    let answer = '';
    let chunks = 0;
    let last: Json = {};
    const take = (line: string): void => {
      if (!line.trim()) return;
      let chunk: Json;
      try {
        chunk = JSON.parse(line) as Json;
      } catch {
        throw new ZiggieError('TOOL_CALL_FAILED', `${this.name} (${ctx.endpoint.id}) streamed a line that is not JSON`, { endpoint: ctx.endpoint.id });
      }
      // An error after the stream began comes as a line of its own.
      if (typeof chunk.error === 'string') throw new ZiggieError('TOOL_CALL_FAILED', `${this.name} (${ctx.endpoint.id}) failed on /${path}: ${chunk.error}`, { endpoint: ctx.endpoint.id });
      answer += chat ? String((chunk.message as Json | undefined)?.content ?? '') : String(chunk.response ?? '');
      chunks++;
      last = chunk;
      try {
        onProgress({ progress: chunks, message: `${answer.length} characters` });
      } catch {
        // A failing progress sink must not break the call.
      }
    };
    // Line splitting by hand: NDJSON needs nothing more than a decoder and a buffer.
    const decoder = new TextDecoder();
    let buffered = '';
    const reader = res.body!.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        lines.forEach(take);
      }
      take(buffered + decoder.decode());
    } catch (err) {
      if (err instanceof ZiggieError || ctx.signal.aborted) throw err;
      throw this.unreachable(ctx.endpoint, err, `streaming /${path}`);
    } finally {
      reader.releaseLock();
    }
    if (last.done !== true) throw new ZiggieError('TOOL_CALL_FAILED', `${this.name} (${ctx.endpoint.id}) ended the /${path} stream early`, { endpoint: ctx.endpoint.id });
    return chat ? { ...last, message: { ...(last.message as Json | undefined), role: 'assistant', content: answer } } : { ...last, response: answer };
  }

  private async embed(ctx: CallContext, args: Json): Promise<CallToolResult> {
    const res = await this.request(ctx, 'api/embed', { body: args });
    if (!res.ok) return this.clientError(ctx, res, 'POST /api/embed');
    const body = await this.readJson<Json>(ctx, res);
    const embeddings = Array.isArray(body.embeddings) ? (body.embeddings as unknown[][]) : [];
    // The vectors go in structuredContent only; as text they would double the size of the result.
    return textResult(`${embeddings.length} embedding(s) of dimension ${embeddings[0]?.length ?? 0} from ${String(body.model ?? args.model)}`, body);
  }

  private async listModels(ctx: CallContext): Promise<CallToolResult> {
    const res = await this.request(ctx, 'api/tags');
    if (!res.ok) return this.clientError(ctx, res, 'GET /api/tags');
    const body = await this.readJson<{ models?: Json[] }>(ctx, res);
    const models = Array.isArray(body.models) ? body.models : [];
    const names = models.map((m) => String(m.name ?? m.model));
    return textResult(names.length ? names.join('\n') : `no models on ${this.name}`, { models });
  }
}
