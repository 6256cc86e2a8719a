import type { CallToolResult, CompleteRequest, CompleteResult, GetPromptResult, LoggingLevel, LoggingMessageNotification, Prompt, ReadResourceResult, Resource, ResourceTemplate, Tool } from '@modelcontextprotocol/sdk/types.js';

export type ProviderStatus = 'connecting' | 'ready' | 'failed';

export interface ProgressUpdate {
  progress: number;
  total?: number;
  message?: string;
}

export interface CallOptions {
  /** Time limit of the whole call; progress resets it for MCP upstreams. */
  timeoutMs: number;
  signal?: AbortSignal;
  onProgress?: (p: ProgressUpdate) => void;
  /** Largest response accepted from the upstream, in bytes of JSON. */
  maxResponseBytes: number;
}

export interface ReplicaState {
  id: string;
  up: boolean;
  breaker: 'closed' | 'open' | 'half-open';
  outstanding: number;
}

/**
 * Anything that contributes tools (and optionally resources and prompts) to the catalog:
 * an MCP upstream over stdio, streamable HTTP, SSE or WebSocket, or a built-in adapter
 * (ComfyUI, Ollama, an OpenAI-compatible pool). Names are the upstream's own, unprefixed.
 */
export interface ToolProvider {
  readonly name: string;
  /** stdio | http | sse | ws | comfyui | ollama | openai */
  readonly transport: string;
  readonly status: ProviderStatus;
  readonly lastError: string;
  readonly tools: readonly Tool[];
  readonly resources: readonly Resource[];
  readonly prompts: readonly Prompt[];
  /** Starts connecting; resolves once the first attempt ends (ready or failed, retrying in the background). */
  start(): Promise<void>;
  stop(): Promise<void>;
  callTool(tool: string, args: Record<string, unknown>, opts: CallOptions): Promise<CallToolResult>;
  readResource?(uri: string, opts: CallOptions): Promise<ReadResourceResult>;
  getPrompt?(name: string, args: Record<string, string>, opts: CallOptions): Promise<GetPromptResult>;
  replicas(): ReplicaState[];
  /** Resource templates (RFC 6570 URI templates) the server lists; none when absent. */
  readonly resourceTemplates?: readonly ResourceTemplate[];
  /** Server features beyond tools, resources and prompts, as the ready replica declared them. */
  readonly features?: ProviderFeatures;
  /** completion/complete, with the upstream's own prompt name or template URI in `ref`. */
  completeArgument?(params: CompleteRequest['params'], opts: CallOptions): Promise<CompleteResult>;
  /** logging/setLevel on every connection (kept and applied again after a reconnect). */
  setLoggingLevel?(level: LoggingLevel): Promise<void>;
  /** resources/subscribe and unsubscribe (kept and applied again after a reconnect). */
  subscribeResource?(uri: string): Promise<void>;
  unsubscribeResource?(uri: string): Promise<void>;
  /**
   * The backend's pods are new (its GPU pool got a ready replica after having none): connect to
   * them now, dropping connections and sessions the old pods held, instead of at the next backoff
   * step. Resolves once ready or when `timeoutMs` has passed.
   */
  wake?(timeoutMs: number): Promise<void>;
}

/** Called by a provider whenever its tools, resources or prompts (or its status) changed. */
export type CatalogChanged = (provider: ToolProvider) => void;

export interface ProviderFeatures {
  completions: boolean;
  logging: boolean;
  subscribe: boolean;
}

/** Server notifications a provider relays to the MCP sessions that may see it. */
export type ProviderNotification =
  | { method: 'notifications/message'; params: LoggingMessageNotification['params'] }
  | { method: 'notifications/resources/updated'; params: { uri: string } };

export type NotificationRelay = (provider: ToolProvider, notification: ProviderNotification) => void;
