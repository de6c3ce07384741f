import type { BusEvent } from '../bus/bus-event.ts';
import { parsePosition, shardOf } from '../partitioning.ts';
import type { CommandRecord, ShardCallType, ShardRequest, ShardResponse } from '../protocol.ts';
import { checkedCount } from './checked-input.ts';
import type { ShardHost, ShardStats } from './shard-host.ts';

const pruneChunk = 5_000;

/**
 * This node's shard threads as one: partition p lives on shard p mod T. Requests that concern
 * one partition go to its shard; those that concern them all are asked of every shard.
 */
export class ShardSet {
  constructor(
    readonly partitions: number,
    private readonly hosts: readonly ShardHost[],
  ) {}

  get count(): number {
    return this.hosts.length;
  }

  /** The shard host of a partition. */
  hostOf(partition: number): ShardHost {
    return this.hosts[shardOf(partition, this.hosts.length)]!;
  }

  /** Sends a request about one partition to the shard that holds it. */
  requestFor<K extends ShardCallType>(partition: number, request: ShardRequest<K>): Promise<ShardResponse<K>> {
    return this.hostOf(partition).request(request);
  }

  /** Sends a request to one shard. */
  requestShard<K extends ShardCallType>(shard: number, request: ShardRequest<K>): Promise<ShardResponse<K>> {
    return this.hosts[shard]!.request(request);
  }

  stats(): ShardStats[] {
    return this.hosts.map((host) => host.stats());
  }

  /** The last committed seq of every partition that has events. */
  async heads(): Promise<Map<number, number>> {
    const responses = await Promise.all(this.hosts.map((host) => host.request({ type: 'heads' })));
    return pairsToMap(responses.map((response) => response.heads));
  }

  /** How far the relay has published each partition (as recorded with `recordPublished`). */
  async publishedSeqs(): Promise<Map<number, number>> {
    const responses = await Promise.all(this.hosts.map((host) => host.request({ type: 'published' })));
    return pairsToMap(responses.map((response) => response.marks));
  }

  /** The relay's published seq of one partition as recorded in its shard log (events after it were never confirmed). */
  async publishedSeqOf(partition: number): Promise<number> {
    const { marks } = await this.requestFor(partition, { type: 'published' });
    return pairsToMap([marks]).get(partition) ?? 0;
  }

  /** Records the relay's progress in the shard logs, so it resumes there after a restart. */
  async recordPublished(published: ReadonlyMap<number, number>): Promise<void> {
    const byShard = new Map<ShardHost, number[]>();
    for (const [partition, seq] of published) {
      const host = this.hostOf(checkedCount('partition', partition, 0, this.partitions - 1));
      byShard.set(host, [...(byShard.get(host) ?? []), partition, seq]);
    }
    await Promise.all([...byShard].map(([host, marks]) => host.request({ type: 'record-published', marks })));
  }

  /** One partition's events after a seq, as the bus carries them (payloads not upcast). */
  async busEvents(partition: number, after: number, limit: number): Promise<BusEvent[]> {
    const { events } = await this.requestFor(checkedCount('partition', partition, 0, this.partitions - 1), {
      type: 'bus-events',
      partition,
      after: checkedCount('after', after, 0, Number.MAX_SAFE_INTEGER),
      limit: checkedCount('limit', limit, 1, 10_000),
    });
    return events;
  }

  /** Drops a partition's events after `after`; resolves with its last seq then. */
  async truncate(partition: number, after: number): Promise<number> {
    return (await this.requestFor(partition, { type: 'truncate-partition', partition, after })).head;
  }

  /** Appends events copied from the stream; resolves with the partition's last seq then. */
  async appendReplica(partition: number, events: BusEvent[]): Promise<number> {
    return (await this.requestFor(partition, { type: 'append-replica', partition, events })).head;
  }

  /**
   * This node's record of a command id, from whichever shard has it. With `confirmedOnly`
   * (a cluster), a committed record counts only once the relay recorded its events as
   * published: past that it may belong to a write that was fenced, or is not acknowledged yet.
   */
  async commandRecord(commandId: string, confirmedOnly: boolean): Promise<CommandRecord | undefined> {
    const settled = await Promise.allSettled(this.hosts.map((host) => host.request({ type: 'command', commandId })));
    let failure: unknown;
    for (const outcome of settled) {
      if (outcome.status === 'rejected') {
        failure = outcome.reason;
        continue;
      }
      const { reply, aggregate, id } = outcome.value;
      if (reply === null || aggregate === null || id === null) continue;
      const position = reply.ok ? reply.result.position : null;
      if (confirmedOnly && position !== null) {
        const { partition, seq } = parsePosition(position);
        if (seq > (await this.publishedSeqOf(partition))) return undefined;
      }
      return { reply, aggregate, id };
    }
    // Not found anywhere that answered: if a shard could not answer, the record may be there.
    if (failure !== undefined) throw failure instanceof Error ? failure : new Error('a shard could not answer');
    return undefined;
  }

  /** Forgets command ids recorded before `recordedBefore` on every serving shard, a chunk at a time. */
  async pruneCommands(recordedBefore: number): Promise<number> {
    let total = 0;
    for (const host of this.hosts) {
      if (host.stats().status !== 'serving') continue;
      for (;;) {
        const { commands } = await host.request({ type: 'prune', recordedBefore, limit: pruneChunk });
        total += commands;
        if (commands < pruneChunk) break;
      }
    }
    return total;
  }

  async close(): Promise<void> {
    await Promise.all(this.hosts.map((host) => host.close()));
  }
}

/** [partition, seq, …] lists into one map. */
function pairsToMap(lists: readonly (readonly number[])[]): Map<number, number> {
  const seqs = new Map<number, number>();
  for (const list of lists) for (let index = 0; index < list.length; index += 2) seqs.set(list[index]!, list[index + 1]!);
  return seqs;
}
