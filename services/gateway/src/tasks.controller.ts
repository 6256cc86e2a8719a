import { Controller, Get, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiDoc, assertWorkspace, CurrentPrincipal, currentCorrelationId, PeerClients, Principal, RequirePermission, UnaryApi, ValidBody, ValidQuery } from '@ziggie/platform';
import { BLUEPRINT_NAME, BLUEPRINT_VERSION, Cursors, pb, planStepToPb, SubmitTaskBody, TOKEN_PATTERN, ZiggieError } from '@ziggie/contracts';
import { z } from 'zod';
import { page, pageQuery } from './pagination';
import { TaskEventsService } from './task-events.service';
import { taskSummary, taskView } from './task-view';
import { affectedWorkspaces } from './workspaces.controller';

const TaskId = z.string().regex(/^tsk_[a-f0-9]{32}$/, 'not a task id');
/** `name` or `name@version`: the orchestrator matches it with LIKE, so no other characters get through. */
const BlueprintFilter = z
  .string()
  .max(130)
  .refine((s) => {
    const [name, version, ...rest] = s.split('@');
    return rest.length === 0 && BLUEPRINT_NAME.test(name ?? '') && (version === undefined || BLUEPRINT_VERSION.test(version));
  }, 'a blueprint name, or name@version');
const ListQuery = pageQuery(Cursors.tasks)
  .extend({
    workspace: z.string().regex(TOKEN_PATTERN, 'not a workspace id').optional(),
    status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']).optional(),
    priority: z.enum(['P0', 'P1', 'P2']).optional(),
    parentTaskId: TaskId.optional(),
    blueprint: BlueprintFilter.optional(),
  })
  .strict();
const CancelBody = z.object({ reason: z.string().max(500).optional() }).strict();
const ApproveBody = z.object({ decision: z.enum(['approve', 'reject']).default('approve'), comment: z.string().max(1000).optional() }).strict();
const DecisionsQuery = pageQuery(Cursors.decisions).strict();
const StepId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/);

function taskIdOf(id: string): string {
  // An id that cannot exist is simply not found; no need to ask the orchestrator.
  if (!TaskId.safeParse(id).success) throw new ZiggieError('TASK_NOT_FOUND', `task ${id} not found`);
  return id;
}

@Controller('v1/tasks')
export class TasksController {
  private readonly orchestrator: UnaryApi<pb.OrchestratorService>;
  private readonly coord: UnaryApi<pb.WorkspaceCoordService>;

  constructor(
    peers: PeerClients,
    private readonly events: TaskEventsService,
  ) {
    this.orchestrator = peers.api('orchestrator', pb.OrchestratorClient);
    this.coord = peers.api('workspace-coord', pb.WorkspaceCoordClient);
  }

  @Post()
  @HttpCode(201)
  @RequirePermission('agent:dispatch')
  @ApiDoc({
    summary: 'Submit a task: an explicit plan or a blueprint with inputs',
    description: 'Answers 201 with the task and its waves; `Location` names it. Follow it with GET /v1/tasks/{id}/events.',
    errors: ['TASK_CYCLE', 'TASK_UNKNOWN_CAPABILITY', 'TASK_UNKNOWN_DEPENDENCY', 'TASK_INVALID_PLAN', 'TASK_UNKNOWN_WORKSPACE', 'TASK_BUDGET_EXCEEDED', 'BLUEPRINT_NOT_FOUND', 'BLUEPRINT_INPUT_INVALID'],
  })
  async submit(@ValidBody(SubmitTaskBody) input: SubmitTaskBody, @CurrentPrincipal() principal: Principal, @Res({ passthrough: true }) res: FastifyReply): Promise<object> {
    assertWorkspace(principal, input.workspace);
    const task = await this.orchestrator.submitTask({
        title: input.title ?? '',
        workspace: input.workspace,
        priority: input.priority,
        plan: input.plan ? { steps: input.plan.steps.map(planStepToPb) } : undefined,
        blueprint: input.blueprint ?? '',
        inputs: input.inputs,
        principal,
        correlationId: currentCorrelationId() ?? '',
        notBefore: input.notBefore ?? '',
        parentTaskId: '',
        parentStepId: '',
        depth: 0,
      }, { timeoutMs: 30_000 });
    res.header('Location', `/v1/tasks/${task.id}`);
    return taskView(task);
  }

