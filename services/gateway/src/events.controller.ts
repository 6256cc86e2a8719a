import { Controller, Get, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ApiDoc, CurrentPrincipal, Principal } from '@ziggie/platform';
import { LiveEventsService } from './live-events.service';

@Controller('v1/events')
export class EventsController {
  constructor(private readonly live: LiveEventsService) {}

  /** The live feed the console follows instead of polling. */
  @Get()
  @ApiDoc({
    summary: 'Server-sent events of every task and workspace of the token\'s workspaces, as they happen',
    description:
      'Starts with a `ready` event; then `task` events (the payload of a task\'s own stream: taskId, seq, type, wave, stepId, agentId, status, message) ' +
      'and `workspace` events (health changes: workspace, status, previous, reasons). Nothing is replayed: load the current state over REST after `ready`.',
    tag: 'events',
    produces: 'text/event-stream',
  })
  async stream(@CurrentPrincipal() principal: Principal, @Res() reply: FastifyReply): Promise<void> {
    await this.live.stream(principal, reply);
  }
}
