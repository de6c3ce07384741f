/**
 * The public face of a running Shardlog node: what `createRuntime` returns, and every type a
 * caller passes to it or gets back. The implementation lives in `host/` (node-runtime.ts).
 */
import type { z } from 'zod';
import type { ClusterNode } from './cluster/cluster-node.ts';
import type { ClusterTimings } from './cluster/cluster-store.ts';
import type { Aggregate } from './define/aggregate.ts';
import type { App } from './define/app.ts';
import type { BusEvent } from './bus/bus-event.ts';
import type { ShardlogError } from './errors.ts';
import type { ProjectorHost } from './host/projector-host.ts';
import type { BatchReport, RestartPolicy, ShardStats } from './host/shard-host.ts';
import type { WalSize } from './host/checkpointer.ts';
import type { Logger } from './logger.ts';
import type { PendingCommand, SagaStatus } from './define/saga-actor.ts';
import type { CommandEnvelope, CommandResult, Durability, SagaSummary, StoredEvent } from './protocol.ts';
import type { Views } from './view-calls.ts';

export interface RuntimeOptions<A extends App = App> {
  app: A;
  /** Where meta.json and shards/<n>.db live; created if missing. */
  dataDir: string;
  /** Partition count P, fixed when the data dir is created (default 64, then the stored value). */
  partitions?: number;
  /** Shard threads T (default: cores − 1, at least 1; then the stored value). */
  shards?: number;
  /**
   * `fsync` (default): every commit is fsynced before its reply; nothing acknowledged is lost
   * even on power loss. `relaxed`: fsync only at checkpoints; a process crash loses nothing,
   * a power loss or OS crash can roll back the last commits.
   */
  durability?: Durability;
  /** Live actors kept in memory per shard (default 10,000); the rest reload from the log. */
  maxLiveActors?: number;
  /** Commands waiting per shard before SHARDLOG_OVERLOADED (default 10,000). */
  maxQueuedCommands?: number;
  /** Most commands in one transaction (default 1,024). */
  maxBatchSize?: number;
  /** How long command ids are remembered for idempotency (default 24 h). */
  idempotencyRetentionMs?: number;
  /** Heap cap per shard thread, in MiB; a thread past it dies and is restarted. */
  shardMemoryMb?: number;
  restart?: Partial<RestartPolicy>;
  /** Where the runtime logs (a pino logger fits); default: the console. */
  logger?: Logger;
  /**
   * Publish every committed batch to NATS JetStream (stream `<PREFIX>_EVENTS`, subjects
   * `<prefix>.events.<partition>`) and let projectors consume from there. Without it, the
   * projectors tail the shard logs in this process (the embedded bus).
   */
  nats?: NatsOptions | undefined;
  /**
   * Join a cluster (needs `nats`): nodes share the partitions through NATS KV, each serving
   * its own and forwarding the rest; a command is acknowledged once JetStream holds its events.
   */
  cluster?: ClusterConfig | undefined;
  /** Called after every batch a shard answers (metrics, tracing). Must not throw. */
  onBatch?: (batch: BatchReport) => void;
}

export interface NatsOptions {
  /** One server's URL, several comma-separated (`nats://a:4222,nats://b:4222`), or a list: the client fails over between them. */
  servers: string | string[];
  /** Subject prefix (default `shardlog`): stream `<PREFIX>_EVENTS`, buckets `<PREFIX>_CLUSTER`, … */
  prefix?: string;
  /**
   * Replicas (1 to 5, default 1) of the event stream and of every KV bucket this runtime
   * creates; more than one needs a NATS cluster of at least that many servers, else the
   * start is refused with SHARDLOG_NATS_REPLICAS_UNPLACEABLE. One that exists with another
   * count keeps it and is reported at start (`shardlog cluster replicas <n>` changes it).
   */
  replicas?: number;
}

