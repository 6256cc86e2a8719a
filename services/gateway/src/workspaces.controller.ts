import { Controller, Delete, Get, HttpCode, Param, Patch, Post, Put, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { canAccessWorkspace, Cursors, pb, ZiggieError } from '@ziggie/contracts';
import { ApiDoc, CurrentPrincipal, PeerClients, Principal, RequirePermission, UnaryApi, ValidBody, ValidQuery } from '@ziggie/platform';
import { z } from 'zod';
import { GpuPoolView, gpuPoolOf, mergePools, optionalGpu, PoolList, PoolView, poolView, ScaleBody } from './gpu-pools';
import { page, pageQuery } from './pagination';

const WORKSPACE_ID = /^[a-z][a-z0-9-]{1,62}$/;
const WorkspaceId = z.string().regex(WORKSPACE_ID, 'lowercase letters, digits and -, 2 to 63, starting with a letter');
const Priority = z.enum(['P0', 'P1', 'P2']);
const Health = z.enum(['on-track', 'at-risk', 'blocked']);
const PortRange = z
  .object({ start: z.number().int().min(1024).max(65535), end: z.number().int().min(1024).max(65535) })
  .strict()
  .refine((r) => r.end >= r.start, 'end must not be below start')
  .refine((r) => r.end - r.start < 10_000, 'at most 10,000 ports per workspace');

const ListQuery = pageQuery(Cursors.workspaces).extend({ health: Health.optional() }).strict();
const CreateBody = z
  .object({
    id: WorkspaceId,
    name: z.string().min(1).max(120),
    priority: Priority.default('P1'),
    owner: z.string().min(1).max(120),
    description: z.string().max(2000).optional(),
    dependsOn: z.array(WorkspaceId).max(64).default([]),
    portRange: PortRange.optional(),
  })
  .strict();
const UpdateBody = z
  .object({
    name: z.string().min(1).max(120).optional(),
    priority: Priority.optional(),
    owner: z.string().min(1).max(120).optional(),
    description: z.string().max(2000).optional(),
    dependsOn: z.array(WorkspaceId).max(64).optional(),
    portRange: PortRange.optional(),
  })
  .strict()
  .refine((b) => Object.keys(b).length > 0, 'nothing to change');
const ReportBody = z
  .object({
    status: Health,
    reason: z.string().min(1).max(500),
    ttlSeconds: z.number().int().min(60).max(7 * 24 * 3600).default(3600),
  })
  .strict();
const TTL = z.number().int().min(5).max(86_400);
const AllocateBody = z
  .object({
    service: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, _ and -'),
    ttlSeconds: TTL.default(300),
    port: z.number().int().min(1024).max(65535).optional(),
  })
  .strict();
const RenewBody = z.object({ ttlSeconds: TTL.default(300) }).strict();
const PoolName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/);
const PoolBody = z
  .object({
    kind: z.enum(['gpu', 'comfyui', 'inference', 'other']).default('other'),
    capacity: z.number().int().min(0).max(100_000),
    reservedP0: z.number().int().min(0).max(100_000).default(0),
    description: z.string().max(2000).optional(),
  })
  .strict()
  .refine((p) => p.reservedP0 <= p.capacity, 'reservedP0 cannot exceed capacity');
const LeasesQuery = z.object({ workspace: WorkspaceId.optional() }).strict();
const LeaseBody = z
  .object({
    workspace: WorkspaceId,
    units: z.number().int().min(1).max(1024).default(1),
    priority: Priority.default('P1'),
    ttlSeconds: TTL.default(300),
    holder: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/).optional(),
  })
  .strict();
const LeaseId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
const PortParam = z.coerce.number().int().min(1).max(65535);

function sees(principal: Principal, workspace: string): boolean {
  return canAccessWorkspace(principal.workspaces, workspace);
}

/** Workspace scoping: another workspace's objects are answered exactly like missing ones. */
function visibleWorkspace(principal: Principal, id: string): string {
  if (!WORKSPACE_ID.test(id) || !sees(principal, id)) throw new ZiggieError('WORKSPACE_NOT_FOUND', `workspace ${id} not found`);
  return id;
}

function portOf(value: string): number {
  const r = PortParam.safeParse(value);
  if (!r.success) throw new ZiggieError('PORT_LEASE_NOT_FOUND', `no lease on port ${value}`);
  return r.data;
}

