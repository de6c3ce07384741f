import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { makeError, ShardlogError } from '../errors.ts';
import { PositionWaiters } from '../position-waiters.ts';
import type { Logger } from '../logger.ts';
import { type BusEvent, eventsByPartition } from './bus-event.ts';
import { decodeBatch, lastSeqHeader, msgIdOf, splitUnderPayload, streamNameOf, subjectOf } from './event-message.ts';
import { isStreamNotFound, isWrongLastSequence } from './nats-errors.ts';
import { otherReplicasMessage, placementRefusal } from './replicas.ts';
import type { ReplicaLayout } from './replicas.ts';

/** What the relay reads from and records into: the runtime. */
export interface RelaySource {
  readonly partitions: number;
  busEvents(partition: number, after: number, limit: number): Promise<BusEvent[]>;
  heads(): Promise<Map<number, number>>;
  recordPublished(published: ReadonlyMap<number, number>): Promise<void>;
  /** `events`, when given, are the commit's events: publishing them needs no read of the log. */
  onCommit(listener: (heads: readonly number[], events?: readonly BusEvent[]) => void): () => void;
}

export interface RelayOptions {
  servers: string | string[];
  prefix: string;
  /** Replicas of the event stream if the relay creates it (default 1). */
  replicas?: number | undefined;
  source: RelaySource;
  logger: Logger;
  /** Events read from the log per publish, before splitting under the max payload (default 1,000). */
  pageSize?: number;
  /** Overrides the server's max payload (tests). */
  maxPayload?: number;
  /**
   * Cluster mode: publish only the partitions this node owns, and treat a stream that holds
   * another writer's events for a partition as losing it: `onFenced` is called and the
   * partition is not published again until `adopt`.
   */
  cluster?: { owns: (partition: number) => boolean; onFenced: (partition: number) => void };
}

interface PartitionState {
  head: number;
  published: number;
  /** Stream sequence of the last message on this partition's subject (0: none). */
  subjectSeq: number;
  /** Whether `published` and `subjectSeq` were read from the stream since the last (re)connect. */
  synced: boolean;
  /** The stream holds more of this partition than the log: another data dir published here. */
  diverged: boolean;
  /** Cluster mode: another node wrote this partition's subject; nothing more is published until `adopt`. */
  fenced: boolean;
  pumping: boolean;
}

const recordEveryMs = 100;
/** The most events the relay reads from a log at once (the shard's own bound on a bus-events read). */
const maxPageEvents = 10_000;
const backstopEveryMs = 1_000;

/** The same event: same stream position, same commit time, same command. */
function sameEvent(a: BusEvent, b: BusEvent): boolean {
  return a.seq === b.seq && a.aggregate === b.aggregate && a.id === b.id && a.version === b.version && a.recordedAt === b.recordedAt && a.metadata.commandId === b.metadata.commandId;
}

/** A publish found another writer's batch at its position (already reported): stop publishing this partition. */
class StalePublishError extends Error {
  constructor(partition: number) {
    super(`partition ${partition}: the stream holds another writer's events at this position`);
  }
}

function fencedError(partition: number): ShardlogError {
  return makeError('SHARDLOG_PARTITION_FENCED', `partition ${partition} moved to another node before JetStream confirmed this command: nothing of it is acknowledged, retry it with the same command id`, {
    partition,
    retryAfterMs: 200,
  });
}

/**
 * Creates the event stream if it does not exist: every partition's subject, file storage, no
 * limits, direct gets allowed (a cluster handoff reads its last few messages that way), with
 * `layout.replicas` replicas (refused with SHARDLOG_NATS_REPLICAS_UNPLACEABLE if NATS cannot
 * place them). An existing stream keeps its replica count: a change is the operator's call.
 */
