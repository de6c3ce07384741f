import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { App } from '../define/app.ts';
import { makeError } from '../errors.ts';
import { decodeStored } from '../codec.ts';
import type { CommandReply, ShardCalls, ShardCallType, ShardRequest, ShardResponse, ShardWorkerData } from '../protocol.ts';
import { busEventFromRow } from './bus-event-row.ts';
import { ActorCache } from './actor-cache.ts';
import { GroupCommit } from './group-commit.ts';
import { ShardReads } from './reads.ts';
import { replicaRows } from './replica-rows.ts';
import { partitionSagaDeliveries } from './saga-deliveries.ts';
import { sagaRowOf } from './saga-tables.ts';
import { actorNamed } from '../define/actors.ts';
import { loadActor } from './actor-loader.ts';
import type { SagaInstance } from '../define/saga-actor.ts';
import { ShardLog } from './shard-log.ts';
import { CorruptLogError, indexDueAt, streamIndexDueAt } from './log-index.ts';

/**
 * Events waiting for the indexes past which each request that appends also writes its share
 * of them before its reply: the gaps between requests did not keep up (a shard never idle).
 * Two stream chunks: the tail holds positions only, a few dozen bytes per event.
 */
const indexBacklog = 2 * streamIndexDueAt;

/** Everything a shard thread does, behind one request → response function. */
export class ShardEngine {
  private readonly log: ShardLog;
  private readonly groupCommit: GroupCommit;
  private readonly reads: ShardReads;
  private readonly actors: ActorCache;
  private closed = false;
  /** After an indexing failure: try again once this many events wait. */
  private indexRetryAt = 0;
  /** Set when the index found the log corrupt: every later request is refused with it. */
  private corrupt: CorruptLogError | undefined;

  constructor(private readonly app: App, private readonly config: ShardWorkerData) {
    const directory = join(config.dataDir, 'shards');
    mkdirSync(directory, { recursive: true });
    this.log = new ShardLog(join(directory, `${config.shard}.db`), config.durability, {
      shard: config.shard,
      shards: config.shards,
      partitions: config.partitions,
    });
    const actors = new ActorCache(config.maxLiveActors);
    this.actors = actors;
    this.groupCommit = new GroupCommit(app, this.log, actors, config);
    this.reads = new ShardReads(app, this.log, actors);
  }

  /** Answers one request; each call's handler returns exactly that call's response. */
  handle(request: ShardRequest): ShardResponse {
    if (this.corrupt !== undefined && request.type !== 'close') throw makeError('SHARDLOG_INTERNAL', this.corrupt.message);
    const handler = this.handlers[request.type] as (request: ShardRequest) => Omit<ShardResponse, 'type'>;
    const pendingBefore = this.log.indexPending;
    const response = { type: request.type, ...handler(request) } as ShardResponse;
    if (this.log.indexPending >= indexBacklog) {
      const indexMs = this.indexBehind(Math.max(0, this.log.indexPending - pendingBefore));
      if (indexMs > 0 && response.type === 'commands') response.indexMs = indexMs;
    }
    return response;
  }

  /**
   * One indexing transaction (a piece of the due chunk), run by the thread between requests;
   * returns whether more is due. The shard thread waits between a reply and the next batch
   * (the main thread settles the one and gathers the other): the indexes are written there,
   * where no command waits for them, instead of before the reply of the request that made
   * them due. Closed loop of the example app, 64 in flight, 3 runs each: 23,100 against
   * 19,750 commands/s (ADR 0013, update of 2026-12-04).
   */
  indexWhileIdle(): boolean {
    this.indexBehind(0);
    return this.indexDueNow();
  }

  private indexDueNow(): boolean {
    return !this.closed && this.corrupt === undefined && this.log.indexDue && this.log.indexPending >= this.indexRetryAt;
  }

  /**
   * Writes the indexes' next pieces: one piece between requests (`indexWhileIdle`), or, once
   * the gaps between requests fell behind by `indexBacklog` events, a share of them before the
   * reply of each request that appends, three index entries per event it appended (an event
   * needs two), so the indexes keep up at any rate while no request waits for a whole chunk
   * (a 4,096-event chunk in one transaction was the open loop's slowest batches). Returns how
   * long it took (0: not run).
   */
  private indexBehind(appended: number): number {
    if (!this.indexDueNow()) return 0;
    const started = performance.now();
    try {
      for (let budget = Math.max(1, 3 * appended); budget > 0 && this.log.indexDue; ) {
        const written = this.log.indexBehind();
        if (written === 0) break;
        budget -= written;
      }
      this.indexRetryAt = 0;
    } catch (error) {
      if (error instanceof CorruptLogError) {
        this.corrupt = error;
        return 0;
      }
      // A full disk, an I/O error, the file locked by another process: nothing was indexed,
      // reads find the tail in memory meanwhile; try again once another chunk's worth waits, so a
      // lasting failure does not make every request wait for it.
      this.indexRetryAt = this.log.indexPending + indexDueAt;
    }
    return performance.now() - started;
  }

