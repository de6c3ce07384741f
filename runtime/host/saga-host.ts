import { newCommandId } from '../command-id.ts';
import type { BusEvent } from '../bus/bus-event.ts';
import { sagaNamed, type App } from '../define/app.ts';
import { upcast } from '../define/execute.ts';
import { mayConcernSagas, sagaDeliveriesOf, type SagaDelivery } from '../define/saga-routing.ts';
import { stepCommandId, type DeliveredEvent, type SagaInputs, type SagaInstance, type SagaStepMetadata } from '../define/saga-actor.ts';
import { makeError, RejectedError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { assertValidId, partitionOf, shardOf, streamName } from '../partitioning.ts';
import type { SagaDeliveries, SagaSummary, ShardRequest, ShardResponse } from '../protocol.ts';
import type { DispatchResult, PreparedCommand, SagaCounts, SagaDeadLetter, Sagas, SagaView } from '../runtime.ts';
import { setTimeout as delay } from 'node:timers/promises';
import { checkedCount } from './checked-input.ts';
import { prepareCommand } from './command-preparation.ts';
import { SagaOutbox } from './saga-outbox.ts';
import { SagaRouter } from './saga-router.ts';
import type { BatchReport } from './shard-host.ts';
import { SagaTimers } from './saga-timers.ts';
import type { ShardSet } from './shard-set.ts';

const handlerFailed = 'saga-handler-failed';
/** Tries of a failing handler before its input is parked, and the first pause between them (doubling). */
const handlerAttempts = 4;
const handlerRetryMs = 50;

export interface SagaHostOptions {
  app: App;
  shards: ShardSet;
  /** Whether this node serves the partition now (standalone: always). */
  owns(partition: number): boolean;
  /** This node's last committed seq of a partition. */
  head(partition: number): number;
  /** With JetStream: resolves once the stream holds the partition up to `seq`. */
  confirmed?: ((partition: number, seq: number) => Promise<void>) | undefined;
  /** Runs a prepared command wherever its partition is served. */
  submit(prepared: PreparedCommand): Promise<DispatchResult>;
  /** Reads from wherever the partition is served. */
  read<K extends 'state'>(partition: number, request: ShardRequest<K>): Promise<ShardResponse<K>>;
  logger: Logger;
}

/**
 * The main-thread half of the app's sagas on one node: delivers committed events to saga
 * instances (SagaRouter), sends what the instances decide (SagaOutbox) and fires their
 * timers (SagaTimers), for the partitions this node serves; and answers reads of instances.
 */
export class SagaHost implements Sagas {
  private readonly router: SagaRouter;
  private readonly outbox: SagaOutbox;
  private readonly timers: SagaTimers;
  private readonly counts = new Map<string, SagaCounts>();
  private started: Promise<void> | undefined;

  private constructor(private readonly options: SagaHostOptions) {
    const owns = (partition: number) => options.owns(partition);
    this.router = new SagaRouter({
      shards: options.shards,
      owns,
      head: (partition) => options.head(partition),
      confirmed: options.confirmed,
      deliver: (deliveries) => this.deliver(deliveries),
      deliveriesOf: (events) => this.deliveriesOf(events),
      logger: options.logger,
    });
    this.outbox = new SagaOutbox({
      sendStep: (saga, correlationId, command) => {
        const metadata: SagaStepMetadata = { saga, correlationId, step: command.step };
        const { aggregate, id, command: name, input } = command;
        return options.submit(
          prepareCommand(options.app, options.shards.partitions, options.shards.count, {
            aggregate,
            id,
            command: name,
            input,
            commandId: stepCommandId(saga, correlationId, command.step),
            metadata: { ...metadata },
          }),
        );
      },
      settle: (saga, correlationId, outcome) => this.handle(saga, correlationId, 'settle', outcome),
      owns,
      logger: options.logger,
    });
    this.timers = new SagaTimers({
      fire: (saga, correlationId, name, due) => this.handle(saga, correlationId, 'fire', { name, due }),
      owns,
      logger: options.logger,
    });
    for (const saga of options.app.sagas) this.counts.set(saga.name, { started: 0, completed: 0, compensated: 0, timedOut: 0 });
  }

  /**
   * Made before it starts, so a partition that arrives while it starts is not missed: its
   * `adopted` waits for the start, which loads the routed marks first.
   */
  static create(options: SagaHostOptions): SagaHost {
    return new SagaHost(options);
  }

  start(): Promise<void> {
    this.started ??= (async () => {
      await this.router.start();
      const owned = Array.from({ length: this.options.shards.partitions }, (_, partition) => partition).filter((partition) => this.options.owns(partition));
      await this.load(owned);
    })();
    return this.started;
  }

  /** After every batch a shard answers, with the events it returned. */
  committed(batch: BatchReport): void {
    for (const instance of batch.sagas ?? []) {
      const counts = this.counts.get(instance.saga);
      if (counts !== undefined && instance.from !== instance.to) {
        if (instance.from === 'new') counts.started++;
        if (instance.to === 'completed') counts.completed++;
        else if (instance.to === 'compensated') counts.compensated++;
        else if (instance.to === 'timed-out') counts.timedOut++;
      }
      this.outbox.update(instance);
      this.timers.update(instance);
    }
    this.router.committed(batch);
  }

  private deliveriesOf(events: readonly BusEvent[]): SagaDelivery[] {
    const { app } = this.options;
    const wanted: DeliveredEvent[] = [];
    for (const event of events) {
      const aggregate = app.aggregateByName.get(event.aggregate);
      if (aggregate === undefined || !mayConcernSagas(app, event.aggregate)) continue;
      const { schemaVersion, ...rest } = event;
      wanted.push({ ...rest, data: upcast(aggregate, event.type, schemaVersion, event.data) });
    }
    return sagaDeliveriesOf(app, wanted);
  }

  /** Partitions that became this node's: load their outboxes and timers, deliver their undelivered events. */
  async adopted(partitions: readonly number[]): Promise<void> {
    for (const partition of partitions) this.router.forget(partition);
    await this.start();
    await this.load(partitions);
  }

  private async load(partitions: readonly number[]): Promise<void> {
    const byShard = new Map<number, number[]>();
    for (const partition of partitions) {
      const shard = shardOf(partition, this.options.shards.count);
      byShard.set(shard, [...(byShard.get(shard) ?? []), partition]);
      this.router.touch(partition);
    }
    for (const [shard, owned] of byShard) {
      const { work } = await this.options.shards.requestShard(shard, { type: 'saga-work', partitions: owned });
      for (const instance of work) {
        const saga = instance.stream.slice(0, instance.stream.indexOf('/'));
        this.outbox.update({ ...instance, saga });
        this.timers.update({ ...instance, saga });
      }
    }
  }

  /** A partition left this node: its new owner sends and fires what is left. */
  released(partition: number): void {
    this.router.forget(partition);
    this.outbox.dropPartition(partition);
    this.timers.dropPartition(partition);
  }

  async get(sagaName: string, correlationId: string): Promise<SagaView | undefined> {
    sagaNamed(this.options.app, sagaName);
    assertValidId(correlationId);
    const partition = partitionOf(streamName(sagaName, correlationId), this.options.shards.partitions);
    const { state, version } = await this.options.read(partition, { type: 'state', aggregate: sagaName, id: correlationId });
    const instance = state as SagaInstance;
    if (version === 0 || instance.status === 'new') return undefined;
    const parked = instance.parked.map(({ description, error, parkedAt }) => ({ input: description, error, parkedAt: new Date(parkedAt).toISOString() }));
    return {
      saga: sagaName,
      correlationId,
      status: instance.status,
      state: instance.state,
      version,
      startedAt: new Date(instance.startedAt).toISOString(),
      pending: {
        commands: instance.pending.map((command) => ({ ...command, commandId: stepCommandId(sagaName, correlationId, command.step) })),
        timers: Object.entries(instance.timers).map(([name, due]) => ({ name, dueAt: new Date(due).toISOString() })),
      },
      lastHandled: instance.handled,
      parked,
    };
  }

  async list(query: { saga?: string; status?: string; limit?: number } = {}): Promise<SagaSummary[]> {
    if (query.saga !== undefined) sagaNamed(this.options.app, query.saga);
    const limit = checkedCount('limit', query.limit ?? 100, 1, 10_000);
    const { shards } = this.options;
    const answers = await Promise.all(
      Array.from({ length: shards.count }, (_, shard) =>
        shards.requestShard(shard, {
          type: 'saga-list',
          partitions: this.servedOf(shard),
          limit,
          ...(query.saga === undefined ? {} : { saga: query.saga }),
          ...(query.status === undefined ? {} : { status: query.status }),
        }),
      ),
    );
    const running = (item: SagaSummary) => (item.status === 'running' ? 0 : 1);
    return answers
      .flatMap(({ items }) => items)
      .sort((a, b) => running(a) - running(b) || (running(a) === 0 ? a.startedAt - b.startedAt : b.updatedAt - a.updatedAt))
      .slice(0, limit);
  }

  async metrics() {
    const { shards } = this.options;
    const answers = await Promise.all(Array.from({ length: shards.count }, (_, shard) => shards.requestShard(shard, { type: 'saga-running', partitions: this.servedOf(shard) })));
    const now = Date.now();
    return this.options.app.sagas.map(({ name }) => {
      const rows = answers.flatMap(({ sagas }) => sagas.filter((row) => row.saga === name));
      const oldest = Math.min(...rows.map((row) => row.oldestStartedAt));
      return {
        saga: name,
        ...this.counts.get(name)!,
        inFlight: rows.reduce((sum, row) => sum + row.running, 0),
        oldestInFlightSeconds: Number.isFinite(oldest) ? Math.max(0, (now - oldest) / 1_000) : 0,
      };
    });
  }

  /** Committed events not yet delivered, commands decided and not settled, and timers set, on this node. */
  backlog(): { undelivered: number; pendingCommands: number; timers: number } {
    return { undelivered: this.router.lag(), pendingCommands: this.outbox.pending, timers: this.timers.count };
  }

  async close(): Promise<void> {
    this.outbox.close();
    this.timers.close();
    await this.router.close();
  }

  private servedOf(shard: number): number[] {
    const served: number[] = [];
    for (let partition = shard; partition < this.options.shards.partitions; partition += this.options.shards.count) {
      if (this.options.owns(partition)) served.push(partition);
    }
    return served;
  }

  /** One partition's events, to every instance they concern, each instance's in one input. */
  private async deliver({ deliveries }: SagaDeliveries): Promise<void> {
    const byInstance = new Map<string, { saga: string; correlationId: string; events: DeliveredEvent[] }>();
    for (const { saga, correlationId, event } of deliveries) {
      const key = streamName(saga, correlationId);
      let instance = byInstance.get(key);
      if (instance === undefined) byInstance.set(key, (instance = { saga, correlationId, events: [] }));
      instance.events.push(event);
    }
    await Promise.all([...byInstance.values()].map(({ saga, correlationId, events }) => this.handle(saga, correlationId, 'react', { events })));
  }

  /**
   * Gives an instance an input. A handler that throws is tried again (it may depend on code
   * being redeployed, or on nothing at all), then its input is parked in the instance's
   * dead-letter list and taken as delivered, so the events behind it flow on.
   */
  private async handle<K extends 'react' | 'settle' | 'fire'>(saga: string, correlationId: string, kind: K, input: SagaInputs[K]): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.input(saga, correlationId, kind, input);
      } catch (error) {
        if (!(error instanceof RejectedError && error.reason === handlerFailed)) throw error;
        if (attempt >= handlerAttempts) {
          this.options.logger.warn({ saga, correlationId, input: kind, error: error.detail }, 'a saga handler keeps failing: its input is parked (shardlog dlq list)');
          return await this.input(saga, correlationId, 'park', { kind, input, error: error.detail });
        }
        await delay(handlerRetryMs * 2 ** (attempt - 1));
      }
    }
  }

  async deadLetters(sagaName: string, query: { limit?: number } = {}): Promise<SagaDeadLetter[]> {
    sagaNamed(this.options.app, sagaName);
    const limit = checkedCount('limit', query.limit ?? 100, 1, 10_000);
    const { shards } = this.options;
    const answers = await Promise.all(
      Array.from({ length: shards.count }, (_, shard) => shards.requestShard(shard, { type: 'saga-parked', partitions: this.servedOf(shard), saga: sagaName, limit })),
    );
    const letters: SagaDeadLetter[] = [];
    for (const correlationId of answers.flatMap(({ correlationIds }) => correlationIds).slice(0, limit)) {
      const instance = await this.instance(sagaName, correlationId);
      const first = instance?.parked[0];
      if (instance === undefined || first === undefined) continue;
      letters.push({
        id: correlationId,
        saga: sagaName,
        correlationId,
        status: instance.status as SagaDeadLetter['status'],
        error: first.error,
        parkedAt: new Date(first.parkedAt).toISOString(),
        inputs: instance.parked.map((entry) => entry.description),
      });
    }
    return letters;
  }

  async retry(sagaName: string, correlationId: string): Promise<void> {
    await this.resolveParked(sagaName, correlationId, 'retry');
  }

  async skip(sagaName: string, correlationId: string): Promise<void> {
    await this.resolveParked(sagaName, correlationId, 'skip');
  }

  private async resolveParked(sagaName: string, correlationId: string, kind: 'retry' | 'skip'): Promise<void> {
    sagaNamed(this.options.app, sagaName);
    assertValidId(correlationId);
    const instance = await this.instance(sagaName, correlationId);
    if (instance === undefined || instance.parked.length === 0) {
      throw makeError('SHARDLOG_DLQ_CONFLICT', `${sagaName}/${correlationId} has no parked input`, { saga: sagaName, correlationId });
    }
    try {
      await this.input(sagaName, correlationId, kind, {});
    } catch (error) {
      if (error instanceof RejectedError && error.reason === handlerFailed) {
        throw makeError('SHARDLOG_DLQ_CONFLICT', `retrying ${sagaName}/${correlationId} failed again: ${error.detail}`, { saga: sagaName, correlationId, error: error.detail });
      }
      throw error;
    }
  }

  private async instance(sagaName: string, correlationId: string): Promise<SagaInstance | undefined> {
    const partition = partitionOf(streamName(sagaName, correlationId), this.options.shards.partitions);
    const { state, version } = await this.options.read(partition, { type: 'state', aggregate: sagaName, id: correlationId });
    return version === 0 ? undefined : (state as SagaInstance);
  }

  private input<K extends keyof SagaInputs>(saga: string, correlationId: string, kind: K, input: SagaInputs[K]): Promise<DispatchResult> {
    const { partitions, count } = this.options.shards;
    const partition = partitionOf(streamName(saga, correlationId), partitions);
    return this.options.submit({
      shard: shardOf(partition, count),
      partition,
      envelope: { commandId: newCommandId(), freshId: true, aggregate: saga, id: correlationId, command: kind, input },
    });
  }
}

export function noSagas(): never {
  throw makeError('SHARDLOG_UNKNOWN_SAGA', 'this app defines no sagas');
}
