import { Subject, subjectWildcard } from './subjects';

/**
 * JetStream streams and durable consumers. The platform's NATS module creates or updates
 * them at start-up, so every service agrees on them.
 */
export interface StreamSpec {
  name: string;
  subjects: string[];
  retention: 'workqueue' | 'limits';
  maxAgeSeconds: number;
  duplicateWindowSeconds: number;
}

export interface ConsumerSpec {
  stream: string;
  durable: string;
  filterSubject: string;
  ackWaitSeconds: number;
  maxDeliver: number;
  /** Delay before redelivering after a failed handling, in seconds, one per delivery (the last repeats). */
  backoffSeconds: number[];
  maxAckPending: number;
}

export const Streams = {
  steps: {
    name: 'ZIGGIE_STEPS',
    subjects: [subjectWildcard(Subject.StepDispatch)],
    retention: 'workqueue',
    maxAgeSeconds: 7 * 24 * 3600,
    duplicateWindowSeconds: 120,
  },
  results: {
    name: 'ZIGGIE_RESULTS',
    subjects: [Subject.StepResult, Subject.StepDeadLetter],
    retention: 'limits',
    maxAgeSeconds: 7 * 24 * 3600,
    duplicateWindowSeconds: 120,
  },
  events: {
    name: 'ZIGGIE_EVENTS',
    subjects: [subjectWildcard(Subject.TaskEvent), subjectWildcard(Subject.WorkspaceHealth)],
    retention: 'limits',
    maxAgeSeconds: 24 * 3600,
    duplicateWindowSeconds: 120,
  },
} as const satisfies Record<string, StreamSpec>;

export const Consumers = {
  stepWorkers: {
    stream: Streams.steps.name,
    durable: 'agent-runtime',
    filterSubject: subjectWildcard(Subject.StepDispatch),
    ackWaitSeconds: 30,
    maxDeliver: 5,
    backoffSeconds: [1, 5, 15, 30],
    maxAckPending: 1000,
  },
  resultRecorder: {
    stream: Streams.results.name,
    durable: 'orchestrator-results',
    filterSubject: Subject.StepResult,
    // Short: results a killed orchestrator had taken come back to the others (or to its
    // restart) within 2 s. A busy handler keeps its messages with progress acks.
    ackWaitSeconds: 2,
    maxDeliver: 10,
    backoffSeconds: [1, 2, 5, 10, 30],
    maxAckPending: 1000,
  },
  deadLetters: {
    stream: Streams.results.name,
    durable: 'orchestrator-dead-letters',
    filterSubject: Subject.StepDeadLetter,
    ackWaitSeconds: 30,
    maxDeliver: 10,
    backoffSeconds: [1, 2, 5, 10, 30],
    maxAckPending: 100,
  },
} as const satisfies Record<string, ConsumerSpec>;
