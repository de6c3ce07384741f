import { describe, expect, it } from 'vitest';
import { order } from '../../actors/orders/order.ts';
import { given, reject } from '../../runtime/index.ts';

const items = [
  { sku: 'tea', quantity: 2, unitPrice: 3.5 },
  { sku: 'cup', quantity: 1, unitPrice: 10 },
];
const placed = { type: 'OrderPlaced', data: { customerId: 'c1', items, total: 17 } } as const;

describe('order', () => {
  it('is placed with its total', () => {
    given(order).when('place', { customerId: 'c1', items }).then([placed]);
  });

  it('is placed once', () => {
    given(order, [placed]).when('place', { customerId: 'c1', items }).then(reject('order-already-placed'));
  });

  it('refuses an order with no items', () => {
    expect(() => given(order).when('place', { customerId: 'c1', items: [] }).then([])).toThrowError(expect.objectContaining({ code: 'SHARDLOG_INVALID_INPUT' }));
  });

  it('is cancelled once, and only after it was placed', () => {
    given(order).when('cancel', { reason: 'changed my mind' }).then(reject('order-not-placed'));
    given(order, [placed]).when('cancel', { reason: 'changed my mind' }).then([{ type: 'OrderCancelled', data: { reason: 'changed my mind' } }]);
    given(order, [placed, { type: 'OrderCancelled', data: { reason: 'x' } }]).when('cancel', { reason: 'again' }).then(reject('order-already-cancelled'));
  });
});