  private readonly handlers: { [K in ShardCallType]: (request: ShardRequest<K>) => ShardCalls[K]['response'] } = {
    open: () => ({ partitions: this.ownedPartitions() }),
    commands: (request) => this.groupCommit.run(request.commands),
    heads: () => ({ heads: [...this.log.lastSeqs()].flat() }),
    state: ({ aggregate, id, version, at }) => {
      if (version !== undefined) return this.reads.stateAtVersion(aggregate, id, version);
      if (at !== undefined) return this.reads.stateAtTime(aggregate, id, at);
      return this.reads.stateNow(aggregate, id);
    },
    'stream-events': (request) => ({ events: this.reads.streamEvents(request.aggregate, request.id, request.after, request.limit) }),
    'partition-events': (request) => {
      this.assertOwned(request.partition);
      return { events: this.reads.partitionEvents(request.partition, request.after, request.limit) };
    },
    'bus-events': (request) => {
      this.assertOwned(request.partition);
      return { events: this.log.partitionEventsAfter(request.partition, request.after, request.limit).map(busEventFromRow) };
    },
    'record-published': (request) => {
      this.log.recordPublished(request.marks);
      return {};
    },
    published: () => ({ marks: [...this.log.publishedSeqs()].flat() }),
    'truncate-partition': (request) => {
      this.assertOwned(request.partition);
      const cut = this.log.truncatePartition(request.partition, request.after);
      const head = this.groupCommit.forgetPartition(request.partition);
      this.rewriteSagaRows(request.partition, cut);
      return { head };
    },
    'append-replica': (request) => {
      this.assertOwned(request.partition);
      const first = request.events[0];
      const expected = this.log.lastSeq(request.partition) + 1;
      if (first !== undefined && first.seq !== expected) {
        throw makeError('SHARDLOG_INTERNAL', `partition ${request.partition}: catch-up starts at seq ${first.seq}, the log needs ${expected}`);
      }
      const rows = replicaRows(request.events);
      this.log.appendReplica(rows.events, rows.commands, request.partition, request.events.at(-1)?.seq ?? expected - 1);
      const head = this.groupCommit.forgetPartition(request.partition);
      this.rewriteSagaRows(request.partition, rows.events.map((event) => event.stream));
      return { head };
    },
    command: (request) => {
      const row = this.log.findCommand(request.commandId);
      if (row === undefined) return { reply: null, aggregate: null, id: null };
      const slash = row.stream.indexOf('/');
      return { reply: decodeStored<CommandReply>(row.result), aggregate: row.stream.slice(0, slash), id: row.stream.slice(slash + 1) };
    },
    // One bounded chunk per request keeps commands from waiting behind a long delete.
    prune: (request) => ({ commands: this.log.pruneCommands(request.recordedBefore, request.limit) }),
    'saga-deliveries': ({ record, read, limit }) => {
      this.log.sagas.recordRouted(record);
      const partitions = [];
      let left = limit;
      for (let index = 0; index < read.length && left > 0; index += 3) {
        const [partition, after, until] = [read[index]!, read[index + 1]!, read[index + 2]!];
        this.assertOwned(partition);
        const rows = this.log.partitionEventsAfter(partition, after, Math.min(left, until - after)).filter((row) => row.seq <= until);
        if (rows.length === 0) continue;
        left -= rows.length;
        partitions.push(partitionSagaDeliveries(this.app, partition, rows, rows.at(-1)!.seq));
      }
      return { partitions, routed: read.length === 0 ? [...this.log.sagas.routedSeqs()].flat() : [] };
    },
    'saga-work': ({ partitions }) => ({ work: this.log.sagas.work(partitions) }),
    'saga-list': ({ partitions, saga, status, limit }) => ({ items: this.log.sagas.list({ partitions, saga, status, limit }) }),
    'saga-parked': ({ partitions, saga, limit }) => ({ correlationIds: this.log.sagas.parked(saga, partitions, limit) }),
    'saga-running': ({ partitions }) => ({ sagas: this.log.sagas.running(partitions) }),
    close: () => {
      this.close();
      return {};
    },
  };

  /** After a copy from the stream or a cut, a saga's row is rebuilt from its events alone. */
  private rewriteSagaRows(partition: number, streams: readonly string[]): void {
    const now = Date.now();
    for (const stream of new Set(streams)) {
      const saga = stream.slice(0, stream.indexOf('/'));
      if (!this.app.sagaByName.has(saga)) continue;
      this.actors.delete(stream);
      const instance = loadActor(this.log, actorNamed(this.app, saga), stream).state as SagaInstance;
      this.log.sagas.write(sagaRowOf({ stream, partition, saga, to: instance.status, startedAt: instance.startedAt, pending: instance.pending, timers: instance.timers, parked: instance.parked.length }, now));
    }
  }

  private assertOwned(partition: number): void {
    if (partition % this.config.shards !== this.config.shard) {
      throw makeError('SHARDLOG_INVALID_QUERY', `partition ${partition} is not on shard ${this.config.shard}`);
    }
  }

  private ownedPartitions(): number[] {
    const owned: number[] = [];
    for (let partition = this.config.shard; partition < this.config.partitions; partition += this.config.shards) owned.push(partition);
    return owned;
  }

  close(): void {
    this.closed = true;
    this.log.close();
  }
}
