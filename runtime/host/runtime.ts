import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { z } from 'zod';
import type { Aggregate } from '../define/aggregate.ts';
import { aggregateNamed, type AnyAggregate, type App } from '../define/app.ts';
import { commandOf } from '../define/execute.ts';
import type { BusEvent } from '../bus/bus-event.ts';
import { newCommandId } from '../command-id.ts';
import { deserializeError, makeError, type ShardlogError } from '../errors.ts';
import { assertValidId, parsePosition, partitionOf, shardOf, streamName } from '../partitioning.ts';
import type { CommandEnvelope, CommandRecord, CommandResult, Durability, ShardRequest, ShardResponse, StoredEvent } from '../protocol.ts';
import { ClusterNode, type ClusterHost } from '../cluster/cluster-node.ts';
import type { ClusterTimings } from '../cluster/cluster-store.ts';
import { openDataDir } from './data-dir.ts';
import { Checkpointer } from './checkpointer.ts';
import { DataDirLock } from './data-dir-lock.ts';
import { finishInterruptedReshard } from './reshard.ts';
import { JetStreamRelay } from '../bus/jetstream-relay.ts';
import { ProjectorHost } from './projector-host.ts';
import { ShardHost, type BatchReport, type RestartPolicy, type RuntimeLogger, type ShardStats } from './shard-host.ts';

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
  logger?: RuntimeLogger;
  /**
   * Publish every committed batch to NATS JetStream (stream `<PREFIX>_EVENTS`, subjects
   * `<prefix>.events.<partition>`) and let projectors consume from there. Without it, the
   * projectors tail the shard logs in this process (the embedded bus).
   */
  nats?: { servers: string; prefix?: string } | undefined;
  /**
   * Join a cluster (needs `nats`): nodes share the partitions through NATS KV, each serving
   * its own and forwarding the rest; a command is acknowledged once JetStream holds its events.
   */
  cluster?: ClusterConfig | undefined;
  /** Called after every batch a shard answers (metrics, tracing). Must not throw. */
  onBatch?: (batch: BatchReport) => void;
}

export interface ClusterConfig {
  /** This node's name, unique in the cluster: letters, digits, `.`, `_`, `-`. */
  nodeId: string;
  /** How long a command waits for its partition during a handoff before 503 (default 5,000 ms). */
  moveWaitMs?: number;
  /** Heartbeat period and how long a silent node is considered alive (defaults 500 ms, 3,000 ms). */
  timings?: Partial<ClusterTimings>;
  /** How long a command waits for JetStream to confirm its events (default 10,000 ms). */
  publishWaitMs?: number;
}

type AggregateNames<A extends App> = A['aggregates'][number]['name'];
type AggregateNamed<A extends App, Name> = Extract<A['aggregates'][number], { name: Name }>;
type CommandSchemas<Agg> = Agg extends Aggregate<string, unknown, never, infer Commands> ? Commands : Record<string, z.ZodType>;

export interface DispatchRequest<
  A extends App = App,
  Name extends AggregateNames<A> = AggregateNames<A>,
  Command extends keyof CommandSchemas<AggregateNamed<A, Name>> & string = keyof CommandSchemas<AggregateNamed<A, Name>> & string,
