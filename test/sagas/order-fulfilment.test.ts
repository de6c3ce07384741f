import { describe, expect, it, vi } from 'vitest';
import { RejectedError } from '../../runtime/index.ts';
import { ShardSet } from '../../runtime/host/shard-set.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { startBank } from '../support/runtime.ts';
import { sagaDone } from '../support/sagas.ts';

const cleanup = cleanupAfterEach();

async function started() {
  const bank = await startBank();
  cleanup.push(bank.stop);
  return bank.runtime;
}

describe('order-fulfilment, embedded', () => {
  it('reserves, authorizes and confirms an order', async () => {
    const runtime = await started();
    await runtime.dispatch({ aggregate: 'inventory', id: 'tea', command: 'restock', input: { quantity: 10 } });
    await runtime.dispatch({ aggregate: 'order', id: 'o-1', command: 'place', input: { customerId: 'c-1', items: [{ sku: 'tea', quantity: 3, unitPrice: 5 }] } });
    const saga = await sagaDone(runtime, 'order-fulfilment', 'o-1');
    expect(saga.status).toBe('completed');
    expect((await runtime.state({ aggregate: 'order', id: 'o-1' })).state).toMatchObject({ status: 'confirmed' });
    expect((await runtime.state({ aggregate: 'inventory', id: 'tea' })).state).toMatchObject({ available: 7, reserved: 3 });
    expect((await runtime.state({ aggregate: 'payment', id: 'o-1' })).state).toMatchObject({ status: 'authorized', amount: 15 });
  });

  it('releases what it reserved and cancels when a line is out of stock', async () => {
    const runtime = await started();
    await runtime.dispatch({ aggregate: 'inventory', id: 'tea', command: 'restock', input: { quantity: 10 } });
    await runtime.dispatch({ aggregate: 'order', id: 'o-2', command: 'place', input: { customerId: 'c-1', items: [{ sku: 'tea', quantity: 3, unitPrice: 5 }, { sku: 'cup', quantity: 1, unitPrice: 2 }] } });
    const saga = await sagaDone(runtime, 'order-fulfilment', 'o-2');
    expect(saga.status).toBe('compensated');
    expect((await runtime.state({ aggregate: 'order', id: 'o-2' })).state).toMatchObject({ status: 'cancelled', reason: 'out-of-stock' });
    await sagaDone(runtime, 'order-fulfilment', 'o-2');
    expect((await runtime.state({ aggregate: 'inventory', id: 'tea' })).state).toMatchObject({ available: 10, reserved: 0 });
  });

  it('refuses a payment over the credit limit and undoes the order', async () => {
    const runtime = await started();
    await runtime.dispatch({ aggregate: 'inventory', id: 'gold', command: 'restock', input: { quantity: 5 } });
    await runtime.dispatch({ aggregate: 'order', id: 'o-3', command: 'place', input: { customerId: 'c-1', items: [{ sku: 'gold', quantity: 2, unitPrice: 600 }] } });
    const saga = await sagaDone(runtime, 'order-fulfilment', 'o-3');
    expect(saga.status).toBe('compensated');
    expect((await runtime.state({ aggregate: 'order', id: 'o-3' })).state).toMatchObject({ status: 'cancelled', reason: 'payment-declined' });
    expect((await runtime.state({ aggregate: 'payment', id: 'o-3' })).state).toMatchObject({ status: 'declined' });
    expect((await runtime.state({ aggregate: 'inventory', id: 'gold' })).state).toMatchObject({ available: 5, reserved: 0 });
  });
});

