import { type BusEvent, eventsByPartition } from '../bus/bus-event.ts';
import type { SagaDelivery } from '../define/saga-routing.ts';
import type { Logger } from '../logger.ts';
import { shardOf } from '../partitioning.ts';
import type { SagaDeliveries } from '../protocol.ts';
import type { BatchReport } from './shard-host.ts';
import type { ShardSet } from './shard-set.ts';

export interface SagaRouterOptions {
  shards: ShardSet;
  /** Whether this node serves the partition now (standalone: always). */
  owns(partition: number): boolean;
  /** The partition's last committed seq in this node's log. */
  head(partition: number): number;
  /** With JetStream: resolves once the stream holds the partition up to `seq`; only confirmed events reach sagas. */
  confirmed?: ((partition: number, seq: number) => Promise<void>) | undefined;
  /** Which instances events a commit returned go to (the fast path: no read of the log). */
  deliveriesOf(events: readonly BusEvent[]): SagaDelivery[];
  /** Hands one partition's deliveries to their saga instances; resolves once every instance has taken them. */
  deliver(deliveries: SagaDeliveries): Promise<void>;
  logger: Logger;
}

/** Events read per shard request: enough to batch under load, few enough to keep one round short. */
const readLimit = 1_024;
const maxBackoffMs = 5_000;
const recordAfterMs = 1_000;
/** A partition whose delivery stalls keeps no more than this of its commits' events; past it, the log is read instead. */
const maxInboxEvents = 10_000;

/** A partition's seqs (from, through], every one of them seen in a commit, with those of their events the shard returned. */
interface InboxRange {
  from: number;
  through: number;
  events: BusEvent[];
}

/**
 * Delivers the events of the partitions this node serves to the saga instances they concern,
 * in seq order per partition, from each partition's routed mark (kept in its shard log). The
 * log is the outbox: a crash between a commit and its delivery loses nothing, the next start
 * delivers again from the mark, and an instance ignores what it has seen. One loop per shard;
 * a partition's next events go out only once every instance has taken the previous ones.
 * The events a commit returns (those of aggregates some saga uses) are used as they are when
 * this node saw every commit since the mark; after a start, a gap, or a handoff (which
 * `forget`s what the inbox held of the partition), the shard reads them back from the log.
 */
export class SagaRouter {
  private readonly routed = new Map<number, number>();
  private readonly dirty: Set<number>[];
  private readonly unrecorded: Map<number, number>[];
  private readonly loops: (Promise<void> | undefined)[];
  private readonly backoff = new Map<number, number>();
  /** Per partition, the seqs its latest commits covered, contiguous, with the events they returned, not yet delivered. */
  private readonly inbox = new Map<number, InboxRange>();
  private readonly recordTimers: (NodeJS.Timeout | undefined)[];
  private closed = false;
  /** Until the routed marks are loaded, commits only wait: start() looks at every partition. */
  private ready = false;

  constructor(private readonly options: SagaRouterOptions) {
    const count = options.shards.count;
    this.dirty = Array.from({ length: count }, () => new Set<number>());
    this.unrecorded = Array.from({ length: count }, () => new Map<number, number>());
    this.loops = Array.from({ length: count }, () => undefined);
    this.recordTimers = Array.from({ length: count }, () => undefined);
  }

  /** Reads every shard's routed marks and starts on what was committed but not delivered. */
  async start(): Promise<void> {
    const { shards } = this.options;
    for (let shard = 0; shard < shards.count; shard++) {
      const { routed } = await shards.requestShard(shard, { type: 'saga-deliveries', record: [], read: [], limit: 0 });
      for (let index = 0; index < routed.length; index += 2) this.routed.set(routed[index]!, routed[index + 1]!);
    }
    this.ready = true;
    for (let partition = 0; partition < shards.partitions; partition++) this.touch(partition);
  }

  /** After a commit: its heads ([partition, seq, …]) and, when the shard returned them, the events sagas may want of each range. */
  committed(batch: Pick<BatchReport, 'heads' | 'committedEvents' | 'seqsBefore'>): void {
    const { heads, committedEvents, seqsBefore } = batch;
    if (committedEvents !== undefined && seqsBefore !== undefined) {
      const returned = eventsByPartition(committedEvents);
      for (let index = 0; index < heads.length; index += 2) {
        const partition = heads[index]!;
        this.keep(partition, seqsBefore[index / 2]!, heads[index + 1]!, returned.get(partition) ?? []);
      }
    }
    for (let index = 0; index < heads.length; index += 2) this.touch(heads[index]!);
  }

  /** A commit covered the partition's seqs (before, head] and returned these of their events. */
  private keep(partition: number, before: number, head: number, events: BusEvent[]): void {
    const kept = this.inbox.get(partition);
    if (kept === undefined) {
      if (head > (this.routed.get(partition) ?? 0)) this.inbox.set(partition, { from: before, through: head, events });
      return;
    }
    if (kept.through !== before || kept.events.length + events.length > maxInboxEvents) {
      this.inbox.delete(partition);
      return;
    }
    kept.through = head;
    for (const event of events) kept.events.push(event);
  }

  /** The returned events of (from, until] from the commits', if this node saw every commit of that range. */
  private fromInbox(partition: number, from: number, until: number): BusEvent[] | undefined {
    const kept = this.inbox.get(partition);
    if (kept === undefined || kept.from > from || kept.through < until) return undefined;
    let end = 0;
    while (end < kept.events.length && kept.events[end]!.seq <= until) end += 1;
    const events = kept.events.slice(0, end).filter((event) => event.seq > from);
    kept.events.splice(0, end);
    kept.from = until;
    return events;
  }

