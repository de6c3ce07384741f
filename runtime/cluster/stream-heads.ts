import type { JetStreamManager } from '@nats-io/jetstream';
import type { MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import { decodeBatch, lastSeqHeader, subjectOf } from '../bus/event-message.ts';
import type { Logger } from '../logger.ts';
import type { ClusterHost } from './cluster-host.ts';

export interface StreamHeadsOptions {
  nc: NatsConnection;
  jsm: JetStreamManager;
  stream: string;
  prefix: string;
  host: Pick<ClusterHost, 'partitions' | 'streamHead'>;
  logger: Logger;
  /** How long learning the heads may take before following fails (default 5,000 ms). */
  learnWithinMs?: number;
}

export interface StreamHeadCounters {
  /** Who follows the heads now (`GET /events` streams open on this node). */
  headFollowers: number;
  /** Published batches this node has looked at for their heads. */
  headMessages: number;
}

/** The last seq a batch message holds: from its header, or (a message from before the header) from its body. */
function lastSeqOf(headers: MsgHdrs | undefined, body: () => Uint8Array): number | undefined {
  const named = headers?.get(lastSeqHeader);
  if (named !== undefined && named !== '') return Number(named);
  return decodeBatch(body()).events.at(-1)?.seq;
}

/**
 * Every partition's head as published by any node, followed only while something on this
 * node needs it (a `GET /events` stream): a node nobody reads events from receives none of
 * the cluster's batches, so its work does not grow with the whole cluster's traffic. While
 * followed, a core NATS subscription to the stream's subjects (no consumer, nothing stored)
 * reads each message's `Shardlog-Last-Seq` header (no body is decoded) and hands a tick's
 * heads on together, the newest per partition; each start of following first subscribes,
 * then reads every partition's last message, so no batch published meanwhile is missed.
 */
export class StreamHeads {
  private followers = 0;
  private messages = 0;
  private subscription: Subscription | undefined;
  /** The current start of following: subscribed, and the heads the stream held read. */
  private learning: Promise<void> | undefined;
  private readonly seen = new Map<number, number>();
  private scheduled = false;

  constructor(private readonly options: StreamHeadsOptions) {}

  /**
   * Follows the heads until the returned stop is called: resolves once the host has every
   * partition's current head. Rejects (following nothing) if NATS does not answer.
   */
  async follow(): Promise<() => void> {
    this.followers++;
    try {
      this.learning ??= this.start();
      await this.learning;
    } catch (error) {
      this.unfollow();
      throw error;
    }
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      this.unfollow();
    };
  }

  /** Reads the heads the stream holds again (after a reconnect, batches published meanwhile were not seen). */
  async relearn(): Promise<void> {
    if (this.subscription === undefined) return;
    await this.readHeads();
  }

  counters(): StreamHeadCounters {
    return { headFollowers: this.followers, headMessages: this.messages };
  }

  /** Stops following, whoever follows (the connection closes). */
  stop(): void {
    this.followers = 0;
    this.unsubscribe();
  }

  private unfollow(): void {
    this.followers = Math.max(0, this.followers - 1);
    if (this.followers === 0) this.unsubscribe();
  }

  private unsubscribe(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    this.learning = undefined;
  }

  private async start(): Promise<void> {
    const { nc, prefix, logger } = this.options;
    const subjectStem = `${prefix}.events.`.length;
    const subscription = nc.subscribe(`${prefix}.events.*`, {
      callback: (error, message) => {
        if (error !== null) {
          logger.warn({ err: error }, 'the subscription to published batches failed: partition heads of other nodes stop updating');
          return;
        }
        this.messages++;
        let seq: number | undefined;
        try {
          seq = lastSeqOf(message.headers, () => message.data);
        } catch (failure) {
          logger.warn({ err: failure, subject: message.subject }, 'a message on an event subject is not a Shardlog batch: ignored');
          return;
        }
        const partition = Number(message.subject.slice(subjectStem));
        if (seq === undefined || !Number.isInteger(seq) || !Number.isInteger(partition)) return;
        if (seq > (this.seen.get(partition) ?? 0)) this.seen.set(partition, seq);
        if (!this.scheduled) {
          this.scheduled = true;
          setImmediate(this.handOn);
        }
      },
    });
    this.subscription = subscription;
    let timer: NodeJS.Timeout | undefined;
    const learnWithinMs = this.options.learnWithinMs ?? 5_000;
    try {
      await Promise.race([
        // The server has the subscription once it answers anything after it: from then on no publish is missed.
        nc.flush().then(() => this.readHeads()),
        // A flush waits for a reconnect however long it takes: a stream opening meanwhile fails instead.
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`NATS did not answer within ${learnWithinMs} ms`)), learnWithinMs);
        }),
      ]);
    } catch (error) {
      if (this.subscription === subscription) this.unsubscribe();
      else subscription.unsubscribe();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  private readonly handOn = (): void => {
    this.scheduled = false;
    for (const [partition, seq] of this.seen) this.options.host.streamHead(partition, seq);
    this.seen.clear();
  };

  private async readHeads(): Promise<void> {
    const { jsm, stream, prefix, host } = this.options;
    await Promise.all(
      Array.from({ length: host.partitions }, async (_, partition) => {
        const last = await jsm.streams.getMessage(stream, { last_by_subj: subjectOf(prefix, partition) });
        const seq = last === null ? undefined : lastSeqOf(last.header, () => last.data);
        if (seq !== undefined) host.streamHead(partition, seq);
      }),
    );
  }
}
