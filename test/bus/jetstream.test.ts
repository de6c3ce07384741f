import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PartitionBatch } from '../../runtime/bus/bus-event.ts';
import { consumePartitionBatches } from '../../runtime/bus/jetstream-consumer.ts';
import { JetStreamRelay } from '../../runtime/bus/jetstream-relay.ts';
import { createRuntime, type Runtime } from '../../runtime/index.ts';
import ledgerApp, { poisonUntilFixed } from '../fixtures/ledger-app.ts';
import { expectedViews, randomBankWorkload } from '../support/bank-workload.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { startNatsServer, type NatsServer } from '../support/nats-server.ts';
import { allEvents, caughtUp, viewDocuments } from '../support/projections.ts';
import { nodeRuntime } from '../support/node-runtime.ts';
import { startBank } from '../support/runtime.ts';
import { sagaDone, sagasIdle } from '../support/sagas.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { waitFor } from '../support/wait-for.ts';

const cleanup = cleanupAfterEach();

async function nats(): Promise<NatsServer> {
  const server = await startNatsServer();
  cleanup.push(server.stop);
  return server;
}

async function bank(options: { nats?: string } = {}) {
  const started = await startBank({ shards: 2, nats: options.nats === undefined ? undefined : { servers: options.nats } });
  cleanup.push(started.stop);
  return started;
}

/** Every message of the stream, read back from the beginning. */
async function readStream(url: string, prefix = 'shardlog'): Promise<{ streamSeq: number; batch: PartitionBatch }[]> {
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  const total = (await jsm.streams.info(`${prefix.toUpperCase()}_EVENTS`)).state.messages;
  await nc.close();
  const messages: { streamSeq: number; batch: PartitionBatch }[] = [];
  if (total === 0) return messages;
  let resolveAll!: () => void;
  const all = new Promise<void>((resolve) => (resolveAll = resolve));
  const subscription = await consumePartitionBatches({
    servers: url,
    prefix,
    startStreamSeq: 1,
    logger: silentLogger,
    onMessages: (arrived) => {
      messages.push(...arrived);
      if (messages.length >= total) resolveAll();
    },
  });
  await all;
  await subscription.close();
  return messages;
}

/** Checks the stream holds every committed event exactly once, each partition contiguous from seq 1 in message order. */
async function expectStreamEqualsLog(url: string, runtime: Runtime): Promise<void> {
  const messages = await readStream(url);
  const bySeq = new Map<number, number[]>();
  for (const { batch } of messages) {
    expect(batch.events.map((event) => event.seq)).toEqual(batch.events.map((_, index) => batch.firstSeq + index));
    const seqs = bySeq.get(batch.partition) ?? [];
    seqs.push(...batch.events.map((event) => event.seq));
    bySeq.set(batch.partition, seqs);
  }
  const heads = await runtime.heads();
  expect(new Set(bySeq.keys())).toEqual(new Set(heads.keys()));
  for (const [partition, head] of heads) expect(bySeq.get(partition)).toEqual(Array.from({ length: head }, (_, index) => index + 1));
}

async function relayCaughtUp(runtime: Runtime): Promise<void> {
  const heads = await runtime.heads();
  await waitFor(() => [...heads].every(([partition, head]) => (runtime.busLag().find((lag) => lag.partition === partition)?.published ?? 0) >= head), { timeoutMs: 20_000 });
}

describe('the JetStream relay', () => {
  it('publishes every committed event exactly once, in order, and a restarted relay republishes nothing', async () => {
    const server = await nats();
    const { runtime } = await bank();
    await randomBankWorkload(runtime, 11, 800);
    await sagasIdle(runtime);
    const relay = await JetStreamRelay.start({ servers: server.url, prefix: 'shardlog', source: nodeRuntime(runtime).relaySource(), logger: silentLogger });
    await waitFor(() => relay.lag().every(({ head, published }) => published >= head) && relay.lag().length > 0, { timeoutMs: 20_000 });
    await relay.close();
    await expectStreamEqualsLog(server.url, runtime);
    const published = await nodeRuntime(runtime).publishedSeqs();
    expect(published).toEqual(await runtime.heads());

    // A relay whose recorded progress is gone learns it from the stream: nothing is published twice.
    const before = (await readStream(server.url)).length;
    const again = await JetStreamRelay.start({ servers: server.url, prefix: 'shardlog', source: { ...nodeRuntime(runtime).relaySource(), recordPublished: () => Promise.resolve() }, logger: silentLogger });
    await runtime.dispatch({ aggregate: 'account', id: 'late', command: 'open', input: { owner: 'lee' } });
    await waitFor(() => again.lag().every(({ head, published }) => published >= head), { timeoutMs: 20_000 });
    await again.close();
    expect((await readStream(server.url)).length).toBe(before + 1);
    await expectStreamEqualsLog(server.url, runtime);
  });

  it('splits a batch over the max payload into consecutive messages', async () => {
    const server = await nats();
    const { runtime } = await bank();
    await Promise.all(Array.from({ length: 300 }, (_, index) => runtime.dispatch({ aggregate: 'order', id: `o-${index % 3}-${index}`, command: 'place', input: { customerId: 'c', items: [{ sku: 'x'.repeat(90), quantity: 1, unitPrice: 1 }] } })));
    await sagasIdle(runtime);
    const relay = await JetStreamRelay.start({ servers: server.url, prefix: 'shardlog', source: nodeRuntime(runtime).relaySource(), logger: silentLogger, maxPayload: 4_096 });
    await waitFor(() => relay.lag().length > 0 && relay.lag().every(({ head, published }) => published >= head), { timeoutMs: 20_000 });
    await relay.close();
    const messages = await readStream(server.url);
    expect(messages.length).toBeGreaterThan(16);
    await expectStreamEqualsLog(server.url, runtime);
  });

  it('keeps committing while nats-server is down and publishes everything, once, after it returns', async () => {
    const server = await nats();
    const { runtime, dir } = await bank({ nats: server.url });
    await randomBankWorkload(runtime, 21, 300);
    const load = randomBankWorkload(runtime, 22, 1_500);
    await server.pause();
    await randomBankWorkload(runtime, 23, 300);
    expect(runtime.busConnected).toBe(false);
    expect(runtime.busLag().some(({ head, published }) => head > published)).toBe(true);
    await server.start();
    await load;
    await randomBankWorkload(runtime, 24, 300);
    await sagasIdle(runtime);
    await relayCaughtUp(runtime);
    await expectStreamEqualsLog(server.url, runtime);
    await caughtUp(runtime, 'account-balances', 30_000);
    await caughtUp(runtime, 'customer-stats', 30_000);
    const expected = expectedViews(await allEvents(runtime));
    expect(viewDocuments(dir, 'account-balances')).toEqual(expected.balances);
    expect(viewDocuments(dir, 'customer-stats')).toEqual(expected.stats);
  });
});

