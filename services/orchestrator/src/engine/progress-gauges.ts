import { Kysely, MetricsService, sql } from '@ziggie/platform';
import { Gauge } from 'prom-client';
import { OrchestratorDb } from '../migrations';

/**
 * Live tasks and the waves of running tasks (completed, running, pending), read from the
 * database at scrape time: every replica reports the same totals, so dashboards take max().
 */
export function registerProgressGauges(metrics: MetricsService, db: () => Kysely<OrchestratorDb>): void {
  let last = { queued: 0, running: 0, completed: 0, pending: 0 };
  const query = async (): Promise<typeof last> => {
    try {
      const row = await sql<{ queued: string; running: string; completed: string | null; pending: string | null }>`
        select count(*) filter (where status = 'queued') as queued,
          count(*) filter (where status = 'running') as running,
          sum(current_wave - 1) filter (where status = 'running') as completed,
          sum(wave_count - current_wave) filter (where status = 'running') as pending
        from tasks where status in ('queued', 'running')`.execute(db());
      const r = row.rows[0];
      if (r) last = { queued: Number(r.queued), running: Number(r.running), completed: Number(r.completed ?? 0), pending: Number(r.pending ?? 0) };
    } catch {
      // Not started or stopping: the last values stand.
    }
    return last;
  };
  let inFlight: Promise<typeof last> | undefined;
  // Both gauges are collected concurrently by one scrape: they share one query.
  const read = (): Promise<typeof last> => (inFlight ??= query().finally(() => (inFlight = undefined)));
  const tasks: Gauge<'status'> = new Gauge({
    name: 'ziggie_orchestrator_live_tasks',
    help: 'Tasks not yet finished, by status',
    labelNames: ['status'],
    registers: [metrics.registry],
    collect: async () => {
      const v = await read();
      tasks.set({ status: 'queued' }, v.queued);
      tasks.set({ status: 'running' }, v.running);
    },
  });
  const waves: Gauge<'state'> = new Gauge({
    name: 'ziggie_orchestrator_live_waves',
    help: 'Waves of running tasks: completed, running (one per task) and pending',
    labelNames: ['state'],
    registers: [metrics.registry],
    collect: async () => {
      const v = await read();
      waves.set({ state: 'completed' }, v.completed);
      waves.set({ state: 'running' }, v.running);
      waves.set({ state: 'pending' }, v.pending);
    },
  });
}
