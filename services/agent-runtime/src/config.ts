import { z } from 'zod';
import { PlatformConfig } from '@ziggie/platform';

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

export const runtimeEnv = {
  /** Tool and LLM steps this runtime executes at once. */
  RUNTIME_CONCURRENCY: z.coerce.number().int().min(1).max(1000).default(32),
  /**
   * Messages held at once on top of RUNTIME_CONCURRENCY. Delegate steps only wait for their
   * child tasks: they do not take work slots, so the children's steps can run here too.
   */
  RUNTIME_DELEGATE_CONCURRENCY: z.coerce.number().int().min(1).max(1000).default(64),
  /**
   * A step still at work this long after it started tells the orchestrator it is running (its
   * step.running event, and the step's timeout counted from then). A step done sooner sends only
   * its result, which carries when it started: one message, one event and one database write less
   * per quick step. 0 sends the notice as every step starts.
   */
  RUNTIME_RUNNING_NOTICE_MS: z.coerce.number().int().min(0).max(60_000).default(200),
  /** Heartbeat period of every hosted agent. */
  HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(500).default(5_000),
  /** How often the hosted agents are fetched again from agent-registry. */
  RUNTIME_AGENTS_REFRESH_MS: z.coerce.number().int().min(1_000).default(60_000),
  /** Catalog tool (server.tool) that runs LLM steps; auto-detected from the catalog when unset. */
  RUNTIME_LLM_TOOL: optionalString,
  /** Model for LLM steps that name none; for Ollama, the first model the server lists when unset. */
  RUNTIME_LLM_MODEL: optionalString,
};

export type RuntimeExtra = z.infer<z.ZodObject<typeof runtimeEnv>>;

export type RuntimeConfig = PlatformConfig & { extra: RuntimeExtra };
