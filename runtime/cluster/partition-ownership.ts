import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { makeError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { CommandEnvelope, CommandResult } from '../protocol.ts';
import type { Assignment } from './assignment-plan.ts';
import type { ChangeSignal } from './change-signal.ts';
import type { ClusterHost } from './cluster-host.ts';
import type { ClusterStore, StoredAssignment } from './cluster-store.ts';
import { catchUpPartition } from './partition-catch-up.ts';

/** A partition this node holds: copying it before serving, serving it, or handing it off. */
export type LocalState = 'acquiring' | 'serving' | 'releasing';

interface LocalPartition {
  state: LocalState;
  epoch: number;
  inFlight: number;
  /** Stops answering the commands and reads other nodes forward for it. */
  stopAnswering: () => void;
}

export interface OwnershipOptions {
  nodeId: string;
  prefix: string;
  host: ClusterHost;
  logger: Logger;
  js: JetStreamClient;
  jsm: JetStreamManager;
  stream: string;
  store: Pick<ClusterStore, 'setAssignment'>;
  /** Every partition's assignment as this node last saw it. */
  assignments: ReadonlyMap<number, StoredAssignment>;
  changes: ChangeSignal;
  /** Whether this node is leaving (it takes no partitions then). */
  isDraining: () => boolean;
  /** Starts answering what other nodes forward for a partition; returns how to stop. */
  answerForwarded: (partition: number) => () => void;
  /** How long the old owner waits for its in-flight commands and its tail to be in JetStream before giving up a handoff (default 10,000 ms). */
  drainMs?: number | undefined;
  /** How long the owner waits for the target to copy the partition before handing off anyway (default 15,000 ms). */
  readyWaitMs?: number | undefined;
}

export interface HandoffCounters {
  handoffsIn: number;
  handoffsOut: number;
  fenced: number;
  lastHandoffMs: number;
}

/** A few copies at a time: all at once take every core from the commands being served. */
const maxParallelCopies = 3;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The partitions this node holds and their moves. It serves the partitions assigned to it
 * (after copying their events from JetStream into its log), copies a partition about to be
 * handed to it ahead of time, and hands its own off when asked: stop taking commands, let
 * in-flight ones finish, wait until JetStream holds the whole tail, then write the new owner
 * into the assignment.
 */
export class PartitionOwnership {
  private readonly local = new Map<number, LocalPartition>();
  private readonly work = new Map<number, Promise<void>>();
  /**
   * Per partition, a point where this node's log is known to equal the stream (after a copy,
   * or when it handed the partition off): its last seq then, and the stream sequence of the
   * message holding that event. While the log still ends there, nothing needs truncating and
   * the next copy reads the stream from there instead of from the subject's first message.
   */
  private readonly streamMarks = new Map<number, { head: number; streamSeq: number }>();
  /** When this node, as owner, first saw each partition's current target. */
  private readonly targetSince = new Map<number, { target: string; at: number }>();
  private readonly counts: HandoffCounters = { handoffsIn: 0, handoffsOut: 0, fenced: 0, lastHandoffMs: 0 };
  private copying = 0;
  private stopped = false;

  constructor(private readonly options: OwnershipOptions) {}

  /** Whether this node serves the partition now (the relay publishes only these). */
  owns(partition: number): boolean {
    const local = this.local.get(partition);
    return local !== undefined && local.state !== 'acquiring';
  }

  stateOf(partition: number): LocalState | undefined {
    return this.local.get(partition)?.state;
  }

  /** The assignment epoch under which this node holds the partition. */
  epochOf(partition: number): number | undefined {
    return this.local.get(partition)?.epoch;
  }

  /** The partitions this node holds, in any state. */
  held(): number[] {
    return [...this.local.keys()];
  }

  tally(): { owned: number; acquiring: number; releasing: number } {
    const tally = { owned: 0, acquiring: 0, releasing: 0 };
    for (const local of this.local.values()) {
      if (local.state === 'serving') tally.owned++;
      else if (local.state === 'acquiring') tally.acquiring++;
      else tally.releasing++;
    }
    return tally;
  }

  counters(): HandoffCounters {
    return { ...this.counts };
  }

  async runServing(partition: number, envelope: CommandEnvelope): Promise<CommandResult> {
    const local = this.local.get(partition);
    if (local?.state !== 'serving') throw makeError('SHARDLOG_PARTITION_MOVING', `node ${this.options.nodeId} does not serve partition ${partition} now`, { partition, retryAfterMs: 1_000 });
    local.inFlight++;
    try {
      return await this.options.host.runLocally(partition, envelope);
    } finally {
      local.inFlight--;
      if (local.inFlight === 0) this.options.changes.notify();
    }
  }

  /** Queues a look at what this node should do about a partition; one piece of work per partition at a time. */
  reconcile(partition: number): void {
    if (this.work.has(partition) || this.stopped) return;
    const running = this.act(partition)
      .catch((error: unknown) => this.options.logger.warn({ err: error, partition }, 'partition handoff step failed; will try again'))
      .finally(() => {
        this.work.delete(partition);
        this.options.changes.notify();
      });
    this.work.set(partition, running);
  }

  private async act(partition: number): Promise<void> {
    const stored = this.options.assignments.get(partition);
    const local = this.local.get(partition);
    const mine = stored?.assignment.owner === this.options.nodeId;
    if (!mine) {
      if (local !== undefined) await this.drop(partition, 'the assignment names another owner');
      if (stored !== undefined && stored.assignment.target === this.options.nodeId && stored.assignment.ready !== true && !this.options.isDraining()) await this.prewarm(partition, stored);
      return;
    }
    const { assignment, revision } = stored;
    if (local !== undefined && local.epoch !== assignment.epoch) {
      // Taken from this node and given back meanwhile: what it holds may be stale.
      await this.drop(partition, 'the partition came back under a new epoch');
    }
    if (!this.local.has(partition)) {
      await this.acquire(partition, assignment.epoch);
      return;
    }
    if (assignment.target === undefined || assignment.target === this.options.nodeId || this.local.get(partition)?.state !== 'serving') {
      this.targetSince.delete(partition);
      return;
    }
    const since = this.targetSince.get(partition);
    if (since?.target !== assignment.target) this.targetSince.set(partition, { target: assignment.target, at: Date.now() });
    const waited = Date.now() - (this.targetSince.get(partition)?.at ?? Date.now());
    if (assignment.ready === true || waited >= (this.options.readyWaitMs ?? 15_000)) {
      this.targetSince.delete(partition);
      await this.release(partition, assignment, revision);
    }
  }

  /**
   * Copies a partition about to be handed to this node from the stream while its owner still
   * serves it, then tells the owner (`ready` on the assignment): after the handoff only the
   * last few events are left to copy, so commands for it wait milliseconds, not the whole copy.
   */
  private async prewarm(partition: number, stored: StoredAssignment): Promise<void> {
    while (this.copying >= maxParallelCopies && !this.stopped) await this.options.changes.wait(50);
    this.copying++;
    try {
      await this.prewarmNow(partition, stored);
    } finally {
      this.copying--;
      this.options.changes.notify();
    }
  }

  private async prewarmNow(partition: number, stored: StoredAssignment): Promise<void> {
    const started = Date.now();
    const kept = await this.copyPoint(partition);
    const copied = await this.copyFromStream(partition, kept);
    const marked = await this.options.store.setAssignment(partition, { ...stored.assignment, ready: true }, stored.revision);
    this.options.logger.info({ partition, copied: copied.head - kept, fromStreamSeq: copied.fromStreamSeq, ms: Date.now() - started, marked }, 'copied a partition ahead of its handoff');
  }

  /** The last seq of the log to copy after: its own if it still ends at a stream mark, else what is left once the events the stream never confirmed are dropped. */
  private async copyPoint(partition: number): Promise<number> {
    const head = this.options.host.head(partition);
    if (this.streamMarks.get(partition)?.head === head) return head;
    return this.options.host.truncatePartition(partition, await this.options.host.publishedRecord(partition));
  }

  private async copyFromStream(partition: number, localHead: number) {
    const mark = this.streamMarks.get(partition);
    const hint = mark?.head === localHead ? mark.streamSeq : undefined;
    const result = await catchUpPartition({
      js: this.options.js,
      jsm: this.options.jsm,
      stream: this.options.stream,
      prefix: this.options.prefix,
      partition,
      localHead,
      logger: this.options.logger,
      ...(hint === undefined || hint === 0 ? {} : { fromStreamSeq: hint }),
      append: async (events) => {
        await this.options.host.appendReplica(partition, events);
      },
    });
    if (result.streamSeq > 0) this.streamMarks.set(partition, { head: result.head, streamSeq: result.streamSeq });
    return { ...result, fromStreamSeq: hint ?? 0 };
  }

  private async acquire(partition: number, epoch: number): Promise<void> {
    const started = Date.now();
    const local: LocalPartition = { state: 'acquiring', epoch, inFlight: 0, stopAnswering: () => undefined };
    this.local.set(partition, local);
    try {
      const kept = await this.copyPoint(partition);
      const { head, fromStreamSeq } = await this.copyFromStream(partition, kept);
      if (this.local.get(partition) !== local || this.stopped) return;
      this.options.host.adoptPartition(partition, head);
      local.stopAnswering = this.options.answerForwarded(partition);
      local.state = 'serving';
      this.counts.handoffsIn++;
      this.counts.lastHandoffMs = Date.now() - started;
      this.options.logger.info({ partition, epoch, copied: head - kept, fromStreamSeq, ms: this.counts.lastHandoffMs }, 'serving a partition');
    } catch (error) {
      if (this.local.get(partition) === local) this.local.delete(partition);
      await sleep(250);
      throw error;
    } finally {
      this.options.changes.notify();
    }
  }

  private async release(partition: number, assignment: Assignment, revision: number): Promise<void> {
    const local = this.local.get(partition)!;
    const started = Date.now();
    local.state = 'releasing';
    const deadline = Date.now() + (this.options.drainMs ?? 10_000);
    while (local.inFlight > 0 && Date.now() < deadline) await this.options.changes.wait(20);
    const handedTo = assignment.target!;
    let handedOff: boolean;
    try {
      if (local.inFlight > 0) throw new Error(`${local.inFlight} commands still in flight`);
      await this.options.host.waitPublished(partition, this.options.host.head(partition), Math.max(1, deadline - Date.now()));
      handedOff = await this.options.store.setAssignment(partition, { owner: handedTo, epoch: assignment.epoch + 1 }, revision);
    } catch (error) {
      // If NATS failed after taking the write, the new assignment arrives through the watch and this node drops the partition then.
      local.state = 'serving';
      throw error;
    }
    if (!handedOff) {
      // The leader changed its mind (or another node acted): serve on and look again.
      local.state = 'serving';
      return;
    }
    await this.drop(partition);
    this.counts.handoffsOut++;
    this.options.logger.info({ partition, to: handedTo, epoch: assignment.epoch + 1, ms: Date.now() - started }, 'handed a partition off');
  }

  /** Stops serving a partition at once. */
  private async drop(partition: number, why?: string): Promise<void> {
    const local = this.local.get(partition);
    if (local === undefined) return;
    this.local.delete(partition);
    local.stopAnswering();
    const known = await this.options.host.releasePartition(partition);
    if (known === undefined) this.streamMarks.delete(partition);
    else this.streamMarks.set(partition, { head: known.published, streamSeq: known.streamSeq });
    if (why !== undefined) this.options.logger.warn({ partition, epoch: local.epoch }, `stopped serving a partition: ${why}`);
    this.options.changes.notify();
  }

  /** The relay found another node's events on this partition's subject: stop serving it; look again shortly. */
  fenced(partition: number): void {
    this.counts.fenced++;
    this.drop(partition, 'another node wrote to it (fenced)').then(
      () => setTimeout(() => this.reconcile(partition), 500),
      (error: unknown) => this.options.logger.error({ err: error, partition }, 'could not stop serving a fenced partition'),
    );
  }

  /** Takes no more work, stops answering forwarded requests, and waits (bounded) for the work under way. */
  async stop(waitMs: number): Promise<void> {
    this.stopped = true;
    for (const local of this.local.values()) local.stopAnswering();
    await Promise.race([Promise.allSettled([...this.work.values()]), sleep(waitMs)]);
  }
}
