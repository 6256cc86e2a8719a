import { dispatchOf, McpGatewayDouble, principal, serverOf, textResult, toolOf } from '../../test/doubles';
import { CatalogView, ToolCatalog } from '../catalog';
import { detectLlmTool, kindOf, LLM_NOT_CONFIGURED_MESSAGE, LlmAction, llmArguments, LlmInput, llmOutput, LlmTool } from './llm';
import { ActionContext } from './types';

const view = (tools: string[], servers: ReturnType<typeof serverOf>[]): CatalogView => ({
  tools: new Map(tools.map((n) => [n, toolOf(n)])),
  servers,
  fetchedAt: 0,
});

const ctx = (input: Record<string, unknown>): ActionContext => ({
  dispatch: dispatchOf({ action: 'llm', input }),
  signal: new AbortController().signal,
  onProgress: () => undefined,
});

const input = (i: Partial<LlmInput>): LlmInput => LlmInput.parse(i);

describe('LLM tool detection', () => {
  it('finds the chat tool of an Ollama or OpenAI-compatible adapter by the server transport', () => {
    expect(detectLlmTool(view(['local.chat', 'local.generate', 'fs.read'], [serverOf('local', 'ollama'), serverOf('fs', 'stdio')]))).toMatchObject({ name: 'local.chat', kind: 'ollama-chat', server: 'local' });
    expect(detectLlmTool(view(['gpu.chat_completion', 'gpu.list_models'], [serverOf('gpu', 'openai')]))).toMatchObject({ name: 'gpu.chat_completion', kind: 'openai-chat' });
  });

  it('ignores MCP servers that merely have a tool called chat', () => {
    expect(detectLlmTool(view(['bot.chat', 'bot.chat_completion'], [serverOf('bot', 'http')]))).toBeUndefined();
  });

  it('prefers a ready adapter, then the first by name', () => {
    const servers = [serverOf('b-pool', 'openai'), serverOf('a-ollama', 'ollama', 'connecting'), serverOf('c-ollama', 'ollama')];
    expect(detectLlmTool(view(['a-ollama.chat', 'b-pool.chat_completion', 'c-ollama.chat'], servers))?.name).toBe('b-pool.chat_completion');
    expect(detectLlmTool(view(['a-ollama.chat'], servers))?.name).toBe('a-ollama.chat');
  });

  it('skips an adapter whose chat tool is not in the catalog (quarantined or filtered)', () => {
    expect(detectLlmTool(view(['a.list_models'], [serverOf('a', 'ollama')]))).toBeUndefined();
  });

  it('derives how to call a configured tool from its server, or from its name when the catalog does not say', () => {
    const v = view(['local.chat', 'local.generate', 'gpu.chat_completion', 'mcp.ask'], [serverOf('local', 'ollama'), serverOf('gpu', 'openai'), serverOf('mcp', 'stdio')]);
    expect(kindOf('local.chat', v).kind).toBe('ollama-chat');
    expect(kindOf('local.generate', v).kind).toBe('ollama-generate');
    expect(kindOf('gpu.chat_completion', v).kind).toBe('openai-chat');
    expect(kindOf('mcp.ask', v).kind).toBe('generic');
    expect(kindOf('elsewhere.chat_completion', v).kind).toBe('openai-chat');
  });
});

