import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import { ZiggieError } from '@ziggie/contracts';
import { z } from 'zod';
import type { CallOptions, CatalogChanged } from '../providers/provider';
import type { AdapterConfig, AdapterOptions, CallContext } from './base';
import { defineTool, errorResult, HttpAdapter, parseArgs, textResult } from './base';

export type OpenAiPoolConfig = Extract<AdapterConfig, { transport: 'openai' }>;

const ChatCompletionArgs = z
  .object({
    model: z.string().min(1).optional().describe('Model id as served by the pool; the configured default model when absent.'),
    messages: z
      .array(
        z
          .object({
            role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
            content: z.union([z.string(), z.array(z.record(z.string(), z.unknown()))]).describe('Text, or content parts (e.g. {type: "image_url", …}).'),
            name: z.string().optional(),
            tool_call_id: z.string().optional(),
          })
          .strict(),
      )
      .min(1),
    temperature: z.number().min(0).max(2).optional(),
    top_p: z.number().min(0).max(1).optional(),
    max_tokens: z.number().int().min(1).optional(),
    stop: z.union([z.string(), z.array(z.string()).max(4)]).optional(),
    seed: z.number().int().optional(),
    presence_penalty: z.number().min(-2).max(2).optional(),
    frequency_penalty: z.number().min(-2).max(2).optional(),
    response_format: z
      .object({
        type: z.enum(['text', 'json_object', 'json_schema']),
        json_schema: z.record(z.string(), z.unknown()).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const ListModelsArgs = z.object({}).strict();

const TOOLS: readonly Tool[] = [
  defineTool(
    'chat_completion',
    'Chat completion on the inference pool',
    'Runs an OpenAI-style chat completion on the least busy server of the GPU inference pool and returns the assistant reply.',
    ChatCompletionArgs,
    { readOnlyHint: true, openWorldHint: false },
  ),
  defineTool('list_models', 'List pool models', 'Lists the models the inference pool serves.', ListModelsArgs, { readOnlyHint: true, idempotentHint: true, openWorldHint: false }),
];

type Json = Record<string, unknown>;

/**
 * A pool of OpenAI-compatible inference servers (vLLM, TGI, llama.cpp server, …) as MCP
 * tools: POST /v1/chat/completions and GET /v1/models, load-balanced over the endpoints.
 */
export class OpenAiPoolAdapter extends HttpAdapter<OpenAiPoolConfig> {
  readonly tools = TOOLS;
  protected readonly probePath = 'v1/models';

  constructor(config: OpenAiPoolConfig, onChange: CatalogChanged, opts: AdapterOptions) {
    super(config, onChange, opts);
  }

  /** OpenAI clients are usually configured with the /v1 base; the API paths here add it themselves. */
  protected override baseUrl(url: URL): URL {
    const base = super.baseUrl(url);
    if (base.pathname.endsWith('/v1/')) base.pathname = base.pathname.slice(0, -'v1/'.length);
    return base;
  }

  protected async invoke(tool: string, args: Record<string, unknown>, opts: CallOptions): Promise<CallToolResult> {
    switch (tool) {
      case 'chat_completion': {
        const parsed = parseArgs(ChatCompletionArgs, args);
        if (!parsed.ok) return parsed.result;
        const model = parsed.value.model ?? this.config.defaultModel;
        if (!model) return errorResult(`model is required: ${this.name} has no default model configured`);
        return this.run(opts, (ctx) => this.chatCompletion(ctx, { ...parsed.value, model }));
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

  private async chatCompletion(ctx: CallContext, args: Json): Promise<CallToolResult> {
    const res = await this.request(ctx, 'v1/chat/completions', { body: { ...args, stream: false } });
    if (!res.ok) return this.clientError(ctx, res, 'POST /v1/chat/completions');
    const body = await this.readJson<Json>(ctx, res);
    if (!Array.isArray(body.choices)) {
      throw new ZiggieError('TOOL_CALL_FAILED', `${this.name} (${ctx.endpoint.id}) answered a chat completion without choices`, { endpoint: ctx.endpoint.id });
    }
    const choices = body.choices as Json[];
    const first = choices[0];
    const content = (first?.message as Json | undefined)?.content;
    const text = typeof content === 'string' ? content : '';
    return textResult(text, { id: body.id, model: body.model, choices, usage: body.usage ?? null, endpoint: ctx.endpoint.id });
  }

  private async listModels(ctx: CallContext): Promise<CallToolResult> {
    const res = await this.request(ctx, 'v1/models');
    if (!res.ok) return this.clientError(ctx, res, 'GET /v1/models');
    const body = await this.readJson<{ data?: Json[] }>(ctx, res);
    const data = Array.isArray(body.data) ? body.data : [];
    const ids = data.map((m) => String(m.id));
    return textResult(ids.length ? ids.join('\n') : `no models on ${ctx.endpoint.id}`, { data, endpoint: ctx.endpoint.id });
  }
}
