import { defineApp } from '../runtime/index.ts';
import { account } from './bank/account.ts';
import { order } from './orders/order.ts';

/** The example app: the bank and orders domains. Shard threads import this module. */
export default defineApp({ module: import.meta.url, aggregates: [account, order] });
