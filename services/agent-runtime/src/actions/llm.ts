import { pb } from '@ziggie/contracts';
import { z } from 'zod';
import { CatalogView, ToolCatalog } from '../catalog';
import { McpGatewayPort } from '../peers';
import { ActionContext, failed, isPlainObject, StepFailure, StepOutcome } from './types';
import { callTool } from './tool';

/** Input of an `llm` step. */
export const LlmInput = z
  .object({
    prompt: z.string().optional(),
    messages: z.array(z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string() })).optional(),
    system: z.string().optional(),
    model: z.string().min(1).optional(),
    temperature: z.number().min(0).max(2).optional(),
    maxTokens: z.number().int().min(1).optional(),
  })
  .refine((i) => i.prompt !== undefined || (i.messages !== undefined && i.messages.length > 0), { message: 'give prompt or messages', path: ['prompt'] });
export type LlmInput = z.infer<typeof LlmInput>;

/**
 * The argument shapes of the gateway's LLM adapters (services/mcp-gateway/src/adapters):
 * Ollama `chat` and `generate`, the OpenAI-compatible pool's `chat_completion`. `generic` is
 * any other tool named by RUNTIME_LLM_TOOL, given the arguments its input schema declares.
 */
export type LlmKind = 'ollama-chat' | 'ollama-generate' | 'openai-chat' | 'generic';

export interface LlmTool {
  name: string;
  kind: LlmKind;
  /** The upstream's server name, for list_models. */
  server?: string;
  inputSchema?: Record<string, unknown>;
}

const ADAPTER_CHAT_TOOLS: Record<string, { upstream: string; kind: LlmKind }> = {
  ollama: { upstream: 'chat', kind: 'ollama-chat' },
  openai: { upstream: 'chat_completion', kind: 'openai-chat' },
};

export const LLM_NOT_CONFIGURED_MESSAGE =
  'no LLM is configured: add an Ollama or OpenAI-compatible upstream to the MCP gateway (transport "ollama" or "openai"), or set RUNTIME_LLM_TOOL to a chat tool of its catalog';

/** How to call a named tool: from its server's transport when the catalog knows it, from its name otherwise. */
export function kindOf(name: string, catalog: CatalogView): LlmTool {
  const tool = catalog.tools.get(name);
  const server = tool ? catalog.servers.find((s) => s.name === tool.server) : undefined;
  const adapter = server ? ADAPTER_CHAT_TOOLS[server.transport] : undefined;
  const upstream = tool && server ? name.slice(server.name.length + 1) : name.slice(name.lastIndexOf('.') + 1);
  let kind: LlmKind = 'generic';
  if (adapter && upstream === adapter.upstream) kind = adapter.kind;
  else if (server?.transport === 'ollama' && upstream === 'generate') kind = 'ollama-generate';
  else if (!server && upstream === 'chat_completion') kind = 'openai-chat';
  return { name, kind, server: tool?.server, inputSchema: tool?.inputSchema };
}

/**
 * The chat tool of an Ollama or OpenAI-compatible adapter in the catalog: ready servers first,
 * then by server name, so every runtime picks the same one.
 */
export function detectLlmTool(catalog: CatalogView): LlmTool | undefined {
  const candidates = catalog.servers
    .filter((s) => ADAPTER_CHAT_TOOLS[s.transport] !== undefined)
    .sort((a, b) => Number(b.status === 'ready') - Number(a.status === 'ready') || a.name.localeCompare(b.name));
  for (const server of candidates) {
    const adapter = ADAPTER_CHAT_TOOLS[server.transport]!;
    const name = `${server.name}.${adapter.upstream}`;
    const tool = catalog.tools.get(name);
    if (tool) return { name, kind: adapter.kind, server: server.name, inputSchema: tool.inputSchema };
  }
  return undefined;
}

/** The conversation: system first, then the given messages, then the prompt as the last user turn. */
export function conversation(input: LlmInput): { role: 'system' | 'user' | 'assistant'; content: string }[] {
  return [
    ...(input.system !== undefined ? [{ role: 'system' as const, content: input.system }] : []),
    ...(input.messages ?? []),
    ...(input.prompt !== undefined ? [{ role: 'user' as const, content: input.prompt }] : []),
  ];
}

function defined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** The tool's arguments for an LLM input; `model` is already resolved (required by Ollama). */
export function llmArguments(tool: LlmTool, input: LlmInput, model: string | undefined): Record<string, unknown> {
  const messages = conversation(input);
  switch (tool.kind) {
    case 'ollama-chat': {
      const options = defined({ temperature: input.temperature, num_predict: input.maxTokens });
      return defined({ model, messages, options: Object.keys(options).length ? options : undefined });
    }
    case 'ollama-generate': {
      const options = defined({ temperature: input.temperature, num_predict: input.maxTokens });
      const prompt = input.prompt ?? (input.messages ?? []).map((m) => m.content).join('\n\n');
      return defined({ model, prompt, system: input.system, options: Object.keys(options).length ? options : undefined });
    }
    case 'openai-chat':
      return defined({ model, messages, temperature: input.temperature, max_tokens: input.maxTokens });
    case 'generic': {
      const all = defined({ model, messages, prompt: input.prompt, system: input.system, temperature: input.temperature, max_tokens: input.maxTokens });
      const properties = isPlainObject(tool.inputSchema?.properties) ? tool.inputSchema.properties : undefined;
      // A schema that declares its arguments gets only those; an unknown one gets them all.
      return properties ? Object.fromEntries(Object.entries(all).filter(([k]) => k in properties)) : all;
    }
  }
}

