import { hash } from 'node:crypto';
import type { App, AnyAggregate } from '../define/app.ts';
import { actorNamed } from '../define/actors.ts';
import { decide, evolve } from '../define/execute.ts';
import { decodeStored, encodeStored } from '../codec.ts';
import { makeError, RejectedError, serializeError, ShardlogError } from '../errors.ts';
import { formatPosition, partitionOf, shardOf, streamName } from '../partitioning.ts';
import type { BusEvent } from '../bus/bus-event.ts';
import type { SagaInstance } from '../define/saga-actor.ts';
import type { CommandEnvelope, CommandReply, SagaActivity, ShardCalls, ShardWorkerData } from '../protocol.ts';
import { mayConcernSagas } from '../define/saga-routing.ts';
import type { Actor, ActorCache } from './actor-cache.ts';
import { loadActor } from './actor-loader.ts';
import { generatedCommandKey } from './generated-command-key.ts';
import { sagaRowOf } from './saga-tables.ts';
import type { BatchWrite, ShardLog } from './shard-log.ts';

/** The command-side state of one batch, before it commits. */
interface Batch {
  now: number;
  write: BatchWrite;
  /** Actors this batch changed; they win over the cache, and are dropped if the commit fails. */
  touched: Map<string, Actor>;
  /** Next seq of the partitions this batch appended to, as it was before the batch. */
  seqBefore: Map<number, number>;
  /** Command ids seen earlier in this batch: a repeat inside one batch gets the first's reply. */
  seen: Map<string, { fingerprint: Buffer; index: number }>;
  /** Replies that exist only if the commit succeeds. */
  writing: Set<number>;
  /** Streams whose evolve threw in this batch: their in-memory state can no longer be trusted. */
  poisoned: Set<string>;
  /** The batch's events as the bus carries them, when the host asked for them. */
  busEvents: BusEvent[] | undefined;
  /** Saga instances this batch changed, by stream; `from` is their status before the batch. */
  sagas: Map<string, SagaActivity>;
}

/**
 * Decides every command of a batch in order, then commits all their events, command records
 * and snapshots in one transaction. No reply says "committed" before that transaction has.
 */
export class GroupCommit {
  private readonly lastSeq: Map<number, number>;
  /**
   * recorded_at never goes backwards, even if the wall clock does, so time queries stay in
   * version order; it resumes from the log, so a restart while the clock is behind keeps it too.
   */
  private lastNow: number;

  constructor(
    private readonly app: App,
    private readonly log: ShardLog,
    private readonly actors: ActorCache,
    private readonly config: ShardWorkerData,
  ) {
    this.lastSeq = log.lastSeqs();
    this.lastNow = log.lastRecordedAt();
  }

  /**
   * Forgets what this shard believed of a partition (its live actors and last seq) after its
   * log changed under it: a cluster handoff truncated it or copied events in from the stream.
   */
  forgetPartition(partition: number): number {
    this.actors.deleteWhere((stream) => partitionOf(stream, this.config.partitions) === partition);
    const seq = this.log.lastSeq(partition);
    // Events copied in from the stream carry another node's clock.
    this.lastNow = Math.max(this.lastNow, this.log.lastRecordedAt());
    if (seq === 0) this.lastSeq.delete(partition);
    else this.lastSeq.set(partition, seq);
    return seq;
  }

