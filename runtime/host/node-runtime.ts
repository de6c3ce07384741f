import type { JetStreamRelay, RelaySource } from '../bus/jetstream-relay.ts';
import type { ClusterNode } from '../cluster/cluster-node.ts';
import { aggregateNamed, type App } from '../define/app.ts';
import { deserializeError, makeError } from '../errors.ts';
import { assertValidId, partitionOf, streamName } from '../partitioning.ts';
import { responseTo, type ShardCallType, type ShardRequest, type ShardResponse, type StoredEvent } from '../protocol.ts';
import type { Views } from '../view-calls.ts';
import type {
  AggregateNames,
  BusPartitionLag,
  CommandNames,
  CommandOutcome,
  CommitListener,
  DispatchRequest,
  DispatchResult,
  EventsQuery,
  PreparedCommand,
  Runtime,
  StateQuery,
} from '../runtime.ts';
import { assertValidCommandId, checkedCount } from './checked-input.ts';
import type { Checkpointer, WalSize } from './checkpointer.ts';
import { prepareCommand } from './command-preparation.ts';
import type { CommitFeed } from './commit-feed.ts';
import type { DataDirLock } from './data-dir-lock.ts';
import { localViews } from './local-views.ts';
import type { ProjectorHost } from './projector-host.ts';
import { noSagas, type SagaHost } from './saga-host.ts';
import { relaySourceOf } from './relay-source.ts';
import type { ShardStats } from './shard-host.ts';
import type { Logger } from '../logger.ts';
import type { ShardSet } from './shard-set.ts';

const maxPageSize = 1_000;

/** The parts a node runtime is made of, started by `createRuntime` in this order. */
export interface NodeRuntimeParts<A extends App> {
  app: A;
  shards: ShardSet;
  feed: CommitFeed;
  checkpointer: Checkpointer;
  lock: DataDirLock;
  retentionMs: number;
  logger: Logger;
  relay?: JetStreamRelay | undefined;
  cluster?: ClusterNode | undefined;
  projectors?: ProjectorHost | undefined;
  sagas?: SagaHost | undefined;
}

/**
 * The Runtime of one node: routes commands and reads to its shards, or in a cluster through
 * the cluster node to the partition's owner, and closes its parts in the reverse order.
 */
export class NodeRuntime<A extends App = App> implements Runtime<A> {
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly pruneTimer: NodeJS.Timeout;

  constructor(private readonly parts: NodeRuntimeParts<A>) {
    const every = Math.max(1_000, Math.min(parts.retentionMs / 4, 10 * 60_000));
    this.pruneTimer = setInterval(() => {
      if (this.closed) return;
      this.pruneCommands().catch((error: unknown) => parts.logger.warn({ err: error }, 'forgetting command ids past the retention failed; will try again'));
    }, every).unref();
  }

  get app(): A {
    return this.parts.app;
  }

  get partitions(): number {
    return this.parts.shards.partitions;
  }

  get shards(): number {
    return this.parts.shards.count;
  }