describe('LLM argument mapping', () => {
  const ollama: LlmTool = { name: 'local.chat', kind: 'ollama-chat', server: 'local' };
  const generate: LlmTool = { name: 'local.generate', kind: 'ollama-generate', server: 'local' };
  const openai: LlmTool = { name: 'gpu.chat_completion', kind: 'openai-chat', server: 'gpu' };

  it('builds the conversation from system, messages and prompt, in that order', () => {
    const args = llmArguments(openai, input({ system: 'be brief', messages: [{ role: 'assistant', content: 'hi' }], prompt: 'sum 2+2' }), undefined);
    expect(args).toEqual({
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'assistant', content: 'hi' },
        { role: 'user', content: 'sum 2+2' },
      ],
    });
  });

  it('maps to Ollama chat: model required, temperature and maxTokens as options', () => {
    expect(llmArguments(ollama, input({ prompt: 'hi', temperature: 0.2, maxTokens: 64 }), 'llama3.2')).toEqual({
      model: 'llama3.2',
      messages: [{ role: 'user', content: 'hi' }],
      options: { temperature: 0.2, num_predict: 64 },
    });
    expect(llmArguments(ollama, input({ prompt: 'hi' }), 'llama3.2')).toEqual({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
  });

  it('maps to Ollama generate: prompt and system', () => {
    expect(llmArguments(generate, input({ prompt: 'hi', system: 's', maxTokens: 5 }), 'm')).toEqual({ model: 'm', prompt: 'hi', system: 's', options: { num_predict: 5 } });
  });

  it('maps to an OpenAI chat completion: max_tokens, temperature, model only when known', () => {
    expect(llmArguments(openai, input({ prompt: 'hi', temperature: 1, maxTokens: 10, model: 'qwen' }), 'qwen')).toEqual({
      model: 'qwen',
      messages: [{ role: 'user', content: 'hi' }],
      temperature: 1,
      max_tokens: 10,
    });
  });

  it('gives a generic tool only the arguments its schema declares', () => {
    const generic: LlmTool = { name: 'mcp.ask', kind: 'generic', inputSchema: { type: 'object', properties: { prompt: { type: 'string' }, temperature: { type: 'number' } } } };
    expect(llmArguments(generic, input({ prompt: 'hi', system: 's', temperature: 0.5 }), 'm')).toEqual({ prompt: 'hi', temperature: 0.5 });
  });

  it('reads text, model, usage and finish reason from either adapter', () => {
    expect(llmOutput(openai, 'four', { model: 'qwen', choices: [{ finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }, undefined)).toEqual({
      text: 'four',
      model: 'qwen',
      tool: 'gpu.chat_completion',
      usage: { promptTokens: 3, completionTokens: 1, totalTokens: 4 },
      finishReason: 'stop',
    });
    expect(llmOutput(ollama, 'four', { model: 'llama3.2', done_reason: 'stop', prompt_eval_count: 3, eval_count: 1 }, 'llama3.2')).toEqual({
      text: 'four',
      model: 'llama3.2',
      tool: 'local.chat',
      usage: { promptTokens: 3, completionTokens: 1 },
      finishReason: 'stop',
    });
  });
});

describe('LlmAction', () => {
  it('fails with LLM_NOT_CONFIGURED and tells the operator what to do when the catalog has no LLM', async () => {
    const gateway = new McpGatewayDouble([toolOf('fs.read')], [serverOf('fs', 'stdio')]);
    const out = await new LlmAction(gateway, new ToolCatalog(gateway), {}).run(ctx({ prompt: 'hi' }));
    expect(out).toEqual({ status: 'failed', error: { code: 'LLM_NOT_CONFIGURED', message: LLM_NOT_CONFIGURED_MESSAGE } });
    expect(LLM_NOT_CONFIGURED_MESSAGE).toMatch(/Ollama or OpenAI-compatible upstream to the MCP gateway/);
    expect(LLM_NOT_CONFIGURED_MESSAGE).toMatch(/RUNTIME_LLM_TOOL/);
    expect(gateway.calls).toHaveLength(0);
  });

  it('asks an Ollama server for its first model when none is given, once', async () => {
    const gateway = new McpGatewayDouble([], [serverOf('local', 'ollama')])
      .on('local.list_models', () => textResult('llama3.2\nqwen', { models: [{ name: 'llama3.2' }, { name: 'qwen' }] }))
      .on('local.chat', (args) => textResult(`echo ${(args.messages as { content: string }[])[0]!.content}`, { model: args.model, done_reason: 'stop' }));
    const action = new LlmAction(gateway, new ToolCatalog(gateway), {});
    await expect(action.run(ctx({ prompt: 'one' }))).resolves.toEqual({ status: 'succeeded', output: { text: 'echo one', model: 'llama3.2', tool: 'local.chat', finishReason: 'stop' } });
    await expect(action.run(ctx({ prompt: 'two' }))).resolves.toMatchObject({ status: 'succeeded', output: { text: 'echo two' } });
    expect(gateway.calls.map((c) => c.name)).toEqual(['local.list_models', 'local.chat', 'local.chat']);
  });

  it('uses RUNTIME_LLM_TOOL and RUNTIME_LLM_MODEL over detection', async () => {
    const gateway = new McpGatewayDouble([toolOf('local.chat')], [serverOf('local', 'ollama'), serverOf('gpu', 'openai')]).on('gpu.chat_completion', (args) =>
      textResult('ok', { model: args.model, choices: [{ finish_reason: 'length' }] }),
    );
    const action = new LlmAction(gateway, new ToolCatalog(gateway), { tool: 'gpu.chat_completion', model: 'qwen' });
    await expect(action.run(ctx({ prompt: 'hi', maxTokens: 1 }))).resolves.toMatchObject({ status: 'succeeded', output: { model: 'qwen', finishReason: 'length' } });
    expect(gateway.calls[0]).toMatchObject({ name: 'gpu.chat_completion', arguments: { model: 'qwen', max_tokens: 1, messages: [{ role: 'user', content: 'hi' }] } });
  });

  it('fails with LLM_NOT_CONFIGURED when an Ollama server has no model', async () => {
    const gateway = new McpGatewayDouble([toolOf('local.chat')], [serverOf('local', 'ollama')]).on('local.list_models', () => textResult('no models', { models: [] }));
    await expect(new LlmAction(gateway, new ToolCatalog(gateway), {}).run(ctx({ prompt: 'hi' }))).rejects.toMatchObject({ code: 'LLM_NOT_CONFIGURED', message: expect.stringContaining('RUNTIME_LLM_MODEL') });
  });

  it('refuses a step with neither prompt nor messages', async () => {
    const gateway = new McpGatewayDouble();
    await expect(new LlmAction(gateway, new ToolCatalog(gateway), {}).run(ctx({ system: 'x' }))).resolves.toMatchObject({ status: 'failed', error: { code: 'VALIDATION_FAILED' } });
    expect(gateway.listToolsCalls).toBe(0);
  });

  it('fails with TOOL_CALL_FAILED when the model call returns an error result', async () => {
    const gateway = new McpGatewayDouble([], [serverOf('gpu', 'openai')]).on('gpu.chat_completion', () => textResult('model not loaded', undefined, true));
    await expect(new LlmAction(gateway, new ToolCatalog(gateway), {}).run(ctx({ prompt: 'hi' }))).resolves.toMatchObject({
      status: 'failed',
      error: { code: 'TOOL_CALL_FAILED', message: 'model not loaded' },
    });
  });
});

// The principal is what the catalog is fetched as.
it('fetches the catalog as the dispatch principal', async () => {
  const seen: unknown[] = [];
  const gateway = new McpGatewayDouble();
  gateway.listTools = async (p?: unknown) => {
    seen.push(p);
    return [];
  };
  await new LlmAction(gateway, new ToolCatalog(gateway), {}).run(ctx({ prompt: 'hi' }));
  expect(seen).toEqual([principal]);
});
