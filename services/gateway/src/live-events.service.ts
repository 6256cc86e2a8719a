import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { Subscription } from 'nats';
import { canAccessWorkspace, pb, Subject, subjectWildcard, TaskEventPayload, WorkspaceHealthPayload, type PayloadOf } from '@ziggie/contracts';
import { NatsService, PeerClients, type Principal, type UnaryApi } from '@ziggie/platform';
import { openEventStream } from './sse';

type Live = { kind: 'task'; event: PayloadOf<Subject.TaskEvent> } | { kind: 'workspace'; event: PayloadOf<Subject.WorkspaceHealth> };
type Listener = (live: Live) => void;

/** How many tasks a stream remembers as visible or not before it starts over (one lookup each). */
const VISIBILITY_CACHE = 5_000;

/**
 * The live feed of the console: task and workspace events as they happen, for the token's
 * workspaces only. One core NATS subscription per gateway fans out to every open stream; nothing
 * is replayed (a client loads the current state over REST, then follows this).
 */
@Injectable()
export class LiveEventsService implements OnApplicationShutdown {
  private readonly logger = new Logger('live-events');
  private readonly listeners = new Set<Listener>();
  private subscriptions: Subscription[] = [];

  private readonly orchestrator: UnaryApi<pb.OrchestratorService>;

  constructor(
    private readonly nats: NatsService,
    peers: PeerClients,
  ) {
    this.orchestrator = peers.api('orchestrator', pb.OrchestratorClient);
  }

  private subscribe(): void {
    if (this.subscriptions.length > 0) return;
    const feed = (subject: Subject, parse: (data: unknown) => Live | undefined): Subscription =>
      this.nats.connection.subscribe(subjectWildcard(subject), {
        callback: (err, msg) => {
          if (err) return;
          let live: Live | undefined;
          try {
            live = parse(msg.json());
          } catch {
            live = undefined;
          }
          if (!live) {
            this.logger.warn(`skipped invalid event on ${msg.subject}`);
            return;
          }
          for (const listener of this.listeners) listener(live);
        },
      });
    this.subscriptions = [
      feed(Subject.TaskEvent, (d) => {
        const p = TaskEventPayload.safeParse(d);
        return p.success ? { kind: 'task', event: p.data } : undefined;
      }),
      feed(Subject.WorkspaceHealth, (d) => {
        const p = WorkspaceHealthPayload.safeParse(d);
        return p.success ? { kind: 'workspace', event: p.data } : undefined;
      }),
    ];
  }

  async stream(principal: Principal, reply: FastifyReply): Promise<void> {
    this.subscribe();
    const stream = openEventStream(reply, {
      onOverflow: (bytes) => this.logger.warn(`cut off a /v1/events client that stopped reading (${bytes} bytes unsent); it reconnects and reloads`),
    });
    const all = principal.workspaces.includes('*');
    // A task's visibility is asked of the orchestrator once, with the caller's own principal.
    const visible = new Map<string, Promise<boolean>>();
    const canSee = (taskId: string): Promise<boolean> => {
      let known = visible.get(taskId);
      if (!known) {
        if (visible.size >= VISIBILITY_CACHE) visible.clear();
        known = this.orchestrator.getTask({ id: taskId, principal }).then(
          () => true,
          () => false,
        );
        visible.set(taskId, known);
      }
      return known;
    };
    const listener: Listener = (live) => {
      if (live.kind === 'workspace') {
        if (canAccessWorkspace(principal.workspaces, live.event.workspace)) stream.send('workspace', live.event);
      } else if (all) {
        stream.send('task', live.event);
      } else {
        void canSee(live.event.taskId).then((ok) => {
          if (ok) stream.send('task', live.event);
        });
      }
    };
    this.listeners.add(listener);
    // Tells the client the feed is live: what it loads from now on is followed.
    stream.send('ready', { at: new Date().toISOString() });
    await stream.gone;
    this.listeners.delete(listener);
    stream.close();
  }

  onApplicationShutdown(): void {
    for (const s of this.subscriptions) s.unsubscribe();
    this.subscriptions = [];
  }
}