describe('order sagas under contention', () => {
  it('never oversell the last units to concurrent orders', async () => {
    const runtime = await started();
    await runtime.dispatch({ aggregate: 'inventory', id: 'last', command: 'restock', input: { quantity: 5 } });
    const ids = Array.from({ length: 20 }, (_, index) => `o-${index}`);
    await Promise.all(ids.map((id) => runtime.dispatch({ aggregate: 'order', id, command: 'place', input: { customerId: 'c', items: [{ sku: 'last', quantity: 1, unitPrice: 1 }] } })));
    const outcomes: string[] = [];
    for (const id of ids) {
      const saga = await sagaDone(runtime, 'order-fulfilment', id);
      const order = (await runtime.state({ aggregate: 'order', id })).state as { status: string; reason?: string };
      outcomes.push(order.status === 'confirmed' ? 'confirmed' : `cancelled:${order.reason}`);
      expect(saga.status).toBe(order.status === 'confirmed' ? 'completed' : 'compensated');
      expect(((await runtime.state({ aggregate: 'payment', id })).state as { status: string }).status).toBe(order.status === 'confirmed' ? 'authorized' : 'new');
    }
    expect(outcomes.filter((outcome) => outcome === 'confirmed')).toHaveLength(5);
    expect(outcomes.filter((outcome) => outcome === 'cancelled:out-of-stock')).toHaveLength(15);
    expect((await runtime.state({ aggregate: 'inventory', id: 'last' })).state).toMatchObject({ available: 0, reserved: 5 });
  });

  it('end consistent when the customer cancels as the saga confirms', async () => {
    const runtime = await started();
    await runtime.dispatch({ aggregate: 'inventory', id: 'tea', command: 'restock', input: { quantity: 1_000 } });
    const ids = Array.from({ length: 30 }, (_, index) => `o-${index}`);
    const cancels = await Promise.all(
      ids.map(async (id) => {
        await runtime.dispatch({ aggregate: 'order', id, command: 'place', input: { customerId: 'c', items: [{ sku: 'tea', quantity: 2, unitPrice: 1 }] } });
        // Later and later cancels: some land before the reservation, some during, some after the confirm.
        for (let wait = 0; wait < Number(id.slice(2)) % 6; wait++) await new Promise((resolve) => setImmediate(resolve));
        return runtime.dispatch({ aggregate: 'order', id, command: 'cancel', input: { reason: 'customer' } }).then(
          () => 'cancelled',
          (error: unknown) => {
            if (error instanceof RejectedError && error.reason === 'order-already-confirmed') return 'too-late';
            throw error;
          },
        );
      }),
    );
    let confirmed = 0;
    for (const [index, id] of ids.entries()) {
      const saga = await sagaDone(runtime, 'order-fulfilment', id);
      const order = (await runtime.state({ aggregate: 'order', id })).state as { status: string };
      const payment = ((await runtime.state({ aggregate: 'payment', id })).state as { status: string }).status;
      if (cancels[index] === 'too-late') {
        expect(order.status).toBe('confirmed');
        expect(saga.status).toBe('completed');
        expect(payment).toBe('authorized');
        confirmed += 1;
      } else {
        expect(order.status).toBe('cancelled');
        expect(saga.status).toBe('compensated');
        expect(['new', 'refunded']).toContain(payment);
      }
    }
    expect((await runtime.state({ aggregate: 'inventory', id: 'tea' })).state).toMatchObject({ available: 1_000 - 2 * confirmed, reserved: 2 * confirmed });
  });

  it('get their events from the commits, with the deposits the shards do not return in between', async () => {
    // Shards return only the events of aggregates a saga uses; the router still sees every
    // commit's range, so it delivers from what commits returned and never reads the log back.
    const requestShard = vi.spyOn(ShardSet.prototype, 'requestShard');
    cleanup.push(() => requestShard.mockRestore());
    const runtime = await started();
    await Promise.all(Array.from({ length: 16 }, (_, index) => runtime.dispatch({ aggregate: 'account', id: `a-${index}`, command: 'open', input: { owner: 'o' } })));
    await runtime.dispatch({ aggregate: 'inventory', id: 'tea', command: 'restock', input: { quantity: 1_000 } });
    const ids = Array.from({ length: 40 }, (_, index) => `o-${index}`);
    await Promise.all(
      ids.map(async (id, index) => {
        await runtime.dispatch({ aggregate: 'account', id: `a-${index % 16}`, command: 'deposit', input: { amount: 1 } });
        await runtime.dispatch({ aggregate: 'order', id, command: 'place', input: { customerId: 'c', items: [{ sku: 'tea', quantity: 1, unitPrice: 1 }] } });
        await runtime.dispatch({ aggregate: 'account', id: `a-${(index + 5) % 16}`, command: 'deposit', input: { amount: 1 } });
      }),
    );
    for (const id of ids) expect((await sagaDone(runtime, 'order-fulfilment', id)).status).toBe('completed');
    const readBacks = requestShard.mock.calls.filter(([, request]) => request.type === 'saga-deliveries' && request.read.length > 0);
    expect(readBacks).toEqual([]);
    expect((await runtime.state({ aggregate: 'inventory', id: 'tea' })).state).toMatchObject({ available: 960, reserved: 40 });
  });
});
