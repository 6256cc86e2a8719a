import 'reflect-metadata';
import { Body, Controller, Delete, Get, HttpCode, Module, Param, Post, Req } from '@nestjs/common';
import type { FastifyRequest as Request } from 'fastify';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cursors, ZiggieError } from '@ziggie/contracts';
import {
  assertWorkspace,
  AuthModule,
  bootstrapService,
  ConfigError,
  CurrentPrincipal,
  DatabaseService,
  json,
  Kysely,
  loadConfig,
  Principal,
  ProblemEvents,
  Public,
  RequirePermission,
  RunningService,
  ServiceDefinition,
  signDevToken,
  sql,
} from '@ziggie/platform';
import { startPostgres, type PostgresHandle } from '../../../test/support';
import { AuditLogRow, GatewayDb, migrations } from '../src/migrations';
import { auditEnv } from '../src/audit/audit.config';
import { auditId } from '../src/audit/audit-record';
import { AuditModule } from '../src/audit/audit.module';
import { AuditRetentionService } from '../src/audit/audit-retention.service';
import { AuditService } from '../src/audit/audit.service';

const SECRET = 'audit-spec-secret-0123456789abcdef';
const signer = { secret: SECRET, issuer: 'ziggie-local', audience: 'ziggie-api' };
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

function tokenFor(subject: string, roles: string[], workspaces: string[] = ['*']): string {
  return signDevToken({ subject, roles, workspaces, ttlSeconds: 300 }, signer);
}

/** Handler calls, by correlation id, and what the audit log said while each handler ran. */
const handled: string[] = [];
const outcomeSeenByHandler = new Map<string, string | undefined>();

const correlationOf = (req: Request) => String(req.headers['x-request-id']);

/** Routes shaped like the gateway's, so what the audit records is what it would record there. */
@Controller('v1')
class ProbeController {
  constructor(private readonly database: DatabaseService) {}

  @Post('tasks')
  @HttpCode(201)
  @RequirePermission('agent:dispatch')
  async submit(@Body() body: { workspace?: string }, @Req() req: Request): Promise<object> {
    const row = await this.database.db<GatewayDb>().selectFrom('audit_log').select('outcome').where('correlation_id', '=', correlationOf(req)).executeTakeFirst();
    outcomeSeenByHandler.set(correlationOf(req), row?.outcome);
    handled.push(correlationOf(req));
    return { id: 'tsk_1', workspace: body.workspace };
  }

  @Post('tasks/:id/cancel')
  @HttpCode(200)
  @RequirePermission('agent:dispatch')
  cancel(@Param('id') id: string, @Req() req: Request): object {
    handled.push(correlationOf(req));
    throw new ZiggieError('TASK_NOT_FOUND', `task ${id} not found`);
  }

  @Post('tasks/:id/crash')
  crash(@Req() req: Request): object {
    handled.push(correlationOf(req));
    throw new Error('handler bug');
  }

  @Delete('workspaces/:id/leases/:leaseId')
  @HttpCode(204)
  release(@Param('id') id: string, @CurrentPrincipal() principal: Principal, @Req() req: Request): void {
    assertWorkspace(principal, id);
    handled.push(correlationOf(req));
  }

  @Get('tasks')
  list(): object {
    return { items: [] };
  }

  @Get('limited')
  limited(): object {
    throw new ZiggieError('RATE_LIMITED', 'slow down', { retryAfterSeconds: 3 });
  }

  @Post('hooks')
  @Public()
  hook(@Req() req: Request): object {
    handled.push(correlationOf(req));
    return { ok: true };
  }
}

@Module({ imports: [AuthModule, AuditModule], controllers: [ProbeController] })
class AuditTestModule {}

const definition: ServiceDefinition<typeof auditEnv> = {
  service: 'gateway',
  extraConfig: auditEnv,
  // As the gateway's definition: TRUST_PROXY decides the client address.
  httpServer: (config) => ({ trustProxy: config.extra.TRUST_PROXY }),
  migrations,
  module: () => AuditTestModule,
};