/** The step output: the answer's text, the model, token counts and finish reason where the tool reports them. */
export function llmOutput(tool: LlmTool, text: string, structured: Record<string, unknown>, requestedModel: string | undefined): Record<string, unknown> {
  const model = typeof structured.model === 'string' ? structured.model : requestedModel;
  let usage: Record<string, unknown> | undefined;
  let finishReason: unknown;
  if (tool.kind === 'openai-chat') {
    const u = structured.usage;
    if (isPlainObject(u)) usage = defined({ promptTokens: u.prompt_tokens, completionTokens: u.completion_tokens, totalTokens: u.total_tokens });
    const first = Array.isArray(structured.choices) ? (structured.choices[0] as unknown) : undefined;
    finishReason = isPlainObject(first) ? first.finish_reason : undefined;
  } else if (tool.kind === 'ollama-chat' || tool.kind === 'ollama-generate') {
    if (typeof structured.eval_count === 'number' || typeof structured.prompt_eval_count === 'number') {
      usage = defined({ promptTokens: structured.prompt_eval_count, completionTokens: structured.eval_count });
    }
    finishReason = structured.done_reason;
  }
  return defined({ text, model, tool: tool.name, usage, finishReason: typeof finishReason === 'string' ? finishReason : undefined });
}

/** The first model an Ollama server lists, from its list_models tool's structured result. */
function firstModel(structured: Record<string, unknown>): string | undefined {
  const models = Array.isArray(structured.models) ? structured.models : [];
  const first = models[0] as unknown;
  if (!isPlainObject(first)) return undefined;
  const name = first.name ?? first.model;
  return typeof name === 'string' && name ? name : undefined;
}

/** How long the model an Ollama server listed first is reused. */
const MODEL_CACHE_MS = 60_000;

/**
 * LLM steps: a chat completion through the gateway's LLM adapter (RUNTIME_LLM_TOOL, or the one
 * detected in the catalog), with the step's prompt or messages mapped onto that tool's arguments.
 */
export class LlmAction {
  private readonly models = new Map<string, { model: string; at: number }>();

  constructor(
    private readonly gateway: McpGatewayPort,
    private readonly catalog: ToolCatalog,
    private readonly settings: { tool?: string; model?: string },
    private readonly now: () => number = Date.now,
  ) {}

  /** The tool LLM steps use for this principal, or undefined when there is none. */
  async resolveTool(principal: pb.Principal): Promise<LlmTool | undefined> {
    const view = await this.catalog.get(principal);
    if (this.settings.tool) return kindOf(this.settings.tool, view);
    return detectLlmTool(view);
  }

  async run(ctx: ActionContext): Promise<StepOutcome> {
    const parsed = LlmInput.safeParse(ctx.dispatch.input);
    if (!parsed.success) {
      return failed('VALIDATION_FAILED', `an llm step needs input.prompt or input.messages: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ')}`);
    }
    const input = parsed.data;
    const tool = await this.resolveTool(ctx.dispatch.principal);
    if (!tool) return failed('LLM_NOT_CONFIGURED', LLM_NOT_CONFIGURED_MESSAGE);
    const model = input.model ?? this.settings.model ?? (await this.defaultModel(ctx, tool));
    const called = await callTool(this.gateway, ctx, tool.name, llmArguments(tool, input, model));
    const text = typeof called.output.text === 'string' ? called.output.text : '';
    if (called.isError) return failed('TOOL_CALL_FAILED', text || `${tool.name} reported an error`, { text, tool: tool.name });
    return { status: 'succeeded', output: llmOutput(tool, text, called.structured, model) };
  }

  /** Ollama needs a model; without one configured, the server's first listed model. */
  private async defaultModel(ctx: ActionContext, tool: LlmTool): Promise<string | undefined> {
    if ((tool.kind !== 'ollama-chat' && tool.kind !== 'ollama-generate') || !tool.server) return undefined;
    const cached = this.models.get(tool.server);
    if (cached && this.now() - cached.at < MODEL_CACHE_MS) return cached.model;
    const listed = await callTool(this.gateway, ctx, `${tool.server}.list_models`, {});
    const model = listed.isError ? undefined : firstModel(listed.structured);
    if (!model) {
      throw new StepFailure('LLM_NOT_CONFIGURED', `${tool.server} has no model to run the step: pull one into Ollama, give input.model, or set RUNTIME_LLM_MODEL`);
    }
    this.models.set(tool.server, { model, at: this.now() });
    return model;
  }
}
