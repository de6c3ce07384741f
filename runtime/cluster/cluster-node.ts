import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { BusEvent } from '../bus/bus-event.ts';
import { decodeBatch, subjectOf } from '../bus/event-message.ts';
import { ensureEventStream } from '../bus/jetstream-relay.ts';
import { decodeWire, encodeWire } from '../codec.ts';
import { deserializeError, makeError, serializeError, ShardlogError, type SerializedError } from '../errors.ts';
import type { CommandEnvelope, CommandRecord, CommandResult, ShardRequest, ShardResponse } from '../protocol.ts';
import { planAssignments, type Assignment } from './assignment-plan.ts';
import { ClusterStore, type ClusterTimings, type NodeHeartbeat, type StoredAssignment } from './cluster-store.ts';
import { catchUpPartition } from './partition-catch-up.ts';

/** What the cluster needs of the local runtime. */
export interface ClusterHost {
  readonly partitions: number;
  /** Runs a command on this node's shard and resolves once JetStream holds its events. */
  runLocally(partition: number, envelope: CommandEnvelope): Promise<CommandResult>;
  /** This node's confirmed record of a command id, if it has one. */
  commandRecord(commandId: string): Promise<CommandRecord | undefined>;
  /** Answers a read of an aggregate from this node's shard. */
  readLocally(partition: number, request: ShardRequest): Promise<ShardResponse>;
  /** The relay's published seq as recorded in the log: events after it were never confirmed. */
  publishedRecord(partition: number): Promise<number>;
  truncatePartition(partition: number, after: number): Promise<number>;
  appendReplica(partition: number, events: BusEvent[]): Promise<number>;
  /** The partition is this node's from now: publish it from `head`. */
  adoptPartition(partition: number, head: number): void;
  /** The partition is no longer this node's: stop publishing it. Returns the last seq the stream held from this node and that message's stream sequence, when certain. */
  releasePartition(partition: number): Promise<{ published: number; streamSeq: number } | undefined>;
  /** This node's own last seq of a partition (its log). */
  head(partition: number): number;
  /** Another node (or this one) published the partition up to `seq`. */
  streamHead(partition: number, seq: number): void;
  waitPublished(partition: number, seq: number, timeoutMs: number): Promise<void>;
  lagEvents(): number;
}

export interface ClusterLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface ClusterOptions {
  nodeId: string;
  servers: string;
  prefix: string;
  host: ClusterHost;
  logger: ClusterLogger;
  timings?: Partial<ClusterTimings>;
  /** How long a command waits for a partition in handoff before 503 (default 5,000 ms). */
  moveWaitMs?: number;
  /** How long the old owner waits for its in-flight commands and its tail to be in JetStream before giving up a handoff (default 10,000 ms). */
  drainMs?: number;
  /** How long the owner waits for the target to copy the partition before handing off anyway (default 15,000 ms). */
  readyWaitMs?: number;
}

type LocalState = 'acquiring' | 'serving' | 'releasing';

interface LocalPartition {
  state: LocalState;
  epoch: number;
  inFlight: number;
  subscriptions: Subscription[];
}

export interface ClusterCounters {
  forwarded: number;
  forwardedFailed: number;
  handoffsIn: number;
  handoffsOut: number;
  fenced: number;
  lastHandoffMs: number;
}

export interface ClusterStatus {
  nodeId: string;
  leader: boolean;
  owned: number;
  acquiring: number;
  releasing: number;
  draining: boolean;
  counters: ClusterCounters;
}

type ForwardReply<T = CommandResult> = { ok: true; result: T } | { ok: false; error: SerializedError; notOwner?: true };

const maxParallelCopies = 3;
const defaultTimings: ClusterTimings = { heartbeatMs: 500, deadAfterMs: 3_000 };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * This node's part in a cluster. It heartbeats; when it holds the leader lock it assigns
 * partitions to live nodes by rendezvous hashing; it serves the partitions assigned to it
 * (after copying their events from JetStream into its log), hands partitions off when asked
 * (stop taking commands, let in-flight ones finish, wait until JetStream holds the whole
 * tail, then write the new owner into the assignment), and forwards commands for partitions
 * it does not own over NATS to `<prefix>.cmd.<partition>`.
 */