function poolOf(name: string): string {
  if (!PoolName.safeParse(name).success) throw new ZiggieError('POOL_NOT_FOUND', `pool ${name} not found`);
  return name;
}

function isoTimes(view: { createdAt?: string; updatedAt?: string }): Record<string, string | undefined> {
  return { createdAt: view.createdAt || undefined, updatedAt: view.updatedAt || undefined };
}

function workspaceView(w: pb.Workspace): Record<string, unknown> {
  return { ...w, description: w.description || undefined, portRange: w.portRange ?? null, ...isoTimes(w) };
}

/** The workspaces affected by a change in the given ones, as the token may see them; the others are only counted. */
export async function affectedWorkspaces(coord: UnaryApi<pb.WorkspaceCoordService>, workspaces: string[], principal: Principal): Promise<object> {
  const res = await coord.affectedWorkspaces({ workspaces });
  const visible = res.workspaces.filter((w) => sees(principal, w));
  // Reasons read "<dependent> depends on <workspace>"; one naming a hidden dependent is hidden too.
  const reasons = res.reasons.filter((r) => sees(principal, r.split(' ')[0] ?? ''));
  return { workspaces: visible, reasons, hidden: res.workspaces.length - visible.length };
}

/** How long a pool read waits for mcp-gateway's half before answering without it. */
const GPU_READ_TIMEOUT_MS = 3_000;

/**
 * Workspaces (CRUD, dependency graph, health, port leases) and shared resource pools with their
 * leases, served by workspace-coord; a pool's GPU inference pods (mcp-gateway) are part of the
 * same resource. Every object outside the token's workspaces is a 404.
 */
@Controller('v1')
export class WorkspacesController {
  private readonly coord: UnaryApi<pb.WorkspaceCoordService>;
  private readonly mcp: UnaryApi<pb.McpGatewayService>;

  constructor(peers: PeerClients) {
    this.coord = peers.api('workspace-coord', pb.WorkspaceCoordClient);
    this.mcp = peers.api('mcp-gateway', pb.McpGatewayClient);
  }

  @Get('workspaces')
  @ApiDoc({ summary: 'Workspaces the token may see, with health and dependencies', tag: 'workspaces' })
  async list(@ValidQuery(ListQuery) q: z.infer<typeof ListQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    const ids = principal.workspaces.includes('*') ? [] : principal.workspaces;
    if (!principal.workspaces.includes('*') && ids.length === 0) return page([], 0, '');
    const res = await this.coord.listWorkspaces({
      page: { limit: q.limit, cursor: q.cursor ?? '' },
      ids,
      health: q.health ?? '',
    });
    return page(res.items.map(workspaceView), res.total, res.nextCursor);
  }

  @Post('workspaces')
  @HttpCode(201)
  @RequirePermission('workspace:manage')
  @ApiDoc({ summary: 'Create a workspace (a port range is assigned when none is given)', errors: ['WORKSPACE_EXISTS', 'WORKSPACE_CYCLE', 'WORKSPACE_NOT_FOUND', 'PORT_RANGE_OVERLAP'] })
  async create(@ValidBody(CreateBody) body: z.infer<typeof CreateBody>, @CurrentPrincipal() principal: Principal, @Res({ passthrough: true }) res: FastifyReply): Promise<object> {
    const created = await this.coord.createWorkspace({
      principal,
      workspace: {
        id: body.id,
        name: body.name,
        priority: body.priority,
        owner: body.owner,
        description: body.description ?? '',
        dependsOn: body.dependsOn,
        portRange: body.portRange,
        health: '',
        healthReasons: [],
        createdAt: '',
        updatedAt: '',
      },
    });
    res.header('Location', `/v1/workspaces/${created.id}`);
    return workspaceView(created);
  }

