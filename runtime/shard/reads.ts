import type { App, AnyAggregate } from '../define/app.ts';
import { actorNamed } from '../define/actors.ts';
import { initialStateOf } from '../define/execute.ts';
import { decodeStored } from '../codec.ts';
import { makeError } from '../errors.ts';
import { formatPosition, streamName } from '../partitioning.ts';
import type { StoredEvent } from '../protocol.ts';
import type { ActorCache } from './actor-cache.ts';
import { decodeEvent, fold, loadActor, usableSnapshot } from './actor-loader.ts';
import type { EventRow, ShardLog } from './shard-log.ts';

/** The read side of a shard log: state now or in the past, and events by stream or partition. */
export class ShardReads {
  constructor(
    private readonly app: App,
    private readonly log: ShardLog,
    private readonly actors: ActorCache,
  ) {}

  stateNow(aggregateName: string, id: string): { state: unknown; version: number } {
    const aggregate = this.aggregate(aggregateName);
    const stream = streamName(aggregateName, id);
    const actor = this.actors.get(stream) ?? loadActor(this.log, aggregate, stream);
    const state: unknown = actor.state;
    return { state, version: actor.version };
  }

  /** The state right after `version` (which must not be past the current one). */
  stateAtVersion(aggregateName: string, id: string, version: number): { state: unknown; version: number } {
    const aggregate = this.aggregate(aggregateName);
    const stream = streamName(aggregateName, id);
    const snapshot = usableSnapshot(this.log, aggregate, stream);
    const start = snapshot !== undefined && snapshot.version <= version ? snapshot : { state: initialStateOf(aggregate), version: 0 };
    const result = fold(aggregate, start.state, start.version, this.log.streamEventsBetween(stream, start.version, version));
    if (result.version !== version) {
      throw makeError('SHARDLOG_INVALID_QUERY', `${stream} has no version ${version} (it is at ${result.version})`, {
        currentVersion: result.version,
      });
    }
    return result;
  }

  /** The state as of a time: every event recorded at or before it. */
  stateAtTime(aggregateName: string, id: string, at: number): { state: unknown; version: number } {
    const aggregate = this.aggregate(aggregateName);
    const stream = streamName(aggregateName, id);
    return fold(aggregate, initialStateOf(aggregate), 0, this.log.streamEventsUntilTime(stream, at));
  }

  streamEvents(aggregateName: string, id: string, after: number, limit: number): StoredEvent[] {
    const aggregate = this.aggregate(aggregateName);
    return this.log.streamEventsAfter(streamName(aggregateName, id), after, limit).map((row) => ShardReads.toStoredEvent(aggregate, row));
  }

  partitionEvents(partition: number, after: number, limit: number): StoredEvent[] {
    return this.log.partitionEventsAfter(partition, after, limit).map((row) => {
      const aggregateName = row.stream.slice(0, row.stream.indexOf('/'));
      return ShardReads.toStoredEvent(this.aggregate(aggregateName), row);
    });
  }

  /** A stored row as readers see it: upcast payload, decoded metadata, ISO time. */
  static toStoredEvent(aggregate: AnyAggregate, row: EventRow): StoredEvent {
    return {
      aggregate: aggregate.name,
      id: row.stream.slice(aggregate.name.length + 1),
      type: row.type,
      version: row.version,
      position: formatPosition(row.partition, row.seq),
      data: decodeEvent(aggregate, row).data,
      metadata: row.meta === null ? {} : decodeStored<Record<string, unknown>>(row.meta),
      recordedAt: new Date(row.recorded_at).toISOString(),
    };
  }

  private aggregate(name: string): AnyAggregate {
    return actorNamed(this.app, name);
  }
}
