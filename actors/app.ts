import { defineApp } from '../runtime/index.ts';
import { account } from './bank/account.ts';
import { order } from './orders/order.ts';
import { accountBalances } from './projections/account-balances.ts';
import { customerStats } from './projections/customer-stats.ts';

/** The example app: the bank and orders domains and their read models. Shard and projector threads import this module. */
export default defineApp({ module: import.meta.url, aggregates: [account, order], projections: [accountBalances, customerStats] });
