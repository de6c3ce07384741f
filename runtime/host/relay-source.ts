import type { RelaySource } from '../bus/jetstream-relay.ts';
import type { CommitFeed } from './commit-feed.ts';
import type { ShardSet } from './shard-set.ts';

/** What the JetStream relay reads from and records into: this node's shards and its commits. */
export function relaySourceOf(shards: ShardSet, feed: CommitFeed): RelaySource {
  return {
    partitions: shards.partitions,
    busEvents: (partition, after, limit) => shards.busEvents(partition, after, limit),
    heads: () => shards.heads(),
    recordPublished: (published) => shards.recordPublished(published),
    onCommit: (listener) => feed.onCommit(listener),
  };
}
