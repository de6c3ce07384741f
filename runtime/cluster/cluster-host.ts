import type { BusEvent } from '../bus/bus-event.ts';
import type { CommandEnvelope, CommandRecord, CommandResult, ShardRequest, ShardResponse } from '../protocol.ts';

/** What the cluster needs of the local runtime. */
export interface ClusterHost {
  readonly partitions: number;
  /** Runs a command on this node's shard and resolves once JetStream holds its events. */
  runLocally(partition: number, envelope: CommandEnvelope): Promise<CommandResult>;
  /** This node's confirmed record of a command id, if it has one. */
  commandRecord(commandId: string): Promise<CommandRecord | undefined>;
  /** Answers a read of an aggregate from this node's shard. */
  readLocally(partition: number, request: ShardRequest): Promise<ShardResponse>;
  /** The relay's published seq as recorded in the log: events after it were never confirmed. */
  publishedRecord(partition: number): Promise<number>;
  truncatePartition(partition: number, after: number): Promise<number>;
  appendReplica(partition: number, events: BusEvent[]): Promise<number>;
  /** The partition is this node's from now: publish it from `head`. */
  adoptPartition(partition: number, head: number): void;
  /** The partition is no longer this node's: stop publishing it. Returns the last seq the stream held from this node and that message's stream sequence, when certain. */
  releasePartition(partition: number): Promise<{ published: number; streamSeq: number } | undefined>;
  /** This node's own last seq of a partition (its log). */
  head(partition: number): number;
  /** Another node (or this one) published the partition up to `seq`. */
  streamHead(partition: number, seq: number): void;
  waitPublished(partition: number, seq: number, timeoutMs: number): Promise<void>;
  lagEvents(): number;
}
