import { Injectable, Logger } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { isTerminalTaskStatus, pb, Streams, Subject, subjectFor, TaskEventPayload } from '@ziggie/contracts';
import { NatsService } from '@ziggie/platform';
import { openEventStream } from './sse';

/** Relays a task's events from JetStream (an ordered consumer per client) as server-sent events. */
@Injectable()
export class TaskEventsService {
  private readonly logger = new Logger('task-events');

  constructor(private readonly nats: NatsService) {}

  async stream(task: pb.Task, afterSeq: number, reply: FastifyReply): Promise<void> {
    const stream = openEventStream(reply);
    const write = (event: { seq: number; type: string }, data: unknown) => stream.send(event.type, data, event.seq);

    const subject = subjectFor(Subject.TaskEvent, task.id);
    if (isTerminalTaskStatus(task.status) && !(await this.hasEvents(subject))) {
      // Events have expired: the final state is all there is to tell.
      const snapshot = { taskId: task.id, seq: 0, type: `task.${task.status}`, at: task.finishedAt || task.updatedAt, status: task.status };
      write(snapshot, snapshot);
      stream.close();
      return;
    }

    const consumer = await this.nats.jetstream.consumers.get(Streams.events.name, { filterSubjects: subject });
    const messages = await consumer.consume();
    const close = () => {
      stream.close();
      void messages.close().catch(() => undefined);
    };
    void stream.gone.then(close);
    try {
      for await (const msg of messages) {
        const parsed = TaskEventPayload.safeParse(msg.json());
        if (!parsed.success) {
          this.logger.warn(`skipped invalid event on ${msg.subject}`);
          continue;
        }
        // A client that reads slowly is waited for (JetStream keeps the rest), not buffered for.
        if (parsed.data.seq > afterSeq && !write(parsed.data, parsed.data)) await stream.drained();
        if (stream.closed) break;
        if (parsed.data.type.startsWith('task.') && isTerminalTaskStatus(parsed.data.status)) break;
      }
    } finally {
      close();
    }
  }

  private async hasEvents(subject: string): Promise<boolean> {
    try {
      await this.nats.manager.streams.getMessage(Streams.events.name, { last_by_subj: subject });
      return true;
    } catch {
      return false;
    }
  }
}