export interface ClusterConfig {
  /** This node's name, unique in the cluster: letters, digits, `.`, `_`, `-`. */
  nodeId: string;
  /** How long a command waits for its partition during a handoff before 503 (default 5,000 ms). */
  moveWaitMs?: number;
  /** Heartbeat period and how long a silent node is considered alive (defaults 1,000 ms, 3,000 ms). */
  timings?: Partial<ClusterTimings>;
  /** How long a command waits for JetStream to confirm its events (default 10,000 ms). */
  publishWaitMs?: number;
}

export type AggregateNames<A extends App> = A['aggregates'][number]['name'];
export type AggregateNamed<A extends App, Name> = Extract<A['aggregates'][number], { name: Name }>;
export type CommandSchemas<Agg> = Agg extends Aggregate<string, unknown, never, infer Commands> ? Commands : Record<string, z.ZodType>;
export type CommandNames<A extends App, Name extends AggregateNames<A>> = keyof CommandSchemas<AggregateNamed<A, Name>> & string;

export interface DispatchRequest<A extends App = App, Name extends AggregateNames<A> = AggregateNames<A>, Command extends CommandNames<A, Name> = CommandNames<A, Name>> {
  aggregate: Name;
  id: string;
  command: Command;
  input: z.input<CommandSchemas<AggregateNamed<A, Name>>[Command]>;
  /** The idempotency key; one is generated when omitted. */
  commandId?: string;
  /** Refuse with SHARDLOG_VERSION_MISMATCH unless the aggregate is at this version. */
  expectedVersion?: number;
  /** Stored with each event the command causes. */
  metadata?: Record<string, unknown>;
}

/** A validated command bound to its shard, from `Runtime.prepare`. */
export interface PreparedCommand {
  readonly shard: number;
  readonly partition: number;
  readonly envelope: CommandEnvelope;
}

/** `heads`: [partition, last seq, …] of a commit; `events`: its events, when a JetStream relay asked the shards for them. */
export type CommitListener = (heads: readonly number[], events?: readonly BusEvent[]) => void;

export interface DispatchResult extends CommandResult {
  commandId: string;
}

export type CommandOutcome =
  | { status: 'committed'; aggregate: string; id: string; result: DispatchResult }
  | { status: 'rejected'; aggregate: string; id: string; error: ShardlogError };

export interface StateQuery {
  aggregate: string;
  id: string;
  /** The state right after this version. */
  version?: number;
  /** The state as of this time (every event recorded at or before it). */
  at?: Date | string | number;
}

export interface EventsQuery {
  aggregate: string;
  id: string;
  /** Events after this aggregate version (default 0: from the first). */
  after?: number;
  /** At most this many (default 100, at most 1,000). */
  limit?: number;
}

/** Where the JetStream relay stands on one partition. */
export interface BusPartitionLag {
  partition: number;
  head: number;
  published: number;
}

/** One saga instance as `GET /sagas/:saga/:correlationId` shows it. */
export interface SagaView {
  saga: string;
  correlationId: string;
  status: Exclude<SagaStatus, 'new'>;
  state: unknown;
  version: number;
  startedAt: string;
  pending: {
    /** Commands decided and not yet settled (the outbox), with the id each is sent with. */
    commands: (PendingCommand & { commandId: string })[];
    timers: { name: string; dueAt: string }[];
  };
  /** The inputs its last reaction handled. */
  lastHandled: string[];
  /** Inputs whose handler kept failing, waiting for `dlq retry` or `dlq skip`. */
  parked: { input: string; error: string; parkedAt: string }[];
}

/** A saga instance with parked inputs, as `dlq list <saga>` shows it; `id` is its correlation id. */
export interface SagaDeadLetter {
  id: string;
  saga: string;
  correlationId: string;
  status: Exclude<SagaStatus, 'new'>;
  /** Why the first parked input failed. */
  error: string;
  parkedAt: string;
  inputs: string[];
}

/** Saga instances that changed status on this node since it started. */
export interface SagaCounts {
  started: number;
  completed: number;
  compensated: number;
  timedOut: number;
}

