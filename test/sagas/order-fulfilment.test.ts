import { describe, expect, it } from 'vitest';
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