> {
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

const defaultRestart: RestartPolicy = { maxCrashes: 5, windowMs: 60_000, initialDelayMs: 100, maxDelayMs: 5_000 };
const consoleLogger: RuntimeLogger = {
  warn: (details, message) => console.warn(`[shardlog] ${message}`, details),
  error: (details, message) => console.error(`[shardlog] ${message}`, details),
};
const maxPageSize = 1_000;
/** One batch per shard at a time: two in flight halved batch sizes and gained nothing measurable (ADR 0003). */
const maxBatchesInFlight = 1;
const checkpointIntervalMs = 50;
const pruneChunk = 5_000;

/**
 * A running Shardlog node in this process: shard threads, their logs, and the routing between.
 * Create it with `createRuntime`.
 */
export class Runtime<A extends App = App> {
  private closed = false;
  private readonly commitListeners = new Set<CommitListener>();
  private readonly lastSeqs = new Map<number, number>();
  /** Cluster: the last seq of each partition as published by any node (core NATS sees every publish). */
  private readonly streamHeads = new Map<number, number>();
  private readonly headListeners = new Set<(heads: readonly number[]) => void>();
  private projectorHost: ProjectorHost | undefined;
  private relay: JetStreamRelay | undefined;
  private clusterNode: ClusterNode | undefined;
  private closing: Promise<void> | undefined;
  private readonly pruneTimer: NodeJS.Timeout;

  constructor(
    readonly app: A,
    readonly partitions: number,
    private readonly hosts: ShardHost[],
    private readonly retentionMs: number,
    private readonly lock: DataDirLock,
    private readonly checkpointer: Checkpointer,
  ) {
    const every = Math.max(1_000, Math.min(retentionMs / 4, 10 * 60_000));
    this.pruneTimer = setInterval(() => void this.pruneCommands().catch(() => undefined), every).unref();
  }

  /**
   * Calls `listener` after every commit with [partition, last seq, …] of the partitions it
   * appended to: the wake-up of the event bus, projectors and SSE. Returns the unsubscribe.
   */
  onCommit(listener: CommitListener): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  /**
   * Calls `listener` with [partition, last seq, …] whenever a partition grows: after every
   * local commit and, in a cluster, every batch another node publishes. Returns the unsubscribe.
   */
  onHeads(listener: (heads: readonly number[]) => void): () => void {
    this.headListeners.add(listener);
    return () => this.headListeners.delete(listener);
  }

  /** The last seq of every partition this node knows of: its own commits and, in a cluster, every node's. */
  knownHeads(): Map<number, number> {
    const heads = new Map(this.lastSeqs);
    for (const [partition, seq] of this.streamHeads) if (seq > (heads.get(partition) ?? 0)) heads.set(partition, seq);
    return heads;
  }

  /** Called by the shard hosts after each answered batch. */
  readonly reportBatch = (batch: BatchReport): void => {
    if (batch.heads.length === 0) return;
    for (let index = 0; index < batch.heads.length; index += 2) this.lastSeqs.set(batch.heads[index]!, batch.heads[index + 1]!);
    for (const listener of this.commitListeners) listener(batch.heads, batch.committedEvents);
    for (const listener of this.headListeners) listener(batch.heads);
  };

  private noteStreamHead(partition: number, seq: number): void {
    if (seq <= (this.streamHeads.get(partition) ?? 0)) return;
    this.streamHeads.set(partition, seq);
    for (const listener of this.headListeners) listener([partition, seq]);
  }

  /** The last committed seq of a partition as of the latest commit this runtime saw (0 if none); in a cluster, any node's. */
  head(partition: number): number {
    return Math.max(this.lastSeqs.get(partition) ?? 0, this.streamHeads.get(partition) ?? 0);
  }

  /** The app's projections: their documents, read-your-writes waits, status, rebuild and dead letters. */
  get projections(): ProjectorHost {
    this.assertOpen();
    if (this.projectorHost === undefined) throw makeError('SHARDLOG_UNKNOWN_PROJECTION', 'this app defines no projections');
    return this.projectorHost;
  }

  /** Where the JetStream relay stands, per partition with events: empty without NATS. */
  busLag(): { partition: number; head: number; published: number }[] {
    return this.relay?.lag() ?? [];
  }

  /** Committed events the relay has not published yet, summed over the partitions (0 without NATS). */
  busLagEvents(): number {
    return this.busLag().reduce((sum, { head, published }) => sum + Math.max(0, head - published), 0);
  }

  /** Partitions the relay will not publish: the stream holds more of them than this data dir wrote. */
  busDiverged(): number[] {
    return this.relay?.diverged() ?? [];
  }

  /** Whether the relay is connected to NATS (undefined without NATS). */
  get busConnected(): boolean | undefined {
    return this.relay?.connected;
  }

  /** Starts the JetStream relay (with NATS) and the projector thread (when the app has projections); part of createRuntime. */
  async startBus(dataDir: string, logger: RuntimeLogger, nats: { servers: string; prefix: string } | undefined, cluster?: ClusterConfig): Promise<void> {
    for (const [partition, seq] of await this.heads()) if (seq > (this.lastSeqs.get(partition) ?? 0)) this.lastSeqs.set(partition, seq);
    if (nats !== undefined) {
      this.relay = await JetStreamRelay.start({
        servers: nats.servers,
        prefix: nats.prefix,
        source: this,
        logger,
        ...(cluster === undefined
          ? {}
          : { cluster: { owns: (partition: number) => this.clusterNode?.owns(partition) ?? false, onFenced: (partition: number) => this.clusterNode?.fenced(partition) } }),
      });
    }
    if (nats !== undefined && cluster !== undefined) {
      this.clusterNode = await ClusterNode.start({
        nodeId: cluster.nodeId,
        servers: nats.servers,
        prefix: nats.prefix,
        host: this.clusterHost(cluster.publishWaitMs ?? 10_000),
        logger: {
          info: (details, message) => (logger.info === undefined ? logger.warn(details as Record<string, unknown>, message) : logger.info(details as Record<string, unknown>, message)),
          warn: (details, message) => logger.warn(details as Record<string, unknown>, message),
          error: (details, message) => logger.error(details as Record<string, unknown>, message),
        },
        ...(cluster.timings === undefined ? {} : { timings: cluster.timings }),
        ...(cluster.moveWaitMs === undefined ? {} : { moveWaitMs: cluster.moveWaitMs }),
      });
    }
    if (this.app.projections.length === 0) return;
    this.projectorHost = await ProjectorHost.start({
      app: this.app,
      dataDir,
      shards: this.hosts.length,
      partitions: this.partitions,
      logger,
      subscribe: (listener) => this.onCommit(listener),
      head: (partition) => this.head(partition),
      nats: nats === undefined ? undefined : { ...nats, partialLogs: cluster !== undefined },
    });
  }

  /** The last committed seq of every partition that has events. */
  heads(): Promise<Map<number, number>> {
    return this.seqsOfEveryShard({ type: 'heads' });
  }

  /** How far the relay has published each partition (as recorded with `recordPublished`). */
  publishedSeqs(): Promise<Map<number, number>> {
    return this.seqsOfEveryShard({ type: 'published' });
  }

  /** Records the relay's progress in the shard logs, so it resumes there after a restart. */
  async recordPublished(published: ReadonlyMap<number, number>): Promise<void> {
    // No closed check: the relay records its last progress while the runtime closes (the shards are still open then).
    const byShard = new Map<number, number[]>();
    for (const [partition, seq] of published) {
      const shard = shardOf(checkedCount('partition', partition, 0, this.partitions - 1), this.hosts.length);
      byShard.set(shard, [...(byShard.get(shard) ?? []), partition, seq]);
    }
    await Promise.all([...byShard].map(([shard, marks]) => this.hosts[shard]!.request({ type: 'record-published', marks })));
  }

  /** One partition's events after a seq, as the bus carries them (payloads not upcast). */
  async busEvents(partition: number, after: number, limit: number): Promise<BusEvent[]> {
    checkedCount('partition', partition, 0, this.partitions - 1);
    const response = await this.hostOf(partition).request({
      type: 'bus-events',
      partition,
      after: checkedCount('after', after, 0, Number.MAX_SAFE_INTEGER),
      limit: checkedCount('limit', limit, 1, 10_000),
    });
    if (response.type !== 'bus-events') throw new Error(`unexpected ${response.type} response`);
    return response.events;
  }

  private async seqsOfEveryShard(request: { type: 'heads' | 'published' }): Promise<Map<number, number>> {
    this.assertOpen();
    const seqs = new Map<number, number>();
    const responses = await Promise.all(this.hosts.map((host) => host.request(request)));
    for (const response of responses) {
      if (response.type !== 'heads') throw new Error(`unexpected ${response.type} response`);
      for (let index = 0; index < response.heads.length; index += 2) seqs.set(response.heads[index]!, response.heads[index + 1]!);
    }
    return seqs;
  }

  get shards(): number {
    return this.hosts.length;
  }

  /**
   * Runs one command on its aggregate's shard. Resolves once its events are committed (and,
   * with `fsync`, on disk), with the aggregate's new version and the position of the last
   * event. Rejects with a ShardlogError: RejectedError for a domain refusal, RetryableError
   * for failures a retry with the same commandId may cure.
   */
  dispatch<Name extends AggregateNames<A>, Command extends keyof CommandSchemas<AggregateNamed<A, Name>> & string>(
    request: DispatchRequest<A, Name, Command>,
  ): Promise<DispatchResult> {
    try {
      return this.submit(this.prepare(request as unknown as DispatchRequest));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /**
   * The synchronous half of `dispatch`: validates the request and picks its shard, throwing a
   * ShardlogError for bad input. Lets a caller answer "accepted" (HTTP 202) only for commands
   * that will run.
   */
  prepare(request: DispatchRequest): PreparedCommand {
    if (this.closed) throw makeError('SHARDLOG_CLOSED', 'the runtime is closed');
    const aggregate = this.aggregate(request.aggregate);
    const definition = commandOf(aggregate, request.command);
    if (definition === undefined) {
      throw makeError('SHARDLOG_UNKNOWN_COMMAND', `aggregate "${aggregate.name}" has no command "${request.command}"`, {
        aggregate: aggregate.name,
        command: request.command,
      });
    }
    assertValidId(request.id);
    const parsed = definition.input.safeParse(request.input);
    if (!parsed.success) {
      throw makeError('SHARDLOG_INVALID_INPUT', `invalid input for ${aggregate.name}.${request.command}`, {
        issues: parsed.error.issues.map(({ path, message, code }) => ({ path: path.map(String), message, code })),
      });
    }
    if (request.expectedVersion !== undefined && !(Number.isSafeInteger(request.expectedVersion) && request.expectedVersion >= 0)) {
      throw makeError('SHARDLOG_INVALID_INPUT', 'expectedVersion must be a non-negative integer', { issues: [] });
    }
    if (request.commandId !== undefined) assertValidCommandId(request.commandId);
    const partition = partitionOf(streamName(request.aggregate, request.id), this.partitions);
    return {
      shard: shardOf(partition, this.hosts.length),
      partition,
      envelope: {
        commandId: request.commandId ?? newCommandId(),
        ...(request.commandId === undefined ? { freshId: true as const } : {}),
        aggregate: request.aggregate,
        id: request.id,
        command: request.command,
        input: parsed.data,
        ...(request.expectedVersion === undefined ? {} : { expectedVersion: request.expectedVersion }),
        ...(request.metadata === undefined ? {} : { metadata: request.metadata }),
      },
    };
  }

  /**
   * The asynchronous half of `dispatch`: runs a prepared command on its shard. Throws at once
   * (SHARDLOG_CLOSED, SHARDLOG_OVERLOADED, SHARDLOG_SHARD_UNAVAILABLE) if it cannot be queued.
   */
  submit(prepared: PreparedCommand): Promise<DispatchResult> {
    if (this.closed) throw makeError('SHARDLOG_CLOSED', 'the runtime is closed');
    const { commandId } = prepared.envelope;
    const running = this.clusterNode === undefined ? this.hosts[prepared.shard]!.submit(prepared.envelope) : this.clusterNode.submit(prepared.partition, prepared.envelope);
    return running.then((result) => ({ commandId, ...result }));
  }

  /** This node's part in the cluster (undefined when not clustered). */
  get cluster(): ClusterNode | undefined {
    return this.clusterNode;
  }

  /** Hands every owned partition to other nodes (bounded), then leaves the cluster; no-op when not clustered. */
  async leaveCluster(timeoutMs?: number): Promise<void> {
    await this.clusterNode?.leave(timeoutMs);
  }

  private clusterHost(publishWaitMs: number): ClusterHost {
    return {
      partitions: this.partitions,
      runLocally: async (partition, envelope) => {
        const result = await this.hostOf(partition).submit(envelope);
        const seq = result.position === null ? 0 : parsePosition(result.position).seq;
        if (seq > 0) {
          if (this.clusterNode?.owns(partition) !== true) {
            throw makeError('SHARDLOG_PARTITION_FENCED', `partition ${partition} left this node while the command committed: it is not acknowledged, retry it with the same command id`, {
              partition,
              retryAfterMs: 200,
            });
          }
          await this.relay!.waitPublished(partition, seq, publishWaitMs);
        }
        return result;
      },
      commandRecord: (commandId) => this.localCommandRecord(commandId),
      readLocally: (partition, request) => this.hostOf(partition).request(request),
      publishedRecord: (partition) => this.publishedSeqOf(partition),
      truncatePartition: (partition, after) => this.headChange(partition, { type: 'truncate-partition', partition, after }),
      appendReplica: (partition, events) => this.headChange(partition, { type: 'append-replica', partition, events }),
      adoptPartition: (partition, head) => {
        this.lastSeqs.set(partition, head);
        this.relay!.adopt(partition, head);
      },
      releasePartition: async (partition) => {
        const known = await this.relay!.release(partition);
        // Recorded now, not on the relay's next flush: the next copy of this partition keeps these events.
        if (known !== undefined) await this.recordPublished(new Map([[partition, known.published]]));
        return known;
      },
      head: (partition) => this.lastSeqs.get(partition) ?? 0,
      streamHead: (partition, seq) => this.noteStreamHead(partition, seq),
      waitPublished: (partition, seq, timeoutMs) => this.relay!.waitPublished(partition, seq, timeoutMs),
      lagEvents: () => this.busLagEvents(),
    };
  }

  private async headChange(partition: number, request: ShardRequest): Promise<number> {
    const response = await this.hostOf(partition).request(request);
    if (response.type !== 'heads') throw new Error(`unexpected ${response.type} response`);
    const seq = response.heads[1] ?? 0;
    this.lastSeqs.set(partition, seq);
    return seq;
  }

  /** The aggregate's state now, right after a version, or as of a time. Version 0 means it has no events. */
  async state(query: StateQuery): Promise<{ state: unknown; version: number }> {
    this.assertOpen();
    this.aggregate(query.aggregate);
    assertValidId(query.id);
    let at: number | undefined;
    if (query.at !== undefined) {
      at = new Date(query.at).getTime();
      if (Number.isNaN(at)) throw makeError('SHARDLOG_INVALID_QUERY', `"${String(query.at)}" is not a valid time`);
    }
    if (query.version !== undefined && !(Number.isSafeInteger(query.version) && query.version >= 0)) {
      throw makeError('SHARDLOG_INVALID_QUERY', 'version must be a non-negative integer');
    }
    const response = await this.readAggregate(query.aggregate, query.id, {
      type: 'state',
      aggregate: query.aggregate,
      id: query.id,
      ...(query.version === undefined ? {} : { version: query.version }),
      ...(at === undefined ? {} : { at }),
    });
    if (response.type !== 'state') throw new Error(`unexpected ${response.type} response`);
    return { state: response.state, version: response.version };
  }

  /** One aggregate's events, oldest first, after a version, a page at a time. */
  async events(query: EventsQuery): Promise<{ events: StoredEvent[] }> {
    this.assertOpen();
    this.aggregate(query.aggregate);
    assertValidId(query.id);
    const after = checkedCount('after', query.after ?? 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = checkedCount('limit', query.limit ?? 100, 1, maxPageSize);
    const response = await this.readAggregate(query.aggregate, query.id, { type: 'stream-events', aggregate: query.aggregate, id: query.id, after, limit });
    if (response.type !== 'events') throw new Error(`unexpected ${response.type} response`);
    return { events: response.events };
  }

  /** One partition's events in seq order, after a seq: what the bus publishes. */
  async partitionEvents(query: { partition: number; after?: number; limit?: number }): Promise<{ events: StoredEvent[] }> {
    this.assertOpen();
    const partition = checkedCount('partition', query.partition, 0, this.partitions - 1);
    const after = checkedCount('after', query.after ?? 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = checkedCount('limit', query.limit ?? 100, 1, maxPageSize);
    const request: ShardRequest = { type: 'partition-events', partition, after, limit };
    // In a cluster the partition's owner has all of it; this node's copy may stop short.
    const response = this.clusterNode === undefined ? await this.hostOf(partition).request(request) : await this.clusterNode.read(partition, request);
    if (response.type !== 'events') throw new Error(`unexpected ${response.type} response`);
    return { events: response.events };
  }

  /**
   * What became of a command id: its recorded reply (committed or rejected) with the
   * aggregate it ran on, or undefined if no shard has a record of it (never seen, not yet
   * committed, failed without a decision, or pruned past the retention).
   */
  async commandOutcome(commandId: string): Promise<CommandOutcome | undefined> {
    this.assertOpen();
    assertValidCommandId(commandId);
    const record = (await this.localCommandRecord(commandId)) ?? (await this.clusterNode?.findCommand(commandId));
    if (record === undefined) return undefined;
    const { reply, aggregate, id } = record;
    return reply.ok
      ? { status: 'committed', aggregate, id, result: { commandId, ...reply.result } }
      : { status: 'rejected', aggregate, id, error: deserializeError(reply.error) };
  }

  /**
   * This node's record of a command id. In a cluster a committed record counts only once
   * JetStream has confirmed its events: a record past that may belong to a write that was
   * fenced, or is not acknowledged yet.
   */
  async localCommandRecord(commandId: string): Promise<CommandRecord | undefined> {
    const settled = await Promise.allSettled(this.hosts.map((host) => host.request({ type: 'command', commandId })));
    let failure: unknown;
    for (const outcome of settled) {
      if (outcome.status === 'rejected') {
        failure = outcome.reason;
        continue;
      }
      const answer = outcome.value;
      if (answer.type !== 'command' || answer.reply === null || answer.aggregate === null || answer.id === null) continue;
      const record = { reply: answer.reply, aggregate: answer.aggregate, id: answer.id };
      const position = record.reply.ok ? record.reply.result.position : null;
      if (this.clusterNode !== undefined && position !== null) {
        const { partition, seq } = parsePosition(position);
        if (seq > (await this.publishedSeqOf(partition))) return undefined;
      }
      return record;
    }
    // Not found anywhere that answered: if a shard could not answer, the record may be there.
    if (failure !== undefined) throw failure instanceof Error ? failure : new Error('a shard could not answer');
    return undefined;
  }

  /** Per-shard queue depth, batch counts and health. */
  stats(): ShardStats[] {
    return this.hosts.map((host) => host.stats());
  }

  /** Forgets command ids older than the retention; runs in the background on its own too. */
  async pruneCommands(): Promise<number> {
    this.assertOpen();
    const recordedBefore = Date.now() - this.retentionMs;
    let total = 0;
    for (const host of this.hosts) {
      if (host.stats().status !== 'serving') continue;
      for (;;) {
        const response = await host.request({ type: 'prune', recordedBefore, limit: pruneChunk });
        const deleted = response.type === 'pruned' ? response.commands : 0;
        total += deleted;
        if (deleted < pruneChunk) break;
      }
    }
    return total;
  }

  /** Stops taking commands, lets every accepted one commit, closes the logs and the threads. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      clearInterval(this.pruneTimer);
      await this.clusterNode?.stop();
      // Whatever commits after the relay stops is published by the next start: it resumes from the logs.
      await this.relay?.close();
      await this.projectorHost?.close();
      await this.checkpointer.close();
      await Promise.all(this.hosts.map((host) => host.close()));
      this.lock.release();
    })();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closed) throw makeError('SHARDLOG_CLOSED', 'the runtime is closed');
  }

  private aggregate(name: string): AnyAggregate {
    return aggregateNamed(this.app, name);
  }


  /** The shard host of a partition: partition p lives on shard p mod T. */
  private hostOf(partition: number): ShardHost {
    return this.hosts[shardOf(partition, this.hosts.length)]!;
  }

  /** The relay's published seq of one partition as recorded in its shard log (events after it were never confirmed). */
  private async publishedSeqOf(partition: number): Promise<number> {
    const response = await this.hostOf(partition).request({ type: 'published' });
    if (response.type !== 'heads') throw new Error(`unexpected ${response.type} response`);
    for (let index = 0; index < response.heads.length; index += 2) if (response.heads[index] === partition) return response.heads[index + 1]!;
    return 0;
  }

  /** In a cluster, an aggregate is read where its partition is served: this node's copy may be behind. */
  private readAggregate(aggregate: string, id: string, request: ShardRequest): Promise<ShardResponse> {
    const partition = partitionOf(streamName(aggregate, id), this.partitions);
    if (this.clusterNode !== undefined) return this.clusterNode.read(partition, request);
    return this.hostOf(partition).request(request);
  }
}

function assertValidCommandId(commandId: string): void {
  try {
    assertValidId(commandId);
  } catch {
    throw makeError('SHARDLOG_INVALID_INPUT', 'commandId must be 1 to 256 characters with no control characters', { issues: [] });
  }
}

function checkedCount(name: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw makeError('SHARDLOG_INVALID_QUERY', `${name} must be an integer from ${min} to ${max}`, { [name]: value });
  }
  return value;
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const chosen = value ?? fallback;
  if (!Number.isSafeInteger(chosen) || chosen < 1) throw makeError('SHARDLOG_INVALID_CONFIG', `${name} must be a positive integer, got ${String(value)}`);
  return chosen;
}

/**
 * Starts a runtime: creates or checks the data dir, starts one thread per shard and opens
 * every shard log. Rejects (after stopping what it started) if any shard cannot open.
 */
export async function createRuntime<A extends App>(options: RuntimeOptions<A>): Promise<Runtime<A>> {
  const durability = options.durability ?? 'fsync';
  if (durability !== 'fsync' && durability !== 'relaxed') {
    throw makeError('SHARDLOG_INVALID_CONFIG', `durability must be "fsync" or "relaxed", got "${String(durability)}"`);
  }
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const lock = DataDirLock.acquire(dataDir);
  try {
    return await startRuntime(options, dataDir, durability, lock);
  } catch (error) {
    lock.release();
    throw error;
  }
}

async function startRuntime<A extends App>(options: RuntimeOptions<A>, dataDir: string, durability: Durability, lock: DataDirLock): Promise<Runtime<A>> {
  finishInterruptedReshard(dataDir);
  const meta = openDataDir(
    dataDir,
    {
      partitions: options.partitions === undefined ? undefined : positiveInteger('partitions', options.partitions, 64),
      shards: options.shards === undefined ? undefined : positiveInteger('shards', options.shards, 1),
    },
    { partitions: 64, shards: Math.max(1, availableParallelism() - 1) },
  );
  const maxLiveActors = positiveInteger('maxLiveActors', options.maxLiveActors, 10_000);
  const maxQueuedCommands = positiveInteger('maxQueuedCommands', options.maxQueuedCommands, 10_000);
  const maxBatchSize = positiveInteger('maxBatchSize', options.maxBatchSize, 1_024);
  const retentionMs = positiveInteger('idempotencyRetentionMs', options.idempotencyRetentionMs, 24 * 60 * 60_000);
  // Shard hosts report batches before the runtime exists to hear them; it attaches below.
  const listener: { runtime?: Runtime<A> } = {};
  const onBatch = (batch: BatchReport): void => {
    options.onBatch?.(batch);
    listener.runtime?.reportBatch(batch);
  };
  const hosts = Array.from(
    { length: meta.shards },
    (_, shard) =>
      new ShardHost({
        worker: { shard, shards: meta.shards, partitions: meta.partitions, dataDir, appModule: options.app.module, durability, maxLiveActors, returnEvents: options.nats !== undefined },
        maxQueuedCommands,
        maxBatchSize,
        maxBatchesInFlight,
        maxOldGenerationSizeMb: options.shardMemoryMb,
        restart: { ...defaultRestart, ...options.restart },
        logger: options.logger ?? consoleLogger,
        onBatch,
      }),
  );
  const opened = await Promise.allSettled(hosts.map((host) => host.open()));
  const failed = opened.find((result) => result.status === 'rejected');
  if (failed !== undefined) {
    await Promise.allSettled(hosts.map((host) => host.close()));
    throw failed.reason;
  }
  const shardFiles = hosts.map((_, shard) => join(dataDir, 'shards', `${shard}.db`));
  const checkpointer = new Checkpointer(shardFiles, checkpointIntervalMs, options.logger ?? consoleLogger);
  const runtime = new Runtime(options.app, meta.partitions, hosts, retentionMs, lock, checkpointer);
  listener.runtime = runtime;
  try {
    const nats = options.nats === undefined ? undefined : { servers: options.nats.servers, prefix: options.nats.prefix ?? 'shardlog' };
    if (options.cluster !== undefined) {
      if (nats === undefined) throw makeError('SHARDLOG_INVALID_CONFIG', 'a cluster needs NATS: pass nats (--nats) with cluster (--node-id)');
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(options.cluster.nodeId)) {
        throw makeError('SHARDLOG_INVALID_CONFIG', `node id "${options.cluster.nodeId}" must be 1 to 64 letters, digits, ".", "_" or "-"`);
      }
    }
    await runtime.startBus(dataDir, options.logger ?? consoleLogger, nats, options.cluster);
  } catch (error) {
    await runtime.close();
    throw error;
  }
  return runtime;
}
