import type { BusEvent } from '../bus/bus-event.ts';
import { Piscina, move } from 'piscina';
import { decodeWire, encodeWire } from '../codec.ts';
import { deserializeError, makeError, ShardlogError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { responseTo, type SagaActivity, type CommandEnvelope, type CommandResult, type ShardCallType, type ShardReply, type ShardRequest, type ShardResponse, type ShardWorkerData, type ReturnedEvents } from '../protocol.ts';

export interface ShardHostOptions {
  worker: ShardWorkerData;
  /** Commands waiting for this shard past which new ones are refused with SHARDLOG_OVERLOADED. */
  maxQueuedCommands: number;
  /** The most commands one batch (one transaction) takes. */
  maxBatchSize: number;
  /** Batches sent to the thread and not yet answered; more overlap the threads, fewer grow batches. */
  maxBatchesInFlight: number;
  /** Heap cap of the shard thread; past it the thread dies and is restarted. */
  maxOldGenerationSizeMb?: number | undefined;
  restart: RestartPolicy;
  logger: Logger;
  onBatch?: ((batch: BatchReport) => void) | undefined;
}

/** One committed batch, as reported to `onBatch` (for metrics). */
export interface BatchReport {
  shard: number;
  commands: number;
  events: number;
  /** From sending the batch to its replies, including the commit. */
  durationMs: number;
  /** The batch's transaction alone, fsync included, timed on the shard thread (0 if it wrote nothing). */
  commitMs: number;
  /** The per-stream index chunk the shard wrote after this batch, before its reply (0 in most batches). */
  indexMs: number;
  /** [partition, last seq, …] of every partition the batch appended to. */
  heads: number[];
  /** The committed events the shard was asked to return: all of them, or those sagas may want (`eventsReturned`). */
  committedEvents?: BusEvent[] | undefined;
  eventsReturned: ReturnedEvents;
  /** With `committedEvents`: each partition's last seq before the batch, in `heads`' order. */
  seqsBefore?: number[] | undefined;
  /** The saga instances the batch changed, with their outbox and timers as they are now. */
  sagas?: SagaActivity[] | undefined;
}

export interface RestartPolicy {
  /** More crashes than this within `windowMs` and the shard is left down for `windowMs`, then tried again. */
  maxCrashes: number;
  windowMs: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

interface PendingCommand {
  envelope: CommandEnvelope;
  resolve: (result: CommandResult) => void;
  reject: (error: ShardlogError) => void;
}

export interface ShardStats {
  shard: number;
  status: 'serving' | 'restarting' | 'unavailable' | 'closed';
  queued: number;
  batches: number;
  commands: number;
  crashes: number;
}

const workerEntry = new URL(import.meta.url.endsWith('.ts') ? '../shard/ts-entry.mjs' : '../shard/worker.js', import.meta.url).href;

/**
 * The main-thread side of one shard thread. Commands submitted in one event-loop tick travel
 * as one batch; while a batch commits the next one gathers, so batches grow with load. Every
 * submitted command settles: committed, refused, or failed with a named error if the thread
 * dies.
 */
export class ShardHost {
  private pool: Piscina;
  private queue: PendingCommand[] = [];
  private batchesInFlight = 0;
  private flushScheduled = false;
  private readonly pendingReads = new Set<Promise<unknown>>();
  private resumeAt = 0;
  private crashTimes: number[] = [];
  /** While the circuit is open: when the shard is tried again. */
  private openUntil = 0;
  private status: ShardStats['status'] = 'serving';
  private closing = false;
  private idleWaiters: (() => void)[] = [];
  private readonly counters = { batches: 0, commands: 0, crashes: 0 };

  constructor(private readonly options: ShardHostOptions) {
    this.pool = this.startPool();
  }

  get shard(): number {
    return this.options.worker.shard;
  }

  private startPool(): Piscina {
    const limits = this.options.maxOldGenerationSizeMb;
    const pool = new Piscina({
      filename: workerEntry,
      minThreads: 1,
      maxThreads: 1,
      // The thread waits for its next task without blocking its event loop, where it writes
      // the indexes between tasks (runtime/shard/worker.ts); 'sync' would park it there.
      atomics: 'async',
      idleTimeout: Number.POSITIVE_INFINITY,
      workerData: this.options.worker,
      ...(limits === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: limits } }),
    });
    pool.on('error', (error: unknown) => this.onCrash(error));
    return pool;
  }

  /** Opens the shard's log; rejects with the thread's error if it cannot. */
  async open(): Promise<void> {
    await this.request({ type: 'open' });
  }

  /**
   * Queues a command. Admission failures (closing, shard down, queue full) throw at once,
   * so a caller can refuse the command before telling anyone it was accepted.
   */
  submit(envelope: CommandEnvelope): Promise<CommandResult> {
    if (this.closing) throw makeError('SHARDLOG_CLOSED', 'the runtime is closing');
    if (this.status === 'unavailable') throw this.unavailableError();
    if (this.queue.length >= this.options.maxQueuedCommands) {
      throw makeError('SHARDLOG_OVERLOADED', `shard ${this.shard} has ${this.queue.length} commands waiting`, { shard: this.shard, retryAfterMs: 100 });
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ envelope, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** A read or maintenance request; it queues behind the batches already sent. Resolves with that request's response. */
  async request<K extends ShardCallType>(request: ShardRequest<K>): Promise<ShardResponse<K>> {
    if (this.status === 'closed') throw makeError('SHARDLOG_CLOSED', 'the runtime is closed');
    if (this.status === 'unavailable') throw this.unavailableError();
    const running = this.send(encodeWire(request));
    this.pendingReads.add(running);
    try {
      const reply = await running;
      if (reply.type === 'failed') throw deserializeError(reply.error);
      return responseTo(request, reply);
    } catch (error) {
      if (error instanceof ShardlogError) throw error;
      this.onCrash(error);
      throw makeError('SHARDLOG_SHARD_UNAVAILABLE', `shard ${this.shard} died while serving a ${request.type} request`, { shard: this.shard }, error);
    } finally {
      this.pendingReads.delete(running);
    }
  }

  private async send(message: Uint8Array): Promise<ShardReply> {
    const reply = (await this.pool.run(move(message))) as Uint8Array;
    return decodeWire<ShardReply>(reply);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const wait = this.resumeAt - performance.now();
    if (wait > 0) setTimeout(() => this.flush(), wait);
    else setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.batchesInFlight >= this.options.maxBatchesInFlight || this.queue.length === 0 || this.status === 'unavailable') return;
    if (performance.now() < this.resumeAt) {
      this.scheduleFlush();
      return;
    }
    let batch = this.queue.splice(0, this.options.maxBatchSize);
    let message: Uint8Array;
    try {
      message = encodeWire({ type: 'commands', commands: batch.map((pending) => pending.envelope) });
    } catch {
      // An input the codec cannot carry (a transform producing a BigInt past 64 bits, a
      // symbol, a cycle) fails alone; it is not a crash and must not take its batch-mates down.
      batch = batch.filter((pending) => {
        try {
          encodeWire(pending.envelope);
          return true;
        } catch (error) {
          pending.reject(makeError('SHARDLOG_INVALID_INPUT', `the parsed input cannot be encoded: ${(error as Error).message}`, { issues: [] }));
          return false;
        }
      });
      if (batch.length === 0) {
        if (this.queue.length > 0) this.scheduleFlush();
        else this.notifyIdle();
        return;
      }
      message = encodeWire({ type: 'commands', commands: batch.map((pending) => pending.envelope) });
    }
    this.batchesInFlight += 1;
    this.counters.batches += 1;
    this.counters.commands += batch.length;
    const sentAt = performance.now();
    this.send(message)
      .then(
        (response) => this.settle(batch, response, sentAt),
        (error: unknown) => {
          const unknown = makeError(
            'SHARDLOG_OUTCOME_UNKNOWN',
            `shard ${this.shard} died with this command in flight: it may or may not be committed, retry it with the same command id`,
            { shard: this.shard },
            error,
          );
          for (const pending of batch) pending.reject(unknown);
          this.onCrash(error);
        },
      )
      .finally(() => {
        this.batchesInFlight -= 1;
        if (this.queue.length > 0) this.scheduleFlush();
        else this.notifyIdle();
      });
  }

  private settle(batch: PendingCommand[], reply: ShardReply, sentAt: number): void {
    if (reply.type !== 'commands') {
      const error = reply.type === 'failed' ? deserializeError(reply.error) : makeError('SHARDLOG_OUTCOME_UNKNOWN', `a batch of commands was answered by a ${reply.type} response`);
      for (const pending of batch) pending.reject(error);
      return;
    }
    const response: ShardResponse<'commands'> = reply;
    let events = 0;
    for (const [index, pending] of batch.entries()) {
      const reply = response.replies[index];
      if (reply === undefined) {
        pending.reject(makeError('SHARDLOG_OUTCOME_UNKNOWN', 'the shard sent no reply for this command'));
      } else if (reply.ok) {
        events += reply.result.events.length;
        pending.resolve(reply.result);
      } else {
        pending.reject(deserializeError(reply.error));
      }
    }
    this.options.onBatch?.({ shard: this.shard, commands: batch.length, events, durationMs: performance.now() - sentAt, commitMs: response.commitMs, indexMs: response.indexMs ?? 0, heads: response.heads, committedEvents: response.events, eventsReturned: this.options.worker.returnEvents, seqsBefore: response.seqsBefore, sagas: response.sagas });
  }

  /** Piscina has already replaced the dead thread; we hold batches back for a growing delay. */
  private onCrash(error: unknown): void {
    const now = performance.now();
    this.counters.crashes += 1;
    this.crashTimes = [...this.crashTimes.filter((time) => now - time < this.options.restart.windowMs), now];
    const { maxCrashes, initialDelayMs, maxDelayMs } = this.options.restart;
    const details = { shard: this.shard, err: error, recentCrashes: this.crashTimes.length };
    if (this.crashTimes.length > maxCrashes) {
      this.options.logger.error(details, `shard ${this.shard} keeps dying; it is left down for ${this.options.restart.windowMs} ms`);
      this.status = 'unavailable';
      this.openUntil = now + this.options.restart.windowMs;
      const error = this.unavailableError();
      for (const pending of this.queue.splice(0)) pending.reject(error);
      this.notifyIdle();
      void this.pool.destroy();
      // Half-open after the cool-down: a passing fault (memory pressure, a poison command no
      // longer sent) heals without restarting the node; a lasting one opens the circuit again.
      setTimeout(() => this.tryAgain(), this.options.restart.windowMs).unref();
      return;
    }
    const delay = Math.min(maxDelayMs, initialDelayMs * 2 ** (this.crashTimes.length - 1));
    this.resumeAt = now + delay;
    this.status = 'restarting';
    setTimeout(() => {
      if (this.status === 'restarting') this.status = 'serving';
    }, delay).unref();
    this.options.logger.warn({ ...details, restartInMs: delay }, `shard ${this.shard} died; restarting`);
  }

  private tryAgain(): void {
    if (this.status !== 'unavailable' || this.closing) return;
    this.crashTimes = [];
    this.pool = this.startPool();
    this.status = 'serving';
    this.options.logger.warn({ shard: this.shard }, `shard ${this.shard} is tried again after its cool-down`);
  }

  private unavailableError(): ShardlogError {
    return makeError('SHARDLOG_SHARD_UNAVAILABLE', `shard ${this.shard} is unavailable after repeated crashes`, {
      shard: this.shard,
      retryAfterMs: Math.max(1_000, this.openUntil - performance.now()),
    });
  }

  private notifyIdle(): void {
    if (this.batchesInFlight > 0 || this.queue.length > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async drained(): Promise<void> {
    if (this.batchesInFlight === 0 && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  stats(): ShardStats {
    return { shard: this.shard, status: this.status, queued: this.queue.length, ...this.counters };
  }

  /** Refuses new commands, lets queued ones commit, closes the log, then stops the thread. */
  async close(): Promise<void> {
    if (this.status === 'closed') return;
    this.closing = true;
    await this.drained();
    await Promise.allSettled([...this.pendingReads]);
    if (this.status !== 'unavailable') {
      try {
        await this.request({ type: 'close' });
      } catch (error) {
        this.options.logger.warn({ shard: this.shard, err: error }, `shard ${this.shard} failed to close its log cleanly`);
      }
    }
    this.status = 'closed';
    await this.pool.destroy();
  }
}