function start(dataDir: string, databaseUrl: string, env: Record<string, string> = {}): Promise<RunningService> {
  return bootstrapService(definition, {
    ZIGGIE_JWT_SECRET: SECRET,
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    LOG_LEVEL: 'silent',
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl,
    AUDIT_RETENTION_DAYS: '30',
    ...env,
  });
}

type Row = Omit<AuditLogRow, 'at'> & { at: Date };

function seedRow(fields: Partial<Row> & { at: Date }): Row {
  return {
    id: auditId(fields.at.getTime()),
    actor: 'seed',
    roles: ['admin'],
    action: 'POST /v1/tasks',
    resource: '/v1/tasks',
    resource_id: null,
    workspace: null,
    ip: '10.0.0.1',
    user_agent: null,
    correlation_id: null,
    status: 201,
    outcome: 'success',
    error_code: null,
    duration_ms: 3,
    ...fields,
  };
}

describe('gateway audit log (real app on loopback, a fresh database on the run\'s PostgreSQL)', () => {
  const root = mkdtempSync(join(tmpdir(), 'ziggie-audit-'));
  const dataDir = join(root, 'main');
  let pg: PostgresHandle;
  let svc: RunningService;
  let base: string;
  let seq = 0;

  const admin = tokenFor('ada', ['admin']);
  const dispatcher = tokenFor('lee', ['l1'], ['alpha']);
  const viewer = tokenFor('vic', ['l2l3'], ['alpha']);

  const audit = () => svc.app.get(AuditService);
  const retention = () => svc.app.get(AuditRetentionService);
  const db = (): Kysely<GatewayDb> => svc.app.get(DatabaseService).db<GatewayDb>();
  const nextCorrelation = (label: string) => `${label}-${++seq}`;

  async function call(method: string, path: string, opts: { token?: string; correlationId?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { 'user-agent': 'audit-spec/1.0', ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.correlationId) headers['x-request-id'] = opts.correlationId;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    // Completions and denials are written after the response; wait for them.
    await audit().flush();
    return res;
  }

  const recordsOf = (correlationId: string) => db().selectFrom('audit_log').selectAll().where('correlation_id', '=', correlationId).execute();

  async function seed(rows: Row[]): Promise<void> {
    await db()
      .insertInto('audit_log')
      .values(rows.map((r) => ({ ...r, roles: json<string[]>(r.roles) })))
      .execute();
  }

  async function listAudit(query: string, token = admin): Promise<{ items: Array<Record<string, unknown>>; nextCursor?: string }> {
    const res = await call('GET', `/v1/audit${query}`, { token });
    expect(res.status).toBe(200);
    return (await res.json()) as { items: Array<Record<string, unknown>>; nextCursor?: string };
  }

  beforeAll(async () => {
    pg = await startPostgres();
    svc = await start(dataDir, pg.url);
    base = `http://127.0.0.1:${svc.httpPort}`;
    // Let the start-up retention run finish before tests count rows.
    await retention().run();
  }, 60_000);

  afterAll(async () => {
    await svc?.stop();
    await pg?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  describe('mutating calls', () => {
    it('writes one record per accepted call: pending while the handler runs, then success with status, correlation id, ip and workspace', async () => {
      const id = nextCorrelation('submit');
      const res = await call('POST', '/v1/tasks?dryRun=1', { token: dispatcher, correlationId: id, body: { workspace: 'alpha', title: 't' } });
      expect(res.status).toBe(201);
      expect(res.headers.get('x-request-id')).toBe(id);
      expect(outcomeSeenByHandler.get(id)).toBe('pending');
      const records = await recordsOf(id);
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({
        actor: 'lee',
        roles: ['l1'],
        action: 'POST /v1/tasks',
        resource: '/v1/tasks',
        resource_id: null,
        workspace: 'alpha',
        ip: '127.0.0.1',
        user_agent: 'audit-spec/1.0',
        correlation_id: id,
        status: 201,
        outcome: 'success',
        error_code: null,
      });
      expect(records[0]!.duration_ms).toEqual(expect.any(Number));
      expect(records[0]!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    });

    it('records a failing call as failure with its error code, and a handler bug as INTERNAL', async () => {
      const id = nextCorrelation('cancel');
      expect((await call('POST', '/v1/tasks/tsk_404/cancel', { token: dispatcher, correlationId: id })).status).toBe(404);
      expect(await recordsOf(id)).toEqual([
        expect.objectContaining({ action: 'POST /v1/tasks/:id/cancel', resource: '/v1/tasks/tsk_404/cancel', resource_id: 'tsk_404', status: 404, outcome: 'failure', error_code: 'TASK_NOT_FOUND' }),
      ]);
      const bug = nextCorrelation('crash');
      expect((await call('POST', '/v1/tasks/tsk_1/crash', { token: admin, correlationId: bug })).status).toBe(500);
      expect(await recordsOf(bug)).toEqual([expect.objectContaining({ status: 500, outcome: 'failure', error_code: 'INTERNAL', actor: 'ada' })]);
    });

    it('takes the workspace from /v1/workspaces/:id, and records a denial inside the handler once, as denied', async () => {
      const ok = nextCorrelation('release');
      expect((await call('DELETE', '/v1/workspaces/alpha/leases/l-1', { token: dispatcher, correlationId: ok })).status).toBe(204);
      expect(await recordsOf(ok)).toEqual([
        expect.objectContaining({ action: 'DELETE /v1/workspaces/:id/leases/:leaseId', workspace: 'alpha', resource_id: 'alpha', status: 204, outcome: 'success' }),
      ]);
      const refused = nextCorrelation('release');
      expect((await call('DELETE', '/v1/workspaces/beta/leases/l-2?workspace=alpha', { token: dispatcher, correlationId: refused })).status).toBe(403);
      expect(await recordsOf(refused)).toEqual([expect.objectContaining({ workspace: 'beta', status: 403, outcome: 'denied', error_code: 'AUTH_WORKSPACE_FORBIDDEN' })]);
    });

    it('does not audit reads, public routes or calls no route matched', async () => {
      const read = nextCorrelation('read');
      const hook = nextCorrelation('hook');
      const nowhere = nextCorrelation('nowhere');
      expect((await call('GET', '/v1/tasks', { token: admin, correlationId: read })).status).toBe(200);
      expect((await call('POST', '/v1/hooks', { correlationId: hook, body: {} })).status).toBe(201);
      expect((await call('POST', '/v1/nowhere', { token: admin, correlationId: nowhere, body: {} })).status).toBe(404);
      expect(handled).toContain(hook);
      for (const id of [read, hook, nowhere]) expect(await recordsOf(id)).toEqual([]);
    });

    it('records concurrent calls one each', async () => {
      const ids = Array.from({ length: 40 }, () => nextCorrelation('burst'));
      const statuses = await Promise.all(ids.map((id) => call('POST', '/v1/tasks', { token: admin, correlationId: id, body: { workspace: 'gamma' } }).then((r) => r.status)));
      expect(new Set(statuses)).toEqual(new Set([201]));
      const rows = await db().selectFrom('audit_log').select(['correlation_id', 'outcome']).where('correlation_id', 'in', ids).execute();
      expect(rows).toHaveLength(40);
      expect(new Set(rows.map((r) => r.outcome))).toEqual(new Set(['success']));
    });
  });

  describe('denials', () => {
    it.each([
      ['no token', undefined, 401, 'AUTH_MISSING_TOKEN', 'anonymous', []],
      ['a bad token', 'not.a.jwt', 401, 'AUTH_INVALID_TOKEN', 'anonymous', []],
      ['a token without the permission', tokenFor('vic', ['l2l3']), 403, 'AUTH_FORBIDDEN', 'vic', ['l2l3']],
    ])('records %s as denied, and the handler never runs', async (_what, token, status, code, actor, roles) => {
      const id = nextCorrelation('denied');
      const res = await call('POST', '/v1/tasks', { token, correlationId: id, body: { workspace: 'alpha' } });
      expect(res.status).toBe(status);
      expect(handled).not.toContain(id);
      expect(await recordsOf(id)).toEqual([
        expect.objectContaining({ actor, roles, action: 'POST /v1/tasks', workspace: 'alpha', status, outcome: 'denied', error_code: code, duration_ms: null, ip: '127.0.0.1' }),
      ]);
    });

    it('records denials of reads too: 401 on GET and 429', async () => {
      const unauth = nextCorrelation('get401');
      expect((await call('GET', '/v1/tasks?workspace=beta', { correlationId: unauth })).status).toBe(401);
      expect(await recordsOf(unauth)).toEqual([expect.objectContaining({ action: 'GET /v1/tasks', workspace: 'beta', outcome: 'denied', error_code: 'AUTH_MISSING_TOKEN' })]);
      const limited = nextCorrelation('get429');
      const res = await call('GET', '/v1/limited', { token: viewer, correlationId: limited });
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('3');
      expect(await recordsOf(limited)).toEqual([expect.objectContaining({ actor: 'vic', status: 429, outcome: 'denied', error_code: 'RATE_LIMITED' })]);
    });

    it('answers normally when another problem subscriber throws or rejects', async () => {
      const events = svc.app.get(ProblemEvents);
      const offThrow = events.subscribe(() => {
        throw new Error('subscriber bug');
      });
      const offReject = events.subscribe(() => Promise.reject(new Error('subscriber rejection')));
      try {
        const id = nextCorrelation('subscribers');
        const res = await call('POST', '/v1/tasks', { correlationId: id, body: {} });
        expect(res.status).toBe(401);
        expect(await res.json()).toMatchObject({ status: 401, code: 'AUTH_MISSING_TOKEN', correlationId: id });
        expect(await recordsOf(id)).toHaveLength(1);
      } finally {
        offThrow();
        offReject();
      }
    });
  });

  describe('GET /v1/audit', () => {
    const at = (minutesAgo: number) => new Date(Date.now() - 60 * MINUTE - minutesAgo * MINUTE);
    let window: string;
    let seeded: Row[];

    beforeAll(async () => {
      // An hour back, out of the way of the records the other tests make.
      const s4 = at(4);
      seeded = [
        seedRow({ at: at(1), actor: 'seed-ann', workspace: 'alpha', action: 'POST /v1/tasks', outcome: 'success', correlation_id: 'seed-c1' }),
        seedRow({ at: at(2), actor: 'seed-ann', workspace: 'beta', action: 'DELETE /v1/policies/:id', outcome: 'failure', status: 404, error_code: 'POLICY_NOT_FOUND', correlation_id: 'seed-c2' }),
        seedRow({ at: at(3), actor: 'seed-bob', workspace: 'alpha', action: 'POST /v1/tasks', outcome: 'denied', status: 403, correlation_id: 'seed-c3' }),
        seedRow({ at: s4, actor: 'seed-bob', workspace: null, action: 'PUT /v1/policies/:id', outcome: 'unknown', status: null }),
        // Same instant as the one before: the id breaks the tie.
        seedRow({ at: s4, actor: 'seed-cat', workspace: 'delta', action: 'POST /v1/tasks', outcome: 'success' }),
        seedRow({ at: at(6), actor: 'seed-cat', workspace: 'alpha', action: 'PATCH /v1/workspaces/:id', outcome: 'success' }),
      ];
      await seed(seeded);
      window = `from=${encodeURIComponent(at(10).toISOString())}&to=${encodeURIComponent(at(0).toISOString())}`;
    });

    const actorsOf = (body: { items: Array<Record<string, unknown>> }) => body.items.map((i) => `${String(i.actor)}:${String(i.action)}`);

    it('lists newest first in the API shape', async () => {
      const body = await listAudit(`?${window}`);
      expect(body.nextCursor).toBeUndefined();
      expect(body.items).toHaveLength(6);
      const times = body.items.map((i) => Date.parse(String(i.at)));
      expect([...times].sort((a, b) => b - a)).toEqual(times);
      expect(body.items[0]).toEqual({
        id: seeded[0]!.id,
        at: seeded[0]!.at.toISOString(),
        actor: 'seed-ann',
        roles: ['admin'],
        action: 'POST /v1/tasks',
        resource: '/v1/tasks',
        resourceId: null,
        workspace: 'alpha',
        ip: '10.0.0.1',
        userAgent: null,
        correlationId: 'seed-c1',
        status: 201,
        outcome: 'success',
        errorCode: null,
        durationMs: 3,
      });
    });

    it.each([
      ['actor', 'actor=seed-ann', ['seed-ann:POST /v1/tasks', 'seed-ann:DELETE /v1/policies/:id']],
      ['workspace', 'workspace=delta', ['seed-cat:POST /v1/tasks']],
      ['action', `action=${encodeURIComponent('PUT /v1/policies/:id')}`, ['seed-bob:PUT /v1/policies/:id']],
      ['correlationId', 'correlationId=seed-c2', ['seed-ann:DELETE /v1/policies/:id']],
    ])('filters by %s', async (_name, query, expected) => {
      expect(actorsOf(await listAudit(`?${query}`))).toEqual(expected);
    });

    it('filters by outcome and by time (from inclusive, to exclusive)', async () => {
      expect(actorsOf(await listAudit(`?${window}&outcome=denied`))).toEqual(['seed-bob:POST /v1/tasks']);
      const from = encodeURIComponent(seeded[2]!.at.toISOString());
      const to = encodeURIComponent(seeded[0]!.at.toISOString());
      expect(actorsOf(await listAudit(`?from=${from}&to=${to}`))).toEqual(['seed-ann:DELETE /v1/policies/:id', 'seed-bob:POST /v1/tasks']);
      // Filters combine.
      expect(actorsOf(await listAudit(`?${window}&workspace=alpha&outcome=success`))).toEqual(['seed-ann:POST /v1/tasks', 'seed-cat:PATCH /v1/workspaces/:id']);
    });

    it('pages with a keyset cursor: every record once, in order, unaffected by newer records', async () => {
      const all = (await listAudit(`?${window}`)).items.map((i) => i.id);
      const paged: unknown[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const body = await listAudit(`?${window}&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        paged.push(...body.items.map((i) => i.id));
        cursor = body.nextCursor;
        if (++pages === 1) await seed([seedRow({ at: at(0.5), actor: 'seed-late' })]);
      } while (cursor);
      expect(pages).toBe(3);
      expect(paged).toEqual(all);
      // The tie at the same instant is ordered by id, newest id first.
      const tied = seeded.slice(3, 5).map((r) => r.id);
      expect(paged.filter((id) => tied.includes(id as string))).toEqual([...tied].sort().reverse());
    });

    it('shows a token without "*" only the records of its workspaces', async () => {
      const alphaAdmin = tokenFor('ada', ['admin'], ['alpha']);
      expect(actorsOf(await listAudit(`?${window}`, alphaAdmin))).toEqual(['seed-ann:POST /v1/tasks', 'seed-bob:POST /v1/tasks', 'seed-cat:PATCH /v1/workspaces/:id']);
      expect((await listAudit(`?${window}&workspace=beta`, alphaAdmin)).items).toEqual([]);
    });

    it('refuses a non-admin with 403, and records that denial', async () => {
      const id = nextCorrelation('audit403');
      const res = await call('GET', '/v1/audit?actor=seed-ann', { token: dispatcher, correlationId: id });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ code: 'AUTH_FORBIDDEN' });
      expect(await recordsOf(id)).toEqual([expect.objectContaining({ actor: 'lee', action: 'GET /v1/audit', outcome: 'denied', error_code: 'AUTH_FORBIDDEN', status: 403 })]);
      const seen = await listAudit(`?correlationId=${id}`);
      expect(seen.items).toEqual([expect.objectContaining({ actor: 'lee', outcome: 'denied', correlationId: id })]);
    });

    it.each([
      ['an unknown filter', '?colour=red', 'colour'],
      ['a repeated filter', '?actor=a&actor=b', 'actor'],
      ['an unknown outcome', '?outcome=maybe', 'outcome'],
      ['a limit above 500', '?limit=501', 'limit'],
      ['a date that is not ISO', '?from=yesterday', 'from'],
      ['from after to', '?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z', 'from'],
      ['a cursor it did not hand out', '?cursor=bm90LWEtY3Vyc29y', 'cursor'],
      ['a huge number as cursor', '?cursor=99999999999999999999', 'cursor'],
      ['another list\'s cursor', `?cursor=${Cursors.tasks.encode({ offset: 1 })}`, 'cursor'],
      ['an audit cursor with a bad id', `?cursor=${Buffer.from('{"v":1,"k":"audit","p":{"at":"2025-01-01T00:00:00.000Z","id":"x"}}').toString('base64url')}`, 'cursor'],
      ['an empty cursor', '?cursor=', 'cursor'],
      ['a limit in exponent form', '?limit=1e1', 'limit'],
      ['year 0', '?from=0000-01-01T00:00:00Z', 'from'],
    ])('answers 400 VALIDATION_FAILED for %s', async (_what, query, field) => {
      const res = await call('GET', `/v1/audit${query}`, { token: admin });
      expect(res.status).toBe(400);
      const problem = (await res.json()) as { code: string; detail: string };
      expect(problem.code).toBe('VALIDATION_FAILED');
      expect(problem.detail).toContain(field);
    });
  });

  describe('retention', () => {
    it('deletes only records older than AUDIT_RETENTION_DAYS, in batches', async () => {
      const now = new Date();
      // More than one delete batch of 10,000.
      await sql`
        insert into audit_log (id, at, actor, roles, action, resource, outcome)
        select 'expired-' || g, ${now}::timestamptz - interval '30 days' - g * interval '1 second', 'seed-expired', '[]'::jsonb, 'POST /v1/tasks', '/v1/tasks', 'success'
        from generate_series(1, 10005) g`.execute(db());
      const kept = [seedRow({ at: new Date(now.getTime() - 30 * DAY + MINUTE), actor: 'seed-kept' }), seedRow({ at: new Date(now.getTime() - DAY), actor: 'seed-kept' })];
      await seed(kept);
      const before = await db().selectFrom('audit_log').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();

      const run = await retention().run(now);
      expect(run).toMatchObject({ ran: true, deleted: 10_005 });
      const after = await db().selectFrom('audit_log').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      expect(Number(before.n) - Number(after.n)).toBe(10_005);
      expect(await db().selectFrom('audit_log').select('id').where('actor', '=', 'seed-expired').execute()).toEqual([]);
      expect((await db().selectFrom('audit_log').select('id').where('actor', '=', 'seed-kept').execute()).map((r) => r.id).sort()).toEqual(kept.map((r) => r.id).sort());
    }, 60_000);

    it('marks records pending for more than 5 minutes unknown, and leaves younger ones pending', async () => {
      const now = new Date();
      const lost = seedRow({ at: new Date(now.getTime() - 6 * MINUTE), outcome: 'pending', status: null, actor: 'seed-lost' });
      const running = seedRow({ at: new Date(now.getTime() - 4 * MINUTE), outcome: 'pending', status: null, actor: 'seed-running' });
      await seed([lost, running]);
      await retention().run(now);
      const rows = await db().selectFrom('audit_log').select(['id', 'outcome']).where('id', 'in', [lost.id, running.id]).execute();
      expect(Object.fromEntries(rows.map((r) => [r.id, r.outcome]))).toEqual({ [lost.id]: 'unknown', [running.id]: 'pending' });
    });

    it('completes a record even after it was marked unknown', async () => {
      const id = nextCorrelation('late');
      const record = seedRow({ at: new Date(Date.now() - 10 * MINUTE), outcome: 'unknown', status: null, correlation_id: id, duration_ms: null });
      await seed([record]);
      audit().complete({ ...record, outcome: 'pending' }, 200, null, 600_000);
      await audit().flush();
      expect(await recordsOf(id)).toEqual([expect.objectContaining({ outcome: 'success', status: 200, duration_ms: 600_000, actor: 'seed' })]);
    });
  });

  describe('configuration', () => {
    it('validates AUDIT_RETENTION_DAYS and TRUST_PROXY', () => {
      const env = { ZIGGIE_JWT_SECRET: SECRET };
      expect(loadConfig('gateway', auditEnv, env).extra).toEqual({ AUDIT_RETENTION_DAYS: 90, TRUST_PROXY: false });
      expect(loadConfig('gateway', auditEnv, { ...env, TRUST_PROXY: '2' }).extra.TRUST_PROXY).toBe(2);
      expect(loadConfig('gateway', auditEnv, { ...env, TRUST_PROXY: 'loopback, 10.0.0.0/8' }).extra.TRUST_PROXY).toEqual(['loopback', '10.0.0.0/8']);
      expect(() => loadConfig('gateway', auditEnv, { ...env, AUDIT_RETENTION_DAYS: '0' })).toThrow(ConfigError);
      expect(() => loadConfig('gateway', auditEnv, { ...env, TRUST_PROXY: 'kong' })).toThrow(/TRUST_PROXY/);
      expect(() => loadConfig('gateway', auditEnv, { ...env, TRUST_PROXY: '10.0.0.0/33' })).toThrow(/TRUST_PROXY/);
    });

    it('ignores X-Forwarded-For unless TRUST_PROXY names the proxy', async () => {
      const spoofed = nextCorrelation('xff');
      await call('POST', '/v1/tasks', { token: admin, correlationId: spoofed, body: {}, headers: { 'x-forwarded-for': '203.0.113.9' } });
      expect(await recordsOf(spoofed)).toEqual([expect.objectContaining({ ip: '127.0.0.1' })]);

      const proxiedDb = await startPostgres();
      const proxied = await start(join(root, 'proxied'), proxiedDb.url, { TRUST_PROXY: 'loopback' });
      try {
        const id = nextCorrelation('xff');
        const res = await fetch(`http://127.0.0.1:${proxied.httpPort}/v1/tasks`, {
          method: 'POST',
          headers: { authorization: `Bearer ${admin}`, 'x-request-id': id, 'x-forwarded-for': '203.0.113.9', 'content-type': 'application/json' },
          body: '{}',
        });
        expect(res.status).toBe(201);
        await proxied.app.get(AuditService).flush();
        const rows = await proxied.app.get(DatabaseService).db<GatewayDb>().selectFrom('audit_log').select('ip').where('correlation_id', '=', id).execute();
        expect(rows).toEqual([{ ip: '203.0.113.9' }]);
      } finally {
        await proxied.stop();
        await proxiedDb.stop();
      }
    }, 60_000);
  });

  describe('after a crash and when the database is gone', () => {
    it('marks pending records older than 5 minutes unknown at start-up', async () => {
      const lost = seedRow({ at: new Date(Date.now() - 7 * MINUTE), outcome: 'pending', status: null, actor: 'seed-crash' });
      const fresh = seedRow({ at: new Date(Date.now() - MINUTE), outcome: 'pending', status: null, actor: 'seed-crash' });
      await seed([lost, fresh]);
      await svc.stop();
      svc = await start(dataDir, pg.url);
      base = `http://127.0.0.1:${svc.httpPort}`;
      const outcomes = async () =>
        Object.fromEntries((await db().selectFrom('audit_log').select(['id', 'outcome']).where('actor', '=', 'seed-crash').execute()).map((r) => [r.id, r.outcome]));
      const deadline = Date.now() + 10_000;
      while ((await outcomes())[lost.id] !== 'unknown' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await outcomes()).toEqual({ [lost.id]: 'unknown', [fresh.id]: 'pending' });
    }, 60_000);

    it('refuses a mutating call with 503 AUDIT_UNAVAILABLE without running it when the record cannot be written', async () => {
      await retention().run();
      await svc.app.get(DatabaseService).onApplicationShutdown();
      const id = nextCorrelation('nodb');
      const res = await call('POST', '/v1/tasks', { token: admin, correlationId: id, body: { workspace: 'alpha' } });
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ code: 'AUDIT_UNAVAILABLE', correlationId: id });
      expect(handled).not.toContain(id);
      // A denial that cannot be written still gets its answer.
      const denied = await call('POST', '/v1/tasks', { correlationId: nextCorrelation('nodb'), body: {} });
      expect(denied.status).toBe(401);
    });
  });
});