export async function ensureEventStream(jsm: JetStreamManager, prefix: string, layout: ReplicaLayout = {}): Promise<string> {
  const name = streamNameOf(prefix);
  const replicas = layout.replicas ?? 1;
  let info;
  try {
    info = await jsm.streams.info(name);
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
    try {
      await jsm.streams.add({ name, subjects: [`${prefix}.events.*`], storage: 'file', allow_direct: true, num_replicas: replicas });
    } catch (addError) {
      throw placementRefusal(addError, name, replicas);
    }
    return name;
  }
  if (info.config.allow_direct !== true) await jsm.streams.update(name, { allow_direct: true });
  if (layout.replicas !== undefined && info.config.num_replicas !== layout.replicas) layout.onOtherReplicas?.(name, info.config.num_replicas);
  return name;
}

/**
 * Publishes each partition's committed events to JetStream, in order, one message per run
 * of events (split under the server's max payload). The shard logs are the outbox: the
 * relay learns from the stream where each partition's subject ends, publishes the rest of
 * the log from there, and records its progress in the logs. Each message carries
 * `Nats-Msg-Id: <partition>:<firstSeq>` and the expected last subject sequence, so a
 * repeat is dropped and a publisher that is not the partition's last writer is refused.
 */
export class JetStreamRelay {
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private jsm: JetStreamManager | undefined;
  private stream = '';
  private maxPayload = 1024 * 1024;
  private readonly partitions = new Map<number, PartitionState>();
  private readonly toRecord = new Map<number, number>();
  private readonly publishWaiters = new PositionWaiters();
  private recordTimer: NodeJS.Timeout | undefined;
  private readonly backstop: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  private stopped = false;
  private connecting: Promise<void> | undefined;
  private isConnected = false;

  private constructor(private readonly options: RelayOptions) {
    this.unsubscribe = options.source.onCommit((heads, events) => {
      const committed = events === undefined ? undefined : eventsByPartition(events);
      for (let index = 0; index < heads.length; index += 2) {
        const partition = heads[index]!;
        const state = this.state(partition);
        state.head = Math.max(state.head, heads[index + 1]!);
        this.pump(partition, committed?.get(partition));
      }
    });
    this.backstop = setInterval(() => this.pumpAll(), backstopEveryMs);
    this.backstop.unref();
  }

  /** Starts relaying; resolves at once even while NATS is unreachable (it keeps trying). */
  static async start(options: RelayOptions): Promise<JetStreamRelay> {
    const relay = new JetStreamRelay(options);
    for (const [partition, head] of await options.source.heads()) relay.state(partition).head = head;
    relay.connecting = relay.connectLoop();
    return relay;
  }

  get connected(): boolean {
    return this.isConnected;
  }

  /** Per partition with events: the last committed seq and the last published one. */
  lag(): { partition: number; head: number; published: number }[] {
    return [...this.partitions].filter(([, state]) => state.head > 0).map(([partition, { head, published }]) => ({ partition, head, published }));
  }

  /** Committed events not published yet, summed over the partitions. */
  lagEvents(): number {
    let behind = 0;
    for (const { head, published } of this.partitions.values()) behind += Math.max(0, head - published);
    return behind;
  }

  /** Partitions the relay refuses to publish because the stream holds more of them than the log. */
  diverged(): number[] {
    return [...this.partitions].filter(([, state]) => state.diverged).map(([partition]) => partition);
  }

