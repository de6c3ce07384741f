import { Worker } from 'node:worker_threads';
import type { App } from '../define/app.ts';
import { projectionNamed } from '../define/app.ts';
import { deserializeError, makeError } from '../errors.ts';
import type { DeadLetter, FromProjector, ProjectionStatus, ProjectorCall, ProjectorOp, ProjectorValue, ProjectorWorkerData, RebuildStatus, ToProjector } from '../projection/messages.ts';
import { ViewReader, type ViewPage } from './view-reader.ts';
import { PositionWaiters, type PositionWaiter } from '../position-waiters.ts';
import type { Logger } from '../logger.ts';

const entry = new URL(import.meta.url.endsWith('.ts') ? '../projection/ts-entry.mjs' : '../projection/worker.js', import.meta.url);

interface ViewState {
  reader: ViewReader;
  checkpoints: Map<number, number>;
  halted: boolean;
  waiters: PositionWaiters;
  /** This node runs the projection (always, outside a cluster). */
  running: boolean;
  /** Started here and not yet at the stream's tail as of its start: reads wait. */
  catchingUp: boolean;
  /** Reads waiting for the catch-up to end. */
  liveWaiters: Set<(error?: Error) => void>;
}

export interface ProjectorHostOptions {
  app: App;
  dataDir: string;
  shards: number;
  partitions: number;
  logger: Logger;
  /** Where commits are announced: [partition, last seq, …]. */
  subscribe(listener: (heads: readonly number[]) => void): () => void;
  /** The last committed seq of a partition, for "how far behind" answers. */
  head(partition: number): number;
  /** Consume the JetStream event stream instead of tailing the shard files (`partialLogs`: a cluster node's files hold only some partitions). */
  nats?: { servers: string[]; prefix: string; replicas?: number | undefined; partialLogs?: boolean } | undefined;
  /** Cluster: run none of the projections until `place` says which (undefined: run them all). */
  placed?: boolean;
}

/**
 * The main-thread side of the projector thread: forwards commit heads to it, mirrors its
 * checkpoints (for read-your-writes waits), reads view files, and relays admin calls.
 * A thread that dies is restarted after a growing delay; it resumes from its checkpoints.
 */
export class ProjectorHost {
  private worker!: Worker;
  private readonly views = new Map<string, ViewState>();
  private readonly calls = new Map<number, { op: ProjectorOp; resolve(value: ProjectorValue): void; reject(error: Error): void }>();
  private nextCallId = 1;
  private closing = false;
  private crashes = 0;
  private readonly unsubscribe: () => void;
  private ready!: Promise<void>;

  private constructor(private readonly options: ProjectorHostOptions) {
    for (const projection of options.app.projections) {
      this.views.set(projection.name, {
        reader: new ViewReader('', projection.indexes ?? []),
        checkpoints: new Map(),
        halted: false,
        waiters: new PositionWaiters(),
        running: options.placed !== true,
        catchingUp: false,
        liveWaiters: new Set(),
      });
    }
    this.unsubscribe = options.subscribe((heads) => this.post({ type: 'heads', heads }));
  }

  static async start(options: ProjectorHostOptions): Promise<ProjectorHost> {
    const host = new ProjectorHost(options);
    host.spawn();
    await host.ready;
    return host;
  }

