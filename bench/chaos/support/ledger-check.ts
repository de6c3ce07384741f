import type { Deposit } from './deposit-load.ts';
import type { Invariant } from '../drill.ts';

interface StoredEvent {
  type: string;
  version: number;
  data: { amount?: number };
}

export interface LogFold {
  /** How many times each deposit amount is in the log. */
  counts: Map<number, number>;
  /** Each account's balance and deposit count, folded from its events. */
  balances: Map<string, { balance: number; deposits: number }>;
  gaplessAccounts: number;
}

/** How many times each deposit amount is in the log, read over HTTP from every account's events. */
export async function depositsInLog(url: string, accounts: readonly string[]): Promise<LogFold> {
  const counts = new Map<number, number>();
  const balances = new Map<string, { balance: number; deposits: number }>();
  let gaplessAccounts = 0;
  for (const account of accounts) {
    const balance = { balance: 0, deposits: 0 };
    balances.set(account, balance);
    const versions: number[] = [];
    for (let after = 0; ; ) {
      const response = await fetch(`${url}/aggregates/account/${account}/events?after=${after}&limit=1000`);
      if (response.status !== 200) throw new Error(`reading ${account}'s events answered ${response.status}: ${await response.text()}`);
      const { events } = (await response.json()) as { events: StoredEvent[] };
      for (const event of events) {
        versions.push(event.version);
        if (event.type === 'Deposited' && event.data.amount !== undefined) {
          counts.set(event.data.amount, (counts.get(event.data.amount) ?? 0) + 1);
          balance.balance += event.data.amount;
          balance.deposits += 1;
        }
      }
      if (events.length < 1000) break;
      after = events.at(-1)!.version;
    }
    if (versions.every((version, index) => version === index + 1)) gaplessAccounts += 1;
  }
  return { counts, balances, gaplessAccounts };
}

/**
 * The ledger invariants: every acknowledged deposit is in the log exactly once, no deposit is
 * there twice, and every account's versions are gapless.
 */
export async function ledgerInvariants(url: string, accounts: readonly string[], sent: readonly Deposit[]): Promise<{ invariants: Invariant[]; fold: LogFold }> {
  const fold = await depositsInLog(url, accounts);
  const { counts, gaplessAccounts } = fold;
  const acknowledged = sent.filter((deposit) => deposit.status === 200);
  const foundOnce = acknowledged.filter((deposit) => counts.get(deposit.amount) === 1).length;
  const duplicated = [...counts.values()].filter((count) => count > 1).length;
  return {
    fold,
    invariants: [
      { name: 'every acknowledged deposit is in the log exactly once', holds: foundOnce === acknowledged.length, detail: `${foundOnce} of ${acknowledged.length} found once` },
      { name: 'no deposit is in the log twice', holds: duplicated === 0, detail: `${duplicated} duplicated` },
      { name: 'every account is gapless', holds: gaplessAccounts === accounts.length, detail: `${gaplessAccounts} of ${accounts.length} gapless` },
    ],
  };
}

/**
 * Polls the account-balances view of every account until it equals the fold of the log (or
 * the deadline passes); the invariant says how many agreed and how long it took.
 */
export async function viewsConverge(url: string, fold: LogFold, timeoutMs: number): Promise<Invariant> {
  const started = Date.now();
  let agreeing = 0;
  for (;;) {
    agreeing = 0;
    for (const [account, expected] of fold.balances) {
      const response = await fetch(`${url}/views/account-balances/${account}`);
      if (response.status !== 200) continue;
      const doc = (await response.json()) as { balance?: number; deposits?: number };
      if (doc.balance === expected.balance && doc.deposits === expected.deposits) agreeing += 1;
    }
    if (agreeing === fold.balances.size || Date.now() - started > timeoutMs) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const holds = agreeing === fold.balances.size;
  return {
    name: 'account-balances view converges to the fold of the log',
    holds,
    detail: `${agreeing} of ${fold.balances.size} accounts agree${holds ? ` after ${Date.now() - started} ms` : ` after ${timeoutMs} ms`}`,
  };
}
