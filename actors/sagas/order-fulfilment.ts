import { defineSaga, type SagaCommand, type SagaReaction } from '../../runtime/index.ts';
import { inventory } from '../inventory/inventory.ts';
import { order } from '../orders/order.ts';
import { payment } from '../payment/payment.ts';

type Aggregates = readonly [typeof order, typeof inventory, typeof payment];
type Failure = 'out-of-stock' | 'payment-declined' | 'timeout' | 'customer-cancelled';

export interface FulfilmentState {
  orderId: string;
  customerId: string;
  total: number;
  /** Per SKU: what the order needs and where its reservation stands. */
  lines: Record<string, { quantity: number; stock: 'reserving' | 'reserved' | 'refused' | 'releasing' }>;
  payment: 'none' | 'authorizing' | 'authorized' | 'declined' | 'refunding';
  order: 'placed' | 'confirming' | 'confirmed' | 'cancelling' | 'cancelled';
  /** Why the order is being undone, once it is. */
  failure: Failure | null;
}

const defaultTimeoutMs = 30_000;

function timeoutFromEnvironment(): number {
  const raw = process.env.SHARDLOG_SAGA_TIMEOUT_MS;
  if (raw === undefined || raw === '') return defaultTimeoutMs;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`SHARDLOG_SAGA_TIMEOUT_MS must be a positive integer of milliseconds, got "${raw}"`);
  return value;
}

/**
 * Sends what the state calls for next, or finishes. Going forward: reserve every line →
 * authorize the payment → confirm the order. Once something failed: wait for every command
 * whose outcome is still open (a late reservation must be released, a late authorization
 * refunded, a confirm in flight may yet succeed), then release, refund and cancel.
 */
function progress(state: FulfilmentState): SagaReaction<FulfilmentState, Aggregates> {
  const next: FulfilmentState = { ...state, lines: { ...state.lines } };
  const send: SagaCommand<Aggregates>[] = [];
  const lines = Object.values(next.lines);
  if (next.order === 'confirmed') return { state: next, finish: 'completed' };
  if (next.failure === null) {
    if (lines.every((line) => line.stock === 'reserved') && next.payment === 'none') {
      next.payment = 'authorizing';
      send.push({ aggregate: 'payment', id: next.orderId, command: 'authorize', input: { customerId: next.customerId, amount: next.total } });
    }
    if (next.payment === 'authorized' && next.order === 'placed') {
      next.order = 'confirming';
      send.push({ aggregate: 'order', id: next.orderId, command: 'confirm', input: {} });
    }
    return { state: next, send };
  }
  const waiting = lines.some((line) => line.stock === 'reserving') || next.payment === 'authorizing' || next.order === 'confirming';
  if (waiting) return { state: next };
  for (const [sku, line] of Object.entries(next.lines)) {
    if (line.stock !== 'reserved') continue;
    next.lines[sku] = { ...line, stock: 'releasing' };
    send.push({ aggregate: 'inventory', id: sku, command: 'release', input: { orderId: next.orderId } });
  }
  if (next.payment === 'authorized') {
    next.payment = 'refunding';
    send.push({ aggregate: 'payment', id: next.orderId, command: 'refund', input: {} });
  }
  if (next.order === 'placed') {
    next.order = 'cancelling';
    send.push({ aggregate: 'order', id: next.orderId, command: 'cancel', input: { reason: next.failure === 'customer-cancelled' ? 'cancelled' : next.failure } });
  }
  return { state: next, send, finish: next.failure === 'timeout' ? 'timed-out' : 'compensated' };
}

function failed(state: FulfilmentState, failure: Failure): FulfilmentState {
  return { ...state, failure: state.failure ?? failure };
}

function withLine(state: FulfilmentState, sku: string, stock: FulfilmentState['lines'][string]['stock']): FulfilmentState {
  const line = state.lines[sku];
  return line === undefined ? state : { ...state, lines: { ...state.lines, [sku]: { ...line, stock } } };
}

/**
 * An order placed → its stock reserved line by line → its payment authorized → the order
 * confirmed. Out of stock, a declined payment, no answer within the timeout, or the customer
 * cancelling while it runs: what was reserved is released, what was authorized refunded, and
 * the order cancelled with the reason (`out-of-stock`, `payment-declined`, `timeout`).
 */
export const orderFulfilment = defineSaga({
  name: 'order-fulfilment',
  aggregates: [order, inventory, payment],
  startedBy: ['order.OrderPlaced'],
  correlate: {
    'order.OrderPlaced': (event) => event.id,
    'order.OrderConfirmed': (event) => event.id,
    'order.OrderCancelled': (event) => event.id,
    'inventory.StockReserved': (event) => event.data.orderId,
    'payment.PaymentAuthorized': (event) => event.id,
    'payment.PaymentDeclined': (event) => event.id,
  },
  timeoutMs: timeoutFromEnvironment(),
  initialState: (orderId): FulfilmentState => ({ orderId, customerId: '', total: 0, lines: {}, payment: 'none', order: 'placed', failure: null }),
  on: {
    'order.OrderPlaced': (state, { data }) => {
      const lines: FulfilmentState['lines'] = {};
      for (const { sku, quantity } of data.items) lines[sku] = { quantity: (lines[sku]?.quantity ?? 0) + quantity, stock: 'reserving' };
      const placed: FulfilmentState = { ...state, customerId: data.customerId, total: data.total, lines };
      const reserve = Object.entries(lines).map(([sku, line]): SagaCommand<Aggregates> => ({ aggregate: 'inventory', id: sku, command: 'reserve', input: { orderId: state.orderId, quantity: line.quantity } }));
      return { state: placed, send: reserve };
    },
    'inventory.StockReserved': (state, { id }) => (state.lines[id]?.stock === 'reserving' ? progress(withLine(state, id, 'reserved')) : undefined),
    'payment.PaymentAuthorized': (state) => progress({ ...state, payment: 'authorized' }),
    'payment.PaymentDeclined': (state) => progress(failed({ ...state, payment: 'declined' }, 'payment-declined')),
    'order.OrderConfirmed': (state) => progress({ ...state, order: 'confirmed' }),
    // Its own cancel ends the saga before the event comes back; any other is the customer's.
    'order.OrderCancelled': (state) => (state.order === 'cancelling' ? undefined : progress(failed({ ...state, order: 'cancelled' }, 'customer-cancelled'))),
  },
  onRejected: (state, { command, code }) => {
    if (command.aggregate === 'inventory' && command.command === 'reserve') return progress(failed(withLine(state, command.id, 'refused'), 'out-of-stock'));
    if (command.aggregate === 'payment' && command.command === 'authorize') return progress(failed({ ...state, payment: 'declined' }, 'payment-declined'));
    if (command.aggregate === 'order' && command.command === 'confirm') {
      // The order is no longer placed: the customer cancelled it while the confirm was on its way.
      return progress(failed({ ...state, order: code === 'order-already-cancelled' ? 'cancelled' : 'placed' }, 'customer-cancelled'));
    }
    return undefined;
  },
  onTimer: (state, { name }) => (name === 'timeout' ? progress(failed(state, 'timeout')) : undefined),
});
