import { Logger } from '@nestjs/common';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ToolListChangedNotificationSchema, type CallToolResult, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { UpstreamConfig } from './config';

export type UpstreamStatus = 'connecting' | 'ready' | 'failed';

const MAX_BACKOFF_MS = 30_000;

/**
 * One upstream MCP server: connects, lists every page of tools, and reconnects with
 * backoff when its transport closes (a stdio child that exits is restarted).
 */
export class Upstream {
  private readonly logger: Logger;
  private client?: Client;
  private attempts = 0;
  private stopped = false;
  private reconnectTimer?: NodeJS.Timeout;
  status: UpstreamStatus = 'connecting';
  lastError = '';
  tools: Tool[] = [];

  constructor(
    readonly config: UpstreamConfig,
    private readonly onToolsChanged: () => void,
  ) {
    this.logger = new Logger(`upstream:${config.name}`);
  }

  private transport(): Transport {
    const c = this.config;
    if (c.transport === 'stdio') {
      const t = new StdioClientTransport({
        command: c.command,
        args: c.args,
        env: { ...getDefaultEnvironment(), ...c.env },
        cwd: c.cwd,
        stderr: 'pipe',
      });
      t.stderr?.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) this.logger.debug(`stderr: ${line}`);
      });
      return t;
    }
    return new StreamableHTTPClientTransport(new URL(c.url), { requestInit: { headers: c.headers } });
  }

  async connect(): Promise<void> {
    this.status = 'connecting';
    const client = new Client({ name: 'ziggie-mcp-gateway', version: '0.1.0' }, { capabilities: {} });
    client.onclose = () => this.onClosed(client);
    client.onerror = (err) => this.logger.warn(`transport error: ${err.message}`);
    try {
      await client.connect(this.transport());
      this.client = client;
      client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
        await this.refreshTools();
      });
      await this.refreshTools();
      this.status = 'ready';
      this.attempts = 0;
      this.lastError = '';
      this.logger.log(`ready with ${this.tools.length} tools`);
    } catch (err) {
      this.status = 'failed';
      this.lastError = err instanceof Error ? err.message : String(err);
      this.logger.warn(`connect failed: ${this.lastError}`);
      await client.close().catch(() => undefined);
      this.scheduleReconnect();
    }
  }

  private onClosed(client: Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    if (this.stopped) return;
    this.status = 'failed';
    this.lastError = 'connection closed';
    this.logger.warn('connection closed, reconnecting');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** this.attempts++);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connect();
    }, delay);
  }

  async refreshTools(): Promise<void> {
    if (!this.client) return;
    const tools: Tool[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.client.listTools(cursor ? { cursor } : {});
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor);
    this.tools = tools;
    this.onToolsChanged();
  }

  async callTool(
    name: string,
    args: Record<string, unknown>,
    opts: { timeoutMs: number; signal?: AbortSignal; onProgress?: (p: { progress: number; total?: number; message?: string }) => void },
  ): Promise<CallToolResult> {
    if (!this.client) throw new Error(`upstream ${this.config.name} is not connected`);
    return (await this.client.callTool({ name, arguments: args }, undefined, {
      timeout: opts.timeoutMs,
      signal: opts.signal,
      onprogress: opts.onProgress,
      resetTimeoutOnProgress: true,
    })) as CallToolResult;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    await this.client?.close().catch(() => undefined);
    this.client = undefined;
  }
}
