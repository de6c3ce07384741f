import { consumePartitionBatches, type StreamMessage } from '../bus/jetstream-consumer.ts';
import type { Logger } from '../logger.ts';
import type { Projector } from './projector.ts';

/**
 * Feeds one projection from the JetStream event stream instead of the shard files. It starts
 * after the last message the projection handled; what was already applied is skipped by the
 * per-partition checkpoints (JetStream may redeliver), and a message that leaves a gap is
 * never applied: the feed starts over from the beginning of the stream, skipping what it has.
 */
export class JetStreamFeed {
  private subscription: { close(): Promise<void>; tailSeq: number } | undefined;
  private stopped = false;
  private paused = false;
  private restarting: Promise<void> | undefined;
  /** Gaps met in a row: each restart after one waits longer, so a gap that stays does not spin. */
  private gaps = 0;
  /** The stream's last sequence when this feed first opened, and the last one handled since. */
  private tailAtStart: number | undefined;
  private handledSeq = 0;
  private caughtUp = false;

  constructor(
    private readonly projector: () => Projector,
    private readonly options: { servers: string | string[]; prefix: string; replicas?: number | undefined; logger: Logger; onProgress: () => void },
  ) {}

  /** Starts consuming; while NATS cannot be reached it keeps trying, with a growing delay. */
  async start(fromStreamSeq = this.projector().streamPosition() + 1): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.subscribe(fromStreamSeq);
        return;
      } catch (error) {
        const delay = Math.min(5_000, 100 * 2 ** Math.min(attempt, 6));
        if (attempt === 0 || attempt % 20 === 0) this.options.logger.warn({ err: error, retryInMs: delay }, 'projector cannot consume the JetStream event stream yet');
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private async subscribe(fromStreamSeq: number): Promise<void> {
    this.paused = false;
    this.handledSeq = fromStreamSeq - 1;
    this.subscription = await consumePartitionBatches({
      servers: this.options.servers,
      prefix: this.options.prefix,
      replicas: this.options.replicas,
      startStreamSeq: fromStreamSeq,
      onMessages: (messages) => this.onMessages(messages),
      logger: this.options.logger,
    });
    this.tailAtStart ??= this.subscription.tailSeq;
    this.noteHandled();
  }

  /**
   * Started, and not yet past the stream's tail as of its first start: what it serves may be
   * older than what was acknowledged before it started (a projection just placed on this node).
   */
  get catchingUp(): boolean {
    return !this.caughtUp;
  }

  private noteHandled(): void {
    if (!this.caughtUp && this.tailAtStart !== undefined && this.handledSeq >= this.tailAtStart) {
      this.caughtUp = true;
      this.options.onProgress();
    }
  }

  /** Applies the messages in rounds of at most one per partition, each round in one transaction. */
  private async onMessages(messages: StreamMessage[]): Promise<void> {
    let round: StreamMessage[] = [];
    const partitions = new Set<number>();
    for (const message of messages) {
      if (partitions.has(message.batch.partition)) {
        if (!(await this.applyRound(round))) return;
        round = [];
        partitions.clear();
      }
      round.push(message);
      partitions.add(message.batch.partition);
    }
    await this.applyRound(round);
  }

  /** Returns false once the feed has stopped taking messages (halted, or refetching after a gap). */
  private async applyRound(round: StreamMessage[]): Promise<boolean> {
    if (this.stopped || this.paused || round.length === 0) return false;
    const projector = this.projector();
    const lastSeq = round[round.length - 1]!.streamSeq;
    const outcomes = await projector.applyAll(
      round.map((message) => message.batch),
      lastSeq,
    );
    const gap = outcomes.indexOf('gap');
    if (gap >= 0) {
      const { batch, streamSeq } = round[gap]!;
      this.gaps += 1;
      const delayMs = Math.min(30_000, 500 * 2 ** Math.min(this.gaps - 1, 6));
      this.options.logger.error(
        { partition: batch.partition, firstSeq: batch.firstSeq, checkpoint: projector.checkpoint(batch.partition), streamSeq, retryInMs: delayMs },
        'gap in the event stream: not applied; consuming again from its start',
      );
      this.paused = true;
      setTimeout(() => this.restart(1), delayMs).unref();
      return false;
    }
    if (outcomes.includes('storage-failed')) {
      this.options.logger.warn({ err: projector.lastStorageFailure, streamSeq: round[0]!.streamSeq }, 'cannot write the view file (disk full or I/O error): nothing applied; consuming again from the checkpoints');
      this.paused = true;
      setTimeout(() => this.restart(), 0).unref();
      return false;
    }
    if (outcomes.includes('halted')) {
      // Later messages must wait for the halt to be lifted; they are fetched again then.
      this.paused = true;
      this.options.onProgress();
      return false;
    }
    if (!outcomes.includes('applied')) projector.recordStreamPosition(lastSeq);
    else this.gaps = 0;
    this.handledSeq = lastSeq;
    this.noteHandled();
    this.options.onProgress();
    return true;
  }

  /** After a halt is lifted (dead letter retried or skipped), or to refetch from an earlier point. */
  restart(fromStreamSeq = this.projector().streamPosition() + 1): void {
    if (this.stopped) return;
    this.restarting ??= (async () => {
      try {
        await this.subscription?.close();
        await this.start(fromStreamSeq);
      } catch (error) {
        this.options.logger.error({ err: error }, 'could not restart the JetStream feed');
      } finally {
        this.restarting = undefined;
      }
    })();
  }

  get halted(): boolean {
    return this.paused;
  }

  /** Stops consuming for now (a rebuild swapping files); `start` resumes. */
  async suspend(): Promise<void> {
    this.paused = true;
    await this.restarting;
    await this.subscription?.close();
    this.subscription = undefined;
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.restarting;
    await this.subscription?.close();
  }
}
