import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { App } from '../define/app.ts';
import { makeError } from '../errors.ts';
import { decodeStored } from '../codec.ts';
import type { CommandReply, ShardRequest, ShardResponse, ShardWorkerData } from '../protocol.ts';
import { busEventFromRow } from '../bus/bus-event.ts';
import { ActorCache } from './actor-cache.ts';
import { GroupCommit } from './group-commit.ts';
import { ShardReads } from './reads.ts';
import { replicaRows } from './replica-rows.ts';
import { ShardLog } from './shard-log.ts';

/** Everything a shard thread does, behind one request → response function. */
export class ShardEngine {
  private readonly log: ShardLog;
  private readonly groupCommit: GroupCommit;
  private readonly reads: ShardReads;

  constructor(app: App, private readonly config: ShardWorkerData) {
    const directory = join(config.dataDir, 'shards');
    mkdirSync(directory, { recursive: true });
    this.log = new ShardLog(join(directory, `${config.shard}.db`), config.durability, {
      shard: config.shard,
      shards: config.shards,
      partitions: config.partitions,
    });
    const actors = new ActorCache(config.maxLiveActors);
    this.groupCommit = new GroupCommit(app, this.log, actors, config);
    this.reads = new ShardReads(app, this.log, actors);
  }

  handle(request: ShardRequest): ShardResponse {
    switch (request.type) {
      case 'open':
        return { type: 'opened', partitions: this.ownedPartitions() };
      case 'commands':
        return { type: 'committed', ...this.groupCommit.run(request.commands) };
      case 'heads':
        return { type: 'heads', heads: [...this.log.lastSeqs()].flat() };
      case 'state': {
        const { aggregate, id, version, at } = request;
        if (version !== undefined) return { type: 'state', ...this.reads.stateAtVersion(aggregate, id, version) };
        if (at !== undefined) return { type: 'state', ...this.reads.stateAtTime(aggregate, id, at) };
        return { type: 'state', ...this.reads.stateNow(aggregate, id) };
      }
      case 'stream-events':
        return { type: 'events', events: this.reads.streamEvents(request.aggregate, request.id, request.after, request.limit) };
      case 'partition-events':
        this.assertOwned(request.partition);
        return { type: 'events', events: this.reads.partitionEvents(request.partition, request.after, request.limit) };
      case 'bus-events':
        this.assertOwned(request.partition);
        return { type: 'bus-events', events: this.log.partitionEventsAfter(request.partition, request.after, request.limit).map(busEventFromRow) };
      case 'record-published':
        this.log.recordPublished(request.marks);
        return { type: 'heads', heads: request.marks };
      case 'published':
        return { type: 'heads', heads: [...this.log.publishedSeqs()].flat() };
      case 'truncate-partition': {
        this.assertOwned(request.partition);
        this.log.truncatePartition(request.partition, request.after);
        return { type: 'heads', heads: [request.partition, this.groupCommit.forgetPartition(request.partition)] };
      }
      case 'append-replica': {
        this.assertOwned(request.partition);
        const first = request.events[0];
        const expected = this.log.lastSeq(request.partition) + 1;
        if (first !== undefined && first.seq !== expected) {
          throw makeError('SHARDLOG_INTERNAL', `partition ${request.partition}: catch-up starts at seq ${first.seq}, the log needs ${expected}`);
        }
        const rows = replicaRows(request.events);
        this.log.appendReplica(rows.events, rows.commands, request.partition, request.events.at(-1)?.seq ?? expected - 1);
        return { type: 'heads', heads: [request.partition, this.groupCommit.forgetPartition(request.partition)] };
      }
      case 'command': {
        const row = this.log.findCommand(request.commandId);
        if (row === undefined) return { type: 'command', reply: null, aggregate: null, id: null };
        const slash = row.stream.indexOf('/');
        return { type: 'command', reply: decodeStored<CommandReply>(row.result), aggregate: row.stream.slice(0, slash), id: row.stream.slice(slash + 1) };
      }
      case 'prune':
        // One bounded chunk per request keeps commands from waiting behind a long delete.
        return { type: 'pruned', commands: this.log.pruneCommands(request.recordedBefore, request.limit) };
      case 'close':
        this.close();
        return { type: 'closed' };
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
    this.log.close();
  }
}