  @Get()
  @ApiDoc({ summary: 'List tasks of the token\'s workspaces, newest first' })
  async list(@ValidQuery(ListQuery) q: z.infer<typeof ListQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    const res = await this.orchestrator.listTasks({
        principal,
        page: { limit: q.limit, cursor: q.cursor ?? '' },
        workspace: q.workspace ?? '',
        status: q.status ?? '',
        priority: q.priority ?? '',
        parentTaskId: q.parentTaskId ?? '',
        blueprint: q.blueprint ?? '',
      });
    return page(res.items.map(taskSummary), res.total, res.nextCursor);
  }

  @Get(':id')
  @ApiDoc({ summary: 'A task with its waves, steps, attempts, outputs and timings', errors: ['TASK_NOT_FOUND'] })
  async get(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<object> {
    return taskView(await this.orchestrator.getTask({ id: taskIdOf(id), principal }));
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @RequirePermission('agent:dispatch')
  @ApiDoc({ summary: 'Cancel a task (and its child tasks); in-flight steps are told to stop', errors: ['TASK_NOT_FOUND'] })
  async cancel(@Param('id') id: string, @ValidBody(CancelBody) input: z.infer<typeof CancelBody>, @CurrentPrincipal() principal: Principal): Promise<object> {
    return taskView(await this.orchestrator.cancelTask({ id: taskIdOf(id), principal, reason: input.reason ?? '' }));
  }

  /** Approves (or, with `{"decision": "reject"}`, rejects) a step waiting at its approval gate. */
  @Post(':id/steps/:stepId/approve')
  @HttpCode(200)
  @RequirePermission('agent:dispatch')
  @ApiDoc({ summary: 'Approve or reject a step waiting at its approval gate', errors: ['TASK_NOT_FOUND', 'STEP_NOT_FOUND', 'STEP_NOT_WAITING_APPROVAL'] })
  async approve(@Param('id') id: string, @Param('stepId') stepId: string, @ValidBody(ApproveBody) input: z.infer<typeof ApproveBody>, @CurrentPrincipal() principal: Principal): Promise<object> {
    if (!StepId.safeParse(stepId).success) throw new ZiggieError('STEP_NOT_FOUND', `step ${stepId} not found`);
    return taskView(
      await this.orchestrator.approveStep({ taskId: taskIdOf(id), stepId, principal, decision: input.decision, comment: input.comment ?? '' }),
    );
  }

  @Get(':id/affected-workspaces')
  @ApiDoc({ summary: 'The workspaces the task touches and every workspace depending on them', errors: ['TASK_NOT_FOUND'] })
  async affected(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<object> {
    const task = await this.orchestrator.getTask({ id: taskIdOf(id), principal });
    const touched = new Set([task.workspace, ...task.waves.flatMap((w) => w.steps.map((s) => s.workspace))]);
    return affectedWorkspaces(this.coord, [...touched].filter(Boolean), principal);
  }

  /** Governance decisions taken for the task's steps. */
  @Get(':id/decisions')
  @ApiDoc({ summary: 'Governance decisions taken for the task\'s steps', errors: ['TASK_NOT_FOUND'] })
  async decisions(@Param('id') id: string, @ValidQuery(DecisionsQuery) q: z.infer<typeof DecisionsQuery>, @CurrentPrincipal() principal: Principal): Promise<object> {
    await this.orchestrator.getTask({ id: taskIdOf(id), principal });
    const res = await this.orchestrator.listDecisions({ principal, page: { limit: q.limit, cursor: q.cursor ?? '' }, taskId: id, effect: '' });
    return page(res.items, res.total, res.nextCursor);
  }

  /** Server-sent events of the task's transitions, replayed from the start; ends after the terminal one. */
  @Get(':id/events')
  @ApiDoc({
    summary: 'Server-sent events of the task\'s transitions, replayed from the start (or after Last-Event-ID); ends after the terminal one',
    produces: 'text/event-stream',
    errors: ['TASK_NOT_FOUND'],
  })
  async stream(@Param('id') id: string, @CurrentPrincipal() principal: Principal, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const task = await this.orchestrator.getTask({ id: taskIdOf(id), principal });
    const lastEventId = Number.parseInt(String(req.headers['last-event-id'] ?? ''), 10);
    await this.events.stream(task, Number.isFinite(lastEventId) ? lastEventId : -1, reply);
  }
}
