import { pb } from '@ziggie/contracts';
import { ToolCatalog } from '../catalog';
import { McpGatewayPort } from '../peers';
import { toolOutput } from '../tool-output';
import { ActionContext, failed, isPlainObject, StepFailure, StepOutcome } from './types';

/** Built in: succeeds at once without the gateway (benchmarks and probes). */
export const NOOP_TOOL = 'ziggie.noop';
/** The runtime cancels a call at the step's timeout; the gateway's own limit is only a backstop. */
const GATEWAY_GRACE_MS = 1_000;
/** A candidate miss refetches the catalog when the cached one is older than this. */
const MISS_REFRESH_MS = 5_000;

/** input.tool as a list of candidate names, or undefined when it is neither a name nor a list of names. */
export function toolCandidates(tool: unknown): string[] | undefined {
  if (typeof tool === 'string') return tool ? [tool] : undefined;
  if (Array.isArray(tool) && tool.length > 0 && tool.every((t) => typeof t === 'string' && t.length > 0)) return tool as string[];
  return undefined;
}

/**
 * The first candidate the gateway's catalog has (the built-in no-op always counts). A single
 * name is taken as it is, without a catalog lookup: the gateway answers TOOL_NOT_FOUND itself.
 */
export async function chooseTool(candidates: string[], catalog: ToolCatalog, principal: pb.Principal): Promise<string> {
  if (candidates.length === 1) return candidates[0]!;
  const pick = (tools: Map<string, pb.Tool>) => candidates.find((c) => c === NOOP_TOOL || tools.has(c));
  const found = candidates[0] === NOOP_TOOL ? NOOP_TOOL : (pick((await catalog.get(principal)).tools) ?? pick((await catalog.get(principal, MISS_REFRESH_MS)).tools));
  if (found === undefined) throw new StepFailure('TOOL_NOT_FOUND', `none of the candidate tools ${candidates.join(', ')} is in the MCP gateway catalog`);
  return found;
}

export interface CalledTool {
  output: Record<string, unknown>;
  isError: boolean;
  structured: Record<string, unknown>;
}

/** One tool call through the gateway, as the dispatch's principal and workspace, cancelled with the step. */
export async function callTool(gateway: McpGatewayPort, ctx: ActionContext, name: string, args: Record<string, unknown>): Promise<CalledTool> {
  const { dispatch } = ctx;
  const request: pb.CallToolRequest = {
    name,
    arguments: args,
    principal: dispatch.principal,
    workspace: dispatch.workspace,
    correlationId: dispatch.correlationId ?? '',
    timeoutMs: dispatch.timeoutMs + GATEWAY_GRACE_MS,
  };
  const result = await gateway.callTool(request, { signal: ctx.signal, onProgress: ctx.onProgress, deadlineMs: dispatch.timeoutMs + 2 * GATEWAY_GRACE_MS });
  const raw = (result.result ?? {}) as Record<string, unknown>;
  const output = toolOutput(raw);
  return { output, isError: result.isError, structured: isPlainObject(raw.structuredContent) ? raw.structuredContent : {} };
}

/** Tool steps: `input.tool` (a name, or candidates in order of preference) and `input.arguments`. */
export class ToolAction {
  constructor(
    private readonly gateway: McpGatewayPort,
    private readonly catalog: ToolCatalog,
  ) {}

  async run(ctx: ActionContext): Promise<StepOutcome> {
    const { tool, arguments: rawArgs = {} } = ctx.dispatch.input;
    const candidates = toolCandidates(tool);
    if (!candidates || !isPlainObject(rawArgs)) {
      return failed('VALIDATION_FAILED', 'a tool step needs input.tool (a tool name or a list of candidate names) and input.arguments (an object)');
    }
    const name = await chooseTool(candidates, this.catalog, ctx.dispatch.principal);
    const chosen = candidates.length > 1 ? { tool: name } : {};
    if (name === NOOP_TOOL) return { status: 'succeeded', output: { text: 'ok', echo: rawArgs, ...chosen } };
    const { output, isError } = await callTool(this.gateway, ctx, name, rawArgs);
    if (isError) return failed('TOOL_CALL_FAILED', String(output.text) || `${name} reported an error`, { ...output, ...chosen });
    return { status: 'succeeded', output: { ...output, ...chosen } };
  }
}
