import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRuntime } from '../../runtime/index.ts';
import ledgerApp, { poisonUntilFixed } from '../fixtures/ledger-app.ts';
import { expectedViews, randomBankWorkload } from '../support/bank-workload.ts';
import { sagasIdle } from '../support/sagas.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { allEvents, caughtUp, viewDocuments } from '../support/projections.ts';
import { startBank } from '../support/runtime.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { waitFor } from '../support/wait-for.ts';

const cleanup = cleanupAfterEach();

describe('projections over the embedded bus', () => {
  it('equal the fold of the log after random workloads', async () => {
    for (const seed of [1, 2, 3]) {
      const bank = await startBank({ partitions: 16, shards: 2 });
      cleanup.push(bank.stop);
      await randomBankWorkload(bank.runtime, seed, 1_500);
      await sagasIdle(bank.runtime);
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
    const temp = poisonUntilFixed();
    cleanup.push(temp.undo);
    const { fixFile } = temp;
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

  it('a projector thread that dies is restarted and resumes from its checkpoints, counting nothing twice', async () => {
    const temp = poisonUntilFixed();
    cleanup.push(temp.undo);
    let restartsScheduled = 0;
    const logger = {
      ...silentLogger,
      error: (details: Record<string, unknown>) => {
        if ('restartInMs' in details) restartsScheduled += 1;
      },
    };
    const runtime = await createRuntime({ app: ledgerApp, dataDir: join(temp.dir, 'data'), partitions: 4, shards: 1, logger });
    cleanup.push(() => runtime.close());
    for (const amount of [1, 2, 666, 3]) await runtime.dispatch({ aggregate: 'ledger', id: `l-${amount}`, command: 'enter', input: { amount } });
    // The thread has met 666 and died (once at least) before the fix: it has not counted it.
    await waitFor(() => restartsScheduled > 0, { timeoutMs: 20_000 });
    expect((runtime.projections.get('crashing-totals', 'main') as { entries?: number } | undefined)?.entries ?? 0).toBeLessThan(4);
    writeFileSync(temp.fixFile, '');
    await waitFor(() => (runtime.projections.get('crashing-totals', 'main') as { entries?: number } | undefined)?.entries === 4, { timeoutMs: 20_000 });
    expect(runtime.projections.get('crashing-totals', 'main')).toEqual({ total: 672, entries: 4 });
    await caughtUp(runtime, 'skipping-totals');
    expect(runtime.projections.get('skipping-totals', 'main')).toEqual({ total: 672, entries: 4 });
  });
});
