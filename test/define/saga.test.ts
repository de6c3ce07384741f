import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { orderFulfilment } from '../../actors/sagas/order-fulfilment.ts';
import { account } from '../../actors/bank/account.ts';
import { defineSaga, givenSaga } from '../../runtime/index.ts';
import { newInstance, sagaActorOf, stepSaga, type DeliveredEvent } from '../../runtime/define/saga-actor.ts';
import { Rejection } from '../../runtime/define/rejection.ts';

const items = [{ sku: 'tea', quantity: 2, unitPrice: 5 }];
const placed = { type: 'order.OrderPlaced', data: { customerId: 'c-1', items, total: 10 } } as const;
const reserved = { type: 'inventory.StockReserved', id: 'tea', data: { orderId: 'o-1', quantity: 2 } } as const;
const authorized = { type: 'payment.PaymentAuthorized', data: { customerId: 'c-1', amount: 10 } } as const;
const spec = { correlationId: 'o-1' };

describe('order-fulfilment (given/when/then)', () => {
  it('reserves every line when the order is placed, with the timeout set', () => {
    givenSaga(orderFulfilment, [], spec)
      .when({ type: 'order.OrderPlaced', data: { customerId: 'c-1', items: [...items, { sku: 'cup', quantity: 1, unitPrice: 0 }, { sku: 'tea', quantity: 1, unitPrice: 5 }], total: 15 } })
      .then({
        send: [
          { aggregate: 'inventory', id: 'tea', command: 'reserve', input: { orderId: 'o-1', quantity: 3 } },
          { aggregate: 'inventory', id: 'cup', command: 'reserve', input: { orderId: 'o-1', quantity: 1 } },
        ],
        timers: { timeout: 30_000 },
        status: 'running',
      });
  });

  it('authorizes once every line is reserved, then confirms', () => {
    givenSaga(orderFulfilment, [placed], spec).when(reserved).then({ send: [{ aggregate: 'payment', id: 'o-1', command: 'authorize', input: { customerId: 'c-1', amount: 10 } }] });
    givenSaga(orderFulfilment, [placed, reserved], spec).when(authorized).then({ send: [{ aggregate: 'order', id: 'o-1', command: 'confirm', input: {} }] });
    givenSaga(orderFulfilment, [placed, reserved, authorized], spec).when({ type: 'order.OrderConfirmed', data: {} }).then({ finish: 'completed' });
  });

  it('releases and cancels when a line is out of stock', () => {
    const twoLines = { type: 'order.OrderPlaced', data: { customerId: 'c-1', items: [...items, { sku: 'cup', quantity: 1, unitPrice: 0 }], total: 10 } } as const;
    // One line still in flight: nothing to undo yet.
    givenSaga(orderFulfilment, [twoLines], spec).when({ rejected: { aggregate: 'inventory', command: 'reserve', id: 'cup', code: 'out-of-stock' } }).then({ status: 'running' });
    givenSaga(orderFulfilment, [twoLines, { rejected: { aggregate: 'inventory', command: 'reserve', id: 'cup', code: 'out-of-stock' } }], spec)
      .when(reserved)
      .then({
        send: [
          { aggregate: 'inventory', id: 'tea', command: 'release', input: { orderId: 'o-1' } },
          { aggregate: 'order', id: 'o-1', command: 'cancel', input: { reason: 'out-of-stock' } },
        ],
        finish: 'compensated',
      });
  });

  it('undoes a declined payment', () => {
    givenSaga(orderFulfilment, [placed, reserved], spec)
      .when({ type: 'payment.PaymentDeclined', data: { customerId: 'c-1', amount: 10, reason: 'limit' } })
      .then({
        send: [
          { aggregate: 'inventory', id: 'tea', command: 'release', input: { orderId: 'o-1' } },
          { aggregate: 'order', id: 'o-1', command: 'cancel', input: { reason: 'payment-declined' } },
        ],
        finish: 'compensated',
      });
  });

  it('times out: waits for the authorization in flight, then refunds it', () => {
    givenSaga(orderFulfilment, [placed, reserved], spec).when({ timer: 'timeout' }).then({ status: 'running' });
    givenSaga(orderFulfilment, [placed, reserved, { timer: 'timeout' }], spec)
      .when(authorized)
      .then({
        send: [
          { aggregate: 'inventory', id: 'tea', command: 'release', input: { orderId: 'o-1' } },
          { aggregate: 'payment', id: 'o-1', command: 'refund', input: {} },
          { aggregate: 'order', id: 'o-1', command: 'cancel', input: { reason: 'timeout' } },
        ],
        finish: 'timed-out',
      });
  });

  it('compensates a customer cancel, and a confirm the cancel beat', () => {
    givenSaga(orderFulfilment, [placed, reserved, authorized], spec)
      .when({ rejected: { aggregate: 'order', command: 'confirm', code: 'order-already-cancelled' } })
      .then({
        send: [
          { aggregate: 'inventory', id: 'tea', command: 'release', input: { orderId: 'o-1' } },
          { aggregate: 'payment', id: 'o-1', command: 'refund', input: {} },
        ],
        finish: 'compensated',
      });
    givenSaga(orderFulfilment, [placed], spec)
      .when({ type: 'order.OrderCancelled', data: { reason: 'changed my mind' } })
      .then({ status: 'running' });
  });

  it('exposes its state for assertions', () => {
    expect(givenSaga(orderFulfilment, [placed], spec).when(reserved).state()).toMatchObject({ payment: 'authorizing', lines: { tea: { stock: 'reserved' } } });
  });
});

