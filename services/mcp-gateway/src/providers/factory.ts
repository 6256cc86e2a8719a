import { UpstreamConfig } from '../config';
import { ComfyUiAdapter } from '../adapters/comfyui';
import { OllamaAdapter } from '../adapters/ollama';
import { OpenAiPoolAdapter } from '../adapters/openai-pool';
import { McpUpstream } from './mcp-upstream';
import type { CatalogChanged, NotificationRelay, ToolProvider } from './provider';
import type { BreakerOptions, BreakerStateName } from './replicas';

export interface ProviderOptions {
  breaker: BreakerOptions;
  maxResponseBytes: number;
  onBreakerChange?: (replicaId: string, state: BreakerStateName) => void;
  /** Logging messages and resource updates from an MCP upstream, for the sessions that may see it. */
  onNotification?: NotificationRelay;
}

/** The provider for one configured upstream: an MCP server, or a built-in adapter. */
export function createProvider(c: UpstreamConfig, onChange: CatalogChanged, opts: ProviderOptions): ToolProvider {
  switch (c.transport) {
    case 'comfyui':
      return new ComfyUiAdapter(c, onChange, opts);
    case 'ollama':
      return new OllamaAdapter(c, onChange, opts);
    case 'openai':
      return new OpenAiPoolAdapter(c, onChange, opts);
    default:
      return new McpUpstream(c, onChange, opts);
  }
}
