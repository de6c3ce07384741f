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

  it('refuses quantities and prices that could make a total inexact or infinite', () => {
    expect(() => given(order).when('place', { customerId: 'c1', items: [{ sku: 'a', quantity: 2, unitPrice: 1e308 }] }).then([])).toThrowError(/too big|<=/i);
    expect(() => given(order).when('place', { customerId: 'c1', items: [{ sku: 'a', quantity: 1e7, unitPrice: 1 }] }).then([])).toThrowError(/too big|<=/i);
    const largest = Array.from({ length: 1_000 }, (_, index) => ({ sku: `s${index}`, quantity: 1e6, unitPrice: 1e6 }));
    given(order).when('place', { customerId: 'c1', items: largest }).then([{ type: 'OrderPlaced', data: { customerId: 'c1', items: largest, total: 1e15 } }]);
  });

  it('refuses blank names', () => {
    expect(() => given(order).when('place', { customerId: '   ', items }).then([])).toThrowError();
    expect(() => given(order).when('place', { customerId: 'c1', items: [{ sku: ' \t', quantity: 1, unitPrice: 1 }] }).then([])).toThrowError();
  });

  it('is cancelled once, and only after it was placed', () => {
    given(order).when('cancel', { reason: 'changed my mind' }).then(reject('order-not-placed'));
    given(order, [placed]).when('cancel', { reason: 'changed my mind' }).then([{ type: 'OrderCancelled', data: { reason: 'changed my mind' } }]);
    given(order, [placed, { type: 'OrderCancelled', data: { reason: 'x' } }]).when('cancel', { reason: 'again' }).then(reject('order-already-cancelled'));
  });
});