describe('a relay on another data dir than the stream was written from', () => {
  it('refuses to publish partitions the stream holds more of, and says so', async () => {
    const server = await nats();
    const first = await bank({ nats: server.url });
    for (let index = 0; index < 20; index++) await first.runtime.dispatch({ aggregate: 'account', id: `d-${index}`, command: 'open', input: { owner: 'first' } });
    await first.runtime.dispatch({ aggregate: 'account', id: 'd-0', command: 'deposit', input: { amount: 1 } });
    await relayCaughtUp(first.runtime);
    await first.runtime.close();
    const before = await readStream(server.url);

    const errors: string[] = [];
    const { runtime: second, stop } = await startBank({ shards: 2, nats: { servers: server.url }, logger: { info: () => undefined, warn: () => undefined, error: (_details, message) => errors.push(message) } });
    cleanup.push(stop);
    await second.dispatch({ aggregate: 'account', id: 'd-0', command: 'open', input: { owner: 'second' } });
    await waitFor(() => second.busDiverged().length > 0, { timeoutMs: 10_000 });
    expect(errors.some((message) => message.includes('not publishing it'))).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await readStream(server.url)).length).toBe(before.length);
  });
});

describe('projections over JetStream', () => {
  it('equal the fold of the log after random workloads, and rebuild into the same documents', async () => {
    const server = await nats();
    const { runtime, dir } = await bank({ nats: server.url });
    await randomBankWorkload(runtime, 31, 1_500);
    await sagasIdle(runtime);
    await caughtUp(runtime, 'account-balances');
    await caughtUp(runtime, 'customer-stats');
    const expected = expectedViews(await allEvents(runtime));
    expect(viewDocuments(dir, 'account-balances')).toEqual(expected.balances);
    expect(viewDocuments(dir, 'customer-stats')).toEqual(expected.stats);

    await runtime.projections.rebuild('customer-stats');
    await waitFor(async () => (await runtime.projections.statusOf('customer-stats')).lastRebuild !== null, { timeoutMs: 20_000 });
    expect(viewDocuments(dir, 'customer-stats')).toEqual(expected.stats);
    // The order-fulfilment saga cancels an order it cannot stock, so the order is stocked and
    // left to complete before the view is read: otherwise the read races the cancellation.
    await runtime.dispatch({ aggregate: 'inventory', id: 'after-rebuild-sku', command: 'restock', input: { quantity: 1 } });
    await runtime.dispatch({ aggregate: 'order', id: 'after-rebuild', command: 'place', input: { customerId: 'after-rebuild-customer', items: [{ sku: 'after-rebuild-sku', quantity: 1, unitPrice: 4 }] } });
    expect((await sagaDone(runtime, 'order-fulfilment', 'after-rebuild')).status).toBe('completed');
    await caughtUp(runtime, 'customer-stats');
    expect(runtime.projections.get('customer-stats', 'after-rebuild-customer')).toEqual({ totalOrders: 1, totalSpent: 4 });
  });

  it('halts on a poison event and resumes from the stream once the dead letter is retried', async () => {
    const server = await nats();
    const temp = poisonUntilFixed();
    cleanup.push(temp.undo);
    const { fixFile } = temp;
    const runtime = await createRuntime({ app: ledgerApp, dataDir: join(temp.dir, 'data'), partitions: 4, shards: 1, logger: silentLogger, nats: { servers: server.url } });
    cleanup.push(() => runtime.close());
    let last = '';
    for (const amount of [1, 13, 2, 3]) last = (await runtime.dispatch({ aggregate: 'ledger', id: 'l1', command: 'enter', input: { amount } })).position!;
    await waitFor(async () => (await runtime.projections.statusOf('halting-totals')).state === 'halted', { timeoutMs: 20_000 });
    expect(runtime.projections.get('halting-totals', 'main')).toEqual({ total: 1, entries: 1 });
    const [partition, seq] = last.split(':').map(Number) as [number, number];
    await runtime.projections.waitFor('skipping-totals', partition, seq, 10_000);
    expect(runtime.projections.get('skipping-totals', 'main')).toEqual({ total: 6, entries: 3 });

    writeFileSync(fixFile, '');
    const [parked] = await runtime.projections.deadLetters('halting-totals', 10);
    await runtime.projections.retryDeadLetter('halting-totals', parked!.id);
    await runtime.projections.waitFor('halting-totals', partition, seq, 10_000);
    expect(runtime.projections.get('halting-totals', 'main')).toEqual({ total: 19, entries: 4 });
  });
});