export class ClusterNode {
  private readonly local = new Map<number, LocalPartition>();
  private readonly assignments = new Map<number, StoredAssignment>();
  private readonly lastBeat = new Map<string, { at: number; draining: boolean }>();
  private readonly work = new Map<number, Promise<void>>();
  /** Forwarded requests being answered: a leaving node answers them all before it closes its connection. */
  private readonly answering = new Set<Promise<void>>();
  /**
   * Per partition, a point where this node's log is known to equal the stream (after a copy,
   * or when it handed the partition off): its last seq then, and the stream sequence of the
   * message holding that event. While the log still ends there, nothing needs truncating and
   * the next copy reads the stream from there instead of from the subject's first message.
   */
  private readonly streamMarks = new Map<number, { head: number; streamSeq: number }>();
  /** When this node, as owner, first saw each partition's current target. */
  private readonly targetSince = new Map<number, { target: string; at: number }>();
  private readonly changeWaiters = new Set<() => void>();
  private readonly counters: ClusterCounters = { forwarded: 0, forwardedFailed: 0, handoffsIn: 0, handoffsOut: 0, fenced: 0, lastHandoffMs: 0 };
  private leaderRevision: number | undefined;
  private planning: Promise<void> | undefined;
  private copying = 0;
  /** When this node's NATS connection last came back: heartbeats seen before then are stale. */
  private reconnectedAt = 0;
  private draining = false;
  private stopped = false;
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private stopWatches: (() => void)[] = [];
  private stream = '';

  private constructor(
    private readonly options: ClusterOptions,
    private readonly timings: ClusterTimings,
    private readonly nc: NatsConnection,
    private readonly store: ClusterStore,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
  ) {}