const ctx = (now = 1_000) => ({ id: 'a-1', commandId: 'x', now: new Date(now), metadata: {} });
const opened = (seq: number, partition = 3): DeliveredEvent => ({ partition, seq, aggregate: 'account', id: 'a-1', type: 'AccountOpened', version: 1, data: { owner: 'ada' }, metadata: {}, recordedAt: 0 });

describe('a saga instance', () => {
  const welcome = defineSaga({
    name: 'welcome',
    aggregates: [account],
    startedBy: ['account.AccountOpened'],
    correlate: (event) => event.id,
    initialState: () => ({ greeted: 0 }),
    on: {
      'account.AccountOpened': (state, event) => ({ state: { greeted: state.greeted + 1 }, send: [{ aggregate: 'account', id: event.id, command: 'deposit', input: { amount: 5 } }], timers: { set: { nudge: 100 } } }),
      'account.Deposited': (state) => (state.greeted > 0 ? { finish: 'completed' } : undefined),
    },
  });

  it('ignores an event it has seen, however it is delivered again', () => {
    const first = stepSaga(welcome, newInstance(), 'react', { events: [opened(7)] }, ctx());
    expect(first).not.toBeInstanceOf(Rejection);
    const again = stepSaga(welcome, first as never, 'react', { events: [opened(7), opened(6)] }, ctx());
    expect(again).toBe(first);
  });

  it('numbers its commands and settles a step once the event it caused arrives', () => {
    const started = stepSaga(welcome, newInstance(), 'react', { events: [opened(1)] }, ctx()) as ReturnType<typeof newInstance>;
    expect(started.pending).toEqual([{ step: 1, aggregate: 'account', id: 'a-1', command: 'deposit', input: { amount: 5 } }]);
    expect(started.timers).toEqual({ nudge: 1_100 });
    const deposited: DeliveredEvent = { ...opened(2), type: 'Deposited', data: { amount: 5 }, step: 1 };
    const finished = stepSaga(welcome, started, 'react', { events: [deposited] }, ctx()) as ReturnType<typeof newInstance>;
    expect(finished).toMatchObject({ status: 'completed', pending: [], timers: {} });
    // Finished: it reacts to nothing more.
    expect(stepSaga(welcome, finished, 'react', { events: [opened(9, 4)] }, ctx())).toBe(finished);
  });

  it('turns a throwing handler or a command its target refuses into a rejection, keeping nothing', () => {
    const broken = defineSaga({ ...welcome, name: 'broken', on: { 'account.AccountOpened': () => { throw new Error('boom'); } } });
    expect(stepSaga(broken, newInstance(), 'react', { events: [opened(1)] }, ctx())).toMatchObject({ code: 'saga-handler-failed', detail: expect.stringContaining('boom') as string });
    const invalid = defineSaga({ ...welcome, name: 'invalid', on: { 'account.AccountOpened': (_state, event) => ({ send: [{ aggregate: 'account', id: event.id, command: 'deposit', input: { amount: -1 } }] }) } });
    expect(stepSaga(invalid, newInstance(), 'react', { events: [opened(1)] }, ctx())).toMatchObject({ code: 'saga-handler-failed', detail: expect.stringContaining('amount') as string });
  });

  it('parks an input, then retries it with the current code or skips it', () => {
    const parked = stepSaga(welcome, newInstance(), 'park', { kind: 'react', input: { events: [opened(1)] }, error: 'boom' }, ctx()) as ReturnType<typeof newInstance>;
    expect(parked).toMatchObject({ status: 'running', pending: [], seen: { 3: 1 } });
    expect(parked.parked).toHaveLength(1);
    const retried = stepSaga(welcome, parked, 'retry', {}, ctx()) as ReturnType<typeof newInstance>;
    expect(retried).toMatchObject({ parked: [], pending: [{ step: 1, command: 'deposit' }], state: { greeted: 1 } });
    expect(stepSaga(welcome, parked, 'skip', {}, ctx())).toMatchObject({ parked: [], pending: [], state: { greeted: 0 } });
  });

  it('fires a timer once, only if it still stands', () => {
    const started = stepSaga(welcome, newInstance(), 'react', { events: [opened(1)] }, ctx()) as ReturnType<typeof newInstance>;
    const fired = stepSaga(welcome, started, 'fire', { name: 'nudge', due: 1_100 }, ctx(1_100)) as ReturnType<typeof newInstance>;
    expect(fired.timers).toEqual({});
    expect(stepSaga(welcome, fired, 'fire', { name: 'nudge', due: 1_100 }, ctx(1_200))).toBe(fired);
    expect(stepSaga(welcome, started, 'fire', { name: 'nudge', due: 999 }, ctx(1_200))).toBe(started);
  });

  it('is refused at definition when it names what its aggregates lack', () => {
    expect(() => defineSaga({ ...welcome, name: 'bad', startedBy: ['account.Nope' as never] })).toThrow(/Nope/);
    expect(() => defineSaga({ ...welcome, name: 'Bad' })).toThrow(/lower-case/);
    expect(sagaActorOf(welcome).name).toBe('welcome');
    expect(z.string().safeParse('x').success).toBe(true);
  });
});
