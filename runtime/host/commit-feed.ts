import type { CommitListener } from '../runtime.ts';
import type { BatchReport } from './shard-host.ts';

/**
 * Where each partition's log ends, as this node knows it, and who hears when it grows: the
 * shards' commits (with their events, for the relay) and, in a cluster, the stream heads
 * other nodes publish. The wake-up of the relay, the projectors and `GET /events`.
 */
export class CommitFeed {
  private readonly commitListeners = new Set<CommitListener>();
  private readonly headListeners = new Set<(heads: readonly number[]) => void>();
  private readonly localHeads = new Map<number, number>();
  /** Cluster: the last seq of each partition as published by any node. */
  private readonly streamHeads = new Map<number, number>();

  onCommit(listener: CommitListener): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  onHeads(listener: (heads: readonly number[]) => void): () => void {
    this.headListeners.add(listener);
    return () => this.headListeners.delete(listener);
  }

  /** After each answered batch of a shard. */
  readonly committed = (batch: BatchReport): void => {
    if (batch.heads.length === 0) return;
    for (let index = 0; index < batch.heads.length; index += 2) this.localHeads.set(batch.heads[index]!, batch.heads[index + 1]!);
    // Listeners are promised every committed event or none: a saga-only selection is not handed on.
    const events = batch.eventsReturned === 'all' ? batch.committedEvents : undefined;
    for (const listener of this.commitListeners) listener(batch.heads, events);
    for (const listener of this.headListeners) listener(batch.heads);
  };

  /** Another node (or this one) published the partition up to `seq`. */
  streamHead(partition: number, seq: number): void {
    if (seq <= (this.streamHeads.get(partition) ?? 0)) return;
    this.streamHeads.set(partition, seq);
    for (const listener of this.headListeners) listener([partition, seq]);
  }

  /** This node's log of the partition ends at `seq` now (start-up, truncation, a copy from the stream). */
  setLocalHead(partition: number, seq: number): void {
    this.localHeads.set(partition, seq);
  }

  /** This node's own last seq of a partition (its log). */
  localHead(partition: number): number {
    return this.localHeads.get(partition) ?? 0;
  }

  /** The last seq of a partition, this node's or, in a cluster, any node's. */
  head(partition: number): number {
    return Math.max(this.localHeads.get(partition) ?? 0, this.streamHeads.get(partition) ?? 0);
  }

  knownHeads(): Map<number, number> {
    const heads = new Map(this.localHeads);
    for (const [partition, seq] of this.streamHeads) if (seq > (heads.get(partition) ?? 0)) heads.set(partition, seq);
    return heads;
  }
}
