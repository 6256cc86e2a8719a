import { Controller, Delete, Get, HttpCode, Param, Post, Put, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { BLUEPRINT_NAME, BLUEPRINT_VERSION, BlueprintSchema, Cursors, pb, PolicySchema, ZiggieError } from '@ziggie/contracts';
import { ApiDoc, CurrentPrincipal, PeerClients, Principal, RequirePermission, UnaryApi, ValidBody, ValidQuery } from '@ziggie/platform';
import { z } from 'zod';
import { page, pageQuery } from './pagination';

const PolicyId = z.string().regex(/^pol_[a-f0-9]{16}$/);
const BlueprintsQuery = pageQuery(Cursors.blueprints)
  .extend({ name: z.string().regex(BLUEPRINT_NAME, 'not a blueprint name').optional() })
  .strict();
const PoliciesQuery = pageQuery(Cursors.policies).strict();
const DecisionsQuery = pageQuery(Cursors.decisions)
  .extend({ taskId: z.string().regex(/^tsk_[a-f0-9]{32}$/, 'not a task id').optional(), effect: z.enum(['allow', 'deny', 'require_approval']).optional() })
  .strict();
type Policy = z.infer<typeof PolicySchema>;

function blueprintName(name: string, version?: string): { name: string; version: string } {
  // A name or version that cannot exist is simply not found.
  if (!BLUEPRINT_NAME.test(name) || (version !== undefined && !BLUEPRINT_VERSION.test(version))) {
    throw new ZiggieError('BLUEPRINT_NOT_FOUND', `blueprint ${name}${version ? `@${version}` : ''} not found`);
  }
  return { name, version: version ?? '' };
}

function policyId(id: string): string {
  if (!PolicyId.safeParse(id).success) throw new ZiggieError('POLICY_NOT_FOUND', `policy ${id} not found`);
  return id;
}

function policyToPb(p: Policy, id = ''): pb.Policy {
  return {
    id,
    name: p.name,
    description: p.description,
    effect: p.effect,
    match: p.match,
    budget: p.budget ? { maxSteps: p.budget.maxSteps ?? 0, maxGpuSteps: p.budget.maxGpuSteps ?? 0 } : undefined,
    priority: p.priority,
    enabled: p.enabled,
    createdBy: '',
    createdAt: '',
    updatedAt: '',
  };
}

function policyView(p: pb.Policy): Record<string, unknown> {
  const budget = p.budget && (p.budget.maxSteps || p.budget.maxGpuSteps) ? { maxSteps: p.budget.maxSteps || undefined, maxGpuSteps: p.budget.maxGpuSteps || undefined } : null;
  return { ...p, description: p.description, budget };
}

/** Blueprints (versioned plan templates) and governance policies, both served by the orchestrator. */
@Controller('v1')
export class GovernanceController {
  private readonly orchestrator: UnaryApi<pb.OrchestratorService>;

  constructor(peers: PeerClients) {
    this.orchestrator = peers.api('orchestrator', pb.OrchestratorClient);
  }

  @Get('blueprints')
  @ApiDoc({ summary: 'List blueprints (latest version of each; `name` lists every version of one)' })
  async listBlueprints(@ValidQuery(BlueprintsQuery) q: z.infer<typeof BlueprintsQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    const res = await this.orchestrator.listBlueprints({ principal, page: { limit: q.limit, cursor: q.cursor ?? '' }, name: q.name ?? '' });
    return page(res.items, res.total, res.nextCursor);
  }

  @Post('blueprints')
  @HttpCode(201)
  @RequirePermission('config:change')
  @ApiDoc({ summary: 'Create a blueprint version (immutable once created)', errors: ['BLUEPRINT_INVALID', 'BLUEPRINT_EXISTS'] })
  async createBlueprint(@ValidBody(BlueprintSchema, 'BLUEPRINT_INVALID') b: z.infer<typeof BlueprintSchema>, @CurrentPrincipal() principal: Principal, @Res({ passthrough: true }) res: FastifyReply): Promise<object> {
    const created = await this.orchestrator.createBlueprint({ principal, blueprint: { ...b, outputSchema: b.outputSchema, template: b.template as unknown as Record<string, unknown>, builtin: false, createdBy: '', createdAt: '' } });
    res.header('Location', `/v1/blueprints/${created.name}/versions/${created.version}`);
    return created;
  }

  /** The latest version of a blueprint. */
  @Get('blueprints/:name')
  @ApiDoc({ summary: 'The latest version of a blueprint', errors: ['BLUEPRINT_NOT_FOUND'] })
  async getBlueprint(@Param('name') name: string, @CurrentPrincipal() principal: Principal): Promise<object> {
    return this.orchestrator.getBlueprint({ ...blueprintName(name), principal });
  }

  @Get('blueprints/:name/versions/:version')
  @ApiDoc({ summary: 'One version of a blueprint', errors: ['BLUEPRINT_NOT_FOUND'] })
  async getBlueprintVersion(@Param('name') name: string, @Param('version') version: string, @CurrentPrincipal() principal: Principal): Promise<object> {
    return this.orchestrator.getBlueprint({ ...blueprintName(name, version), principal });
  }

  @Delete('blueprints/:name/versions/:version')
  @HttpCode(204)
  @RequirePermission('config:change')
  @ApiDoc({ summary: 'Delete a blueprint version (built-ins cannot be deleted)', errors: ['BLUEPRINT_NOT_FOUND', 'BLUEPRINT_BUILTIN'] })
  async deleteBlueprint(@Param('name') name: string, @Param('version') version: string, @CurrentPrincipal() principal: Principal): Promise<void> {
    await this.orchestrator.deleteBlueprint({ ...blueprintName(name, version), principal });
  }

  @Get('policies')
  @ApiDoc({ summary: 'List governance policies' })
  async listPolicies(@ValidQuery(PoliciesQuery) q: z.infer<typeof PoliciesQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    const res = await this.orchestrator.listPolicies({ principal, page: { limit: q.limit, cursor: q.cursor ?? '' } });
    return page(res.items.map(policyView), res.total, res.nextCursor);
  }

  /** Recorded governance decisions (the caller's workspaces), newest first. */
  @Get('policies/decisions')
  @ApiDoc({ summary: 'Recorded governance decisions in the token\'s workspaces, newest first' })
  async decisions(@ValidQuery(DecisionsQuery) q: z.infer<typeof DecisionsQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    const res = await this.orchestrator.listDecisions({ principal, page: { limit: q.limit, cursor: q.cursor ?? '' }, taskId: q.taskId ?? '', effect: q.effect ?? '' });
    return page(res.items, res.total, res.nextCursor);
  }

  @Post('policies')
  @HttpCode(201)
  @RequirePermission('config:change')
  @ApiDoc({ summary: 'Create a governance policy (allow / deny / require_approval, budgets)' })
  async createPolicy(@ValidBody(PolicySchema) p: Policy, @CurrentPrincipal() principal: Principal, @Res({ passthrough: true }) res: FastifyReply): Promise<object> {
    const created = await this.orchestrator.createPolicy({ principal, policy: policyToPb(p) });
    res.header('Location', `/v1/policies/${created.id}`);
    return policyView(created);
  }

  @Get('policies/:id')
  @ApiDoc({ summary: 'A governance policy', errors: ['POLICY_NOT_FOUND'] })
  async getPolicy(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<object> {
    return policyView(await this.orchestrator.getPolicy({ id: policyId(id), principal }));
  }

  @Put('policies/:id')
  @RequirePermission('config:change')
  @ApiDoc({ summary: 'Replace a governance policy', errors: ['POLICY_NOT_FOUND'] })
  async updatePolicy(@Param('id') id: string, @ValidBody(PolicySchema) p: Policy, @CurrentPrincipal() principal: Principal): Promise<object> {
    return policyView(await this.orchestrator.updatePolicy({ principal, policy: policyToPb(p, policyId(id)) }));
  }

  @Delete('policies/:id')
  @HttpCode(204)
  @RequirePermission('config:change')
  @ApiDoc({ summary: 'Delete a governance policy', errors: ['POLICY_NOT_FOUND'] })
  async deletePolicy(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<void> {
    await this.orchestrator.deletePolicy({ id: policyId(id), principal });
  }
}
