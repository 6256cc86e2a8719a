import { Injectable } from '@nestjs/common';
import { pb } from '@ziggie/contracts';
import { callStream, callUnary, PeerClients } from '@ziggie/platform';

/**
 * What the runtime needs from the other services. Actions depend on these interfaces only;
 * the gRPC implementations below are the one place that talks to the peers.
 */
export interface McpGatewayPort {
  /** Every tool the principal may see (all pages). */
  listTools(principal: pb.Principal): Promise<pb.Tool[]>;
  listServers(principal: pb.Principal): Promise<pb.Server[]>;
  /** Resolves with the tool's result; the signal cancels the call (and the gateway relays it upstream). */
  callTool(request: pb.CallToolRequest, opts: { signal: AbortSignal; onProgress: () => void; deadlineMs: number }): Promise<pb.ToolResult>;
}

export interface RegistryPort {
  /** Every agent (all pages). */
  listAgents(): Promise<pb.Agent[]>;
  /** The agent's direct children (all pages). */
  listChildren(agentId: string): Promise<pb.Agent[]>;
}

export interface OrchestratorPort {
  submitTask(request: pb.SubmitTaskRequest): Promise<pb.Task>;
  getTask(id: string, principal: pb.Principal): Promise<pb.Task>;
  cancelTask(id: string, principal: pb.Principal, reason: string): Promise<void>;
}

const PAGE = 1000;
const UNARY_TIMEOUT_MS = 10_000;

/** Follows next_cursor until the last page. */
export async function allPages<T>(fetchPage: (cursor: string) => Promise<{ items: T[]; nextCursor: string }>): Promise<T[]> {
  const items: T[] = [];
  let cursor = '';
  do {
    const page = await fetchPage(cursor);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

@Injectable()
export class McpGatewayPeer implements McpGatewayPort {
  constructor(private readonly peers: PeerClients) {}

  private client(): Promise<pb.McpGatewayClient> {
    return this.peers.get('mcp-gateway', pb.McpGatewayClient);
  }

  async listTools(principal: pb.Principal): Promise<pb.Tool[]> {
    const c = await this.client();
    return allPages((cursor) => callUnary(c.listTools.bind(c), { principal, page: { limit: PAGE, cursor }, server: '' }, { peer: 'mcp-gateway', timeoutMs: UNARY_TIMEOUT_MS }));
  }

  async listServers(principal: pb.Principal): Promise<pb.Server[]> {
    const c = await this.client();
    return (await callUnary(c.listServers.bind(c), { principal }, { peer: 'mcp-gateway', timeoutMs: UNARY_TIMEOUT_MS })).items;
  }

  async callTool(request: pb.CallToolRequest, opts: { signal: AbortSignal; onProgress: () => void; deadlineMs: number }): Promise<pb.ToolResult> {
    const c = await this.client();
    for await (const event of callStream(c.callTool.bind(c), request, { timeoutMs: opts.deadlineMs, peer: 'mcp-gateway', signal: opts.signal })) {
      if (event.event?.$case === 'progress') opts.onProgress();
      if (event.event?.$case === 'result') return event.event.value;
    }
    throw new Error('the tool call ended without a result');
  }
}

@Injectable()
export class RegistryPeer implements RegistryPort {
  constructor(private readonly peers: PeerClients) {}

  private client(): Promise<pb.AgentRegistryClient> {
    return this.peers.get('agent-registry', pb.AgentRegistryClient);
  }

  async listAgents(): Promise<pb.Agent[]> {
    const c = await this.client();
    const request = (cursor: string): pb.ListAgentsRequest => ({
      page: { limit: PAGE, cursor },
      workspace: '',
      level: 0,
      capability: '',
      filterLevel: false,
      status: '',
      parentId: '',
      role: '',
    });
    return allPages((cursor) => callUnary(c.listAgents.bind(c), request(cursor), { peer: 'agent-registry', timeoutMs: UNARY_TIMEOUT_MS }));
  }

  async listChildren(agentId: string): Promise<pb.Agent[]> {
    const c = await this.client();
    return allPages((cursor) => callUnary(c.listChildren.bind(c), { id: agentId, page: { limit: PAGE, cursor } }, { peer: 'agent-registry', timeoutMs: UNARY_TIMEOUT_MS }));
  }
}

@Injectable()
export class OrchestratorPeer implements OrchestratorPort {
  constructor(private readonly peers: PeerClients) {}

  private client(): Promise<pb.OrchestratorClient> {
    return this.peers.get('orchestrator', pb.OrchestratorClient);
  }

  async submitTask(request: pb.SubmitTaskRequest): Promise<pb.Task> {
    const c = await this.client();
    return callUnary(c.submitTask.bind(c), request, { peer: 'orchestrator', timeoutMs: UNARY_TIMEOUT_MS });
  }

  async getTask(id: string, principal: pb.Principal): Promise<pb.Task> {
    const c = await this.client();
    return callUnary(c.getTask.bind(c), { id, principal }, { peer: 'orchestrator', timeoutMs: UNARY_TIMEOUT_MS });
  }

  async cancelTask(id: string, principal: pb.Principal, reason: string): Promise<void> {
    const c = await this.client();
    await callUnary(c.cancelTask.bind(c), { id, principal, reason }, { peer: 'orchestrator', timeoutMs: UNARY_TIMEOUT_MS });
  }
}
