import { account } from '../../actors/bank/account.ts';
import { defineApp } from '../../runtime/index.ts';

/** The example's bank aggregate alone, no projections or sagas: the write path with nothing reading it. Shard threads import this module. */
export default defineApp({ module: import.meta.url, aggregates: [account] });