  private spawn(): void {
    const workerData: ProjectorWorkerData = {
      dataDir: this.options.dataDir,
      shards: this.options.shards,
      partitions: this.options.partitions,
      appModule: this.options.app.module,
      nats: this.options.nats,
      run: this.options.placed === true ? [...this.views].filter(([, state]) => state.running).map(([name]) => name) : undefined,
    };
    const worker = new Worker(entry, { workerData });
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (message: FromProjector) => {
        if (message.type === 'ready') {
          for (const view of message.views) {
            const state = this.view(view.name);
            state.reader.reopenAt(view.file);
            this.advance(state, view.checkpoints);
            state.halted = view.halted;
            this.setCatchingUp(state, view.catchingUp);
          }
          resolve();
          return;
        }
        this.receive(message);
      });
      worker.once('exit', (code) => {
        reject(new Error(`the projector thread exited (code ${code}) before it was ready`));
        this.onExit(code);
      });
      worker.on('error', (error) => this.options.logger.error({ err: error }, 'projector thread failed'));
    });
    this.ready.catch(() => undefined);
  }

  private onExit(code: number): void {
    for (const call of this.calls.values()) call.reject(makeError('SHARDLOG_INTERNAL', 'the projector thread exited'));
    this.calls.clear();
    if (this.closing) return;
    this.crashes += 1;
    const delay = Math.min(10_000, 100 * 2 ** Math.min(this.crashes - 1, 7));
    this.options.logger.error({ code, restartInMs: delay }, 'projector thread died; restarting it from its checkpoints');
    setTimeout(() => {
      if (!this.closing) this.spawn();
    }, delay).unref();
  }

  private receive(message: FromProjector): void {
    switch (message.type) {
      case 'progress': {
        const state = this.view(message.name);
        state.halted = message.halted;
        this.advance(state, message.marks);
        this.setCatchingUp(state, message.catchingUp);
        if (state.halted) this.failWaiters(state);
        return;
      }
      case 'reply': {
        const call = this.calls.get(message.id);
        this.calls.delete(message.id);
        if (call === undefined) return;
        if (call.op !== message.op) call.reject(makeError('SHARDLOG_INTERNAL', `a ${call.op} call was answered as a ${message.op} call`));
        else if (message.ok) call.resolve(message.value);
        else call.reject(deserializeError(message.error));
        return;
      }
      case 'close-readers':
        this.view(message.name).reader.close();
        this.post({ type: 'readers-closed', name: message.name });
        return;
      case 'switched': {
        const state = this.view(message.name);
        state.reader.reopenAt(message.file);
        state.checkpoints.clear();
        this.advance(state, message.checkpoints);
        return;
      }
      case 'log':
        this.options.logger[message.level](message.details, message.message);
        return;
      case 'ready':
        return;
    }
  }

  private advance(state: ViewState, marks: readonly number[]): void {
    for (let index = 0; index < marks.length; index += 2) {
      state.checkpoints.set(marks[index]!, marks[index + 1]!);
      state.waiters.reached(marks[index]!, marks[index + 1]!);
    }
  }

  /** Waits still pending are past the checkpoint, so a halted projection will not reach them. */
  private failWaiters(state: ViewState): void {
    const halted = makeError('SHARDLOG_PROJECTION_HALTED', 'the projection is halted on an event it could not apply', { retryAfterMs: 5_000 });
    state.waiters.rejectAll(halted);
    for (const settle of [...state.liveWaiters]) settle(halted);
  }

  private setCatchingUp(state: ViewState, catchingUp: boolean): void {
    state.catchingUp = state.running && catchingUp;
    if (!state.catchingUp) for (const settle of [...state.liveWaiters]) settle();
  }

  /**
   * Cluster: run exactly these projections here from now on. One placed here catches up from
   * its checkpoints (reads wait meanwhile); one placed elsewhere stops applying, and reads
   * waiting on it fail with SHARDLOG_PROJECTION_MOVING (the caller asks its new node).
   */
  place(names: readonly string[]): void {
    const run = new Set(names);
    for (const [name, state] of this.views) {
      const running = run.has(name);
      if (running && !state.running) state.catchingUp = true;
      state.running = running;
      if (!running) {
        const moved = makeError('SHARDLOG_PROJECTION_MOVING', `projection "${name}" moved to another node`, { projection: name, retryAfterMs: 200 });
        state.waiters.rejectAll(moved);
        for (const settle of [...state.liveWaiters]) settle(moved);
        state.catchingUp = false;
      }
    }
    if (this.worker.threadId !== -1) this.post({ type: 'placement', run: [...run] });
  }

  /** Whether this node runs the projection. */
  runs(name: string): boolean {
    return this.view(name).running;
  }

  /**
   * Resolves once the projection is past the stream's tail as of its start on this node;
   * rejects with SHARDLOG_VIEW_BEHIND (504, Retry-After) after `timeoutMs`.
   */
  waitCaughtUp(name: string, timeoutMs: number): Promise<void> {
    const state = this.view(name);
    if (!state.catchingUp) return Promise.resolve();
    if (state.halted) return Promise.reject(makeError('SHARDLOG_PROJECTION_HALTED', `projection "${name}" is halted on an event it could not apply`, { retryAfterMs: 5_000 }));
    return new Promise<void>((resolve, reject) => {
      const settle = (error?: Error): void => {
        clearTimeout(timer);
        state.liveWaiters.delete(settle);
        if (error === undefined) resolve();
        else reject(error);
      };
      const timer = setTimeout(
        () =>
          settle(
            makeError('SHARDLOG_VIEW_BEHIND', `projection "${name}" was just placed on this node and is still catching up with the stream after ${timeoutMs} ms`, {
              projection: name,
              catchingUp: true,
              retryAfterMs: 1_000,
            }),
          ),
        timeoutMs,
      );
      state.liveWaiters.add(settle);
    });
  }

  private view(name: string): ViewState {
    projectionNamed(this.options.app, name);
    return this.views.get(name)!;
  }

  private post(message: ToProjector): void {
    this.worker.postMessage(message);
  }

  private call<K extends ProjectorOp>(call: ProjectorCall<K>): Promise<ProjectorValue<K>> {
    if (this.closing && call.op !== 'close') return Promise.reject(makeError('SHARDLOG_CLOSED', 'the runtime is closing'));
    if (this.worker.threadId === -1) return Promise.reject(makeError('SHARDLOG_CLOSED', 'the projector thread is restarting', { retryAfterMs: 1_000 }));
    const id = this.nextCallId++;
    return new Promise<ProjectorValue<K>>((resolve, reject) => {
      this.calls.set(id, { op: call.op, resolve: resolve, reject });
      this.post({ type: 'call', id, call });
    });
  }

  /** Throws SHARDLOG_UNKNOWN_PROJECTION unless the app defines this projection. */
  assertKnown(name: string): void {
    this.view(name);
  }

  /** The last applied seq of a partition in a projection. */
  checkpoint(name: string, partition: number): number {
    return this.view(name).checkpoints.get(partition) ?? 0;
  }

  /**
   * Resolves once the projection has applied `partition:seq`; rejects with SHARDLOG_VIEW_BEHIND
   * after `timeoutMs`, or SHARDLOG_PROJECTION_HALTED if it is halted short of it. `wholeWaitMs`
   * is the read's whole wait when this is its last part: the error names it, not the remainder.
   */
  waitFor(name: string, partition: number, seq: number, timeoutMs: number, wholeWaitMs = timeoutMs): Promise<void> {
    const state = this.view(name);
    if ((state.checkpoints.get(partition) ?? 0) >= seq) return Promise.resolve();
    if (state.halted) return Promise.reject(makeError('SHARDLOG_PROJECTION_HALTED', `projection "${name}" is halted on an event it could not apply`, { retryAfterMs: 5_000 }));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        state.waiters.remove(waiter);
        const checkpoint = state.checkpoints.get(partition) ?? 0;
        const behindBy = Math.max(seq, this.options.head(partition)) - checkpoint;
        reject(
          makeError('SHARDLOG_VIEW_BEHIND', `projection "${name}" is at ${partition}:${checkpoint}, ${seq - checkpoint} events short of ${partition}:${seq} after ${wholeWaitMs} ms`, {
            projection: name,
            position: `${partition}:${checkpoint}`,
            wanted: `${partition}:${seq}`,
            behindBy,
            retryAfterMs: 1_000,
          }),
        );
      }, timeoutMs);
      const waiter: PositionWaiter = {
        partition,
        seq,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      state.waiters.add(waiter);
    });
  }

  get(name: string, key: string): unknown {
    return this.view(name).reader.get(key);
  }

  query(name: string, field: string, value: string, limit: number, cursor: string | undefined): ViewPage {
    return this.view(name).reader.query(field, value, limit, cursor);
  }

  status(): Promise<ProjectionStatus[]> {
    return this.call({ op: 'status' });
  }

  async statusOf(name: string): Promise<ProjectionStatus> {
    this.view(name);
    const status = (await this.status()).find((candidate) => candidate.name === name);
    if (status === undefined) throw makeError('SHARDLOG_PROJECTION_MOVING', `projection "${name}" does not run on this node`, { projection: name, retryAfterMs: 1_000 });
    return status;
  }

  rebuild(name: string): Promise<RebuildStatus> {
    this.view(name);
    return this.call({ op: 'rebuild', name });
  }

  deadLetters(name: string, limit: number): Promise<DeadLetter[]> {
    this.view(name);
    return this.call({ op: 'dlq-list', name, limit });
  }

  retryDeadLetter(name: string, id: number): Promise<{ applied: true }> {
    this.view(name);
    return this.call({ op: 'dlq-retry', name, id });
  }

  skipDeadLetter(name: string, id: number): Promise<{ skipped: true }> {
    this.view(name);
    return this.call({ op: 'dlq-skip', name, id });
  }

  /** Stops the fold loop after its current step, closes the view files, then the thread. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.unsubscribe();
    if (this.worker.threadId === -1) {
      this.closing = true;
      return;
    }
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    await this.call({ op: 'close' }).catch(() => undefined);
    this.closing = true;
    const timer = setTimeout(() => void this.worker.terminate(), 10_000);
    await exited;
    clearTimeout(timer);
    for (const state of this.views.values()) {
      state.reader.close();
      state.waiters.rejectAll(makeError('SHARDLOG_CLOSED', 'the runtime is closing'));
    }
  }
}