  /**
   * Decides and commits a batch; `heads` lists [partition, last seq] of every partition it
   * appended to; with `returnEvents`, `events` are those it asks for and `seqsBefore` each of
   * those partitions' last seq before the batch.
   */
  run(commands: readonly CommandEnvelope[]): ShardCalls['commands']['response'] {
    this.lastNow = Math.max(this.lastNow, Date.now());
    const batch: Batch = {
      now: this.lastNow,
      write: { events: [], commands: [], generatedCommands: [], snapshots: [] },
      touched: new Map(),
      seqBefore: new Map(),
      seen: new Map(),
      writing: new Set(),
      poisoned: new Set(),
      busEvents: this.config.returnEvents === 'none' ? undefined : [],
      sagas: new Map(),
    };
    const replies: CommandReply[] = [];
    const repeats: [index: number, of: number][] = [];
    for (const [index, command] of commands.entries()) {
      try {
        const reply = this.handle(command, batch, index);
        if (typeof reply === 'number') {
          repeats.push([index, reply]);
          replies.push(replyPendingCommit);
        } else {
          replies.push(reply);
        }
      } catch (error) {
        replies.push(failure(error));
      }
    }
    const heads: number[] = [];
    let committed = false;
    let commitMs = 0;
    if (batch.sagas.size > 0) batch.write.sagas = [...batch.sagas.values()].map((activity) => sagaRowOf(activity, batch.now));
    if (batch.writing.size > 0) {
      const started = performance.now();
      committed = this.commit(batch, replies);
      commitMs = performance.now() - started;
    }
    const seqsBefore: number[] = [];
    if (committed) {
      for (const [partition, before] of batch.seqBefore) {
        heads.push(partition, this.lastSeq.get(partition)!);
        seqsBefore.push(before);
      }
    }
    for (const [index, of] of repeats) replies[index] = replies[of]!;
    for (const actor of batch.touched.values()) {
      if (batch.poisoned.has(actor.stream)) this.actors.delete(actor.stream);
      else this.actors.set(actor);
    }
    this.actors.trim();
    return {
      replies,
      heads,
      commitMs,
      ...(committed && batch.busEvents !== undefined && heads.length > 0 ? { events: batch.busEvents, seqsBefore } : {}),
      ...(committed && batch.sagas.size > 0 ? { sagas: [...batch.sagas.values()] } : {}),
    };
  }

  private commit(batch: Batch, replies: CommandReply[]): boolean {
    try {
      this.log.commit(batch.write);
      return true;
    } catch (error) {
      for (const stream of batch.touched.keys()) this.actors.delete(stream);
      batch.touched.clear();
      for (const [partition, seq] of batch.seqBefore) this.lastSeq.set(partition, seq);
      const message = error instanceof Error ? error.message : String(error);
      const failed = failure(makeError('SHARDLOG_COMMIT_FAILED', `commit failed: ${message}; nothing of this batch was written`, {}, error));
      for (const index of batch.writing) replies[index] = failed;
      return false;
    }
  }

  /** Returns the reply, or the index of an earlier command of this batch it repeats. */
  private handle(command: CommandEnvelope, batch: Batch, index: number): CommandReply | number {
    const aggregate = this.aggregate(command.aggregate);
    const stream = streamName(command.aggregate, command.id);
    const partition = partitionOf(stream, this.config.partitions);
    if (shardOf(partition, this.config.shards) !== this.config.shard) {
      throw new Error(`partition ${partition} does not belong to shard ${this.config.shard}`);
    }
    const fingerprint = commandFingerprint(command);
    const earlier = batch.seen.get(command.commandId);
    if (earlier !== undefined) {
      if (!earlier.fingerprint.equals(fingerprint)) throw keyReused(command.commandId);
      return earlier.index;
    }
    const recorded = command.freshId ? undefined : this.log.findCommand(command.commandId);
    if (recorded !== undefined) {
      // A record copied from the stream in a cluster handoff has no fingerprint: the id alone identifies it.
      if (recorded.fingerprint.length > 0 && !recorded.fingerprint.equals(fingerprint)) throw keyReused(command.commandId);
      return decodeStored<CommandReply>(recorded.result);
    }

    if (batch.poisoned.has(stream)) {
      throw makeError('SHARDLOG_ACTOR_RESET', `${stream}: an earlier command of this batch broke its state (evolve threw); nothing was written for this one, retry it`, {});
    }
    const actor = batch.touched.get(stream) ?? this.actors.get(stream) ?? loadActor(this.log, aggregate, stream);
    if (command.expectedVersion !== undefined && command.expectedVersion !== actor.version) {
      throw makeError(
        'SHARDLOG_VERSION_MISMATCH',
        `${stream} is at version ${actor.version}, expected ${command.expectedVersion}`,
        { actualVersion: actor.version, expectedVersion: command.expectedVersion },
      );
    }
    const metadata = command.metadata ?? {};
    const decision = decide(aggregate, actor.state, command.command, command.input, {
      id: command.id,
      commandId: command.commandId,
      now: new Date(batch.now),
      metadata,
    });

    let reply: CommandReply;
    if (decision.kind === 'rejected') {
      const { code, detail, data } = decision.rejection;
      reply = { ok: false, error: serializeError(new RejectedError(code, detail, { ...data })) };
    } else {
      reply = { ok: true, result: this.append(aggregate, actor, partition, decision.events, batch, { ...metadata, commandId: command.commandId }) };
    }
    batch.seen.set(command.commandId, { fingerprint, index });
    batch.writing.add(index);
    const key = command.freshId ? generatedCommandKey(command.commandId) : undefined;
    if (key === undefined) {
      batch.write.commands.push({ id: command.commandId, stream, fingerprint, result: encodeStored(reply), recorded_at: batch.now });
    } else if (reply.ok && reply.result.events.length > 0) {
      const events = reply.result.events.length;
      batch.write.generatedCommands!.push({ key, partition, seq: this.lastSeq.get(partition)!, events, fingerprint, stream: null, result: null });
    } else {
      batch.write.generatedCommands!.push({ key, partition, seq: null, events: 0, fingerprint, stream, result: encodeStored(reply) });
    }
    return reply;
  }