  dispatch<Name extends AggregateNames<A>, Command extends CommandNames<A, Name>>(request: DispatchRequest<A, Name, Command>): Promise<DispatchResult> {
    try {
      return this.submit(this.prepare(request as unknown as DispatchRequest));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  prepare(request: DispatchRequest): PreparedCommand {
    this.assertOpen();
    return prepareCommand(this.parts.app, this.partitions, this.shards, request);
  }

  submit(prepared: PreparedCommand): Promise<DispatchResult> {
    this.assertOpen();
    const { commandId } = prepared.envelope;
    const { cluster, shards } = this.parts;
    const running = cluster === undefined ? shards.hostOf(prepared.partition).submit(prepared.envelope) : cluster.submit(prepared.partition, prepared.envelope);
    return running.then((result) => ({ commandId, ...result }));
  }

  async state(query: StateQuery): Promise<{ state: unknown; version: number }> {
    this.assertOpen();
    aggregateNamed(this.parts.app, query.aggregate);
    assertValidId(query.id);
    let at: number | undefined;
    if (query.at !== undefined) {
      at = new Date(query.at).getTime();
      if (Number.isNaN(at)) throw makeError('SHARDLOG_INVALID_QUERY', `"${String(query.at)}" is not a valid time`);
    }
    if (query.version !== undefined && !(Number.isSafeInteger(query.version) && query.version >= 0)) {
      throw makeError('SHARDLOG_INVALID_QUERY', 'version must be a non-negative integer');
    }
    const { state, version } = await this.readAggregate(query.aggregate, query.id, {
      type: 'state',
      aggregate: query.aggregate,
      id: query.id,
      ...(query.version === undefined ? {} : { version: query.version }),
      ...(at === undefined ? {} : { at }),
    });
    return { state, version };
  }

  async events(query: EventsQuery): Promise<{ events: StoredEvent[] }> {
    this.assertOpen();
    aggregateNamed(this.parts.app, query.aggregate);
    assertValidId(query.id);
    const after = checkedCount('after', query.after ?? 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = checkedCount('limit', query.limit ?? 100, 1, maxPageSize);
    const { events } = await this.readAggregate(query.aggregate, query.id, { type: 'stream-events', aggregate: query.aggregate, id: query.id, after, limit });
    return { events };
  }

  async partitionEvents(query: { partition: number; after?: number; limit?: number }): Promise<{ events: StoredEvent[] }> {
    this.assertOpen();
    const partition = checkedCount('partition', query.partition, 0, this.partitions - 1);
    const after = checkedCount('after', query.after ?? 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = checkedCount('limit', query.limit ?? 100, 1, maxPageSize);
    // In a cluster the partition's owner has all of it; this node's copy may stop short.
    const { events } = await this.readAt(partition, { type: 'partition-events', partition, after, limit });
    return { events };
  }

  async commandOutcome(commandId: string): Promise<CommandOutcome | undefined> {
    this.assertOpen();
    assertValidCommandId(commandId);
    const { cluster, shards } = this.parts;
    const record = (await shards.commandRecord(commandId, cluster !== undefined)) ?? (await cluster?.findCommand(commandId));
    if (record === undefined) return undefined;
    const { reply, aggregate, id } = record;
    return reply.ok
      ? { status: 'committed', aggregate, id, result: { commandId, ...reply.result } }
      : { status: 'rejected', aggregate, id, error: deserializeError(reply.error) };
  }

  get projections(): ProjectorHost {
    this.assertOpen();
    if (this.parts.projectors === undefined) throw makeError('SHARDLOG_UNKNOWN_PROJECTION', 'this app defines no projections');
    return this.parts.projectors;
  }

  get views(): Views {
    const projectors = this.projections;
    return this.parts.cluster?.views ?? localViews(projectors);
  }

  get sagas(): SagaHost {
    this.assertOpen();
    return this.parts.sagas ?? noSagas();
  }

  onCommit(listener: CommitListener): () => void {
    return this.parts.feed.onCommit(listener);
  }

  onHeads(listener: (heads: readonly number[]) => void): () => void {
    return this.parts.feed.onHeads(listener);
  }

  async followHeads(): Promise<() => void> {
    this.assertOpen();
    const { cluster } = this.parts;
    if (cluster === undefined) return () => undefined;
    try {
      return await cluster.followStreamHeads();
    } catch (error) {
      throw makeError('SHARDLOG_EVENTS_UNAVAILABLE', "could not read the other nodes' partition heads from JetStream", { retryAfterMs: 1_000 }, error);
    }
  }

  knownHeads(): Map<number, number> {
    return this.parts.feed.knownHeads();
  }

  head(partition: number): number {
    return this.parts.feed.head(partition);
  }

  heads(): Promise<Map<number, number>> {
    this.assertOpen();
    return this.parts.shards.heads();
  }

  /** The relay's data source over this node's shards (for tests that run a relay of their own). */
  relaySource(): RelaySource {
    return relaySourceOf(this.parts.shards, this.parts.feed);
  }

  /** How far the relay has published each partition, as recorded in the shard logs. */
  publishedSeqs(): Promise<Map<number, number>> {
    this.assertOpen();
    return this.parts.shards.publishedSeqs();
  }

  busLag(): BusPartitionLag[] {
    return this.parts.relay?.lag() ?? [];
  }

  busLagEvents(): number {
    return this.parts.relay?.lagEvents() ?? 0;
  }

  busDiverged(): number[] {
    return this.parts.relay?.diverged() ?? [];
  }

  get busConnected(): boolean | undefined {
    return this.parts.relay?.connected;
  }

  get cluster(): ClusterNode | undefined {
    return this.parts.cluster;
  }

  async leaveCluster(timeoutMs?: number): Promise<void> {
    await this.parts.cluster?.leave(timeoutMs);
  }

  stats(): ShardStats[] {
    return this.parts.shards.stats();
  }

  walSizes(): WalSize[] {
    return this.parts.checkpointer.walSizes();
  }

  async pruneCommands(): Promise<number> {
    this.assertOpen();
    return this.parts.shards.pruneCommands(Date.now() - this.parts.retentionMs);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      clearInterval(this.pruneTimer);
      const { cluster, relay, projectors, checkpointer, shards, lock, sagas } = this.parts;
      await sagas?.close();
      await cluster?.stop();
      // Whatever commits after the relay stops is published by the next start: it resumes from the logs.
      await relay?.close();
      await projectors?.close();
      await checkpointer.close();
      await shards.close();
      lock.release();
    })();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closed) throw makeError('SHARDLOG_CLOSED', 'the runtime is closed');
  }

  /** In a cluster, an aggregate is read where its partition is served: this node's copy may be behind. */
  private readAggregate<K extends ShardCallType>(aggregate: string, id: string, request: ShardRequest<K>): Promise<ShardResponse<K>> {
    return this.readAt(partitionOf(streamName(aggregate, id), this.partitions), request);
  }

  /** Reads from wherever the partition is served: this node's shard, or in a cluster its owner. */
  async readAt<K extends ShardCallType>(partition: number, request: ShardRequest<K>): Promise<ShardResponse<K>> {
    const { cluster, shards } = this.parts;
    if (cluster === undefined) return shards.requestFor(partition, request);
    // The owner's answer crossed NATS: it is checked here, where it arrives.
    return responseTo(request, await cluster.read(partition, request));
  }
}
