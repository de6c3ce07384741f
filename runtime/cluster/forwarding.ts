import type { NatsConnection } from '@nats-io/transport-node';
import { isConnectionClosed, isNatsOutage, isNoResponders, isTimeout } from '../bus/nats-errors.ts';
import { decodeWire, encodeWire } from '../codec.ts';
import { deserializeError, makeError, serializeError, ShardlogError, type SerializedError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { RequestAnswerer } from './request-answerer.ts';
import type { CommandEnvelope, CommandRecord, CommandResult, ShardRequest, ShardResponse } from '../protocol.ts';
import type { ChangeSignal } from './change-signal.ts';
import type { ClusterHost } from './cluster-host.ts';
import type { StoredAssignment } from './cluster-store.ts';
import { commandBatchSubject, decodeBatchRequest, encodeBatchReply, ForwardBatcher, type ForwardedItem, type ForwardedReply } from './forward-batch.ts';
import type { LocalState } from './partition-ownership.ts';

/** What forwarding needs of the partitions this node holds. */
export interface ServedPartitions {
  stateOf(partition: number): LocalState | undefined;
  /** The assignment epoch this node serves the partition under. */
  epochOf(partition: number): number | undefined;
  /** Runs a command on a partition this node serves, counted as in flight while it runs. */
  runServing(partition: number, envelope: CommandEnvelope): Promise<CommandResult>;
}

export interface ForwardingOptions {
  nodeId: string;
  nc: NatsConnection;
  prefix: string;
  host: Pick<ClusterHost, 'readLocally' | 'commandRecord'>;
  logger: Logger;
  /** Every partition's assignment as this node last saw it. */
  assignments: ReadonlyMap<number, StoredAssignment>;
  served: ServedPartitions;
  changes: ChangeSignal;
  /** How long a command waits for a partition in handoff before SHARDLOG_PARTITION_MOVING (default 5,000 ms). */
  moveWaitMs?: number | undefined;
}

export interface ForwardingCounters {
  forwarded: number;
  forwardedFailed: number;
  /** NATS requests that carried forwarded commands (each one tick's commands for one owner node). */
  forwardedBatches: number;
}

type ReadReply = { ok: true; result: ShardResponse } | { ok: false; error: SerializedError; notOwner?: true };

/** Silence this long to `<prefix>.outcome` means no node has a confirmed record of the command. */
const outcomeWaitMs = 500;

/**
 * Runs commands and reads where their partition is served: on this node, or forwarded over
 * NATS to the owner (`<prefix>.cmd.<partition>`, `<prefix>.read.<partition>`); and answers
 * what other nodes forward here and their command-id look-ups (`<prefix>.outcome`).
 */
export class Forwarding {
  /** Forwarded requests being answered: a leaving node answers them all before it closes its connection. */
  private readonly answerer: RequestAnswerer;
  private readonly counts = { forwarded: 0, forwardedFailed: 0 };
  private stopped = false;
  private readonly batcher: ForwardBatcher;

  constructor(private readonly options: ForwardingOptions) {
    this.answerer = new RequestAnswerer(options.nc, options.logger);
    this.batcher = new ForwardBatcher(options.nc, options.prefix, () => (options.moveWaitMs ?? 5_000) + 15_000);
  }

  counters(): ForwardingCounters {
    return { ...this.counts, forwardedBatches: this.batcher.requests };
  }

  /**
   * Runs a command wherever its partition is served: here, or forwarded to the owner. While
   * the partition moves, waits (bounded), then fails with SHARDLOG_PARTITION_MOVING.
   */
  submit(partition: number, envelope: CommandEnvelope): Promise<CommandResult> {
    return this.route(
      partition,
      ({ owner, epoch }) => this.forwardCommand(owner, { partition, epoch, envelope }),
      () => this.options.served.runServing(partition, envelope),
    );
  }

  /** Reads an aggregate on the node that serves its partition (this node's copy of it may be stale). */
  read(partition: number, request: ShardRequest): Promise<ShardResponse> {
    return this.route(
      partition,
      (_, deadline) => this.forwardRead(partition, request, deadline),
      () => this.options.host.readLocally(partition, request),
    );
  }

  private async route<T>(partition: number, forward: (assignment: { owner: string; epoch: number }, deadline: number) => Promise<{ value: T } | undefined>, runHere: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + (this.options.moveWaitMs ?? 5_000);
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) throw makeError('SHARDLOG_CLOSED', 'the node is leaving the cluster');
      const state = this.options.served.stateOf(partition);
      if (state === 'serving') return runHere();
      if (state === undefined) {
        const assignment = this.options.assignments.get(partition)?.assignment;
        if (assignment !== undefined && assignment.owner !== this.options.nodeId) {
          const reply = await forward(assignment, deadline);
          if (reply !== undefined) return reply.value;
        }
      }
      if (Date.now() >= deadline) {
        throw makeError('SHARDLOG_PARTITION_MOVING', `partition ${partition} is moving between nodes; retry shortly`, { partition, retryAfterMs: 1_000 });
      }
      await this.options.changes.wait(Math.min(50 * (attempt + 1), 250));
    }
  }

  /** The owner's answer to a command, sent in its tick's batch to that node; undefined when it does not serve the partition right now (try again). */
  private async forwardCommand(owner: string, item: ForwardedItem): Promise<{ value: CommandResult } | undefined> {
    const sentAt = Date.now();
    let reply: ForwardedReply;
    try {
      reply = await this.batcher.send(owner, item);
    } catch (error) {
      // The owner is gone (or not yet subscribed): wait for the assignment to change.
      if (isNoResponders(error)) return undefined;
      this.counts.forwardedFailed++;
      const text = `${error instanceof Error ? `${error.name}: ${error.message}` : String(error)} after ${Date.now() - sentAt} ms`;
      throw makeError('SHARDLOG_OUTCOME_UNKNOWN', `forwarding to the owner of partition ${item.partition} failed (${text}): it may or may not have run, retry with the same command id`, { partition: item.partition }, error);
    }
    if (!reply.ok && reply.notOwner === true) return undefined;
    this.counts.forwarded++;
    if (reply.ok) return { value: reply.result };
    throw deserializeError(reply.error);
  }

  /** The owner's answer to a read, or undefined when nobody serves the partition right now (try again). */
  private async forwardRead(partition: number, request: ShardRequest, deadline: number): Promise<{ value: ShardResponse } | undefined> {
    let bytes: Uint8Array;
    const timeout = Math.max(1_000, deadline - Date.now()) + 15_000;
    const sentAt = Date.now();
    try {
      const message = await this.options.nc.request(`${this.options.prefix}.read.${partition}`, encodeWire(request), { timeout });
      bytes = message.data;
    } catch (error) {
      // Nobody subscribes yet: the new owner is still copying the partition.
      if (isNoResponders(error)) return undefined;
      const text = `${error instanceof Error ? `${error.name}: ${error.message}` : String(error)} after ${Date.now() - sentAt} of ${timeout} ms`;
      throw makeError('SHARDLOG_PARTITION_MOVING', `the owner of partition ${partition} did not answer (${text})`, { partition, retryAfterMs: 1_000 }, error);
    }
    const reply = decodeWire<ReadReply>(bytes);
    if (!reply.ok && reply.notOwner === true) return undefined;
    if (reply.ok) return { value: reply.result };
    throw deserializeError(reply.error);
  }

  /**
   * Answers the batches of commands other nodes forward to this node, each item on its own:
   * run if this node serves its partition under the epoch the sender saw or a later one,
   * else "not here" at once (the sender waits for the assignment and tries again).
   */
  answerCommandBatches(): void {
    this.answerer.answer(
      commandBatchSubject(this.options.prefix, this.options.nodeId),
      async (data) => encodeBatchReply(await Promise.all(decodeBatchRequest(data).map((item) => this.serveForwardedCommand(item)))),
      { details: {}, subscriptionFailed: 'the subscription to forwarded commands failed', answerFailed: 'could not answer a batch of forwarded commands' },
    );
  }

  private async serveForwardedCommand({ partition, epoch, envelope }: ForwardedItem): Promise<ForwardedReply> {
    const servedEpoch = this.options.served.epochOf(partition);
    if (this.stopped || this.options.served.stateOf(partition) !== 'serving' || servedEpoch === undefined || servedEpoch < epoch) {
      return { ok: false, notOwner: true, error: serializeError(makeError('SHARDLOG_PARTITION_MOVING', `node ${this.options.nodeId} does not serve partition ${partition}`)) };
    }
    try {
      return { ok: true, result: await this.options.served.runServing(partition, envelope) };
    } catch (error) {
      const shardlogError = error instanceof ShardlogError ? error : makeError('SHARDLOG_INTERNAL', error instanceof Error ? error.message : String(error));
      return { ok: false, error: serializeError(shardlogError) };
    }
  }

  /** Answers reads forwarded to this node for a partition; call the returned function to stop. */
  listen(partition: number): () => void {
    const subscription = this.answerer.answer(`${this.options.prefix}.read.${partition}`, (data) => this.serveForwardedRead(partition, data), {
      details: { partition },
      subscriptionFailed: 'the subscription to forwarded reads failed',
      answerFailed: 'could not answer a forwarded request',
    });
    return () => subscription.unsubscribe();
  }

  /** The owner's side of a forwarded read: answer if this node serves the partition, else say it does not. */
  private async serveForwardedRead(partition: number, data: Uint8Array): Promise<Uint8Array> {
    const deadline = Date.now() + 2_000;
    for (;;) {
      const state = this.options.served.stateOf(partition);
      if (state === 'serving' || state === 'releasing') {
        try {
          const result = await this.options.host.readLocally(partition, decodeWire<ShardRequest>(data));
          return encodeWire({ ok: true, result } satisfies ReadReply);
        } catch (error) {
          const shardlogError = error instanceof ShardlogError ? error : makeError('SHARDLOG_INTERNAL', error instanceof Error ? error.message : String(error));
          return encodeWire({ ok: false, error: serializeError(shardlogError) } satisfies ReadReply);
        }
      }
      if (state === undefined || Date.now() >= deadline || this.stopped) {
        return encodeWire({ ok: false, notOwner: true, error: serializeError(makeError('SHARDLOG_PARTITION_MOVING', `node ${this.options.nodeId} does not serve partition ${partition}`)) } satisfies ReadReply);
      }
      await this.options.changes.wait(50);
    }
  }

  /**
   * Asks every other node for a command id's record (`GET /commands/:id` sent to another node
   * than the one that ran it). Only a node that has a confirmed record answers; silence for
   * half a second means none has.
   */
  async findCommand(commandId: string): Promise<CommandRecord | undefined> {
    try {
      const message = await this.options.nc.request(`${this.options.prefix}.outcome`, encodeWire(commandId), { timeout: outcomeWaitMs });
      return decodeWire<CommandRecord>(message.data);
    } catch (error) {
      if (isTimeout(error) || isNoResponders(error)) return undefined;
      if (isConnectionClosed(error)) throw makeError('SHARDLOG_CLOSED', 'the node is leaving the cluster', {}, error);
      if (isNatsOutage(error)) throw makeError('SHARDLOG_OUTCOME_UNKNOWN', `NATS did not take the look-up of command ${commandId}: whether another node ran it is unknown, ask again`, { retryAfterMs: 1_000 }, error);
      throw error;
    }
  }

  /** Answers other nodes' `findCommand` when this node has a confirmed record of the id. */
  answerCommandLookups(): void {
    this.options.nc.subscribe(`${this.options.prefix}.outcome`, {
      callback: (error, message) => {
        if (error !== null) {
          this.options.logger.warn({ err: error }, 'the subscription to command look-ups failed');
          return;
        }
        const commandId = decodeWire<string>(message.data);
        void this.options.host
          .commandRecord(commandId)
          .then((record) => {
            if (record !== undefined) message.respond(encodeWire(record));
          })
          .catch((failure: unknown) => this.options.logger.warn({ err: failure, commandId }, 'could not look up a command for another node'));
      },
    });
  }

  /** Takes no more work: new requests fail with SHARDLOG_CLOSED, forwarded ones are answered "not here" (the sender tries the new owner). */
  stop(): void {
    this.stopped = true;
    this.options.changes.notify();
  }

  /** Waits (bounded) until every forwarded request already taken has its answer. */
  finishAnswering(waitMs: number): Promise<void> {
    return this.answerer.finish(waitMs);
  }
}
