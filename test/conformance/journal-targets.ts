/** The journals the replay cases run against: a shard log file read directly, and the public Runtime API. */
import type { App } from '../../runtime/define/app.ts';
import { aggregateNamed } from '../../runtime/define/app.ts';
import type { Runtime } from '../../runtime/index.ts';
import { streamName } from '../../runtime/partitioning.ts';
import type { StoredEvent } from '../../runtime/protocol.ts';
import { ActorCache } from '../../runtime/shard/actor-cache.ts';
import { ShardReads } from '../../runtime/shard/reads.ts';
import type { ShardLog } from '../../runtime/shard/shard-log.ts';
import { shardlogBounds, unbounded, type JournalRef, type ReplayTarget } from './replay-cases.ts';

function* take<T>(rows: Iterable<T>, count: number): Generator<T> {
  if (count <= 0) return;
  let taken = 0;
  for (const row of rows) {
    yield row;
    if (++taken >= count) return;
  }
}

/**
 * A shard log read through its own operations: a stream's events after a version (with a
 * limit) or between two versions, a partition's events after a seq (with a limit). The log
 * has no single read with both an upper bound and a limit; the range read is an iterator,
 * so stopping it after `max` rows reads no more than that.
 */
export function shardLogTarget(app: App, logOf: (partition: number) => ShardLog, partitionOfStream: (stream: string) => number): ReplayTarget {
  const readsOf = (partition: number) => new ShardReads(app, logOf(partition), new ActorCache(0));
  return {
    replay: (journal, from, to, max) => {
      if (journal.kind === 'partition') {
        const { after, limit } = shardlogBounds(from, to, max);
        return Promise.resolve(readsOf(journal.partition).partitionEvents(journal.partition, after, limit));
      }
      const stream = streamName(journal.aggregate, journal.id);
      const log = logOf(partitionOfStream(stream));
      const aggregate = aggregateNamed(app, journal.aggregate);
      const after = Math.max(0, from - 1);
      const rows = to === unbounded ? log.streamEventsAfter(stream, after, max) : take(log.streamEventsBetween(stream, after, to), max);
      return Promise.resolve([...rows].map((row) => ShardReads.toStoredEvent(aggregate, row)));
    },
    highestSequenceNr: (journal) => {
      if (journal.kind === 'partition') return Promise.resolve(logOf(journal.partition).lastSeq(journal.partition));
      const partition = partitionOfStream(streamName(journal.aggregate, journal.id));
      return Promise.resolve(readsOf(partition).stateNow(journal.aggregate, journal.id).version);
    },
  };
}

/** Largest page the public reads serve. */
const pageSize = 1_000;

/**
 * The public Runtime API: `events()` for a stream, `partitionEvents()` for a partition, both
 * "after, limit" reads served a page at a time. An upper bound becomes a count (sequence
 * numbers are gapless). A count of 0 is never asked for: the API refuses a limit below 1
 * (checked by its own case), so an empty range is answered without a call.
 */
export function runtimeTarget(runtime: Runtime): ReplayTarget {
  const page = (journal: JournalRef, after: number, limit: number): Promise<{ events: StoredEvent[] }> =>
    journal.kind === 'stream'
      ? runtime.events({ aggregate: journal.aggregate, id: journal.id, after, limit })
      : runtime.partitionEvents({ partition: journal.partition, after, limit });
  return {
    replay: async (journal, from, to, max) => {
      const bounds = shardlogBounds(from, to, max);
      const replayed: StoredEvent[] = [];
      let after = bounds.after;
      while (replayed.length < bounds.limit) {
        const wanted = Math.min(pageSize, bounds.limit - replayed.length);
        const { events } = await page(journal, after, wanted);
        replayed.push(...events);
        if (events.length < wanted) break;
        after = journal.kind === 'stream' ? events.at(-1)!.version : after + events.length;
      }
      return replayed;
    },
    highestSequenceNr: async (journal) => {
      if (journal.kind === 'stream') return (await runtime.state({ aggregate: journal.aggregate, id: journal.id })).version;
      return runtime.head(journal.partition);
    },
  };
}