  /**
   * Resolves once the stream holds the partition up to `seq` (cluster mode acknowledges a
   * command only then). Rejects if the partition is fenced, or after `timeoutMs`.
   */
  waitPublished(partition: number, seq: number, timeoutMs: number): Promise<void> {
    const state = this.state(partition);
    if (state.published >= seq && state.synced) return Promise.resolve();
    if (state.fenced) return Promise.reject(fencedError(partition));
    return new Promise((resolve, reject) => {
      const waiter = {
        partition,
        seq,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error: Error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.publishWaiters.remove(waiter);
        const { head, published, synced, fenced, pumping, subjectSeq } = this.state(partition);
        this.options.logger.warn({ partition, seq, head, published, synced, fenced, pumping, subjectSeq, connected: this.isConnected }, 'JetStream did not confirm a committed command in time');
        reject(
          makeError('SHARDLOG_OUTCOME_UNKNOWN', `committed on this node, but JetStream did not confirm partition ${partition} up to seq ${seq} within ${timeoutMs} ms: retry with the same command id`, {
            partition,
            retryAfterMs: 1_000,
          }),
        );
      }, timeoutMs);
      this.publishWaiters.add(waiter);
    });
  }

  /** Cluster handoff: this node's log now ends at `head` for the partition; read the stream's tail again and publish from there. */
  adopt(partition: number, head: number): void {
    const state = this.state(partition);
    state.head = head;
    state.synced = false;
    state.fenced = false;
    state.diverged = false;
    this.pump(partition);
  }

  /**
   * Cluster handoff: the partition is no longer this node's; waits for a publish in progress
   * to end. Returns what the stream was last known to hold of it from this node (its seq and
   * the stream sequence of that message), unless that is uncertain (not synced, or fenced).
   */
  async release(partition: number): Promise<{ published: number; streamSeq: number } | undefined> {
    const state = this.state(partition);
    while (state.pumping && !this.stopped) await new Promise((resolve) => setTimeout(resolve, 5));
    const known = state.synced && !state.fenced && state.subjectSeq > 0 ? { published: state.published, streamSeq: state.subjectSeq } : undefined;
    state.synced = false;
    this.publishWaiters.rejectPartition(partition, fencedError(partition));
    return known;
  }

  private fence(partition: number, state: PartitionState, details: object): void {
    if (state.fenced) return;
    state.fenced = true;
    this.options.logger.error({ partition, ...details }, 'another node wrote this partition to the stream: this node stops serving it (fenced)');
    this.publishWaiters.rejectPartition(partition, fencedError(partition));
    this.options.cluster?.onFenced(partition);
  }

  private state(partition: number): PartitionState {
    let state = this.partitions.get(partition);
    if (state === undefined) {
      state = { head: 0, published: 0, subjectSeq: 0, synced: false, diverged: false, fenced: false, pumping: false };
      this.partitions.set(partition, state);
    }
    return state;
  }

  private async connectLoop(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const nc = await connect({ servers: this.options.servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true, name: 'shardlog-relay' });
        if (this.stopped) {
          await nc.close();
          return;
        }
        this.nc = nc;
        this.js = jetstream(nc);
        this.jsm = await jetstreamManager(nc);
        this.stream = await ensureEventStream(this.jsm, this.options.prefix, {
          replicas: this.options.replicas,
          // In a cluster the cluster node reports it, once.
          onOtherReplicas: (stream, existing) => {
            if (this.options.cluster === undefined) this.options.logger.warn({ stream, replicas: existing }, otherReplicasMessage(stream, existing, this.options.replicas ?? 1));
          },
        });
        this.maxPayload = this.options.maxPayload ?? nc.info?.max_payload ?? this.maxPayload;
        this.isConnected = true;
        void this.watchStatus(nc);
        this.pumpAll();
        return;
      } catch (error) {
        await this.nc?.close().catch((closeError: unknown) => this.options.logger.warn({ err: closeError }, 'could not close the relay connection that failed to set up'));
        this.nc = undefined;
        const delay = Math.min(5_000, 100 * 2 ** Math.min(attempt, 6));
        if (error instanceof ShardlogError) this.options.logger.error({ err: error, retryInMs: delay }, `relay cannot publish: ${error.message}; commands keep committing locally`);
        else if (attempt === 0 || attempt % 20 === 0) this.options.logger.warn({ err: error, retryInMs: delay }, 'relay cannot reach NATS JetStream; commands keep committing locally');
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        this.isConnected = false;
        this.options.logger.warn({ server: this.options.servers }, 'relay lost NATS; commands keep committing locally, publishing resumes on reconnect');
      } else if (status.type === 'reconnect') {
        this.isConnected = true;
        // What the stream holds may differ from what we believed (a restart, lost writes).
        for (const state of this.partitions.values()) state.synced = false;
        this.pumpAll();
      }
    }
  }

  private pumpAll(): void {
    for (const [partition, state] of this.partitions) if ((state.head > state.published || !state.synced) && !state.diverged) this.pump(partition);
  }

  private mayPublish(partition: number, state: PartitionState): boolean {
    if (state.diverged || state.fenced) return false;
    return this.options.cluster === undefined || this.options.cluster.owns(partition);
  }

  /** Publishes what the partition's subject lacks: `committed` directly when it follows on, else read from the log. */
  private pump(partition: number, committed?: BusEvent[]): void {
    const state = this.state(partition);
    if (state.pumping || this.stopped || !this.isConnected || !this.mayPublish(partition, state)) return;
    state.pumping = true;
    const follows = committed !== undefined && state.synced && committed[0]!.seq === state.published + 1;
    void (follows ? this.publishEvents(partition, state, committed) : this.publishTail(partition, state)).finally(() => {
      state.pumping = false;
      if ((state.head > state.published || !state.synced) && this.isConnected && !this.stopped) setImmediate(() => this.pump(partition));
    });
  }

  /** The stream is the truth of what is published: its last message on the partition's subject. */
  private async sync(partition: number, state: PartitionState): Promise<void> {
    const last = await this.jsm!.streams.getMessage(this.stream, { last_by_subj: subjectOf(this.options.prefix, partition) });
    if (last === null) {
      state.published = 0;
      state.subjectSeq = 0;
    } else {
      const batch = decodeBatch(last.data);
      state.published = batch.events.at(-1)?.seq ?? batch.firstSeq - 1;
      state.subjectSeq = last.seq;
    }
    state.synced = true;
    if (this.options.cluster !== undefined) {
      if (state.published > state.head || !(await this.tailIsOurs(partition, last === null ? undefined : decodeBatch(last.data).events.at(-1)))) {
        this.fence(partition, state, { streamHas: state.published, logHas: state.head });
      }
      return;
    }
    if (state.published > state.head || state.diverged) {
      // Publishing would put this log's events after seqs that are not its own: consumers
      // would skip or misapply them. Refuse, loudly, for as long as this node runs.
      if (!state.diverged) {
        this.options.logger.error(
          { partition, streamHas: state.published, logHas: state.head, stream: this.stream },
          'the event stream holds more of this partition than this data dir ever wrote (another data dir published to this stream?); not publishing it',
        );
      }
      state.diverged = true;
    }
  }

  /** Whether the stream's last event of the partition is the one this node's log holds at that seq. */
  private async tailIsOurs(partition: number, last: BusEvent | undefined): Promise<boolean> {
    if (last === undefined) return true;
    const [local] = await this.options.source.busEvents(partition, last.seq - 1, 1);
    return local !== undefined && sameEvent(local, last);
  }

  /** Whether the stream message at `streamSeq` carries exactly these events. */
  private async holdsOurs(streamSeq: number, events: readonly BusEvent[]): Promise<boolean> {
    const stored = await this.jsm!.streams.getMessage(this.stream, { seq: streamSeq });
    if (stored === null) return false;
    const theirs = decodeBatch(stored.data).events;
    return theirs.length === events.length && theirs.every((event, index) => sameEvent(event, events[index]!));
  }

  private async publishTail(partition: number, state: PartitionState): Promise<void> {
    try {
      if (!state.synced) await this.sync(partition, state);
      this.publishWaiters.reached(partition, state.published);
      while (state.published < state.head && this.mayPublish(partition, state) && !this.stopped) {
        const events = await this.pageOfWholeCommands(partition, state.published);
        if (events.length === 0) return;
        await this.publishRuns(partition, state, events);
      }
    } catch (error) {
      await this.publishFailed(partition, state, error);
    }
  }

  /**
   * The log after `after`, a page at a time, ending with a whole command (a copy of the
   * stream must never end inside one); a page that one command fills is read larger.
   */
  private async pageOfWholeCommands(partition: number, after: number): Promise<BusEvent[]> {
    for (let size = this.options.pageSize ?? 1_000; ; size = Math.min(maxPageEvents, size * 2)) {
      const events = await this.options.source.busEvents(partition, after, size);
      // Short of the page: the log ends here, and commits end on a command.
      if (events.length < size || size === maxPageEvents) return events;
      const lastCommand = events.at(-1)!.metadata.commandId;
      if (lastCommand === undefined) return events;
      let end = events.length;
      while (end > 0 && events[end - 1]!.metadata.commandId === lastCommand) end--;
      if (end > 0) return events.slice(0, end);
    }
  }

  private async publishEvents(partition: number, state: PartitionState, events: BusEvent[]): Promise<void> {
    try {
      await this.publishRuns(partition, state, events);
    } catch (error) {
      await this.publishFailed(partition, state, error);
    }
  }

  private async publishRuns(partition: number, state: PartitionState, events: BusEvent[]): Promise<void> {
    for (const run of splitUnderPayload({ partition, firstSeq: events[0]!.seq, events }, this.maxPayload)) {
      const ack = await this.js!.publish(subjectOf(this.options.prefix, partition), run.bytes, {
        msgID: msgIdOf(partition, run.batch.firstSeq),
        headers: lastSeqHeaders(run.batch.events.at(-1)!.seq),
        expect: { lastSubjectSequence: state.subjectSeq },
      });
      // A duplicate ack means the stream already had this Nats-Msg-Id, and checked nothing else:
      // it is ours only if it holds these very events (another writer's batch at the same
      // position has the same id).
      if (ack.duplicate && !(await this.holdsOurs(ack.seq, run.batch.events))) {
        if (this.options.cluster !== undefined) this.fence(partition, state, { streamSeq: ack.seq, firstSeq: run.batch.firstSeq });
        else {
          state.diverged = true;
          this.options.logger.error({ partition, streamSeq: ack.seq }, 'the event stream holds other events at this position of the partition than this data dir wrote; not publishing it');
        }
        throw new StalePublishError(partition);
      }
      state.subjectSeq = ack.seq;
      state.published = run.batch.events.at(-1)!.seq;
      this.publishWaiters.reached(partition, state.published);
      this.record(partition, state.published);
    }
  }

  /** Any failure makes the stream's tail uncertain: the next pump reads it again before publishing. */
  private async publishFailed(partition: number, state: PartitionState, error: unknown): Promise<void> {
    state.synced = false;
    if (error instanceof StalePublishError) return;
    if (isWrongLastSequence(error)) {
      this.options.logger.warn({ partition }, 'the stream holds another tail for this partition than expected; re-reading it');
    } else if (!this.stopped && this.isConnected) {
      this.options.logger.warn({ err: error, partition }, 'publishing to JetStream failed; retrying');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  private record(partition: number, seq: number): void {
    this.toRecord.set(partition, seq);
    this.recordTimer ??= setTimeout(() => void this.flushRecord(), recordEveryMs);
  }

  private async flushRecord(): Promise<void> {
    this.recordTimer = undefined;
    if (this.toRecord.size === 0) return;
    const marks = new Map(this.toRecord);
    this.toRecord.clear();
    await this.options.source.recordPublished(marks).catch((error: unknown) => this.options.logger.warn({ err: error }, 'could not record relay progress'));
  }

  /** Stops publishing (bounded: about 2 s even with NATS down), records the progress made, closes the connection. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe();
    clearInterval(this.backstop);
    const deadline = Date.now() + 2_000;
    while ([...this.partitions.values()].some((state) => state.pumping) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    clearTimeout(this.recordTimer);
    this.publishWaiters.rejectAll(makeError('SHARDLOG_OUTCOME_UNKNOWN', 'the node stopped before JetStream confirmed this command: retry it with the same command id'));
    await this.flushRecord();
    const nc = this.nc;
    const drained = nc?.drain().catch((error: unknown) => this.options.logger.warn({ err: error }, 'could not drain the relay connection; closing it'));
    if (drained !== undefined) await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, 2_000))]);
    if (nc !== undefined && !nc.isClosed()) await nc.close().catch((error: unknown) => this.options.logger.warn({ err: error }, 'could not close the relay connection'));
    await Promise.race([this.connecting, new Promise((resolve) => setTimeout(resolve, 100))]);
  }
}

function lastSeqHeaders(seq: number): MsgHdrs {
  const set = headers();
  set.set(lastSeqHeader, String(seq));
  return set;
}
