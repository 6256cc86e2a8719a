import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { CONFIG } from '@ziggie/platform';
import type { McpConfig } from './config';
import { McpStore } from './store';
import { encodeWindow, mergeWindows, parseWindow, ReplicaWindow, StatsCell, ToolStatsWindow, type MergedStats } from './tool-stats';

/** Below NATS' default 1 MB message limit, with room for the KV headers. */
const MAX_STORED_BYTES = 900 * 1024;

/** A KV key: letters, digits, `-` and `_` only. */
function replicaId(): string {
  return `${hostname().replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40)}-${process.pid}-${randomUUID().slice(0, 8)}`;
}

/**
 * This replica's tool call window, shared through JetStream KV every MCP_STATS_FLUSH_MS when it
 * changed; figures merge every replica's latest window (this one's live).
 */
@Injectable()
export class ToolStatsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('tool-stats');
  readonly replica = replicaId();
  private readonly window: ToolStatsWindow;
  private timer?: NodeJS.Timeout;
  private writing?: Promise<void>;

  constructor(
    @Inject(CONFIG) private readonly config: McpConfig,
    private readonly store: McpStore,
  ) {
    this.window = new ToolStatsWindow();
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.store.start(this.config.extra.MCP_SESSION_TTL_MS);
    this.timer = setInterval(() => void this.flush(), this.config.extra.MCP_STATS_FLUSH_MS);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    // The last seconds of calls count on the other replicas; a NATS already gone does not hold up the exit.
    await Promise.race([this.flush(), new Promise((r) => setTimeout(r, 1_000).unref())]);
  }

  /** A call that reached the upstream ended (result, tool error or failure). */
  record(workspace: string, tool: string, server: string, durationMs: number, failed: boolean): void {
    this.window.record(workspace, tool, server, durationMs, failed);
  }

  /** Writes this replica's window if it changed since the last write; one write at a time. */
  async flush(): Promise<void> {
    if (this.writing) return this.writing;
    if (!this.window.takeChanged() || !this.store.toolStats) return;
    this.writing = this.store.toolStats.kv
      .put(this.replica, encodeWindow(this.window.snapshot(this.replica), MAX_STORED_BYTES))
      .then(() => undefined)
      .catch((err: unknown) => {
        this.window.markChanged();
        this.logger.warn(`sharing the tool call window failed (next try in ${this.config.extra.MCP_STATS_FLUSH_MS} ms): ${err instanceof Error ? err.message : String(err)}`);
      })
      .finally(() => (this.writing = undefined));
    return this.writing;
  }

  /** Every replica's window (this one's as it is now), for the cells `include` keeps. */
  merged(include: (cell: StatsCell) => boolean, now = Date.now()): MergedStats {
    const windows: ReplicaWindow[] = [this.window.snapshot(this.replica)];
    for (const [key, value] of this.store.toolStats?.entries() ?? []) {
      if (key === this.replica) continue;
      const w = parseWindow(value);
      if (w) windows.push(w);
    }
    return mergeWindows(windows, now, include);
  }
}