  @Get('workspaces/:id')
  @ApiDoc({ summary: 'One workspace', tag: 'workspaces', errors: ['WORKSPACE_NOT_FOUND'] })
  async get(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<object> {
    return workspaceView(await this.coord.getWorkspace({ id: visibleWorkspace(principal, id) }));
  }

  @Patch('workspaces/:id')
  @RequirePermission('workspace:manage')
  @ApiDoc({ summary: 'Change a workspace; `dependsOn` replaces the dependency list (cycles refused)', tag: 'workspaces', errors: ['WORKSPACE_NOT_FOUND', 'WORKSPACE_CYCLE', 'PORT_RANGE_OVERLAP'] })
  async update(@Param('id') id: string, @ValidBody(UpdateBody) body: z.infer<typeof UpdateBody>, @CurrentPrincipal() principal: Principal): Promise<object> {
    const updated = await this.coord.updateWorkspace({
      principal,
      id: visibleWorkspace(principal, id),
      name: body.name,
      priority: body.priority,
      owner: body.owner,
      description: body.description,
      setDependsOn: body.dependsOn !== undefined,
      dependsOn: body.dependsOn ?? [],
      portRange: body.portRange,
    });
    return workspaceView(updated);
  }

  @Delete('workspaces/:id')
  @HttpCode(204)
  @RequirePermission('workspace:manage')
  @ApiDoc({ summary: 'Delete a workspace nothing depends on and that holds no live lease', tag: 'workspaces', errors: ['WORKSPACE_NOT_FOUND', 'WORKSPACE_IN_USE'] })
  async remove(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<void> {
    await this.coord.deleteWorkspace({ principal, id: visibleWorkspace(principal, id) });
  }

  @Get('workspaces/:id/affected')
  @ApiDoc({ summary: 'The workspaces affected by a change in this one: it and every workspace depending on it', tag: 'workspaces', errors: ['WORKSPACE_NOT_FOUND'] })
  async affected(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<object> {
    return affectedWorkspaces(this.coord, [visibleWorkspace(principal, id)], principal);
  }

  @Get('workspaces/:id/health')
  @ApiDoc({ summary: 'Health computed now from tasks, dependencies and reports, with reasons', tag: 'workspaces', errors: ['WORKSPACE_NOT_FOUND'] })
  async health(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<pb.WorkspaceHealth> {
    return this.coord.getHealth({ id: visibleWorkspace(principal, id) });
  }

  @Post('workspaces/:id/health/reports')
  @HttpCode(201)
  @RequirePermission('agent:dispatch')
  @ApiDoc({ summary: 'Report a workspace at risk or blocked (or on track) for a while, with a reason', tag: 'workspaces', errors: ['WORKSPACE_NOT_FOUND'] })
  async report(@Param('id') id: string, @ValidBody(ReportBody) body: z.infer<typeof ReportBody>, @CurrentPrincipal() principal: Principal): Promise<pb.WorkspaceHealth> {
    return this.coord.reportHealth({
      principal,
      workspace: visibleWorkspace(principal, id),
      status: body.status,
      reason: body.reason,
      ttlSeconds: body.ttlSeconds,
    });
  }

  @Get('workspaces/:id/ports')
  @ApiDoc({ summary: 'The workspace\'s port range and live port leases', tag: 'workspaces', errors: ['WORKSPACE_NOT_FOUND'] })
  async ports(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<object> {
    const res = await this.coord.listPorts({ workspace: visibleWorkspace(principal, id) });
    return { range: res.range ?? null, items: res.items, total: res.items.length };
  }

  @Post('workspaces/:id/ports')
  @HttpCode(201)
  @RequirePermission('agent:dispatch')
  @ApiDoc({ summary: 'Lease a port of the workspace\'s range for a service (the lowest free one unless `port` is given)', tag: 'workspaces', errors: ['WORKSPACE_NOT_FOUND', 'PORT_EXHAUSTED', 'PORT_UNAVAILABLE'] })
  async allocate(@Param('id') id: string, @ValidBody(AllocateBody) body: z.infer<typeof AllocateBody>, @CurrentPrincipal() principal: Principal): Promise<pb.PortLease> {
    return this.coord.allocatePort({
      principal,
      workspace: visibleWorkspace(principal, id),
      service: body.service,
      ttlSeconds: body.ttlSeconds,
      port: body.port ?? 0,
    });
  }

  @Post('workspaces/:id/ports/:port/renew')
  @HttpCode(200)
  @RequirePermission('agent:dispatch')
  @ApiDoc({ summary: 'Extend a port lease', tag: 'workspaces', errors: ['WORKSPACE_NOT_FOUND', 'PORT_LEASE_NOT_FOUND'] })
  async renewPort(@Param('id') id: string, @Param('port') port: string, @ValidBody(RenewBody) body: z.infer<typeof RenewBody>, @CurrentPrincipal() principal: Principal): Promise<pb.PortLease> {
    return this.coord.renewPort({ workspace: visibleWorkspace(principal, id), port: portOf(port), ttlSeconds: body.ttlSeconds });
  }

  @Delete('workspaces/:id/ports/:port')
  @HttpCode(204)
  @RequirePermission('agent:dispatch')
  @ApiDoc({ summary: 'Release a port lease', tag: 'workspaces', errors: ['WORKSPACE_NOT_FOUND', 'PORT_LEASE_NOT_FOUND'] })
  async releasePort(@Param('id') id: string, @Param('port') port: string, @CurrentPrincipal() principal: Principal): Promise<void> {
    const res = await this.coord.releasePort({ workspace: visibleWorkspace(principal, id), port: portOf(port) });
    if (res.released === 0) throw new ZiggieError('PORT_LEASE_NOT_FOUND', `no lease on port ${port}`);
  }

  @Get('pools')
  @ApiDoc({
    summary: 'Shared resource pools (GPU pools, ComfyUI instances) with capacity and use, and the GPU inference pods serving them',
    description:
      'Capacity, P0 reserve and leases come from workspace-coord; `inference` is the GPU inference pool of the same name in mcp-gateway (replicas, queue depth, calls in flight), ' +
      '`null` when mcp-gateway has none. A GPU pool only mcp-gateway knows is listed with the capacity fields null. When mcp-gateway cannot be asked, the list is still answered ' +
      '(200) with `inference` left out.',
    tag: 'pools',
    response: PoolList,
  })
  async pools(@CurrentPrincipal() principal: Principal): Promise<z.infer<typeof PoolList>> {
    const [coord, gpu] = await Promise.all([
      this.coord.listPools({}),
      optionalGpu(() => this.mcp.listGpuPools({ principal }, { timeoutMs: GPU_READ_TIMEOUT_MS }), 'GPU pools'),
    ]);
    const items = mergePools(coord.items, gpu?.items);
    return { items, total: items.length };
  }

  @Get('pools/:name')
  @ApiDoc({
    summary: 'One pool with its capacity, P0 reserve and units in use, and its GPU inference pods',
    description: '`inference`: the GPU pool of this name in mcp-gateway, `null` when there is none, left out when mcp-gateway cannot be asked.',
    tag: 'pools',
    response: PoolView,
    errors: ['POOL_NOT_FOUND'],
  })
  async pool(@Param('name') name: string, @CurrentPrincipal() principal: Principal): Promise<z.infer<typeof PoolView>> {
    const pool = poolOf(name);
    const [coord, gpu] = await Promise.all([
      this.coord.getPool({ name: pool }).catch((err: unknown) => {
        if (err instanceof ZiggieError && err.code === 'POOL_NOT_FOUND') return undefined;
        throw err;
      }),
      optionalGpu(() => this.mcp.getGpuPool({ principal, name: pool }, { timeoutMs: GPU_READ_TIMEOUT_MS }), `GPU pool ${pool}`),
    ]);
    if (!coord && !gpu) throw new ZiggieError('POOL_NOT_FOUND', `pool ${pool} not found`);
    return poolView(pool, coord, gpu);
  }

  @Post('pools/:name/scale')
  @HttpCode(200)
  @RequirePermission('config:change')
  @ApiDoc({
    summary: 'Scale the GPU inference pods of a pool: replicas now, and/or the autoscaling bounds',
    description:
      'deployment mode: the Deployment\'s scale subresource; the bounds are kept by mcp-gateway and a new bound pulls the replicas inside it. ' +
      'keda mode: the bounds are the ScaledObject\'s minReplicaCount/maxReplicaCount; `replicas` scales the Deployment once and KEDA may change it at its next evaluation. ' +
      'static pools cannot be scaled. Values that do not fit together or with the pool\'s bounds are POOL_SCALE_INVALID.',
    tag: 'pools',
    response: GpuPoolView,
    errors: ['POOL_NOT_FOUND', 'POOL_SCALE_INVALID', 'POOL_NOT_SCALABLE', 'POOL_BACKEND_UNAVAILABLE'],
  })
  async scale(@Param('name') name: string, @ValidBody(ScaleBody) body: z.infer<typeof ScaleBody>, @CurrentPrincipal() principal: Principal): Promise<z.infer<typeof GpuPoolView>> {
    const pool = poolOf(name);
    // Up to three Kubernetes requests (keda mode), each bounded by mcp-gateway's own time limit.
    const scaled = await this.mcp.scaleGpuPool({ principal, name: pool, replicas: body.replicas, minReplicas: body.minReplicas, maxReplicas: body.maxReplicas }, { timeoutMs: 30_000 });
    return gpuPoolOf(scaled);
  }

  @Put('pools/:name')
  @RequirePermission('config:change')
  @ApiDoc({ summary: 'Create a pool or change its capacity and P0 reserve', tag: 'pools' })
  async putPool(@Param('name') name: string, @ValidBody(PoolBody) body: z.infer<typeof PoolBody>, @CurrentPrincipal() principal: Principal): Promise<pb.Pool> {
    return this.coord.putPool({
      principal,
      pool: { name: poolOf(name), kind: body.kind, capacity: body.capacity, reservedP0: body.reservedP0, description: body.description ?? '', inUse: 0, leases: 0, updatedAt: '' },
    });
  }

  @Get('pools/:name/leases')
  @ApiDoc({ summary: 'Live leases on a pool in the token\'s workspaces', tag: 'pools', errors: ['POOL_NOT_FOUND'] })
  async leases(@Param('name') name: string, @ValidQuery(LeasesQuery) q: z.infer<typeof LeasesQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    if (q.workspace && !sees(principal, q.workspace)) return { items: [], total: 0 };
    const res = await this.coord.listLeases({ resource: poolOf(name), workspace: q.workspace ?? '' });
    const items = res.items.filter((l) => sees(principal, l.workspace));
    return { items, total: items.length };
  }

  @Post('pools/:name/leases')
  @HttpCode(201)
  @RequirePermission('agent:dispatch')
  @ApiDoc({ summary: 'Lease units of a pool for a workspace (P1/P2 cannot take the P0 reserve)', tag: 'pools', errors: ['POOL_NOT_FOUND', 'POOL_EXHAUSTED'] })
  async acquire(@Param('name') name: string, @ValidBody(LeaseBody) body: z.infer<typeof LeaseBody>, @CurrentPrincipal() principal: Principal): Promise<pb.ResourceLease> {
    if (!sees(principal, body.workspace)) throw new ZiggieError('WORKSPACE_NOT_FOUND', `workspace ${body.workspace} not found`);
    return this.coord.acquireLease({
      principal,
      workspace: body.workspace,
      resource: poolOf(name),
      units: body.units,
      priority: body.priority,
      ttlSeconds: body.ttlSeconds,
      holder: body.holder ?? principal.subject,
    });
  }

  /** The lease when it exists and belongs to one of the token's workspaces. */
  private async visibleLease(principal: Principal, pool: string, id: string): Promise<pb.ResourceLease> {
    const leaseId = LeaseId.safeParse(id);
    const res = leaseId.success ? await this.coord.listLeases({ resource: poolOf(pool), workspace: '' }) : { items: [] };
    const lease = res.items.find((l) => l.id === id);
    if (!lease || !sees(principal, lease.workspace)) throw new ZiggieError('LEASE_NOT_FOUND', `lease ${id} not found`);
    return lease;
  }

  @Post('pools/:name/leases/:leaseId/renew')
  @HttpCode(200)
  @RequirePermission('agent:dispatch')
  @ApiDoc({ summary: 'Extend a pool lease', tag: 'pools', errors: ['POOL_NOT_FOUND', 'LEASE_NOT_FOUND'] })
  async renewLease(@Param('name') name: string, @Param('leaseId') leaseId: string, @ValidBody(RenewBody) body: z.infer<typeof RenewBody>, @CurrentPrincipal() principal: Principal): Promise<pb.ResourceLease> {
    const lease = await this.visibleLease(principal, name, leaseId);
    return this.coord.renewLease({ id: lease.id, ttlSeconds: body.ttlSeconds });
  }

  @Delete('pools/:name/leases/:leaseId')
  @HttpCode(204)
  @RequirePermission('agent:dispatch')
  @ApiDoc({ summary: 'Release a pool lease', tag: 'pools', errors: ['POOL_NOT_FOUND', 'LEASE_NOT_FOUND'] })
  async releaseLease(@Param('name') name: string, @Param('leaseId') leaseId: string, @CurrentPrincipal() principal: Principal): Promise<void> {
    const lease = await this.visibleLease(principal, name, leaseId);
    await this.coord.releaseLeases({ ids: [lease.id], holders: [] });
  }
}
