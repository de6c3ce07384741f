import type { JetStreamRelay } from '../bus/jetstream-relay.ts';
import type { ClusterHost } from '../cluster/cluster-host.ts';
import { makeError } from '../errors.ts';
import { parsePosition } from '../partitioning.ts';
import type { CommitFeed } from './commit-feed.ts';
import type { ShardSet } from './shard-set.ts';

export interface ClusterHostParts {
  shards: ShardSet;
  feed: CommitFeed;
  relay: JetStreamRelay;
  /** Whether this node serves the partition now (asked when a command has committed). */
  owns(partition: number): boolean;
  /** How long a command waits for JetStream to confirm its events. */
  publishWaitMs: number;
  /** Told when a partition becomes this node's and when it stops being so (sagas take up or drop its outbox and timers). */
  ownership?: { adopted(partition: number): void; released(partition: number): void };
}

/** What the cluster needs of this node, made of its shards, its commit feed and its relay. */
export function clusterHostOf(parts: ClusterHostParts): ClusterHost {
  const { shards, feed, relay, publishWaitMs } = parts;
  return {
    partitions: shards.partitions,
    runLocally: async (partition, envelope) => {
      const result = await shards.hostOf(partition).submit(envelope);
      const seq = result.position === null ? 0 : parsePosition(result.position).seq;
      if (seq > 0) {
        if (!parts.owns(partition)) {
          throw makeError('SHARDLOG_PARTITION_FENCED', `partition ${partition} left this node while the command committed: it is not acknowledged, retry it with the same command id`, {
            partition,
            retryAfterMs: 200,
          });
        }
        await relay.waitPublished(partition, seq, publishWaitMs);
      }
      return result;
    },
    commandRecord: (commandId) => shards.commandRecord(commandId, true),
    readLocally: (partition, request) => shards.requestFor(partition, request),
    publishedRecord: (partition) => shards.publishedSeqOf(partition),
    truncatePartition: async (partition, after) => {
      const head = await shards.truncate(partition, after);
      feed.setLocalHead(partition, head);
      return head;
    },
    appendReplica: async (partition, events) => {
      const head = await shards.appendReplica(partition, events);
      feed.setLocalHead(partition, head);
      return head;
    },
    adoptPartition: (partition, head) => {
      feed.setLocalHead(partition, head);
      relay.adopt(partition, head);
      parts.ownership?.adopted(partition);
    },
    releasePartition: async (partition) => {
      parts.ownership?.released(partition);
      const known = await relay.release(partition);
      // Recorded now, not on the relay's next flush: the next copy of this partition keeps these events.
      if (known !== undefined) await shards.recordPublished(new Map([[partition, known.published]]));
      return known;
    },
    head: (partition) => feed.localHead(partition),
    streamHead: (partition, seq) => feed.streamHead(partition, seq),
    waitPublished: (partition, seq, timeoutMs) => relay.waitPublished(partition, seq, timeoutMs),
    lagEvents: () => relay.lagEvents(),
  };
}
