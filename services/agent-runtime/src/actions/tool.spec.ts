import { dispatchOf, McpGatewayDouble, principal, textResult } from '../../test/doubles';
import { ToolCatalog } from '../catalog';
import { chooseTool, NOOP_TOOL, ToolAction, toolCandidates } from './tool';
import { ActionContext, Dispatch } from './types';

const ctx = (input: Record<string, unknown>, fields: Partial<Dispatch> = {}): ActionContext => ({
  dispatch: dispatchOf({ input, ...fields }),
  signal: new AbortController().signal,
  onProgress: () => undefined,
});

describe('toolCandidates', () => {
  it('takes a name or a non-empty list of names and refuses anything else', () => {
    expect(toolCandidates('a.b')).toEqual(['a.b']);
    expect(toolCandidates(['a.b', 'c.d'])).toEqual(['a.b', 'c.d']);
    expect(toolCandidates('')).toBeUndefined();
    expect(toolCandidates([])).toBeUndefined();
    expect(toolCandidates(['a.b', 3])).toBeUndefined();
    expect(toolCandidates({ name: 'a.b' })).toBeUndefined();
  });
});

describe('chooseTool', () => {
  it('picks the first candidate the catalog has, in the order given', async () => {
    const gateway = new McpGatewayDouble().on('filesystem.write_file', () => textResult('')).on('comfyui.generate_image', () => textResult(''));
    const catalog = new ToolCatalog(gateway);
    await expect(chooseTool(['comfyui.generate_image', 'filesystem.write_file'], catalog, principal)).resolves.toBe('comfyui.generate_image');
    await expect(chooseTool(['ollama.chat', 'filesystem.write_file'], catalog, principal)).resolves.toBe('filesystem.write_file');
    // One catalog fetch serves both choices.
    expect(gateway.listToolsCalls).toBe(1);
  });

  it('takes a single name as it is, without the catalog', async () => {
    const gateway = new McpGatewayDouble();
    await expect(chooseTool(['nowhere.tool'], new ToolCatalog(gateway), principal)).resolves.toBe('nowhere.tool');
    expect(gateway.listToolsCalls).toBe(0);
  });

  it('counts the built-in no-op as present', async () => {
    const gateway = new McpGatewayDouble();
    await expect(chooseTool(['missing.tool', NOOP_TOOL], new ToolCatalog(gateway), principal)).resolves.toBe(NOOP_TOOL);
  });

  it('fails with TOOL_NOT_FOUND naming every candidate after looking at a fresh catalog', async () => {
    let now = 0;
    const gateway = new McpGatewayDouble().on('other.tool', () => textResult(''));
    const catalog = new ToolCatalog(gateway, () => now);
    await catalog.get(principal);
    now = 10_000;
    await expect(chooseTool(['comfyui.generate_image', 'ollama.generate'], catalog, principal)).rejects.toMatchObject({
      code: 'TOOL_NOT_FOUND',
      message: expect.stringContaining('comfyui.generate_image, ollama.generate'),
    });
    // The 10 s old catalog was fetched again before giving up.
    expect(gateway.listToolsCalls).toBe(2);
  });

  it('finds a tool added since the cached catalog was fetched when no cached candidate matches', async () => {
    let now = 0;
    const gateway = new McpGatewayDouble().on('other.tool', () => textResult(''));
    const catalog = new ToolCatalog(gateway, () => now);
    await catalog.get(principal);
    gateway.on('comfyui.generate_image', () => textResult(''));
    now = 6_000;
    await expect(chooseTool(['comfyui.generate_image', 'filesystem.write_file'], catalog, principal)).resolves.toBe('comfyui.generate_image');
  });

  it('serves candidates from the cached catalog within its 30 s lifetime', async () => {
    let now = 0;
    const gateway = new McpGatewayDouble().on('filesystem.write_file', () => textResult(''));
    const catalog = new ToolCatalog(gateway, () => now);
    await catalog.get(principal);
    gateway.on('comfyui.generate_image', () => textResult(''));
    now = 29_000;
    await expect(chooseTool(['comfyui.generate_image', 'filesystem.write_file'], catalog, principal)).resolves.toBe('filesystem.write_file');
    now = 31_000;
    await expect(chooseTool(['comfyui.generate_image', 'filesystem.write_file'], catalog, principal)).resolves.toBe('comfyui.generate_image');
    expect(gateway.listToolsCalls).toBe(2);
  });
});

describe('ToolAction', () => {
  it('runs ziggie.noop in the runtime, echoing the arguments, without calling the gateway', async () => {
    const gateway = new McpGatewayDouble();
    const out = await new ToolAction(gateway, new ToolCatalog(gateway)).run(ctx({ tool: NOOP_TOOL, arguments: { n: 1 } }));
    expect(out).toEqual({ status: 'succeeded', output: { text: 'ok', echo: { n: 1 } } });
    expect(gateway.calls).toHaveLength(0);
    expect(gateway.listToolsCalls).toBe(0);
  });

  it('calls the chosen candidate as the dispatch principal and workspace and says which it chose', async () => {
    const gateway = new McpGatewayDouble().on('filesystem.write_file', (args) => textResult(`wrote ${String(args.path)}`));
    const out = await new ToolAction(gateway, new ToolCatalog(gateway)).run(
      ctx({ tool: ['comfyui.generate_image', 'filesystem.write_file'], arguments: { path: '/tmp/x' } }, { timeoutMs: 7_000 }),
    );
    expect(out).toMatchObject({ status: 'succeeded', output: { text: 'wrote /tmp/x', tool: 'filesystem.write_file' } });
    expect(gateway.calls).toEqual([
      expect.objectContaining({ name: 'filesystem.write_file', arguments: { path: '/tmp/x' }, principal, workspace: 'ziggie', correlationId: 'corr-1' }),
    ]);
    // The runtime enforces the step timeout itself; the gateway's limit is a later backstop.
    expect(gateway.calls[0]!.timeoutMs).toBeGreaterThan(7_000);
  });

  it('fails with TOOL_NOT_FOUND when no candidate exists', async () => {
    const gateway = new McpGatewayDouble();
    const out = await new ToolAction(gateway, new ToolCatalog(gateway)).run(ctx({ tool: ['a.x', 'b.y'] })).catch((err: unknown) => err);
    expect(out).toMatchObject({ code: 'TOOL_NOT_FOUND', message: expect.stringContaining('a.x, b.y') });
    expect(gateway.calls).toHaveLength(0);
  });

  it('turns a tool error result into a failed step that keeps the output', async () => {
    const gateway = new McpGatewayDouble().on('fs.read', () => textResult('no such file', undefined, true));
    const out = await new ToolAction(gateway, new ToolCatalog(gateway)).run(ctx({ tool: 'fs.read', arguments: {} }));
    expect(out).toMatchObject({ status: 'failed', error: { code: 'TOOL_CALL_FAILED', message: 'no such file' }, output: { text: 'no such file', isError: true } });
  });

  it('refuses input without a tool name or with non-object arguments', async () => {
    const gateway = new McpGatewayDouble();
    const action = new ToolAction(gateway, new ToolCatalog(gateway));
    await expect(action.run(ctx({ arguments: {} }))).resolves.toMatchObject({ status: 'failed', error: { code: 'VALIDATION_FAILED' } });
    await expect(action.run(ctx({ tool: 'fs.read', arguments: [1] }))).resolves.toMatchObject({ status: 'failed', error: { code: 'VALIDATION_FAILED' } });
  });
});
