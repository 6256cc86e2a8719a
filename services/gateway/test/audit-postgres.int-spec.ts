import 'reflect-metadata';
import { Body, Controller, HttpCode, Module, Post } from '@nestjs/common';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { AuthModule, bootstrapService, DatabaseService, RequirePermission, RunningService, ServiceDefinition, signDevToken, sql } from '@ziggie/platform';
import { startPostgres, type PostgresHandle } from '../../../test/support';
import { GatewayDb, migrations } from '../src/migrations';
import { auditEnv } from '../src/audit/audit.config';
import { AuditModule } from '../src/audit/audit.module';
import { AuditRetentionService, RETENTION_LOCK_KEY } from '../src/audit/audit-retention.service';
import { AuditService } from '../src/audit/audit.service';

const SECRET = 'audit-postgres-secret-0123456789ab';

@Controller('v1')
class ProbeController {
  @Post('tasks')
  @HttpCode(201)
  @RequirePermission('agent:dispatch')
  submit(@Body() body: { workspace?: string }): object {
    return { id: 'tsk_1', workspace: body.workspace };
  }
}

@Module({ imports: [AuthModule, AuditModule], controllers: [ProbeController] })
class AuditPostgresTestModule {}

const definition: ServiceDefinition<typeof auditEnv> = { service: 'gateway', extraConfig: auditEnv, migrations, module: () => AuditPostgresTestModule };

/** What only a Postgres server exercises: pg's type handling and the advisory lock between replicas. */
describe('gateway audit log on a Postgres server (DATABASE_URL)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ziggie-audit-pg-'));
  let pg: PostgresHandle;
  let svc: RunningService;
  let base: string;
  const admin = signDevToken({ subject: 'ada', roles: ['admin'], workspaces: ['*'] , ttlSeconds: 300 }, { secret: SECRET, issuer: 'ziggie-local', audience: 'ziggie-api' });
  const db = () => svc.app.get(DatabaseService).db<GatewayDb>();
  const retention = () => svc.app.get(AuditRetentionService);

  beforeAll(async () => {
    pg = await startPostgres();
    svc = await bootstrapService(definition, {
      ZIGGIE_JWT_SECRET: SECRET,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      LOG_LEVEL: 'silent',
      DATA_DIR: dir,
      DATABASE_URL: pg.url,
    });
    base = `http://127.0.0.1:${svc.httpPort}`;
    await retention().run();
  }, 90_000);

  afterAll(async () => {
    await svc?.stop();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records concurrent calls and lists them back page by page', async () => {
    const ids = Array.from({ length: 25 }, (_, i) => `pg-${i}`);
    const statuses = await Promise.all(
      ids.map((id) =>
        fetch(`${base}/v1/tasks`, {
          method: 'POST',
          headers: { authorization: `Bearer ${admin}`, 'x-request-id': id, 'content-type': 'application/json' },
          body: JSON.stringify({ workspace: 'alpha' }),
        }).then((r) => r.status),
      ),
    );
    expect(new Set(statuses)).toEqual(new Set([201]));
    await svc.app.get(AuditService).flush();

    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const res = await fetch(`${base}/v1/audit?action=${encodeURIComponent('POST /v1/tasks')}&limit=10${cursor ? `&cursor=${cursor}` : ''}`, { headers: { authorization: `Bearer ${admin}` } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { items: Array<{ correlationId: string; outcome: string; status: number; roles: string[]; workspace: string }>; nextCursor?: string };
      for (const item of body.items) expect(item).toMatchObject({ outcome: 'success', status: 201, roles: ['admin'], workspace: 'alpha' });
      seen.push(...body.items.map((i) => i.correlationId));
      cursor = body.nextCursor;
    } while (cursor);
    expect([...seen].sort()).toEqual([...ids].sort());
  }, 30_000);

  it('skips retention while another replica holds the lock, and runs once it is free', async () => {
    await sql`
      insert into audit_log (id, at, actor, roles, action, resource, outcome)
      select 'expired-' || g, now() - interval '100 days', 'seed-expired', '[]'::jsonb, 'POST /v1/tasks', '/v1/tasks', 'success'
      from generate_series(1, 3) g`.execute(db());
    const otherReplica = new Client({ connectionString: pg.url });
    await otherReplica.connect();
    try {
      await otherReplica.query('select pg_advisory_lock($1)', [RETENTION_LOCK_KEY]);
      expect(await retention().run()).toEqual({ ran: false, deleted: 0, markedUnknown: 0 });
      expect(await db().selectFrom('audit_log').select('id').where('actor', '=', 'seed-expired').execute()).toHaveLength(3);
      await otherReplica.query('select pg_advisory_unlock($1)', [RETENTION_LOCK_KEY]);
      expect(await retention().run()).toMatchObject({ ran: true, deleted: 3 });
      // The run let go of the lock: another replica can take it now.
      const { rows } = await otherReplica.query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [RETENTION_LOCK_KEY]);
      expect(rows[0]?.locked).toBe(true);
    } finally {
      await otherReplica.end();
    }
  }, 30_000);
});