  private append(
    aggregate: AnyAggregate,
    actor: Actor,
    partition: number,
    events: { type: string; schemaVersion: number; data: unknown }[],
    batch: Batch,
    metadata: Record<string, unknown>,
  ) {
    if (events.length === 0) return { version: actor.version, position: null, events: [] };
    let state: unknown;
    try {
      state = evolve(aggregate, actor.state, events);
    } catch (error) {
      // evolve may have mutated the state before throwing. Later commands of this batch must
      // not reload it from the log either (this batch's earlier events are not there yet):
      // they fail retryably, and the actor reloads once this batch has committed.
      batch.poisoned.add(actor.stream);
      batch.touched.set(actor.stream, actor);
      const message = error instanceof Error ? error.message : String(error);
      throw makeError('SHARDLOG_DECIDE_FAILED', `${aggregate.name}: evolve threw: ${message}`, { aggregate: aggregate.name }, error);
    }
    if (!batch.seqBefore.has(partition)) batch.seqBefore.set(partition, this.lastSeq.get(partition) ?? 0);
    let seq = this.lastSeq.get(partition) ?? 0;
    const previousVersion = actor.version;
    const meta = encodeStored(metadata);
    const [aggregateName, id] = [aggregate.name, actor.stream.slice(aggregate.name.length + 1)];
    const returned = this.config.returnEvents === 'all' || mayConcernSagas(this.app, aggregateName);
    const replyEvents = events.map((event, offset) => {
      seq += 1;
      const version = previousVersion + offset + 1;
      if (returned) batch.busEvents?.push({ partition, seq, aggregate: aggregateName, id, type: event.type, version, schemaVersion: event.schemaVersion, data: event.data, metadata, recordedAt: batch.now });
      batch.write.events.push({
        partition,
        seq,
        stream: actor.stream,
        version,
        type: event.type,
        schema_version: event.schemaVersion,
        data: encodeStored(event.data),
        meta,
        recorded_at: batch.now,
      });
      return { type: event.type, version };
    });
    this.lastSeq.set(partition, seq);
    if (this.app.sagaByName.has(aggregate.name)) {
      const instance = state as SagaInstance;
      const from = batch.sagas.get(actor.stream)?.from ?? (actor.state as SagaInstance).status;
      batch.sagas.set(actor.stream, { stream: actor.stream, partition, saga: aggregate.name, from, to: instance.status, pending: instance.pending, timers: instance.timers, startedAt: instance.startedAt, parked: instance.parked.length });
    }
    actor.state = state;
    actor.version = previousVersion + events.length;
    batch.touched.set(actor.stream, actor);
    const every = aggregate.snapshotEvery;
    if (every !== undefined && Math.floor(actor.version / every) > Math.floor(previousVersion / every)) {
      batch.write.snapshots.push({ stream: actor.stream, version: actor.version, state: encodeStored(state), schema: aggregate.snapshotSchema });
    }
    return { version: actor.version, position: formatPosition(partition, seq), events: replyEvents };
  }

  private aggregate(name: string): AnyAggregate {
    return actorNamed(this.app, name);
  }
}

const replyPendingCommit: CommandReply = { ok: true, result: { version: 0, position: null, events: [] } };

function commandFingerprint(command: CommandEnvelope): Buffer {
  return hash('sha256', encodeStored([command.aggregate, command.id, command.command, command.input]), 'buffer');
}

function keyReused(commandId: string): ShardlogError {
  return makeError('SHARDLOG_IDEMPOTENCY_KEY_REUSED', `command id "${commandId}" was already used with another aggregate, command or input`, {
    commandId,
  });
}

function failure(error: unknown): CommandReply {
  if (error instanceof ShardlogError) return { ok: false, error: serializeError(error) };
  const message = error instanceof Error ? error.message : String(error);
  return { ok: false, error: serializeError(makeError('SHARDLOG_DECIDE_FAILED', message)) };
}