  static async start(options: ClusterOptions): Promise<ClusterNode> {
    const timings = { ...defaultTimings, ...options.timings };
    const nc = await connect({ servers: options.servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true, name: `shardlog-cluster-${options.nodeId}` });
    try {
      const store = await ClusterStore.open(nc, options.prefix, timings);
      await store.checkPartitionCount(options.host.partitions);
      const jsm = await jetstreamManager(nc);
      const node = new ClusterNode(options, timings, nc, store, jetstream(nc), jsm);
      node.stream = await ensureEventStream(jsm, options.prefix);
      node.answerCommandLookups();
      await node.followStreamHeads();
      void node.watchConnection();
      await node.beat();
      node.stopWatches.push(await store.watchHeartbeats((nodeId, beat) => node.onHeartbeat(nodeId, beat)));
      node.stopWatches.push(await store.watchAssignments((partition, stored) => node.onAssignment(partition, stored)));
      node.timer = setInterval(() => void node.tick(), timings.heartbeatMs);
      void node.tick();
      return node;
    } catch (error) {
      await nc.close().catch(() => undefined);
      throw error;
    }
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** Whether this node serves the partition now (the relay publishes only these). */
  owns(partition: number): boolean {
    const local = this.local.get(partition);
    return local !== undefined && local.state !== 'acquiring';
  }

  status(): ClusterStatus {
    let owned = 0;
    let acquiring = 0;
    let releasing = 0;
    for (const local of this.local.values()) {
      if (local.state === 'serving') owned++;
      else if (local.state === 'acquiring') acquiring++;
      else releasing++;
    }
    return { nodeId: this.nodeId, leader: this.leaderRevision !== undefined, owned, acquiring, releasing, draining: this.draining, counters: { ...this.counters } };
  }

  /** The assignment of every partition as this node last saw it. */
  assignmentTable(): { partition: number; owner: string; epoch: number; target?: string }[] {
    return [...this.assignments].sort(([a], [b]) => a - b).map(([partition, { assignment }]) => ({ partition, ...assignment }));
  }

  /**
   * Runs a command wherever its partition is served: here, or forwarded to the owner. While
   * the partition moves, waits (bounded), then fails with SHARDLOG_PARTITION_MOVING.
   */
  submit(partition: number, envelope: CommandEnvelope): Promise<CommandResult> {
    return this.route(partition, 'cmd', envelope, (local) => this.runServing(partition, local, envelope));
  }

  /** Reads an aggregate on the node that serves its partition (this node's copy of it may be stale). */
  read(partition: number, request: ShardRequest): Promise<ShardResponse> {
    return this.route(partition, 'read', request, () => this.options.host.readLocally(partition, request));
  }

  private async route<T>(partition: number, kind: 'cmd' | 'read', payload: unknown, runHere: (local: LocalPartition) => Promise<T>): Promise<T> {
    const deadline = Date.now() + (this.options.moveWaitMs ?? 5_000);
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) throw makeError('SHARDLOG_CLOSED', 'the node is leaving the cluster');
      const local = this.local.get(partition);
      if (local?.state === 'serving') return runHere(local);
      if (local === undefined) {
        const owner = this.assignments.get(partition)?.assignment.owner;
        if (owner !== undefined && owner !== this.nodeId) {
          const reply = await this.forward<T>(partition, kind, payload, deadline);
          if (reply !== undefined) return reply.value;
        }
      }
      if (Date.now() >= deadline) {
        throw makeError('SHARDLOG_PARTITION_MOVING', `partition ${partition} is moving between nodes; retry shortly`, { partition, retryAfterMs: 1_000 });
      }
      await this.changed(Math.min(50 * (attempt + 1), 250));
    }
  }

  private async runServing(partition: number, local: LocalPartition, envelope: CommandEnvelope): Promise<CommandResult> {
    local.inFlight++;
    try {
      return await this.options.host.runLocally(partition, envelope);
    } finally {
      local.inFlight--;
      if (local.inFlight === 0) this.notifyChange();
    }
  }

  /** The owner's answer, or undefined when nobody serves the partition right now (try again). */
  private async forward<T>(partition: number, kind: 'cmd' | 'read', payload: unknown, deadline: number): Promise<{ value: T } | undefined> {
    let bytes: Uint8Array;
    const timeout = Math.max(1_000, deadline - Date.now()) + 15_000;
    const sentAt = Date.now();
    try {
      const message = await this.nc.request(`${this.options.prefix}.${kind}.${partition}`, encodeWire(payload), { timeout });
      bytes = message.data;
    } catch (error) {
      const text = `${error instanceof Error ? `${error.name}: ${error.message}` : String(error)} after ${Date.now() - sentAt} of ${timeout} ms`;
      if (/no responders|503/i.test(text)) return undefined;
      if (kind === 'read') throw makeError('SHARDLOG_PARTITION_MOVING', `the owner of partition ${partition} did not answer (${text})`, { partition, retryAfterMs: 1_000 }, error);
      this.counters.forwardedFailed++;
      throw makeError('SHARDLOG_OUTCOME_UNKNOWN', `forwarding to the owner of partition ${partition} failed (${text}): it may or may not have run, retry with the same command id`, { partition }, error);
    }
    const reply = decodeWire<ForwardReply<T>>(bytes);
    if (!reply.ok && reply.notOwner === true) return undefined;
    if (kind === 'cmd') this.counters.forwarded++;
    if (reply.ok) return { value: reply.result };
    throw deserializeError(reply.error);
  }

  /** The owner's side of forwarding: answer if this node serves the partition, else say it does not. */
  private async serveForwarded(partition: number, kind: 'cmd' | 'read', data: Uint8Array): Promise<Uint8Array> {
    const deadline = Date.now() + 2_000;
    for (;;) {
      const local = this.local.get(partition);
      if (local?.state === 'serving' || (kind === 'read' && local?.state === 'releasing')) {
        try {
          const result = kind === 'cmd' ? await this.runServing(partition, local, decodeWire<CommandEnvelope>(data)) : await this.options.host.readLocally(partition, decodeWire<ShardRequest>(data));
          return encodeWire({ ok: true, result } satisfies ForwardReply<unknown>);
        } catch (error) {
          const shardlogError = error instanceof ShardlogError ? error : makeError('SHARDLOG_INTERNAL', error instanceof Error ? error.message : String(error));
          return encodeWire({ ok: false, error: serializeError(shardlogError) } satisfies ForwardReply);
        }
      }
      if (local === undefined || Date.now() >= deadline || this.stopped) {
        return encodeWire({ ok: false, notOwner: true, error: serializeError(makeError('SHARDLOG_PARTITION_MOVING', `node ${this.nodeId} does not serve partition ${partition}`)) } satisfies ForwardReply);
      }
      await this.changed(50);
    }
  }

  /**
   * Asks every other node for a command id's record (`GET /commands/:id` sent to another node
   * than the one that ran it). Only a node that has a confirmed record answers; silence for
   * half a second means none has.
   */
  async findCommand(commandId: string): Promise<CommandRecord | undefined> {
    try {
      const message = await this.nc.request(`${this.options.prefix}.outcome`, encodeWire(commandId), { timeout: 500 });
      return decodeWire<CommandRecord>(message.data);
    } catch {
      return undefined;
    }
  }

  /**
   * Keeps the host's view of every partition's head current, whoever owns it: the stream's
   * tails once, then every published batch, seen through a core NATS subscription to the
   * stream's subjects (no consumer, nothing stored).
   */
  private async followStreamHeads(): Promise<void> {
    this.nc.subscribe(`${this.options.prefix}.events.*`, {
      callback: (error, message) => {
        if (error !== null) return;
        try {
          const batch = decodeBatch(message.data);
          const last = batch.events.at(-1);
          if (last !== undefined) this.options.host.streamHead(batch.partition, last.seq);
        } catch {
          // Not a Shardlog batch: nothing to learn from it.
        }
      },
    });
    await Promise.all(
      Array.from({ length: this.options.host.partitions }, async (_, partition) => {
        const last = await this.jsm.streams.getMessage(this.stream, { last_by_subj: subjectOf(this.options.prefix, partition) });
        const seq = last === null ? undefined : decodeBatch(last.data).events.at(-1)?.seq;
        if (seq !== undefined) this.options.host.streamHead(partition, seq);
      }),
    );
  }

  private answerCommandLookups(): void {
    this.nc.subscribe(`${this.options.prefix}.outcome`, {
      callback: (error, message) => {
        if (error !== null) return;
        void this.options.host
          .commandRecord(decodeWire<string>(message.data))
          .then((record) => {
            if (record !== undefined) message.respond(encodeWire(record));
          })
          .catch(() => undefined);
      },
    });
  }

  private async watchConnection(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === 'reconnect') this.reconnectedAt = Date.now();
      else if (status.type === 'disconnect') this.options.logger.warn({ nodeId: this.nodeId }, 'cluster lost NATS: commands for this node’s partitions fail until it is back (no PubAck, no acknowledgement)');
    }
  }

  private changed(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.changeWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.changeWaiters.add(done);
    });
  }

  private notifyChange(): void {
    for (const waiter of [...this.changeWaiters]) waiter();
  }

  private onHeartbeat(nodeId: string, beat: NodeHeartbeat | undefined): void {
    const before = this.lastBeat.get(nodeId);
    if (beat === undefined) this.lastBeat.delete(nodeId);
    else this.lastBeat.set(nodeId, { at: Date.now(), draining: beat.draining });
    // A node joining, leaving or gone: the leader plans now rather than at its next tick.
    if (this.leaderRevision !== undefined && (before === undefined || beat === undefined || before.draining !== beat.draining)) this.planSoon();
  }

  private planSoon(): void {
    if (this.planning !== undefined || this.stopped) return;
    this.planning = this.plan()
      .catch((error: unknown) => this.options.logger.warn({ err: error }, 'planning assignments failed'))
      .finally(() => (this.planning = undefined));
  }

  private onAssignment(partition: number, stored: StoredAssignment | undefined): void {
    if (stored === undefined) this.assignments.delete(partition);
    else this.assignments.set(partition, stored);
    this.notifyChange();
    this.reconcile(partition);
  }

  /** Queues a look at what this node should do about a partition; one piece of work per partition at a time. */
  private reconcile(partition: number): void {
    if (this.work.has(partition) || this.stopped) return;
    const running = this.act(partition)
      .catch((error: unknown) => this.options.logger.warn({ err: error, partition }, 'partition handoff step failed; will try again'))
      .finally(() => {
        this.work.delete(partition);
        this.notifyChange();
      });
    this.work.set(partition, running);
  }

  private async act(partition: number): Promise<void> {
    const stored = this.assignments.get(partition);
    const local = this.local.get(partition);
    const mine = stored?.assignment.owner === this.nodeId;
    if (!mine) {
      if (local !== undefined) await this.drop(partition, 'the assignment names another owner');
      if (stored !== undefined && stored.assignment.target === this.nodeId && stored.assignment.ready !== true && !this.draining) await this.prewarm(partition, stored);
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
    if (assignment.target === undefined || assignment.target === this.nodeId || this.local.get(partition)?.state !== 'serving') {
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
    // A few copies at a time: all at once take every core from the commands being served.
    while (this.copying >= maxParallelCopies && !this.stopped) await this.changed(50);
    this.copying++;
    try {
      await this.prewarmNow(partition, stored);
    } finally {
      this.copying--;
      this.notifyChange();
    }
  }

  private async prewarmNow(partition: number, stored: StoredAssignment): Promise<void> {
    const started = Date.now();
    const kept = await this.copyPoint(partition);
    const copied = await this.copyFromStream(partition, kept);
    const marked = await this.store.setAssignment(partition, { ...stored.assignment, ready: true }, stored.revision);
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
      js: this.js,
      jsm: this.jsm,
      stream: this.stream,
      prefix: this.options.prefix,
      partition,
      localHead,
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
    const local: LocalPartition = { state: 'acquiring', epoch, inFlight: 0, subscriptions: [] };
    this.local.set(partition, local);
    try {
      const kept = await this.copyPoint(partition);
      const { head, fromStreamSeq } = await this.copyFromStream(partition, kept);
      if (this.local.get(partition) !== local || this.stopped) return;
      this.options.host.adoptPartition(partition, head);
      for (const kind of ['cmd', 'read'] as const) {
        const subscription = this.nc.subscribe(`${this.options.prefix}.${kind}.${partition}`, {
          callback: (error, message) => {
            if (error !== null) return;
            const answer = this.serveForwarded(partition, kind, message.data)
              .then((reply) => {
                message.respond(reply);
              })
              .catch((failure: unknown) => this.options.logger.warn({ err: failure, partition }, 'could not answer a forwarded request'))
              .finally(() => this.answering.delete(answer));
            this.answering.add(answer);
          },
        });
        local.subscriptions.push(subscription);
      }
      local.state = 'serving';
      this.counters.handoffsIn++;
      this.counters.lastHandoffMs = Date.now() - started;
      this.options.logger.info({ partition, epoch, copied: head - kept, fromStreamSeq, ms: this.counters.lastHandoffMs }, 'serving a partition');
    } catch (error) {
      if (this.local.get(partition) === local) this.local.delete(partition);
      await sleep(250);
      throw error;
    } finally {
      this.notifyChange();
    }
  }

  private async release(partition: number, assignment: Assignment, revision: number): Promise<void> {
    const local = this.local.get(partition)!;
    const started = Date.now();
    local.state = 'releasing';
    const deadline = Date.now() + (this.options.drainMs ?? 10_000);
    while (local.inFlight > 0 && Date.now() < deadline) await this.changed(20);
    try {
      if (local.inFlight > 0) throw new Error(`${local.inFlight} commands still in flight`);
      await this.options.host.waitPublished(partition, this.options.host.head(partition), Math.max(1, deadline - Date.now()));
    } catch (error) {
      local.state = 'serving';
      throw error;
    }
    const handedTo = assignment.target!;
    if (!(await this.store.setAssignment(partition, { owner: handedTo, epoch: assignment.epoch + 1 }, revision))) {
      // The leader changed its mind (or another node acted): serve on and look again.
      local.state = 'serving';
      return;
    }
    await this.drop(partition);
    this.counters.handoffsOut++;
    this.options.logger.info({ partition, to: handedTo, epoch: assignment.epoch + 1, ms: Date.now() - started }, 'handed a partition off');
  }

  /** Stops serving a partition at once. */
  private async drop(partition: number, why?: string): Promise<void> {
    const local = this.local.get(partition);
    if (local === undefined) return;
    this.local.delete(partition);
    for (const subscription of local.subscriptions) subscription.unsubscribe();
    const known = await this.options.host.releasePartition(partition);
    if (known === undefined) this.streamMarks.delete(partition);
    else this.streamMarks.set(partition, { head: known.published, streamSeq: known.streamSeq });
    if (why !== undefined) this.options.logger.warn({ partition, epoch: local.epoch }, `stopped serving a partition: ${why}`);
    this.notifyChange();
  }

  /** The relay found another node's events on this partition's subject: stop serving it; look again shortly. */
  fenced(partition: number): void {
    this.counters.fenced++;
    void this.drop(partition, 'another node wrote to it (fenced)').then(() => setTimeout(() => this.reconcile(partition), 500));
  }

  private async beat(): Promise<void> {
    await this.store.heartbeat({
      nodeId: this.nodeId,
      draining: this.draining,
      startedAt: this.startedAt,
      at: Date.now(),
      owned: this.status().owned,
      lagEvents: this.options.host.lagEvents(),
    });
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.beat();
      this.leaderRevision = await this.store.lead(this.nodeId, this.leaderRevision);
      if (this.leaderRevision !== undefined) await (this.planning ?? this.plan());
      for (const partition of this.assignments.keys()) this.reconcile(partition);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'cluster heartbeat failed');
    }
  }

  /** The leader's step: write the assignments the live nodes call for. */
  private async plan(): Promise<void> {
    const now = Date.now();
    const alive = new Set<string>();
    const candidates: string[] = [];
    for (const [nodeId, { at, draining }] of this.lastBeat) {
      if (now - at > this.timings.deadAfterMs) continue;
      alive.add(nodeId);
      if (!draining) candidates.push(nodeId);
    }
    alive.add(this.nodeId);
    if (!this.draining && !candidates.includes(this.nodeId)) candidates.push(this.nodeId);
    const current = new Map([...this.assignments].map(([partition, { assignment }]) => [partition, assignment]));
    // Before declaring an owner dead, read its heartbeat itself: the watch that feeds
    // `lastBeat` can stall for seconds under load, and a false death moves partitions twice.
    const silent = new Set([...current.values()].map((assignment) => assignment.owner).filter((owner) => !alive.has(owner)));
    for (const nodeId of silent) {
      const beat = await this.store.heartbeatOf(nodeId).catch(() => undefined);
      if (beat === undefined || Date.now() - beat.at > this.timings.deadAfterMs) continue;
      this.lastBeat.set(nodeId, { at: Date.now(), draining: beat.draining });
      alive.add(nodeId);
      if (!beat.draining) candidates.push(nodeId);
    }
    let changes = planAssignments({ partitions: this.options.host.partitions, current, alive, candidates });
    if (now - this.reconnectedAt < this.timings.deadAfterMs) {
      // Back after losing NATS: every heartbeat seen before is stale, so no one is declared
      // dead until a heartbeat period has passed; only partitions nobody owns are assigned.
      changes = new Map([...changes].filter(([partition]) => !current.has(partition)));
    }
    await Promise.all(
      [...changes].map(async ([partition, assignment]) => {
        const written = await this.store.setAssignment(partition, assignment, this.assignments.get(partition)?.revision ?? 0);
        if (written && assignment.owner !== current.get(partition)?.owner && current.has(partition)) {
          this.options.logger.warn({ partition, from: current.get(partition)?.owner, to: assignment.owner, epoch: assignment.epoch }, 'gave the partition of a dead node to another');
        }
      }),
    );
  }

  /**
   * Leaves the cluster gracefully: stops taking partitions, hands every owned one off
   * (bounded by `timeoutMs`), then removes its heartbeat and leader lock.
   */
  async leave(timeoutMs = 30_000): Promise<void> {
    if (this.stopped) return;
    this.draining = true;
    const deadline = Date.now() + timeoutMs;
    await this.tick();
    const othersAlive = () => [...this.lastBeat].some(([nodeId, { at, draining }]) => nodeId !== this.nodeId && !draining && Date.now() - at <= this.timings.deadAfterMs);
    while (this.local.size > 0 && Date.now() < deadline && othersAlive()) await this.changed(100);
    if (this.local.size > 0 && othersAlive()) {
      this.options.logger.warn({ partitions: [...this.local.keys()] }, 'left the cluster still owning partitions: the others take them once its heartbeat is gone');
    } else if (this.local.size > 0) {
      this.options.logger.info({ partitions: this.local.size }, 'last node of the cluster: its partitions stay assigned to it until it, or another node, starts');
    }
    await this.stop();
  }

  /** Stops at once: unsubscribes and forgets its heartbeat; what it owned moves once the leader sees it gone. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    for (const stop of this.stopWatches) stop();
    for (const local of this.local.values()) for (const subscription of local.subscriptions) subscription.unsubscribe();
    await Promise.race([Promise.allSettled([...this.work.values()]), sleep(2_000)]);
    // Requests taken before unsubscribing get their answer ("not here": the sender tries the new owner).
    this.notifyChange();
    await Promise.race([Promise.allSettled([...this.answering]), sleep(3_000)]);
    await this.store.forgetNode(this.nodeId).catch(() => undefined);
    if (this.leaderRevision !== undefined) await this.store.resign(this.nodeId).catch(() => undefined);
    this.notifyChange();
    await Promise.race([this.nc.drain().catch(() => undefined), sleep(2_000)]);
    if (!this.nc.isClosed()) await this.nc.close().catch(() => undefined);
  }
}