/** The app's sagas as a node sees them. */
export interface Sagas {
  /** One instance, read where its partition is served; undefined if it never started. Throws SHARDLOG_UNKNOWN_SAGA for a name the app lacks. */
  get(saga: string, correlationId: string): Promise<SagaView | undefined>;
  /** Instances in the partitions this node serves: running ones first, the longest-running first (the stuck ones), then the finished, latest first. */
  list(query?: { saga?: string; status?: string; limit?: number }): Promise<SagaSummary[]>;
  /** Per saga: the counts, the instances running in this node's partitions and how long the oldest has run. */
  metrics(): Promise<(SagaCounts & { saga: string; inFlight: number; oldestInFlightSeconds: number })[]>;
  /** Committed events not yet delivered to sagas, commands decided and not settled, timers set: on this node. */
  backlog(): { undelivered: number; pendingCommands: number; timers: number };
  /** Instances of a saga with parked inputs (a handler kept throwing), in this node's partitions, latest first. */
  deadLetters(saga: string, query?: { limit?: number }): Promise<SagaDeadLetter[]>;
  /** Runs an instance's parked inputs again with the current code, all or nothing; SHARDLOG_DLQ_CONFLICT if none is parked or one fails again. */
  retry(saga: string, correlationId: string): Promise<void>;
  /** Drops an instance's parked inputs; SHARDLOG_DLQ_CONFLICT if none is parked. */
  skip(saga: string, correlationId: string): Promise<void>;
}

/** This node's part in a cluster, as the runtime shows it. */
export type ClusterMember = Pick<ClusterNode, 'nodeId' | 'status' | 'assignmentTable' | 'advertise' | 'ownerOf' | 'owners' | 'placementTable'>;

/**
 * A running Shardlog node in this process: shard threads, their logs, the event bus, the
 * projections and, with `cluster`, its part in a cluster. Create it with `createRuntime`;
 * close it with `close()` before the process exits.
 *
 * Every method that takes input validates it and throws (or rejects with) a ShardlogError
 * with a stable `code` for bad input: see docs/errors.md.
 */
export interface Runtime<A extends App = App> {
  readonly app: A;
  /** Partition count P of the data dir. */
  readonly partitions: number;
  /** Shard threads T. */
  readonly shards: number;

  /**
   * Runs one command on its aggregate's shard. Resolves once its events are committed (and,
   * with `fsync`, on disk; in a cluster, once JetStream holds them), with the aggregate's new
   * version and the position of the last event. Rejects with a ShardlogError: RejectedError
   * for a domain refusal, RetryableError for failures a retry with the same commandId may cure.
   *
   * ```ts
   * await runtime.dispatch({ aggregate: 'account', id: 'acc-1', command: 'deposit', input: { amount: 5 } });
   * // => { commandId: '…', version: 2, position: '0:2', events: [{ type: 'Deposited', version: 1 }] }
   * ```
   */
  dispatch<Name extends AggregateNames<A>, Command extends CommandNames<A, Name>>(request: DispatchRequest<A, Name, Command>): Promise<DispatchResult>;
  /**
   * The synchronous half of `dispatch`: validates the request and picks its shard, throwing a
   * ShardlogError for bad input. Lets a caller answer "accepted" (HTTP 202) only for commands
   * that will run.
   */
  prepare(request: DispatchRequest): PreparedCommand;
  /**
   * The asynchronous half of `dispatch`: runs a prepared command. Throws at once
   * (SHARDLOG_CLOSED, SHARDLOG_OVERLOADED, SHARDLOG_SHARD_UNAVAILABLE) if it cannot be queued.
   */
  submit(prepared: PreparedCommand): Promise<DispatchResult>;

