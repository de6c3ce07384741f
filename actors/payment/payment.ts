import { z } from 'zod';
import { defineAggregate, reject } from '../../runtime/index.ts';

/** The example's credit limit: an authorization over it is declined. */
export const creditLimit = 1_000;

type PaymentState = { status: 'new' | 'authorized' | 'declined' | 'refunded'; customerId: string; amount: number };

/** The payment of one order (the aggregate id is the order id). */
export const payment = defineAggregate({
  name: 'payment',
  initialState: (): PaymentState => ({ status: 'new', customerId: '', amount: 0 }),
  events: {
    PaymentAuthorized: {
      schema: z.object({ customerId: z.string(), amount: z.number().nonnegative() }),
      evolve: (state, { customerId, amount }) => ({ ...state, status: 'authorized' as const, customerId, amount }),
    },
    PaymentDeclined: {
      schema: z.object({ customerId: z.string(), amount: z.number().nonnegative(), reason: z.string() }),
      evolve: (state, { customerId, amount }) => ({ ...state, status: 'declined' as const, customerId, amount }),
    },
    PaymentRefunded: {
      schema: z.object({ amount: z.number().nonnegative() }),
      evolve: (state) => ({ ...state, status: 'refunded' as const }),
    },
  },
  commands: {
    authorize: {
      input: z.object({ customerId: z.string().trim().min(1).max(200).regex(/\S/), amount: z.number().nonnegative().max(1e15) }),
      decide: (state, { customerId, amount }) => {
        if (state.status !== 'new') return reject('payment-already-decided', `payment is ${state.status}`);
        if (amount > creditLimit) return [{ type: 'PaymentDeclined', data: { customerId, amount, reason: `over the credit limit of ${creditLimit}` } }];
        return [{ type: 'PaymentAuthorized', data: { customerId, amount } }];
      },
    },
    refund: {
      input: z.object({}),
      decide: (state) => {
        if (state.status === 'refunded') return [];
        if (state.status !== 'authorized') return reject('payment-not-authorized', `payment is ${state.status}`);
        return [{ type: 'PaymentRefunded', data: { amount: state.amount } }];
      },
    },
  },
});
