import { RejectedError } from '../../runtime/index.ts';
import type { allEvents } from './projections.ts';
import type { startBank } from './runtime.ts';
import { seededRandom } from './seeded-random.ts';

/**
 * Random bank and order commands (refusals expected and ignored), all in flight at once. The
 * orders start order-fulfilment sagas that go on writing: wait for `sagasIdle` before
 * comparing the log with anything.
 */
export async function randomBankWorkload(runtime: Awaited<ReturnType<typeof startBank>>['runtime'], seed: number, commands: number): Promise<void> {
  const { next, pick } = seededRandom(seed);
  const accounts = Array.from({ length: 30 }, (_, index) => `acc-${index}`);
  const orders = Array.from({ length: 40 }, (_, index) => `ord-${index}`);
  const owners = ['ann', 'bob', 'cyd'];
  const customers = ['c1', 'c2', 'c3', 'c4'];
  const sends = Array.from({ length: commands }, () => {
    const roll = next();
    const send =
      roll < 0.15
        ? runtime.dispatch({ aggregate: 'account', id: pick(accounts), command: 'open', input: { owner: pick(owners) } })
        : roll < 0.5
          ? runtime.dispatch({ aggregate: 'account', id: pick(accounts), command: 'deposit', input: { amount: Math.ceil(next() * 100) } })
          : roll < 0.7
            ? runtime.dispatch({ aggregate: 'account', id: pick(accounts), command: 'withdraw', input: { amount: Math.ceil(next() * 80) } })
            : roll < 0.75
              ? runtime.dispatch({ aggregate: 'account', id: pick(accounts), command: 'close', input: {} })
              : roll < 0.92
                ? runtime.dispatch({
                    aggregate: 'order',
                    id: pick(orders),
                    command: 'place',
                    input: { customerId: pick(customers), items: [{ sku: 'sku', quantity: Math.ceil(next() * 3), unitPrice: Math.ceil(next() * 50) }] },
                  })
                : runtime.dispatch({ aggregate: 'order', id: pick(orders), command: 'cancel', input: { reason: 'changed mind' } });
    return send.catch((error: unknown) => {
      if (!(error instanceof RejectedError)) throw error;
    });
  });
  await Promise.all(sends);
}

/** The read models as an independent fold of the log: what the projections must equal. */
export function expectedViews(events: Awaited<ReturnType<typeof allEvents>>) {
  const balances = new Map<string, { owner: string; balance: number; deposits: number; withdrawals: number; closed: boolean }>();
  const stats = new Map<string, { totalOrders: number; totalSpent: number }>();
  const orders = new Map<string, { customerId: string; total: number }>();
  const ordered = [...events].sort((a, b) => (a.aggregate === b.aggregate && a.id === b.id ? a.version - b.version : 0));
  for (const event of ordered) {
    const data = event.data as Record<string, unknown>;
    if (event.aggregate === 'account') {
      const doc = balances.get(event.id) ?? { owner: '', balance: 0, deposits: 0, withdrawals: 0, closed: false };
      if (event.type === 'AccountOpened') doc.owner = data.owner as string;
      if (event.type === 'Deposited') Object.assign(doc, { balance: doc.balance + (data.amount as number), deposits: doc.deposits + 1 });
      if (event.type === 'Withdrawn') Object.assign(doc, { balance: doc.balance - (data.amount as number), withdrawals: doc.withdrawals + 1 });
      if (event.type === 'AccountClosed') doc.closed = true;
      balances.set(event.id, doc);
    } else if (event.type === 'OrderPlaced') {
      const customerId = data.customerId as string;
      orders.set(event.id, { customerId, total: data.total as number });
      const doc = stats.get(customerId) ?? { totalOrders: 0, totalSpent: 0 };
      stats.set(customerId, { totalOrders: doc.totalOrders + 1, totalSpent: doc.totalSpent + (data.total as number) });
    } else if (event.type === 'OrderCancelled') {
      const placed = orders.get(event.id)!;
      const doc = stats.get(placed.customerId)!;
      stats.set(placed.customerId, { totalOrders: doc.totalOrders - 1, totalSpent: doc.totalSpent - placed.total });
    }
  }
  return { balances, stats };
}

