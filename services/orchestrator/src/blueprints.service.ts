import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Blueprint, BlueprintSchema, Cursors, hasPermission, parseBlueprintRef, pb, ZiggieError } from '@ziggie/contracts';
import { DatabaseService, json, Kysely, zodToZiggie } from '@ziggie/platform';
import { BUILTIN_BLUEPRINTS } from './blueprints/builtin';
import { validateBlueprint } from './blueprints/expand';
import { BlueprintRow, OrchestratorDb } from './migrations';
import { iso, pageOf, pageResult } from './views';

/** Orders versions numerically part by part ("1.10.0" after "1.9.2"); a pre-release sorts before its release. */
export function compareVersions(a: string, b: string): number {
  const [ma = '', pa] = a.split('-', 2);
  const [mb = '', pb_] = b.split('-', 2);
  const na = ma.split('.').map(Number);
  const nb = mb.split('.').map(Number);
  for (let i = 0; i < Math.max(na.length, nb.length); i++) {
    const d = (na[i] ?? 0) - (nb[i] ?? 0);
    if (d !== 0) return d;
  }
  if (pa === pb_) return 0;
  if (pa === undefined) return 1;
  if (pb_ === undefined) return -1;
  return pa.localeCompare(pb_);
}

export function toBlueprint(r: BlueprintRow): Blueprint {
  return BlueprintSchema.parse({
    name: r.name,
    version: r.version,
    description: r.description,
    inputSchema: r.input_schema,
    outputSchema: r.output_schema ?? undefined,
    template: r.template,
    outputs: r.outputs,
  });
}

function toPb(r: BlueprintRow): pb.Blueprint {
  return {
    name: r.name,
    version: r.version,
    description: r.description,
    inputSchema: r.input_schema,
    outputSchema: r.output_schema ?? undefined,
    template: r.template as unknown as Record<string, unknown>,
    outputs: r.outputs,
    builtin: r.builtin,
    createdBy: r.created_by,
    createdAt: iso(r.created_at),
  };
}

/** Versioned plan templates. A version never changes once created; the built-ins are installed at start. */
@Injectable()
export class BlueprintsService implements OnApplicationBootstrap {
  private readonly logger = new Logger('blueprints');

  constructor(private readonly database: DatabaseService) {}

  private get db(): Kysely<OrchestratorDb> {
    return this.database.db<OrchestratorDb>();
  }

  async onApplicationBootstrap(): Promise<void> {
    for (const b of BUILTIN_BLUEPRINTS) {
      await this.db
        .insertInto('blueprints')
        .values(this.row(b, 'ziggie', true))
        .onConflict((oc) => oc.columns(['name', 'version']).doNothing())
        .execute();
    }
    this.logger.log(`${BUILTIN_BLUEPRINTS.length} built-in blueprints installed`);
  }

  private row(b: Blueprint, createdBy: string, builtin: boolean) {
    return {
      name: b.name,
      version: b.version,
      description: b.description,
      input_schema: json<Record<string, unknown>>(b.inputSchema),
      output_schema: b.outputSchema ? json<Record<string, unknown>>(b.outputSchema) : null,
      template: json<{ steps: unknown[] }>(b.template),
      outputs: json<Record<string, unknown>>(b.outputs),
      builtin,
      created_by: createdBy,
    };
  }

  async create(req: pb.CreateBlueprintRequest): Promise<pb.Blueprint> {
    if (!req.principal || !hasPermission(req.principal.roles, 'config:change')) throw new ZiggieError('AUTH_FORBIDDEN', 'permission config:change required');
    const b = req.blueprint;
    const parsed = BlueprintSchema.safeParse({
      name: b?.name,
      version: b?.version,
      description: b?.description || undefined,
      inputSchema: b?.inputSchema,
      outputSchema: b?.outputSchema,
      template: b?.template,
      outputs: b?.outputs,
    });
    if (!parsed.success) throw zodToZiggie(parsed.error, 'BLUEPRINT_INVALID');
    validateBlueprint(parsed.data);
    const inserted = await this.db
      .insertInto('blueprints')
      .values(this.row(parsed.data, req.principal.subject, false))
      .onConflict((oc) => oc.columns(['name', 'version']).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!inserted) throw new ZiggieError('BLUEPRINT_EXISTS', `blueprint ${parsed.data.name}@${parsed.data.version} already exists; versions never change, create a new one`);
    return toPb(inserted);
  }

  /** One version, or the latest when none is given. */
  async find(name: string, version?: string): Promise<BlueprintRow> {
    const rows = await this.db
      .selectFrom('blueprints')
      .selectAll()
      .where('name', '=', name)
      .$if(!!version, (q) => q.where('version', '=', version!))
      .execute();
    if (rows.length === 0) throw new ZiggieError('BLUEPRINT_NOT_FOUND', `blueprint ${name}${version ? `@${version}` : ''} not found`, { name, version });
    return rows.sort((a, b) => compareVersions(b.version, a.version))[0]!;
  }

  async get(req: pb.GetBlueprintRequest): Promise<pb.Blueprint> {
    return toPb(await this.find(req.name, req.version || undefined));
  }

  /** Resolves `name@version` for a task submission. */
  async resolve(ref: string): Promise<Blueprint> {
    const parsed = parseBlueprintRef(ref);
    if (!parsed) throw new ZiggieError('VALIDATION_FAILED', `blueprint must be name@version, got ${JSON.stringify(ref)}`);
    return toBlueprint(await this.find(parsed.name, parsed.version));
  }

  async list(req: pb.ListBlueprintsRequest): Promise<pb.ListBlueprintsResponse> {
    const { limit, offset } = pageOf(req.page, Cursors.blueprints);
    let q = this.db.selectFrom('blueprints');
    if (req.name) q = q.where('name', '=', req.name);
    const [rows, count] = await Promise.all([
      q.selectAll().orderBy('name').orderBy('created_at', 'desc').limit(limit).offset(offset).execute(),
      q.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return pageResult(rows.map(toPb), Number(count.n), offset, Cursors.blueprints);
  }

  async remove(req: pb.DeleteBlueprintRequest): Promise<pb.DeleteBlueprintResponse> {
    if (!req.principal || !hasPermission(req.principal.roles, 'config:change')) throw new ZiggieError('AUTH_FORBIDDEN', 'permission config:change required');
    const row = await this.find(req.name, req.version || undefined);
    if (!req.version) throw new ZiggieError('VALIDATION_FAILED', 'give the version to delete');
    if (row.builtin) throw new ZiggieError('BLUEPRINT_BUILTIN', `${row.name}@${row.version} is built in`);
    await this.db.deleteFrom('blueprints').where('name', '=', row.name).where('version', '=', row.version).execute();
    return { deleted: true };
  }
}
