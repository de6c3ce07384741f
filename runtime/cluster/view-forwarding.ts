import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { isConnectionClosed, isNoResponders } from '../bus/nats-errors.ts';
import { decodeWire, encodeWire } from '../codec.ts';
import { deserializeError, makeError, serializeError, ShardlogError, type SerializedError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { RequestAnswerer } from './request-answerer.ts';
import type { ProjectionStatus } from '../projection/messages.ts';
import type { ViewCall, ViewOp, ViewValue, Views } from '../view-calls.ts';
import type { ChangeSignal } from './change-signal.ts';

/** What view forwarding needs of this node's projector. */
export interface LocalViews {
  /** The app's projections. */
  readonly names: readonly string[];
  /** Whether this node runs the projection now. */
  runs(name: string): boolean;
  /** Run exactly these projections here from now on. */
  place(names: readonly string[]): void;
  answer<K extends ViewOp>(name: string, call: ViewCall<K>): Promise<ViewValue<K>>;
}

export interface ViewForwardingOptions {
  nodeId: string;
  nc: NatsConnection;
  prefix: string;
  logger: Logger;
  /** The node a projection is placed on, as this node last saw it. */
  nodeOf: (projection: string) => string | undefined;
  changes: ChangeSignal;
  /** How long a call waits for a projection that no node runs right now (default 5,000 ms). */
  moveWaitMs?: number | undefined;
}

type ViewReply = { ok: true; result: unknown } | { ok: false; error: SerializedError; notHere?: true };

/** What a forwarded call may take beyond its own read wait: the hop and a busy answerer. */
const forwardMarginMs = 5_000;

/**
 * Answers view calls (reads, status, rebuild, dead letters) on the node that runs the
 * projection: here, or forwarded over NATS to `<prefix>.view.<projection>`, which only that
 * node subscribes to. While a projection moves (no node answers yet, or the answerer no longer
 * runs it), a call waits, bounded, then fails with SHARDLOG_PROJECTION_MOVING.
 */
export class ViewForwarding implements Views {
  private local: LocalViews | undefined;
  private readonly listening = new Map<string, Subscription>();
  private readonly answerer: RequestAnswerer;
  private stopped = false;

  constructor(private readonly options: ViewForwardingOptions) {
    this.answerer = new RequestAnswerer(options.nc, options.logger);
  }

  /** The projector of this node, once it runs; `placedHere` is what it runs now. */
  attach(local: LocalViews, placedHere: readonly string[]): void {
    this.local = local;
    this.runHere(placedHere);
  }

  /** The projections placed on this node changed: run them and answer calls for them. */
  runHere(names: readonly string[]): void {
    const local = this.local;
    if (local === undefined || this.stopped) return;
    const wanted = new Set(names.filter((name) => local.names.includes(name)));
    local.place([...wanted]);
    for (const [name, subscription] of this.listening) {
      if (wanted.has(name)) continue;
      subscription.unsubscribe();
      this.listening.delete(name);
    }
    for (const name of wanted) if (!this.listening.has(name)) this.listening.set(name, this.listen(name));
  }

  async call<K extends ViewOp>(projection: string, call: ViewCall<K>): Promise<ViewValue<K>> {
    const local = this.local;
    if (local === undefined || !local.names.includes(projection)) {
      throw makeError('SHARDLOG_UNKNOWN_PROJECTION', `unknown projection "${projection.slice(0, 80)}"`, { projection: projection.slice(0, 80) });
    }
    const readWaitMs = 'waitMs' in call ? call.waitMs : 0;
    const deadline = Date.now() + (this.options.moveWaitMs ?? 5_000);
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) throw makeError('SHARDLOG_CLOSED', 'the node is leaving the cluster');
      const node = this.options.nodeOf(projection);
      if (local.runs(projection)) {
        const answered = await this.answerHere(local, projection, call).then(
          (value) => ({ value }),
          (error: unknown) => {
            // It moved away while the call waited here: ask its new node.
            if (error instanceof ShardlogError && error.code === 'SHARDLOG_PROJECTION_MOVING') return undefined;
            throw error;
          },
        );
        if (answered !== undefined) return answered.value;
      } else if (node !== undefined && node !== this.options.nodeId) {
        const reply = await this.forward(projection, call, readWaitMs);
        if (reply !== undefined) return reply.value;
      }
      if (Date.now() >= deadline) {
        throw makeError('SHARDLOG_PROJECTION_MOVING', `projection "${projection}" is moving between nodes (placed on ${node ?? 'no node yet'}); retry shortly`, {
          projection,
          retryAfterMs: 1_000,
        });
      }
      await this.options.changes.wait(Math.min(50 * (attempt + 1), 250));
    }
  }

  async statuses(): Promise<ProjectionStatus[]> {
    const names = this.local?.names ?? [];
    return Promise.all(names.map((name) => this.call(name, { op: 'status' })));
  }

  private async answerHere<K extends ViewOp>(local: LocalViews, projection: string, call: ViewCall<K>): Promise<ViewValue<K>> {
    const value = await local.answer(projection, call);
    return (call.op === 'status' ? { ...(value as ProjectionStatus), node: this.options.nodeId } : value) as ViewValue<K>;
  }

  /** The answer of the node that runs the projection, or undefined if none does right now (try again). */
  private async forward(projection: string, call: ViewCall, readWaitMs: number): Promise<{ value: unknown } | undefined> {
    const timeout = readWaitMs + forwardMarginMs;
    let data: Uint8Array;
    try {
      data = (await this.options.nc.request(`${this.options.prefix}.view.${projection}`, encodeWire(call), { timeout })).data;
    } catch (error) {
      // Nobody subscribes: the node it was placed on is gone, or the new one has not started it yet.
      if (isNoResponders(error)) return undefined;
      if (isConnectionClosed(error)) throw makeError('SHARDLOG_CLOSED', 'the node is leaving the cluster', {}, error);
      throw makeError('SHARDLOG_PROJECTION_MOVING', `the node that runs projection "${projection}" did not answer within ${timeout} ms`, { projection, retryAfterMs: 1_000 }, error);
    }
    const reply = decodeWire<ViewReply>(data);
    if (reply.ok) return { value: reply.result };
    if (reply.notHere === true) return undefined;
    throw deserializeError(reply.error);
  }

  private listen(projection: string): Subscription {
    return this.answerer.answer(`${this.options.prefix}.view.${projection}`, (data) => this.serveForwarded(projection, data), {
      details: { projection },
      subscriptionFailed: 'the subscription to forwarded view calls failed',
      answerFailed: 'could not answer a forwarded view call',
    });
  }


  private async serveForwarded(projection: string, data: Uint8Array): Promise<Uint8Array> {
    const local = this.local;
    const notHere = (): Uint8Array =>
      encodeWire({
        ok: false,
        notHere: true,
        error: serializeError(makeError('SHARDLOG_PROJECTION_MOVING', `node ${this.options.nodeId} does not run projection "${projection}"`)),
      } satisfies ViewReply);
    if (local === undefined || this.stopped || !local.runs(projection)) return notHere();
    try {
      return encodeWire({ ok: true, result: await this.answerHere(local, projection, decodeWire<ViewCall>(data)) } satisfies ViewReply);
    } catch (error) {
      if (error instanceof ShardlogError && error.code === 'SHARDLOG_PROJECTION_MOVING') return notHere();
      const shardlogError = error instanceof ShardlogError ? error : makeError('SHARDLOG_INTERNAL', error instanceof Error ? error.message : String(error));
      return encodeWire({ ok: false, error: serializeError(shardlogError) } satisfies ViewReply);
    }
  }

  /** Answers no more calls: new ones fail with SHARDLOG_CLOSED, forwarded ones are told "not here". */
  stop(): void {
    this.stopped = true;
    for (const subscription of this.listening.values()) subscription.unsubscribe();
    this.listening.clear();
  }

  /** Waits (bounded) until every forwarded call already taken has its answer. */
  finishAnswering(waitMs: number): Promise<void> {
    return this.answerer.finish(waitMs);
  }
}
