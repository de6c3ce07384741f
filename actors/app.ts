import { defineApp } from '../runtime/index.ts';
import { account } from './bank/account.ts';
import { inventory } from './inventory/inventory.ts';
import { order } from './orders/order.ts';
import { payment } from './payment/payment.ts';
import { accountBalances } from './projections/account-balances.ts';
import { customerStats } from './projections/customer-stats.ts';
import { orderFulfilment } from './sagas/order-fulfilment.ts';

/** The example app: the bank and orders domains, their read models and the order-fulfilment saga. Shard and projector threads import this module. */
export default defineApp({
  module: import.meta.url,
  aggregates: [account, order, inventory, payment],
  projections: [accountBalances, customerStats],
  sagas: [orderFulfilment],
});
