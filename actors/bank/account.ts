import { z } from 'zod';
import { defineAggregate, reject } from '../../runtime/index.ts';

/** Bounds that keep every balance an exact, finite number: 1e15 is under 2^53. */
const maxAmount = 1_000_000_000_000;
const maxBalance = 1_000_000_000_000_000;
const amount = z.number().positive().max(maxAmount);

type AccountState = { status: 'new' | 'open' | 'closed'; owner: string; balance: number };

export const account = defineAggregate({
  name: 'account',
  initialState: (): AccountState => ({ status: 'new', owner: '', balance: 0 }),
  snapshotEvery: 100,
  events: {
    AccountOpened: {
      schema: z.object({ owner: z.string() }),
      evolve: (state, { owner }) => ({ ...state, status: 'open' as const, owner }),
    },
    Deposited: {
      schema: z.object({ amount }),
      evolve: (state, { amount }) => ({ ...state, balance: state.balance + amount }),
    },
    Withdrawn: {
      schema: z.object({ amount }),
      evolve: (state, { amount }) => ({ ...state, balance: state.balance - amount }),
    },
    AccountClosed: {
      schema: z.object({}),
      evolve: (state) => ({ ...state, status: 'closed' as const }),
    },
  },
  commands: {
    open: {
      input: z.object({ owner: z.string().trim().min(1).max(200).regex(/\S/) }),
      decide: (state, { owner }) => {
        if (state.status !== 'new') return reject('account-already-opened', `account is ${state.status}`);
        return [{ type: 'AccountOpened', data: { owner } }];
      },
    },
    deposit: {
      input: z.object({ amount }),
      decide: (state, { amount }) => {
        if (state.status !== 'open') return reject('account-not-open', `account is ${state.status}`);
        if (state.balance + amount > maxBalance) {
          return reject('balance-limit-exceeded', `balance ${state.balance} plus ${amount} is over the limit of ${maxBalance}`, { balance: state.balance });
        }
        return [{ type: 'Deposited', data: { amount } }];
      },
    },
    withdraw: {
      input: z.object({ amount }),
      decide: (state, { amount }) => {
        if (state.status !== 'open') return reject('account-not-open', `account is ${state.status}`);
        if (amount > state.balance) {
          return reject('insufficient-funds', `balance ${state.balance} is less than ${amount}`, { balance: state.balance });
        }
        return [{ type: 'Withdrawn', data: { amount } }];
      },
    },
    close: {
      input: z.object({}),
      decide: (state) => {
        if (state.status !== 'open') return reject('account-not-open', `account is ${state.status}`);
        if (state.balance !== 0) return reject('balance-not-zero', `balance is ${state.balance}`, { balance: state.balance });
        return [{ type: 'AccountClosed', data: {} }];
      },
    },
  },
});
