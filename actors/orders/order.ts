import { z } from 'zod';
import { defineAggregate, reject } from '../../runtime/index.ts';

/** At most 1,000 lines of at most 1e6 × 1e6: every total stays exact and finite (1e15 < 2^53). */
const item = z.object({
  sku: z.string().trim().min(1).max(100).regex(/\S/),
  quantity: z.number().int().positive().max(1_000_000),
  unitPrice: z.number().nonnegative().max(1_000_000),
});

type OrderState = { status: 'new' | 'placed' | 'confirmed' | 'cancelled'; customerId: string; total: number; reason?: string };

export const order = defineAggregate({
  name: 'order',
  initialState: (): OrderState => ({ status: 'new', customerId: '', total: 0 }),
  events: {
    OrderPlaced: {
      schema: z.object({ customerId: z.string(), items: z.array(item), total: z.number().nonnegative().finite() }),
      evolve: (state, { customerId, total }) => ({ ...state, status: 'placed' as const, customerId, total }),
    },
    OrderCancelled: {
      schema: z.object({ reason: z.string() }),
      evolve: (state, { reason }) => ({ ...state, status: 'cancelled' as const, reason }),
    },
    OrderConfirmed: {
      schema: z.object({}),
      evolve: (state) => ({ ...state, status: 'confirmed' as const }),
    },
  },
  commands: {
    place: {
      input: z.object({ customerId: z.string().trim().min(1).max(200).regex(/\S/), items: z.array(item).min(1).max(1000) }),
      decide: (state, { customerId, items }) => {
        if (state.status !== 'new') return reject('order-already-placed', `order is ${state.status}`);
        const total = items.reduce((sum, { quantity, unitPrice }) => sum + quantity * unitPrice, 0);
        return [{ type: 'OrderPlaced', data: { customerId, items, total } }];
      },
    },
    cancel: {
      input: z.object({ reason: z.string().trim().min(1).max(1000).regex(/\S/) }),
      decide: (state, { reason }) => {
        if (state.status === 'new') return reject('order-not-placed', 'there is no order to cancel');
        if (state.status === 'cancelled') return reject('order-already-cancelled', 'the order is already cancelled');
        if (state.status === 'confirmed') return reject('order-already-confirmed', 'the order is already confirmed');
        return [{ type: 'OrderCancelled', data: { reason } }];
      },
    },
    confirm: {
      input: z.object({}),
      decide: (state) => {
        if (state.status === 'new') return reject('order-not-placed', 'there is no order to confirm');
        if (state.status === 'cancelled') return reject('order-already-cancelled', 'the order is cancelled');
        if (state.status === 'confirmed') return [];
        return [{ type: 'OrderConfirmed', data: {} }];
      },
    },
  },
});
