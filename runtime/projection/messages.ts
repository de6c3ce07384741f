/** The messages between the main thread (runtime/host/projector-host.ts) and the projector thread. */
import type { SerializedError } from '../errors.ts';
import type { Halt } from './projector.ts';

export interface ProjectorWorkerData {
  dataDir: string;
  shards: number;
  partitions: number;
  appModule: string;
  /**
   * Consume the JetStream event stream instead of tailing the shard files. `partialLogs`: the
   * shard files hold only some partitions (a cluster node), so a rebuild, which reads them,
   * is completed from the whole stream after it switches.
   */
  nats?: { servers: string[]; prefix: string; replicas?: number | undefined; partialLogs?: boolean } | undefined;
  /** The projections to run (a cluster node runs those placed on it; undefined: all of them). */
  run?: readonly string[] | undefined;
}

/** Every call the projector thread answers: what it takes and what it replies, by `op`. */
export interface ProjectorCalls {
  status: { call: object; value: ProjectionStatus[] };
  rebuild: { call: { name: string }; value: RebuildStatus };
  'dlq-list': { call: { name: string; limit: number }; value: DeadLetter[] };
  'dlq-retry': { call: { name: string; id: number }; value: { applied: true } };
  'dlq-skip': { call: { name: string; id: number }; value: { skipped: true } };
  close: { call: object; value: null };
}

export type ProjectorOp = keyof ProjectorCalls;
export type ProjectorCall<K extends ProjectorOp = ProjectorOp> = K extends ProjectorOp ? { op: K } & ProjectorCalls[K]['call'] : never;
export type ProjectorValue<K extends ProjectorOp = ProjectorOp> = ProjectorCalls[K]['value'];

export type ToProjector =
  /** [partition, last seq, …] after a commit. */
  | { type: 'heads'; heads: readonly number[] }
  | { type: 'call'; id: number; call: ProjectorCall }
  | { type: 'readers-closed'; name: string }
  /** Run exactly these projections from now on: start the ones not running, stop the others. */
  | { type: 'placement'; run: readonly string[] };

export type FromProjector =
  /**
   * Checkpoints that moved: [partition, seq, …]. `catchingUp`: started on this node and not
   * yet at the stream's tail as of its start (its reads would be stale).
   */
  | { type: 'progress'; name: string; marks: number[]; halted: boolean; catchingUp: boolean }
  /** `file` is the view file serving reads; `running`: this node runs the projection. */
  | { type: 'ready'; views: { name: string; file: string; checkpoints: number[]; halted: boolean; running: boolean; catchingUp: boolean }[] }
  /** `op` repeats the call's, so the host checks the reply answers the call it made. */
  | { type: 'reply'; id: number; op: ProjectorOp; ok: true; value: ProjectorValue }
  | { type: 'reply'; id: number; op: ProjectorOp; ok: false; error: SerializedError }
  /** A log line for the node's logger (the thread has none of its own). */
  | { type: 'log'; level: 'info' | 'warn' | 'error'; details: object; message: string }
  /** Close your read connections to this view: its file is about to be replaced. */
  | { type: 'close-readers'; name: string }
  | { type: 'switched'; name: string; file: string; checkpoints: number[] };

export interface RebuildStatus {
  startedAt: string;
  /** Events behind the serving heads at the start, and applied so far. */
  total: number;
  done: number;
  eventsPerSecond: number;
  etaSeconds: number | null;
  /** Set when the rebuild stopped on an event it could not apply (it is parked in the new file's dead-letter table). */
  halted: Halt | null;
}

export interface ProjectionStatus {
  name: string;
  version: number;
  state: 'catching-up' | 'live' | 'halted';
  /** Sums over partitions of the last applied seq and of the last committed seq. */
  checkpoint: number;
  head: number;
  lagEvents: number;
  /** How long the oldest unapplied event has been waiting (0 when caught up). */
  lagMs: number;
  deadLetters: number;
  halted: Halt | null;
  /** Events applied since this node started. */
  applied: number;
  rebuild: RebuildStatus | null;
  lastRebuild: { finishedAt: string; events: number; seconds: number } | null;
  /** Cluster: the node that runs the projection (its views are read there). */
  node?: string;
}

export interface DeadLetter {
  id: number;
  position: string;
  aggregate: string;
  aggregateId: string;
  type: string;
  data: unknown;
  error: string;
  attempts: number;
  parkedAt: string;
}
