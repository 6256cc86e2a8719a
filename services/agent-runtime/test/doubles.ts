// In-test doubles of the runtime's gRPC peers (mcp-gateway, agent-registry, orchestrator), at the
// port interfaces the actions use. A call the test did not set up throws, so it fails the test.
import { pb } from '@ziggie/contracts';
import type { Dispatch } from '../src/actions/types';
import type { McpGatewayPort, OrchestratorPort, RegistryPort } from '../src/peers';

export const principal: pb.Principal = { subject: 'agent@test', roles: ['l2l3'], workspaces: ['ziggie'] };

export function dispatchOf(overrides: Partial<Dispatch> = {}): Dispatch {
  return {
    taskId: 'tsk_1',
    stepId: 'a',
    attemptId: 'tsk_1.a.1',
    attempt: 1,
    capability: 'code',
    action: 'tool',
    workspace: 'ziggie',
    agentId: 'l2-ziggie-code',
    input: {},
    timeoutMs: 30_000,
    correlationId: 'corr-1',
    principal,
    depth: 0,
    priority: 'P1',
    ...overrides,
  };
}

export function toolOf(name: string, inputSchema?: Record<string, unknown>): pb.Tool {
  return { name, server: name.slice(0, name.indexOf('.')), description: '', inputSchema, title: '', outputSchema: undefined, annotations: undefined, hash: 'h' };
}

export function serverOf(name: string, transport: string, status = 'ready'): pb.Server {
  return { name, transport, status, tools: 0, error: '', resources: 0, prompts: 0, replicas: [], quarantined: 0 };
}

export function textResult(text: string, structuredContent?: Record<string, unknown>, isError = false): pb.ToolResult {
  return { result: { content: [{ type: 'text', text }], ...(structuredContent ? { structuredContent } : {}), ...(isError ? { isError } : {}) }, isError };
}

/** Never settles by itself: rejects when the call is cancelled, as a real upstream call would. */
export function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('call cancelled')), { once: true }));
}

export type ToolHandler = (args: Record<string, unknown>, opts: { signal: AbortSignal; onProgress: () => void }) => Promise<pb.ToolResult> | pb.ToolResult;

export class McpGatewayDouble implements McpGatewayPort {
  readonly calls: pb.CallToolRequest[] = [];
  /** Tool calls whose signal was aborted while they ran. */
  readonly cancelled: string[] = [];
  listToolsCalls = 0;
  private readonly handlers = new Map<string, ToolHandler>();

  constructor(
    public tools: pb.Tool[] = [],
    public servers: pb.Server[] = [],
  ) {}

  /** Sets up a tool: it appears in the catalog and answers with the handler. */
  on(name: string, handler: ToolHandler, inputSchema?: Record<string, unknown>): this {
    this.handlers.set(name, handler);
    if (!this.tools.some((t) => t.name === name)) this.tools.push(toolOf(name, inputSchema));
    return this;
  }

  listTools(_principal?: pb.Principal): Promise<pb.Tool[]> {
    this.listToolsCalls++;
    return Promise.resolve([...this.tools]);
  }

  listServers(): Promise<pb.Server[]> {
    return Promise.resolve([...this.servers]);
  }

  async callTool(request: pb.CallToolRequest, opts: { signal: AbortSignal; onProgress: () => void }): Promise<pb.ToolResult> {
    this.calls.push(request);
    const handler = this.handlers.get(request.name);
    if (!handler) throw new Error(`McpGatewayDouble: tool ${request.name} was not set up`);
    opts.signal.addEventListener('abort', () => this.cancelled.push(request.name), { once: true });
    return handler(request.arguments ?? {}, opts);
  }
}

export function agentOf(id: string, fields: Partial<pb.Agent> = {}): pb.Agent {
  return { id, name: id, level: 3, parentId: '', role: '', workspace: 'ziggie', capabilities: [], status: '', load: 0, lastSeenAt: '', ...fields };
}

export class RegistryDouble implements RegistryPort {
  listAgentsCalls = 0;
  /** listAgents fails this many times before it answers. */
  failuresLeft = 0;
  childrenError?: Error;
  readonly childrenAsked: string[] = [];

  constructor(public agents: pb.Agent[] = []) {}

  listAgents(): Promise<pb.Agent[]> {
    this.listAgentsCalls++;
    if (this.failuresLeft > 0) {
      this.failuresLeft--;
      return Promise.reject(new Error('RegistryDouble: registry unreachable'));
    }
    return Promise.resolve([...this.agents]);
  }

  listChildren(agentId: string): Promise<pb.Agent[]> {
    this.childrenAsked.push(agentId);
    if (this.childrenError) return Promise.reject(this.childrenError);
    return Promise.resolve(this.agents.filter((a) => a.parentId === agentId));
  }
}

export function taskOf(id: string, fields: Partial<pb.Task> = {}): pb.Task {
  return {
    id,
    title: '',
    workspace: 'ziggie',
    priority: 'P1',
    status: 'queued',
    waves: [],
    createdBy: '',
    createdAt: '',
    updatedAt: '',
    finishedAt: '',
    errorCode: '',
    errorMessage: '',
    correlationId: '',
    output: undefined,
    notBefore: '',
    parentTaskId: '',
    parentStepId: '',
    blueprint: '',
    depth: 0,
    currentWave: 0,
    waveCount: 0,
    failedStepId: '',
    ...fields,
  };
}

export function stepOf(id: string, output?: Record<string, unknown>): pb.Step {
  return {
    id,
    capability: '',
    action: 'tool',
    workspace: 'ziggie',
    status: 'succeeded',
    agentId: '',
    attempt: 1,
    wave: 0,
    dependsOn: [],
    input: undefined,
    output,
    error: undefined,
    startedAt: '',
    finishedAt: '',
    attempts: [],
    dispatchedAt: '',
    pool: '',
    retries: 0,
    timeoutMs: 0,
    waitingReason: '',
    approvedBy: '',
    gpu: false,
    childTaskId: '',
  };
}

/**
 * A child-task orchestrator: SubmitTask answers the first state, each GetTask the next one
 * (the last repeats).
 */
export class OrchestratorDouble implements OrchestratorPort {
  readonly submitted: pb.SubmitTaskRequest[] = [];
  readonly cancelled: { id: string; reason: string }[] = [];
  getTaskCalls = 0;

  constructor(public states: pb.Task[] = []) {}

  submitTask(request: pb.SubmitTaskRequest): Promise<pb.Task> {
    this.submitted.push(request);
    if (this.states.length === 0) return Promise.reject(new Error('OrchestratorDouble: no child task was set up'));
    return Promise.resolve(this.states[0]!);
  }

  getTask(id: string): Promise<pb.Task> {
    this.getTaskCalls++;
    const task = this.states[Math.min(this.getTaskCalls, this.states.length - 1)];
    if (!task || task.id !== id) return Promise.reject(new Error(`OrchestratorDouble: task ${id} was not set up`));
    return Promise.resolve(task);
  }

  cancelTask(id: string, _principal: pb.Principal, reason: string): Promise<void> {
    this.cancelled.push({ id, reason });
    return Promise.resolve();
  }
}
