import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { Kysely, Migration, MigrationProvider, Migrator, PostgresDialect, sql } from 'kysely';
import { Pool } from 'pg';
import { PlatformConfig } from '../config/config';
import { CONFIG } from '../config/config.module';
import { HealthRegistry } from '../health/health';

export const DB_MIGRATIONS = Symbol('ZIGGIE_DB_MIGRATIONS');

const dbLogger = new Logger('db');

export type Migrations = Record<string, Migration>;

/**
 * A transaction left open this long without a statement is ended by PostgreSQL. No service waits
 * that long inside one (the longest wait, a peer's gRPC deadline inside a scheduling round, is
 * 10 s); a process that does (frozen by SIGSTOP, a debugger, a stalled VM) would otherwise hold
 * its row and advisory locks, and every replica behind them, until it wakes.
 */
export const IDLE_IN_TRANSACTION_TIMEOUT_MS = 20_000;

/** Builds the Kysely instance on a PostgreSQL server (DATABASE_URL): a pool of 10 connections. */
export function createKysely<DB>(url: string): Kysely<DB> {
  const pool = new Pool({ connectionString: url, max: 10, idleTimeoutMillis: 30_000, idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS });
  // An idle connection dropped by a Postgres restart or failover is reported here; unhandled it
  // would crash the process, while the pool simply opens a new connection for the next query.
  pool.on('error', (err) => dbLogger.warn(`idle database connection lost: ${err.message}`));
  // A connection checked out between two statements of a transaction (a scheduling round waiting
  // for a peer) has no query to fail when the server ends it (a crash, a restart, the idle-in-
  // transaction timeout): the error would reach no listener and end the process. The transaction's
  // next statement fails instead, and the pool drops the connection when it is given back.
  pool.on('connect', (client) => {
    client.on('error', (err) => dbLogger.warn(`database connection in use lost: ${err.message}`));
  });
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
}

/** Runs a service's migrations; each service keeps its own migration table in a shared database. */
export async function migrate(kysely: Kysely<unknown>, service: string, migrations: Migrations): Promise<string[]> {
  const provider: MigrationProvider = { getMigrations: () => Promise.resolve(migrations) };
  const table = `${service.replace(/-/g, '_')}_migration`;
  const migrator = new Migrator({ db: kysely, provider, migrationTableName: table, migrationLockTableName: `${table}_lock` });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

@Injectable()
export class DatabaseService implements OnApplicationShutdown {
  private readonly logger = new Logger('db');
  private instance?: Kysely<unknown>;

  constructor(
    @Inject(CONFIG) private readonly config: PlatformConfig,
    @Inject(DB_MIGRATIONS) private readonly migrations: Migrations,
    health: HealthRegistry,
  ) {
    health.register({
      name: 'database',
      check: async () => {
        await sql`select 1`.execute(this.db());
        return { ok: true };
      },
    });
  }

  /** Connects and migrates; called by the platform before the app listens. */
  async start(): Promise<void> {
    // Configuration validation already refused a service with migrations but no DATABASE_URL.
    const url = this.config.db.url;
    if (!url) throw new Error('DATABASE_URL: required (postgres://user:password@host:port/database)');
    const kysely = createKysely<unknown>(url);
    this.instance = kysely;
    const applied = await migrate(kysely, this.config.service, this.migrations);
    this.logger.log(`postgres ready${applied.length ? `, applied ${applied.join(', ')}` : ''}`);
  }

  /** The typed query builder; each service passes its own table types. */
  db<DB>(): Kysely<DB> {
    if (!this.instance) throw new Error('database is not started yet');
    return this.instance as Kysely<DB>;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.instance?.destroy();
    this.instance = undefined;
  }
}

/** JSON columns are written as text: Postgres casts it to jsonb. */
export function json<T>(value: unknown): T {
  return JSON.stringify(value) as unknown as T;
}
