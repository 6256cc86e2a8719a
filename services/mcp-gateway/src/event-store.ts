import type { EventId, EventStore, StreamId } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/**
 * One MCP session's server-to-client messages, kept so a client that lost an SSE stream can
 * resume it with Last-Event-ID (streamable HTTP resumability). Per session and in this process:
 * event ids are `<stream>.<sequence>` and are only meaningful to the transport that issued them.
 * Bounded in count and in bytes of JSON: the oldest events go first; a Last-Event-ID older than
 * what is kept replays nothing. An event is kept as its JSON text, not as the message object: one
 * flat string per event instead of the object graph of a result (which held most of a busy
 * session's memory), and measuring its bytes is the one serialisation it costs.
 */
export class SessionEventStore implements EventStore {
  private seq = 0;
  private bytes = 0;
  /** Per event: its stream and its message as JSON ('' for a priming event, which has none). */
  private readonly events = new Map<EventId, { stream: StreamId; json: string }>();

  constructor(
    private readonly capacity: number,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  storeEvent(streamId: StreamId, message: JSONRPCMessage): Promise<EventId> {
    const id = `${streamId}.${++this.seq}`;
    const json = Object.keys(message).length === 0 ? '' : JSON.stringify(message);
    this.events.set(id, { stream: streamId, json });
    this.bytes += json.length;
    while (this.events.size > this.capacity || (this.bytes > this.maxBytes && this.events.size > 1)) {
      const [oldest, e] = this.events.entries().next().value!;
      this.events.delete(oldest);
      this.bytes -= e.json.length;
    }
    return Promise.resolve(id);
  }

  getStreamIdForEventId(eventId: EventId): Promise<StreamId | undefined> {
    return Promise.resolve(this.events.get(eventId)?.stream);
  }

  async replayEventsAfter(lastEventId: EventId, { send }: { send: (eventId: EventId, message: JSONRPCMessage) => Promise<void> }): Promise<StreamId> {
    const last = this.events.get(lastEventId);
    if (!last) return '';
    let after = false;
    for (const [id, e] of [...this.events]) {
      if (id === lastEventId) {
        after = true;
        continue;
      }
      // Priming events carry no message: nothing to replay.
      if (after && e.stream === last.stream && e.json !== '') await send(id, JSON.parse(e.json) as JSONRPCMessage);
    }
    return last.stream;
  }
}
