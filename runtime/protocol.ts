/**
 * The messages between the main thread (runtime/host) and a shard thread (runtime/shard).
 * Each travels msgpack-encoded in a transferred buffer; one `commands` request carries every
 * command the host gathered for that shard in one event-loop tick.
 */
import type { BusEvent } from './bus/bus-event.ts';
import type { DeliveredEvent, PendingCommand, SagaStatus } from './define/saga-actor.ts';
import { makeError, type SerializedError } from './errors.ts';

export interface CommandEnvelope {
  commandId: string;
  /** The host generated commandId just now, so no earlier record of it can exist. */
  freshId?: true;
  aggregate: string;
  id: string;
  command: string;
  /** Already parsed by the command's input schema on the main thread. */
  input: unknown;
  expectedVersion?: number;
  metadata?: Record<string, unknown>;
}

/** What a committed command replies: `position` is that of its last event (null if it emitted none). */
export interface CommandResult {
  version: number;
  position: string | null;
  events: { type: string; version: number }[];
}

export type CommandReply = { ok: true; result: CommandResult } | { ok: false; error: SerializedError };

/** A command id's record in a shard log: its reply and the aggregate it ran on. */
export interface CommandRecord {
  reply: CommandReply;
  aggregate: string;
  id: string;
}

export interface StoredEvent {
  aggregate: string;
  id: string;
  type: string;
  /** The aggregate version this event brought it to. */
  version: number;
  position: string;
  data: unknown;
  metadata: Record<string, unknown>;
  recordedAt: string;
}

/** A saga instance's outbox and timers. */
export interface SagaWork {
  pending: PendingCommand[];
  timers: Record<string, number>;
}

/** One saga instance as a listing shows it. */
export interface SagaSummary {
  saga: string;
  correlationId: string;
  partition: number;
  status: SagaStatus;
  startedAt: number;
  updatedAt: number;
  pendingCommands: number;
  timers: number;
  parked: number;
}

/** A saga instance a committed batch changed: its status before and after, and its outbox and timers now. */
export interface SagaActivity {
  stream: string;
  partition: number;
  saga: string;
  from: SagaStatus;
  to: SagaStatus;
  startedAt: number;
  pending: PendingCommand[];
  timers: Record<string, number>;
  /** Inputs in its dead-letter list. */
  parked: number;
}

/** One partition's events delivered to sagas: `upTo` is the last seq read, whether or not it was for a saga. */
export interface SagaDeliveries {
  partition: number;
  upTo: number;
  deliveries: { saga: string; correlationId: string; event: DeliveredEvent }[];
}

/**
 * Every call a shard thread answers: its request and its response, by `type`. A response
 * carries the `type` of the request it answers; `ShardHost.request` checks that once, where
 * the reply arrives, so callers get the exact response type of their request.
 */
export interface ShardCalls {
  open: { request: object; response: { partitions: number[] } };
  /**
   * Every command the host gathered for this shard in one tick; `heads`: [partition, seq, …] of
   * each partition the batch appended to. When the shard returns events, `seqsBefore` has each
   * of those partitions' last seq before the batch, in `heads`' order: `events` are then all
   * the returned ones of those ranges, even when there are none.
   */
  commands: { request: { commands: CommandEnvelope[] }; response: { replies: CommandReply[]; heads: number[]; commitMs: number; indexMs?: number; events?: BusEvent[]; seqsBefore?: number[]; sagas?: SagaActivity[] } };
  state: { request: { aggregate: string; id: string; version?: number; at?: number }; response: { state: unknown; version: number } };
  'stream-events': { request: { aggregate: string; id: string; after: number; limit: number }; response: { events: StoredEvent[] } };
  'partition-events': { request: { partition: number; after: number; limit: number }; response: { events: StoredEvent[] } };
  command: { request: { commandId: string }; response: { reply: CommandReply | null; aggregate: string | null; id: string | null } };
  prune: { request: { recordedBefore: number; limit: number }; response: { commands: number } };
  /** The last seq of every partition with events: [partition, seq, …]. */
  heads: { request: object; response: { heads: number[] } };
  'bus-events': { request: { partition: number; after: number; limit: number }; response: { events: BusEvent[] } };
  /** The relay's progress: [partition, published seq, …]. */
  'record-published': { request: { marks: number[] }; response: object };
  /** The relay's recorded progress: [partition, published seq, …]. */
  published: { request: object; response: { marks: number[] } };
  /** Cluster handoff: drop the partition's events after `after` (never confirmed by the stream); `head` is its last seq then. */
  'truncate-partition': { request: { partition: number; after: number }; response: { head: number } };
  /** Cluster handoff: append events copied from the stream, in seq order, right after the log's last. */
  'append-replica': { request: { partition: number; events: BusEvent[] }; response: { head: number } };
  /**
   * Sagas: records `record` ([partition, seq, …] delivered), then reads each partition of
   * `read` ([partition, after, until, …]) and returns what of it goes to which saga instance.
   */
  'saga-deliveries': { request: { record: number[]; read: number[]; limit: number }; response: { partitions: SagaDeliveries[]; routed: number[] } };
  /** The outbox and timers of the saga instances in these partitions. */
  'saga-work': { request: { partitions: number[] }; response: { work: (SagaWork & { stream: string; partition: number })[] } };
  'saga-list': { request: { partitions: number[]; saga?: string; status?: string; limit: number }; response: { items: SagaSummary[] } };
  /** Instances of a saga with parked inputs, in these partitions: [correlation id, …], the latest parked first. */
  'saga-parked': { request: { partitions: number[]; saga: string; limit: number }; response: { correlationIds: string[] } };
  'saga-running': { request: { partitions: number[] }; response: { sagas: { saga: string; running: number; oldestStartedAt: number }[] } };
  close: { request: object; response: object };
}

export type ShardCallType = keyof ShardCalls;
export type ShardRequest<K extends ShardCallType = ShardCallType> = K extends ShardCallType ? { type: K } & ShardCalls[K]['request'] : never;
export type ShardResponse<K extends ShardCallType = ShardCallType> = K extends ShardCallType ? { type: K } & ShardCalls[K]['response'] : never;
/** What travels back from a shard thread: the response to the request, or the error it failed with. */
export type ShardReply = ShardResponse | { type: 'failed'; error: SerializedError };

/** The response to `request`, or SHARDLOG_INTERNAL if the other side answered another call. */
export function responseTo<K extends ShardCallType>(request: ShardRequest<K>, response: ShardResponse): ShardResponse<K> {
  if (response.type !== request.type) {
    throw makeError('SHARDLOG_INTERNAL', `a ${request.type} request was answered by a ${response.type} response`);
  }
  return response as ShardResponse<K>;
}

/** What a shard thread is told at start, through piscina's workerData. */
export interface ShardWorkerData {
  shard: number;
  shards: number;
  partitions: number;
  dataDir: string;
  appModule: string;
  durability: Durability;
  maxLiveActors: number;
  /** Which of each batch's committed events to return with its replies. */
  returnEvents: ReturnedEvents;
}

/**
 * All: the JetStream relay publishes them without reading them back. Saga aggregates': the
 * events of aggregates some saga uses, all the saga router delivers from; the others would
 * only cost the main thread their decoding. None: nothing needs them.
 */
export type ReturnedEvents = 'all' | 'saga-aggregates' | 'none';

export type Durability = 'fsync' | 'relaxed';
