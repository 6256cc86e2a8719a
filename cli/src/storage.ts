/**
 * The local stack's embedded storage: one PGlite database on local disk, served over the
 * Postgres wire protocol on loopback so every service connects with DATABASE_URL. One
 * PGlite per service would cost each of them hundreds of MB of WebAssembly heap; one shared
 * instance keeps services small. Transactions are serialised by the socket server.
 *
 *   node cli/dist/storage.js --data-dir <dir> --port <port>
 */
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const dataDir = resolve(arg('data-dir') ?? '.ziggie/storage');
  const port = Number.parseInt(arg('port') ?? '5433', 10);
  mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(join(dataDir, 'pgdata'));
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port, maxConnections: 64 });
  await server.start();
  process.stdout.write(`${JSON.stringify({ level: 'info', service: 'storage', msg: `PGlite serving ${dataDir} on 127.0.0.1:${port}` })}\n`);
  const stop = (): void => {
    void server
      .stop()
      .then(() => db.close())
      .finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`storage: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
