import { z } from 'zod';
import { defineAggregate, reject } from '../../runtime/index.ts';

const item = z.object({
  sku: z.string().trim().min(1).max(100),
  quantity: z.number().int().positive(),
  unitPrice: z.number().nonnegative().finite(),
});

type OrderState = { status: 'new' | 'placed' | 'cancelled'; customerId: string; total: number };

export const order = defineAggregate({
  name: 'order',
  initialState: (): OrderState => ({ status: 'new', customerId: '', total: 0 }),
  events: {
    OrderPlaced: {
      schema: z.object({ customerId: z.string(), items: z.array(item), total: z.number() }),
      evolve: (state, { customerId, total }) => ({ ...state, status: 'placed' as const, customerId, total }),
    },
    OrderCancelled: {
      schema: z.object({ reason: z.string() }),
      evolve: (state) => ({ ...state, status: 'cancelled' as const }),
    },
  },
  commands: {
    place: {
      input: z.object({ customerId: z.string().trim().min(1).max(200), items: z.array(item).min(1).max(1000) }),
      decide: (state, { customerId, items }) => {
        if (state.status !== 'new') return reject('order-already-placed', `order is ${state.status}`);
        const total = items.reduce((sum, { quantity, unitPrice }) => sum + quantity * unitPrice, 0);
        return [{ type: 'OrderPlaced', data: { customerId, items, total } }];
      },
    },
    cancel: {
      input: z.object({ reason: z.string().trim().min(1).max(1000) }),
      decide: (state, { reason }) => {
        if (state.status === 'new') return reject('order-not-placed', 'there is no order to cancel');
        if (state.status === 'cancelled') return reject('order-already-cancelled', 'the order is already cancelled');
        return [{ type: 'OrderCancelled', data: { reason } }];
      },
    },
  },
});
