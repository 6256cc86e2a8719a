// A task's events as JetStream stored them, for the engine's specs.
import { Streams, Subject, subjectFor, TaskEventPayload } from '@ziggie/contracts';
import { NatsService } from '@ziggie/platform';
import { TaskEvent } from '../../src/events';

/** Every event of a task on the events stream, in stream order (read with a throwaway consumer). */
export async function storedTaskEvents(nats: NatsService, taskId: string): Promise<TaskEvent[]> {
  const subject = subjectFor(Subject.TaskEvent, taskId);
  const info = await nats.manager.streams.info(Streams.events.name, { subjects_filter: subject });
  const count = info.state.subjects?.[subject] ?? 0;
  if (count === 0) return [];
  const consumer = await nats.jetstream.consumers.get(Streams.events.name, { filterSubjects: subject });
  const events: TaskEvent[] = [];
  for await (const m of await consumer.fetch({ max_messages: count, expires: 5_000 })) events.push(TaskEventPayload.parse(m.json()));
  await consumer.delete().catch(() => false);
  return events;
}
