/**
 * The messages between the main thread (runtime/host) and a shard thread (runtime/shard).
 * Each travels msgpack-encoded in a transferred buffer; one `commands` request carries every
 * command the host gathered for that shard in one event-loop tick.
 */
import type { BusEvent } from './bus/bus-event.ts';
import type { SerializedError } from './errors.ts';

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

export type ShardRequest =
  | { type: 'open' }
  | { type: 'commands'; commands: CommandEnvelope[] }
  | { type: 'state'; aggregate: string; id: string; version?: number; at?: number }
  | { type: 'stream-events'; aggregate: string; id: string; after: number; limit: number }
  | { type: 'partition-events'; partition: number; after: number; limit: number }
  | { type: 'command'; commandId: string }
  | { type: 'prune'; recordedBefore: number; limit: number }
  | { type: 'heads' }
  | { type: 'bus-events'; partition: number; after: number; limit: number }
  /** The relay's progress: [partition, published seq, …]. */
  | { type: 'record-published'; marks: number[] }
  | { type: 'published' }
  /** Cluster handoff: drop the partition's events after `after` (never confirmed by the stream). */
  | { type: 'truncate-partition'; partition: number; after: number }
  /** Cluster handoff: append events copied from the stream, in seq order, right after the log's last. */
  | { type: 'append-replica'; partition: number; events: BusEvent[] }
  | { type: 'close' };

export type ShardResponse =
  | { type: 'opened'; partitions: number[] }
  /** `heads`: [partition, seq, partition, seq, …], the last seq of each partition the batch appended to. */
  | { type: 'committed'; replies: CommandReply[]; heads: number[]; events?: BusEvent[] }
  | { type: 'heads'; heads: number[] }
  | { type: 'bus-events'; events: BusEvent[] }
  | { type: 'state'; state: unknown; version: number }
  | { type: 'events'; events: StoredEvent[] }
  | { type: 'command'; reply: CommandReply | null; aggregate: string | null; id: string | null }
  | { type: 'pruned'; commands: number }
  | { type: 'closed' }
  | { type: 'failed'; error: SerializedError };

/** What a shard thread is told at start, through piscina's workerData. */
export interface ShardWorkerData {
  shard: number;
  shards: number;
  partitions: number;
  dataDir: string;
  appModule: string;
  durability: Durability;
  maxLiveActors: number;
  /** Return each batch's committed events with its replies (for the JetStream relay, so it need not read them back). */
  returnEvents: boolean;
}

export type Durability = 'fsync' | 'relaxed';
