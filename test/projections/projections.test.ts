import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRuntime, RejectedError } from '../../runtime/index.ts';
import ledgerApp from '../fixtures/ledger-app.ts';
import { allEvents, caughtUp, viewDocuments } from '../support/projections.ts';
import { startBank } from '../support/runtime.ts';
import { makeTempDir, silentLogger, waitFor } from '../support/temp-dir.ts';

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

/** A deterministic pseudo-random sequence, so a failing workload can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

async function randomBankWorkload(runtime: Awaited<ReturnType<typeof startBank>>['runtime'], seed: number, commands: number): Promise<void> {
  const next = random(seed);
  const pick = <T,>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
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
function expectedViews(events: Awaited<ReturnType<typeof allEvents>>) {
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

describe('projections over the embedded bus', () => {
  it('equal the fold of the log after random workloads', async () => {
    for (const seed of [1, 2, 3]) {
      const bank = await startBank({ partitions: 16, shards: 2 });
      cleanup.push(bank.stop);
      await randomBankWorkload(bank.runtime, seed, 1_500);
      await caughtUp(bank.runtime, 'account-balances');
      await caughtUp(bank.runtime, 'customer-stats');
      const expected = expectedViews(await allEvents(bank.runtime));
      expect(expected.balances.size).toBeGreaterThan(0);
      expect(viewDocuments(bank.dir, 'account-balances')).toEqual(expected.balances);
      expect(viewDocuments(bank.dir, 'customer-stats')).toEqual(expected.stats);
    }
  });

  it('reads one document, pages by an indexed field, and waits for a position', async () => {
    const bank = await startBank();
    cleanup.push(bank.stop);
    const { runtime } = bank;
    for (let index = 0; index < 5; index++) await runtime.dispatch({ aggregate: 'account', id: `a${index}`, command: 'open', input: { owner: index < 3 ? 'ann' : 'bob' } });
    const deposit = await runtime.dispatch({ aggregate: 'account', id: 'a1', command: 'deposit', input: { amount: 7 } });
    const [partition, seq] = deposit.position!.split(':').map(Number) as [number, number];
    await runtime.projections.waitFor('account-balances', partition, seq, 5_000);
    expect(runtime.projections.get('account-balances', 'a1')).toEqual({ owner: 'ann', balance: 7, deposits: 1, withdrawals: 0, closed: false });
    await caughtUp(runtime, 'account-balances');
    const first = runtime.projections.query('account-balances', 'owner', 'ann', 2, undefined);
    expect(first.items.map((item) => item.key)).toEqual(['a0', 'a1']);
    const second = runtime.projections.query('account-balances', 'owner', 'ann', 2, first.cursor!);
    expect(second).toEqual({ items: [{ key: 'a2', doc: expect.objectContaining({ owner: 'ann' }) }], cursor: null });
    expect(() => runtime.projections.query('account-balances', 'balance', '7', 2, undefined)).toThrow(/not an indexed field/);
  });

  it('rebuilds beside the serving view into identical documents, then serves the new one', async () => {
    const bank = await startBank();
    cleanup.push(bank.stop);
    await randomBankWorkload(bank.runtime, 7, 1_000);
    await caughtUp(bank.runtime, 'account-balances');
    const before = viewDocuments(bank.dir, 'account-balances');
    const started = await bank.runtime.projections.rebuild('account-balances');
    expect(started.total).toBeGreaterThan(0);
    await waitFor(async () => (await bank.runtime.projections.statusOf('account-balances')).lastRebuild !== null, { timeoutMs: 20_000 });
    expect(viewDocuments(bank.dir, 'account-balances')).toEqual(before);
    const opened = await bank.runtime.dispatch({ aggregate: 'account', id: 'after-rebuild', command: 'open', input: { owner: 'zed' } });
    const [partition, seq] = opened.position!.split(':').map(Number) as [number, number];
    await bank.runtime.projections.waitFor('account-balances', partition, seq, 5_000);
    expect(bank.runtime.projections.get('account-balances', 'after-rebuild')).toMatchObject({ owner: 'zed' });
  });
});

describe('a failing projection handler', () => {
  it('parks the event; a halting projection stops, a skipping one goes on; retry applies it once fixed', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const fixFile = join(temp.dir, 'fixed');
    process.env.LEDGER_FIX_FILE = fixFile;
    cleanup.push(() => {
      delete process.env.LEDGER_FIX_FILE;
    });
    const runtime = await createRuntime({ app: ledgerApp, dataDir: join(temp.dir, 'data'), partitions: 4, shards: 1, logger: silentLogger });
    cleanup.push(() => runtime.close());
    const enter = (amount: number) => runtime.dispatch({ aggregate: 'ledger', id: 'l1', command: 'enter', input: { amount } });
    await enter(1);
    await enter(13);
    const last = await enter(2);
    const [partition, seq] = last.position!.split(':').map(Number) as [number, number];

    await runtime.projections.waitFor('skipping-totals', partition, seq, 10_000);
    expect(runtime.projections.get('skipping-totals', 'main')).toEqual({ total: 3, entries: 2 });
    await expect(runtime.projections.waitFor('halting-totals', partition, seq, 10_000)).rejects.toMatchObject({ code: 'SHARDLOG_PROJECTION_HALTED' });
    const halted = await runtime.projections.statusOf('halting-totals');
    expect(halted).toMatchObject({ state: 'halted', deadLetters: 1, halted: { partition, seq: seq - 1, error: expect.stringContaining('13 is unlucky') } });
    expect(runtime.projections.get('halting-totals', 'main')).toEqual({ total: 1, entries: 1 });

    const [parked] = await runtime.projections.deadLetters('halting-totals', 10);
    expect(parked).toMatchObject({ position: `${partition}:${seq - 1}`, aggregate: 'ledger', aggregateId: 'l1', type: 'Entered', data: { amount: 13 } });
    await expect(runtime.projections.retryDeadLetter('halting-totals', parked!.id)).rejects.toMatchObject({ code: 'SHARDLOG_DLQ_CONFLICT' });

    writeFileSync(fixFile, '');
    await runtime.projections.retryDeadLetter('halting-totals', parked!.id);
    await runtime.projections.waitFor('halting-totals', partition, seq, 10_000);
    expect(runtime.projections.get('halting-totals', 'main')).toEqual({ total: 16, entries: 3 });
    expect(await runtime.projections.deadLetters('halting-totals', 10)).toEqual([]);

    const [skipped] = await runtime.projections.deadLetters('skipping-totals', 10);
    await runtime.projections.retryDeadLetter('skipping-totals', skipped!.id);
    expect(runtime.projections.get('skipping-totals', 'main')).toEqual({ total: 16, entries: 3 });
    await expect(runtime.projections.retryDeadLetter('skipping-totals', skipped!.id)).rejects.toMatchObject({ code: 'SHARDLOG_DLQ_CONFLICT' });
  });

  it('skip drops a parked event and resumes a halted projection past it', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    delete process.env.LEDGER_FIX_FILE;
    const runtime = await createRuntime({ app: ledgerApp, dataDir: temp.dir, partitions: 4, shards: 1, logger: silentLogger });
    cleanup.push(() => runtime.close());
    await runtime.dispatch({ aggregate: 'ledger', id: 'l1', command: 'enter', input: { amount: 13 } });
    const last = await runtime.dispatch({ aggregate: 'ledger', id: 'l1', command: 'enter', input: { amount: 5 } });
    await waitFor(async () => (await runtime.projections.statusOf('halting-totals')).state === 'halted', { timeoutMs: 10_000 });
    const [parked] = await runtime.projections.deadLetters('halting-totals', 10);
    await runtime.projections.skipDeadLetter('halting-totals', parked!.id);
    const [partition, seq] = last.position!.split(':').map(Number) as [number, number];
    await runtime.projections.waitFor('halting-totals', partition, seq, 10_000);
    expect(runtime.projections.get('halting-totals', 'main')).toEqual({ total: 5, entries: 1 });
  });
});
