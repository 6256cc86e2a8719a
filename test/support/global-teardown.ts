// jest globalTeardown paired with global-setup.ts: stops the run's shared PostgreSQL server (once,
// however many projects ran) and removes its temp dir.
import { releaseSignalHandlers, sharedPostgres } from './global-setup';
import { SHARED_POSTGRES_ENV } from './postgres';

export default async function globalTeardown(): Promise<void> {
  const started = sharedPostgres();
  if (!started) return;
  delete process.env[SHARED_POSTGRES_ENV];
  const server = await started.catch(() => undefined);
  await server?.stop();
  releaseSignalHandlers();
}
