/**
 * `npm run bench -- sagas`: the order-fulfilment saga of the example app, in-process, fsync.
 * A flow is `order.place` → reserve → authorize → confirm, five commands and four saga
 * reactions; it counts as done when its saga instance finishes (the commit right after the
 * order's confirmation reaches it), seen in the batch reports (`onBatch`), so nothing polls.
 * Beside it, in the same run: the plain single-command rate (deposits, same in-flight count),
 * the flow at 50% of its maximum in an open loop, and the flow with the JetStream bus.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import app from '../actors/app.ts';
import { createRuntime, type BatchReport, type Runtime } from '../runtime/index.ts';
import { startNatsServer } from '../test/support/nats-server.ts';
import { round } from './support/latency.ts';
import { closedLoop, openLoop, type LoadResult } from './support/load.ts';
import { envNumber, report, type ResultRow } from './support/results.ts';

const inFlight = 64;
const accounts = 1_000;
const skus = 200;
const durationMs = envNumber('BENCH_SECONDS', 10) * 1_000;
const warmupMs = Math.min(3_000, durationMs / 3);
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Resolves each order's wait when its saga instance finishes. */
class FlowEnds {
  private readonly waiting = new Map<string, { resolve: () => void; reject: (error: Error) => void }>();
  readonly outcomes = new Map<string, number>();

  readonly onBatch = (batch: BatchReport): void => {
    for (const activity of batch.sagas ?? []) {
      if (activity.to === 'running' || activity.to === 'new' || activity.from === activity.to) continue;
      this.outcomes.set(activity.to, (this.outcomes.get(activity.to) ?? 0) + 1);
      const orderId = activity.stream.slice('order-fulfilment/'.length);
      const waiter = this.waiting.get(orderId);
      this.waiting.delete(orderId);
      if (activity.to === 'completed') waiter?.resolve();
      else waiter?.reject(new Error(`order ${orderId} ended ${activity.to}`));
    }
  };

  wait(orderId: string): Promise<void> {
    return new Promise((resolve, reject) => this.waiting.set(orderId, { resolve, reject }));
  }
}

async function withRuntime<T>(options: { nats?: string; onBatch?: (batch: BatchReport) => void }, use: (runtime: Runtime<typeof app>) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'shardlog-bench-sagas-'));
  const runtime = await createRuntime({
    app,
    dataDir: dir,
    durability: 'fsync',
    logger: quiet,
    ...(options.nats === undefined ? {} : { nats: { servers: options.nats } }),
    ...(options.onBatch === undefined ? {} : { onBatch: options.onBatch }),
  });
  try {
    return await use(runtime);
  } finally {
    await runtime.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function row(name: string, result: LoadResult, extra: Record<string, unknown> = {}): ResultRow {
  return { name, opsPerSec: round(result.opsPerSec, 0), ...result.latencies.summary(), failures: result.failures, ...extra };
}

async function singleCommands(): Promise<ResultRow> {
  return withRuntime({}, async (runtime) => {
    await Promise.all(Array.from({ length: accounts }, (_, id) => runtime.dispatch({ aggregate: 'account', id: `acc-${id}`, command: 'open', input: { owner: 'bench' } })));
    const deposit = () => runtime.dispatch({ aggregate: 'account', id: `acc-${Math.floor(Math.random() * accounts)}`, command: 'deposit', input: { amount: 1 } });
    return row(`single commands: deposits, ${inFlight} in flight (fsync)`, await closedLoop(deposit, { inFlight, warmupMs, durationMs }));
  });
}

/** Flows closed-loop, then (embedded only) open-loop at half the rate reached. */
async function flows(bus: 'embedded' | 'jetstream', nats?: string): Promise<ResultRow[]> {
  const ends = new FlowEnds();
  return withRuntime({ onBatch: ends.onBatch, ...(nats === undefined ? {} : { nats }) }, async (runtime) => {
    await Promise.all(Array.from({ length: skus }, (_, sku) => runtime.dispatch({ aggregate: 'inventory', id: `sku-${sku}`, command: 'restock', input: { quantity: 1_000_000_000 } })));
    let orders = 0;
    const flow = async () => {
      const id = `o-${orders++}`;
      const done = ends.wait(id);
      await runtime.dispatch({ aggregate: 'order', id, command: 'place', input: { customerId: `c-${orders % 100}`, items: [{ sku: `sku-${orders % skus}`, quantity: 1, unitPrice: 10 }] } });
      await done;
    };
    const rows: ResultRow[] = [];
    const closed = await closedLoop(flow, { inFlight, warmupMs, durationMs });
    rows.push(row(`order flows (${bus}), ${inFlight} in flight: place → saga completed`, closed));
    if (bus === 'embedded') {
      const ratePerSec = Math.max(1, Math.round(closed.opsPerSec / 2));
      const open = await openLoop(flow, { ratePerSec, durationMs: Math.max(3_000, durationMs / 2) });
      rows.push(row(`order flows (${bus}) open loop at 50% of max (${ratePerSec}/s)`, open, { dropped: open.dropped }));
    }
    const completed = ends.outcomes.get('completed') ?? 0;
    if (completed !== [...ends.outcomes.values()].reduce((sum, count) => sum + count, 0)) throw new Error(`some flows did not complete: ${JSON.stringify([...ends.outcomes])}`);
    const confirmed = (await runtime.state({ aggregate: 'order', id: 'o-0' })).state as { status: string };
    if (confirmed.status !== 'confirmed') throw new Error(`order o-0 is ${confirmed.status}, not confirmed`);
    return rows;
  });
}

export async function runSagas(): Promise<void> {
  const single = await singleCommands();
  const embedded = await flows('embedded');
  const nats = await startNatsServer();
  let jetstream: ResultRow[];
  try {
    jetstream = await flows('jetstream', nats.url);
  } finally {
    await nats.stop();
  }
  const closed = embedded[0]!;
  const open = embedded[1]!;
  report('sagas', [single, ...embedded, ...jetstream], {
    ratios: {
      flows_vs_single_commands: round(closed.opsPerSec / single.opsPerSec, 3),
      target_flows_vs_single_commands: round(1 / 6, 3),
      open_loop_p99_ms: open.p99Ms,
      target_open_loop_p99_ms: 50,
      jetstream_vs_embedded_flows: round(jetstream[0]!.opsPerSec / closed.opsPerSec, 3),
    },
  });
}
