import { describe, expect, it } from 'vitest';
import app from '../../actors/app.ts';
import { createRuntime, type Runtime, type StoredEvent } from '../../runtime/index.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { runUntilKilled } from '../support/run-until-killed.ts';
import { sagasIdle } from '../support/sagas.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { makeTempDir } from '../support/temp-dir.ts';

const cleanup = cleanupAfterEach();
const child = new URL('../fixtures/saga-load-child.ts', import.meta.url).pathname;
const skus = ['tea', 'cup', 'rare'];
const restocked: Record<string, number> = { tea: 1_000_000, cup: 1_000_000, rare: 12 };

async function allEventsOf(runtime: Runtime, aggregate: string, id: string): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  for (;;) {
    const page = await runtime.events({ aggregate, id, after: events.length, limit: 1_000 });
    events.push(...page.events);
    if (page.events.length < 1_000) return events;
  }
}

describe('order sagas under kill -9', () => {
  it('end every order in exactly one outcome, with stock and payments adding up, however often the process dies', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    // Each round is killed at another moment of the flows in flight: after the place of some,
    // while others reserve, authorize, confirm or compensate.
    const rounds = [25, 60, 40];
    let acked: string[] = [];
    for (const [round, killAfter] of rounds.entries()) {
      const acks = await runUntilKilled(child, [temp.dir, String(round)], killAfter, { timeoutMs: 60_000 });
      acked = [...acked, ...acks.map(([id]) => id!)];
    }
    const runtime = await createRuntime({ app, dataDir: temp.dir, partitions: 8, shards: 2, logger: silentLogger });
    cleanup.push(() => runtime.close());
    await sagasIdle(runtime, 60_000);

    // Every order that was placed, acknowledged or not: ids are `<round>-<n>` from n = 0.
    const placed = new Map<string, { status: string; reason?: string; sku: string; quantity: number }>();
    for (const round of rounds.keys()) {
      for (let n = 0; ; n++) {
        const id = `${round}-${n}`;
        const { state, version } = await runtime.state({ aggregate: 'order', id });
        if (version === 0) {
          // Loops run concurrently: a gap of a few ids is possible, more means the round ended.
          if ((await Promise.all([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16].map((k) => runtime.state({ aggregate: 'order', id: `${round}-${n + k}` })))).every((next) => next.version === 0)) break;
          continue;
        }
        const order = state as { status: string; reason?: string };
        const line = (await allEventsOf(runtime, 'order', id))[0]!.data as { items: { sku: string; quantity: number }[] };
        placed.set(id, { status: order.status, ...(order.reason === undefined ? {} : { reason: order.reason }), sku: line.items[0]!.sku, quantity: line.items[0]!.quantity });
      }
    }
    for (const id of acked) expect(placed.has(id), `acknowledged order ${id} is in the log`).toBe(true);
    expect(placed.size).toBeGreaterThan(100);

    const outcomes = new Map<string, number>();
    for (const [id, order] of placed) {
      const outcome = order.status === 'confirmed' ? 'confirmed' : `cancelled:${order.reason}`;
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      expect(['confirmed', 'cancelled:out-of-stock', 'cancelled:payment-declined', 'cancelled:customer', 'cancelled:timeout'], id).toContain(outcome);
      const saga = await runtime.sagas.get('order-fulfilment', id);
      expect(saga, id).toMatchObject({ status: order.status === 'confirmed' ? 'completed' : order.reason === 'timeout' ? 'timed-out' : 'compensated', pending: { commands: [], timers: [] } });
      const payment = await runtime.state({ aggregate: 'payment', id });
      const paymentStatus = (payment.state as { status: string }).status;
      if (order.status === 'confirmed') expect(paymentStatus, id).toBe('authorized');
      else expect(['new', 'declined', 'refunded'], id).toContain(paymentStatus);
      const paymentEvents = await allEventsOf(runtime, 'payment', id);
      expect(paymentEvents.filter((event) => event.type === 'PaymentAuthorized').length, id).toBeLessThanOrEqual(1);
    }
    expect(outcomes.get('confirmed')).toBeGreaterThan(0);
    expect(outcomes.get('cancelled:out-of-stock')).toBeGreaterThan(0);
    expect(outcomes.get('cancelled:payment-declined')).toBeGreaterThan(0);

    for (const sku of skus) {
      const { state } = await runtime.state({ aggregate: 'inventory', id: sku });
      const stock = state as { available: number; reserved: number; reservations: Record<string, number> };
      const confirmed = [...placed].filter(([, order]) => order.sku === sku && order.status === 'confirmed');
      expect(stock.available + stock.reserved, sku).toBe(restocked[sku]);
      expect(stock.reserved, sku).toBe(confirmed.reduce((sum, [, order]) => sum + order.quantity, 0));
      expect(Object.keys(stock.reservations).sort(), sku).toEqual(confirmed.map(([id]) => id).sort());
      const reservations = (await allEventsOf(runtime, 'inventory', sku)).filter((event) => event.type === 'StockReserved').map((event) => (event.data as { orderId: string }).orderId);
      expect(new Set(reservations).size, `${sku}: each order reserved once`).toBe(reservations.length);
    }
  });
});