  /** The aggregate's state now, right after a version, or as of a time. Version 0 means it has no events. */
  state(query: StateQuery): Promise<{ state: unknown; version: number }>;
  /** One aggregate's events, oldest first, after a version, a page at a time. */
  events(query: EventsQuery): Promise<{ events: StoredEvent[] }>;
  /** One partition's events in seq order, after a seq: what the bus publishes. In a cluster, read from the partition's owner. */
  partitionEvents(query: { partition: number; after?: number; limit?: number }): Promise<{ events: StoredEvent[] }>;
  /**
   * What became of a command id: its recorded reply (committed or rejected) with the
   * aggregate it ran on, or undefined if no node has a record of it (never seen, not yet
   * committed, failed without a decision, or pruned past the retention).
   */
  commandOutcome(commandId: string): Promise<CommandOutcome | undefined>;

  /** The app's projections: documents, read-your-writes waits, status, rebuild and dead letters. Throws SHARDLOG_UNKNOWN_PROJECTION if the app has none. */
  readonly projections: ProjectorHost;
  /**
   * The app's views wherever each projection runs: on this node, or in a cluster on the node
   * the leader placed it on (the call is forwarded there over NATS). What the HTTP routes
   * `/views/…` and `/admin/projections/…` use. Throws SHARDLOG_UNKNOWN_PROJECTION if the app has none.
   *
   * ```ts
   * await runtime.views.call('account-balances', { op: 'document', key: 'acc-1', after: { partition: 0, seq: 2 }, waitMs: 5_000 });
   * // => { owner: 'ada', balance: 100, deposits: 1, withdrawals: 0, closed: false }
   * ```
   */
  readonly views: Views;
  /** The app's sagas: instances, listings and counts. Throws SHARDLOG_UNKNOWN_SAGA if the app has none. */
  readonly sagas: Sagas;

  /**
   * Calls `listener` after every commit of this node with [partition, last seq, …] of the
   * partitions it appended to. Returns the unsubscribe.
   */
  onCommit(listener: CommitListener): () => void;
  /**
   * Calls `listener` with [partition, last seq, …] whenever a partition grows: after every
   * local commit and, in a cluster, every batch another node publishes while `followHeads`
   * is in force. Returns the unsubscribe.
   */
  onHeads(listener: (heads: readonly number[]) => void): () => void;
  /**
   * In a cluster, follows every node's published heads until the returned stop is called,
   * resolving once `knownHeads()` holds the heads the stream has now (other nodes' batches
   * are received only while someone follows). Standalone it resolves at once. Rejects with
   * SHARDLOG_NATS_UNAVAILABLE when NATS does not answer.
   */
  followHeads(): Promise<() => void>;
  /** The last seq of every partition this node knows of: its own commits and, in a cluster, every node's (current while `followHeads` is in force). */
  knownHeads(): Map<number, number>;
  /** The last committed seq of a partition as of the latest commit this node saw (0 if none); in a cluster, any node's (current while `followHeads` is in force). */
  head(partition: number): number;
  /** The last committed seq of every partition that has events in this node's logs (read from the shards). */
  heads(): Promise<Map<number, number>>;

  /** Where the JetStream relay stands, per partition with events: empty without NATS. */
  busLag(): BusPartitionLag[];
  /** Committed events the relay has not published yet, summed over the partitions (0 without NATS). */
  busLagEvents(): number;
  /** Partitions the relay will not publish: the stream holds more of them than this data dir wrote. */
  busDiverged(): number[];
  /** Whether the relay is connected to NATS (undefined without NATS). */
  readonly busConnected: boolean | undefined;

  /** This node's part in the cluster (undefined when not clustered). */
  readonly cluster: ClusterMember | undefined;
  /** Hands every owned partition to other nodes (bounded), then leaves the cluster; no-op when not clustered. */
  leaveCluster(timeoutMs?: number): Promise<void>;

  /** Per-shard queue depth, batch counts and health. */
  stats(): ShardStats[];
  /** Each shard log's WAL size in bytes, as of the background checkpointer's last pass. */
  walSizes(): WalSize[];
  /** Forgets command ids older than the retention; runs in the background on its own too. */
  pruneCommands(): Promise<number>;
  /** Stops taking commands, lets every accepted one commit, closes the logs and the threads. Idempotent. */
  close(): Promise<void>;
}