  /**
   * The partition's log may have changed other than by this node's commits (a handoff cut it or
   * copied events in, or it left this node): what the inbox holds of it may no longer be its log.
   */
  forget(partition: number): void {
    this.inbox.delete(partition);
  }

  /** The partition became this node's (a cluster handoff): deliver what its log holds past the mark. */
  touch(partition: number): void {
    if (this.closed || !this.ready || !this.options.owns(partition)) return;
    if (this.options.head(partition) <= (this.routed.get(partition) ?? 0)) return;
    const shard = shardOf(partition, this.options.shards.count);
    this.dirty[shard]!.add(partition);
    this.kick(shard);
  }

  /** How many committed events of served partitions sagas have not been handed yet. */
  lag(): number {
    let lag = 0;
    for (let partition = 0; partition < this.options.shards.partitions; partition++) {
      if (this.options.owns(partition)) lag += Math.max(0, this.options.head(partition) - (this.routed.get(partition) ?? 0));
    }
    return lag;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.recordTimers) clearTimeout(timer);
    await Promise.allSettled(this.loops.filter((loop) => loop !== undefined));
    await Promise.allSettled(this.unrecorded.map((marks, shard) => (marks.size === 0 ? Promise.resolve() : this.record(shard))));
  }

  private kick(shard: number): void {
    if (this.loops[shard] !== undefined) return;
    this.loops[shard] = (async () => {
      try {
        while (!this.closed && this.dirty[shard]!.size > 0) await this.round(shard);
      } finally {
        this.loops[shard] = undefined;
      }
      if (this.unrecorded[shard]!.size > 0 && !this.closed) {
        clearTimeout(this.recordTimers[shard]);
        this.recordTimers[shard] = setTimeout(() => void this.record(shard).catch(() => undefined), recordAfterMs).unref();
      }
    })();
  }

  private async record(shard: number): Promise<void> {
    const marks = this.drainUnrecorded(shard);
    if (marks.length > 0) await this.options.shards.requestShard(shard, { type: 'saga-deliveries', record: marks, read: [], limit: 0 });
  }

  private drainUnrecorded(shard: number): number[] {
    const marks = [...this.unrecorded[shard]!].flat();
    this.unrecorded[shard]!.clear();
    return marks;
  }

  private async round(shard: number): Promise<void> {
    const partitions = [...this.dirty[shard]!];
    this.dirty[shard]!.clear();
    const wanted = partitions
      .filter((partition) => this.options.owns(partition))
      .map((partition) => ({ partition, from: this.routed.get(partition) ?? 0, until: this.options.head(partition) }))
      .filter(({ from, until }) => until > from);
    for (const partition of partitions) if (!this.options.owns(partition)) this.inbox.delete(partition);
    const ready = this.options.confirmed === undefined ? wanted : await this.confirmedOf(wanted);
    if (ready.length === 0) return;
    const fromCommits: SagaDeliveries[] = [];
    const toRead: typeof ready = [];
    for (const range of ready) {
      const events = this.fromInbox(range.partition, range.from, range.until);
      if (events === undefined) toRead.push(range);
      else fromCommits.push({ partition: range.partition, upTo: range.until, deliveries: this.options.deliveriesOf(events) });
    }
    const readBack = toRead.length === 0 ? [] : await this.readBack(shard, toRead);
    await Promise.all(
      [...fromCommits, ...readBack].map(async (deliveries) => {
        try {
          if (deliveries.deliveries.length > 0) await this.options.deliver(deliveries);
        } catch (error) {
          this.retryLater(deliveries.partition, error);
          return;
        }
        this.backoff.delete(deliveries.partition);
        this.routed.set(deliveries.partition, deliveries.upTo);
        this.unrecorded[shard]!.set(deliveries.partition, deliveries.upTo);
        if (this.options.head(deliveries.partition) > deliveries.upTo) this.dirty[shard]!.add(deliveries.partition);
      }),
    );
  }

  /** The log's events of these ranges, with the saga instances they go to, computed on the shard. */
  private async readBack(shard: number, ranges: { partition: number; from: number; until: number }[]): Promise<SagaDeliveries[]> {
    const read = ranges.flatMap(({ partition, from, until }) => [partition, from, until]);
    const record = this.drainUnrecorded(shard);
    let response;
    try {
      response = await this.options.shards.requestShard(shard, { type: 'saga-deliveries', record, read, limit: readLimit });
    } catch (error) {
      for (let index = 0; index < record.length; index += 2) this.unrecorded[shard]!.set(record[index]!, record[index + 1]!);
      for (const { partition } of ranges) this.retryLater(partition, error);
      return [];
    }
    const answered = new Set(response.partitions.map(({ partition }) => partition));
    for (const { partition } of ranges) if (!answered.has(partition)) this.dirty[shard]!.add(partition);
    return response.partitions;
  }

  private async confirmedOf(wanted: { partition: number; from: number; until: number }[]) {
    const confirmed = await Promise.all(
      wanted.map(async (range) => {
        try {
          await this.options.confirmed!(range.partition, range.until);
          return range;
        } catch (error) {
          this.retryLater(range.partition, error);
          return undefined;
        }
      }),
    );
    return confirmed.filter((range) => range !== undefined);
  }

  private retryLater(partition: number, error: unknown): void {
    const delay = Math.min(maxBackoffMs, (this.backoff.get(partition) ?? 25) * 2);
    this.backoff.set(partition, delay);
    if (delay >= maxBackoffMs) this.options.logger.warn({ err: error, partition }, 'delivering events to sagas keeps failing; retrying');
    setTimeout(() => this.touch(partition), delay).unref();
  }
}
