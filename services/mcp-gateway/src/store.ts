import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type { KV, KvEntry, QueuedIterator } from 'nats';
import { NatsService } from '@ziggie/platform';

const decoder = new TextDecoder();

/**
 * A JetStream key-value bucket of JSON values, mirrored in memory by a watch so reads are
 * local and every replica sees every other replica's writes within milliseconds.
 */
export class JsonBucket<T> {
  private readonly logger: Logger;
  private readonly values = new Map<string, T>();
  private watcher?: QueuedIterator<KvEntry>;
  private listeners: ((key: string, value: T | undefined) => void)[] = [];

  constructor(
    readonly kv: KV,
    name: string,
  ) {
    this.logger = new Logger(`kv:${name}`);
  }

  /** Loads the current values, then keeps following changes. */
  async start(): Promise<void> {
    let initialized!: () => void;
    const ready = new Promise<void>((resolve) => (initialized = resolve));
    this.watcher = await this.kv.watch({ initializedFn: () => initialized() });
    void (async () => {
      for await (const e of this.watcher!) {
        let value: T | undefined;
        if (e.operation === 'PUT') {
          try {
            value = JSON.parse(decoder.decode(e.value)) as T;
          } catch {
            this.logger.warn(`ignored a value that is not JSON at ${e.key}`);
            continue;
          }
          this.values.set(e.key, value);
        } else {
          this.values.delete(e.key);
        }
        for (const l of this.listeners) l(e.key, value);
      }
    })();
    await ready;
  }

  onChange(listener: (key: string, value: T | undefined) => void): void {
    this.listeners.push(listener);
  }

  get(key: string): T | undefined {
    return this.values.get(key);
  }

  entries(): [string, T][] {
    return [...this.values.entries()];
  }

  async put(key: string, value: T): Promise<void> {
    await this.kv.put(key, JSON.stringify(value));
  }

  /** Writes only if the key is absent; false when another writer got there first. */
  async create(key: string, value: T): Promise<boolean> {
    try {
      await this.kv.create(key, JSON.stringify(value));
      return true;
    } catch (err) {
      if (/wrong last sequence|key exists/i.test(err instanceof Error ? err.message : String(err))) return false;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.kv.delete(key);
  }

  /** Reads from the server (not the mirror): for a record another replica may have just written. */
  async fetch(key: string): Promise<T | undefined> {
    const e = await this.kv.get(key);
    if (!e || e.operation !== 'PUT') return undefined;
    return JSON.parse(decoder.decode(e.value)) as T;
  }

  stop(): void {
    this.watcher?.stop();
  }
}

export interface StoredSession {
  subject: string;
  workspace: string;
  protocolVersion: string;
  /** The client's initialize request, replayed when another replica picks the session up. */
  initialize: Record<string, unknown>;
  createdAt: string;
}

/**
 * The gateway's shared state in NATS JetStream KV (ADR 0004): tool pins, upstreams added
 * through the API, MCP sessions (expiring with the bucket's max age), what GPU pools share
 * (bounds set through the API, the last scale), and each replica's tool call window.
 */
@Injectable()
export class McpStore implements OnApplicationShutdown {
  pins!: JsonBucket<unknown>;
  servers!: JsonBucket<unknown>;
  gpuPools!: JsonBucket<unknown>;
  /** Each replica's per-tool call window (tool-stats.ts), by replica id; kept an hour after the last write, as long as its figures count. */
  toolStats!: JsonBucket<unknown>;
  sessions!: KV;
  private started?: Promise<void>;

  constructor(private readonly nats: NatsService) {}

  /** Opens the buckets once; every caller waits for the same start. */
  start(sessionTtlMs: number): Promise<void> {
    return (this.started ??= this.open(sessionTtlMs));
  }

  private async open(sessionTtlMs: number): Promise<void> {
    const js = this.nats.jetstream;
    this.pins = new JsonBucket(await js.views.kv('ziggie_mcp_pins', { history: 5 }), 'pins');
    this.servers = new JsonBucket(await js.views.kv('ziggie_mcp_servers', { history: 5 }), 'servers');
    this.gpuPools = new JsonBucket(await js.views.kv('ziggie_gpu_pools', { history: 5 }), 'gpu-pools');
    this.toolStats = new JsonBucket(await js.views.kv('ziggie_mcp_tool_stats', { history: 1, ttl: 61 * 60_000 }), 'tool-stats');
    this.sessions = await js.views.kv('ziggie_mcp_sessions', { history: 1, ttl: sessionTtlMs });
    await this.pins.start();
    await this.servers.start();
    await this.gpuPools.start();
    await this.toolStats.start();
  }

  async getSession(id: string): Promise<StoredSession | undefined> {
    const e = await this.sessions.get(id);
    if (!e || e.operation !== 'PUT') return undefined;
    return JSON.parse(decoder.decode(e.value)) as StoredSession;
  }

  async putSession(id: string, session: StoredSession): Promise<void> {
    await this.sessions.put(id, JSON.stringify(session));
  }

  async deleteSession(id: string): Promise<void> {
    await this.sessions.delete(id);
  }

  onApplicationShutdown(): void {
    this.pins?.stop();
    this.servers?.stop();
    this.gpuPools?.stop();
    this.toolStats?.stop();
  }
}
