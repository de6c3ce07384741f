import { defineProjection } from '../../runtime/index.ts';
import { account } from '../bank/account.ts';

/** Per account: its owner, balance and how many deposits and withdrawals it has seen. */
export const accountBalances = defineProjection({
  name: 'account-balances',
  version: 1,
  from: [account],
  initial: () => ({ owner: '', balance: 0, deposits: 0, withdrawals: 0, closed: false }),
  key: (event) => event.id,
  indexes: ['owner'],
  on: {
    'account.AccountOpened': (doc, { data }) => ({ ...doc, owner: data.owner }),
    'account.Deposited': (doc, { data }) => ({ ...doc, balance: doc.balance + data.amount, deposits: doc.deposits + 1 }),
    'account.Withdrawn': (doc, { data }) => ({ ...doc, balance: doc.balance - data.amount, withdrawals: doc.withdrawals + 1 }),
    'account.AccountClosed': (doc) => ({ ...doc, closed: true }),
  },
});
