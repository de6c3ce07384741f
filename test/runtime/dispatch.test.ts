import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import app from '../../actors/app.ts';
import { createRuntime, RejectedError, RetryableError, ShardlogError } from '../../runtime/index.ts';
import { partitionOf } from '../../runtime/partitioning.ts';
import { startBank, type BankRuntime } from '../support/runtime.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { waitFor } from '../support/wait-for.ts';

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function bank(options = {}): Promise<BankRuntime> {
  const started = await startBank(options);
  cleanup.push(started.stop);
  return started.runtime;
}

async function openAccount(runtime: BankRuntime, id: string, deposit = 0) {
  await runtime.dispatch({ aggregate: 'account', id, command: 'open', input: { owner: `owner-${id}` } });
  if (deposit > 0) await runtime.dispatch({ aggregate: 'account', id, command: 'deposit', input: { amount: deposit } });
}

describe('dispatch', () => {
  it('commits a command and replies with version, position and events', async () => {
    const runtime = await bank();
    const result = await runtime.dispatch({ aggregate: 'account', id: 'acc-1', command: 'open', input: { owner: 'ada' } });
    const partition = partitionOf('account/acc-1', 16);
    expect(result).toEqual({
      commandId: expect.any(String),
      version: 1,
      position: `${partition}:1`,
      events: [{ type: 'AccountOpened', version: 1 }],
    });
    expect(await runtime.state({ aggregate: 'account', id: 'acc-1' })).toEqual({ state: { status: 'open', owner: 'ada', balance: 0 }, version: 1 });
  });

  it('serves many partitions over several shards, each with a gapless seq', async () => {
    const runtime = await bank();
    const ids = Array.from({ length: 200 }, (_, index) => `acc-${index}`);
    await Promise.all(ids.map((id) => openAccount(runtime, id, 10)));
    const stats = runtime.stats();
    expect(stats).toHaveLength(3);
    for (const shard of stats) expect(shard.commands).toBeGreaterThan(0);
    let total = 0;
    for (let partition = 0; partition < 16; partition++) {
      const { events } = await runtime.partitionEvents({ partition, limit: 1_000 });
      expect(events.map((event) => event.position)).toEqual(events.map((_, index) => `${partition}:${index + 1}`));
      total += events.length;
    }
    expect(total).toBe(400);
  });

  it('ends 50 concurrent deposits to one account with the right balance and contiguous versions', async () => {
    const runtime = await bank();
    await openAccount(runtime, 'hot');
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, index) => runtime.dispatch({ aggregate: 'account', id: 'hot', command: 'deposit', input: { amount: index + 1 } })),
    );
    expect(results.map((result) => result.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, index) => index + 2));
    const { state, version } = await runtime.state({ aggregate: 'account', id: 'hot' });
    expect(version).toBe(51);
    expect(state).toMatchObject({ balance: (50 * 51) / 2 });
    const { events } = await runtime.events({ aggregate: 'account', id: 'hot', limit: 1_000 });
    expect(events.map((event) => event.version)).toEqual(Array.from({ length: 51 }, (_, index) => index + 1));
  });

  it('reports a domain refusal as a RejectedError with the domain code, and writes nothing', async () => {
    const runtime = await bank();
    await openAccount(runtime, 'poor', 5);
    const refusal = runtime.dispatch({ aggregate: 'account', id: 'poor', command: 'withdraw', input: { amount: 6 } });
    await expect(refusal).rejects.toBeInstanceOf(RejectedError);
    await expect(refusal).rejects.toMatchObject({ code: 'SHARDLOG_REJECTED', data: { code: 'insufficient-funds', balance: 5 } });
    expect((await runtime.state({ aggregate: 'account', id: 'poor' })).version).toBe(2);
  });
});

describe('idempotency', () => {
  it('returns the original result for a repeated command id and appends nothing', async () => {
    const runtime = await bank();
    await openAccount(runtime, 'acc');
    const request = { aggregate: 'account', id: 'acc', command: 'deposit', input: { amount: 5 }, commandId: 'dep-1' } as const;
    const first = await runtime.dispatch(request);
    const again = await runtime.dispatch(request);
    expect(again).toEqual(first);
    expect(await runtime.state({ aggregate: 'account', id: 'acc' })).toMatchObject({ version: 2, state: { balance: 5 } });
  });

  it('dedupes repeats that arrive in the same batch', async () => {
    const runtime = await bank();
    await openAccount(runtime, 'acc');
    const request = { aggregate: 'account', id: 'acc', command: 'deposit', input: { amount: 5 }, commandId: 'same-batch' } as const;
    const results = await Promise.all([runtime.dispatch(request), runtime.dispatch(request), runtime.dispatch(request)]);
    expect(new Set(results.map((result) => JSON.stringify(result))).size).toBe(1);
    expect(await runtime.state({ aggregate: 'account', id: 'acc' })).toMatchObject({ version: 2, state: { balance: 5 } });
  });

  it('remembers refusals too', async () => {
    const runtime = await bank();
    await openAccount(runtime, 'acc');
    const request = { aggregate: 'account', id: 'acc', command: 'withdraw', input: { amount: 5 }, commandId: 'w-1' } as const;
    await expect(runtime.dispatch(request)).rejects.toMatchObject({ data: { code: 'insufficient-funds' } });
    await runtime.dispatch({ aggregate: 'account', id: 'acc', command: 'deposit', input: { amount: 50 } });
    await expect(runtime.dispatch(request)).rejects.toMatchObject({ data: { code: 'insufficient-funds' } });
    expect((await runtime.state({ aggregate: 'account', id: 'acc' })).state).toMatchObject({ balance: 50 });
  });

  it('refuses the same command id with another input', async () => {
    const runtime = await bank();
    await openAccount(runtime, 'acc');
    await runtime.dispatch({ aggregate: 'account', id: 'acc', command: 'deposit', input: { amount: 5 }, commandId: 'k' });
    await expect(runtime.dispatch({ aggregate: 'account', id: 'acc', command: 'deposit', input: { amount: 6 }, commandId: 'k' })).rejects.toMatchObject({
      code: 'SHARDLOG_IDEMPOTENCY_KEY_REUSED',
    });
    expect(await runtime.state({ aggregate: 'account', id: 'acc' })).toMatchObject({ version: 2, state: { balance: 5 } });
  });

  it('forgets command ids past the retention', async () => {
    const runtime = await bank({ idempotencyRetentionMs: 1 });
    await runtime.dispatch({ aggregate: 'account', id: 'acc', command: 'open', input: { owner: 'o' }, commandId: 'first' });
    await runtime.dispatch({ aggregate: 'account', id: 'acc', command: 'deposit', input: { amount: 5 }, commandId: 'old' });
    const recordedBy = Date.now();
    await waitFor(() => Date.now() > recordedBy + 1, { everyMs: 1 });
    // The background prune may forget them first: either way both are gone after this one.
    await runtime.pruneCommands();
    expect(await runtime.commandOutcome('first')).toBeUndefined();
    expect(await runtime.commandOutcome('old')).toBeUndefined();
    await runtime.dispatch({ aggregate: 'account', id: 'acc', command: 'deposit', input: { amount: 5 }, commandId: 'old' });
    expect((await runtime.state({ aggregate: 'account', id: 'acc' })).state).toMatchObject({ balance: 10 });
  });
});

describe('optimistic concurrency', () => {
  it('refuses a stale expectedVersion with the actual version', async () => {
    const runtime = await bank();
    await openAccount(runtime, 'acc', 5);
    await expect(
      runtime.dispatch({ aggregate: 'account', id: 'acc', command: 'deposit', input: { amount: 1 }, expectedVersion: 1 }),
    ).rejects.toMatchObject({ code: 'SHARDLOG_VERSION_MISMATCH', data: { actualVersion: 2, expectedVersion: 1 } });
    const accepted = await runtime.dispatch({ aggregate: 'account', id: 'acc', command: 'deposit', input: { amount: 1 }, expectedVersion: 2 });
    expect(accepted.version).toBe(3);
  });

  it('accepts expectedVersion 0 only for a new aggregate', async () => {
    const runtime = await bank();
    await runtime.dispatch({ aggregate: 'account', id: 'new', command: 'open', input: { owner: 'x' }, expectedVersion: 0 });
    await expect(runtime.dispatch({ aggregate: 'account', id: 'new', command: 'open', input: { owner: 'x' }, expectedVersion: 0 })).rejects.toMatchObject({
      code: 'SHARDLOG_VERSION_MISMATCH',
    });
  });
});

describe('bad input', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['an unknown aggregate', { aggregate: 'nope', id: 'a', command: 'open', input: {} }, 'SHARDLOG_UNKNOWN_AGGREGATE'],
    ['an unknown command', { aggregate: 'account', id: 'a', command: 'explode', input: {} }, 'SHARDLOG_UNKNOWN_COMMAND'],
    ['an inherited property as command', { aggregate: 'account', id: 'a', command: 'toString', input: {} }, 'SHARDLOG_UNKNOWN_COMMAND'],
    ['input failing its schema', { aggregate: 'account', id: 'a', command: 'deposit', input: { amount: -1 } }, 'SHARDLOG_INVALID_INPUT'],
    ['input of the wrong type', { aggregate: 'account', id: 'a', command: 'deposit', input: 'lots' }, 'SHARDLOG_INVALID_INPUT'],
    ['an empty id', { aggregate: 'account', id: '', command: 'open', input: { owner: 'x' } }, 'SHARDLOG_INVALID_ID'],
    ['an id over 256 characters', { aggregate: 'account', id: 'x'.repeat(257), command: 'open', input: { owner: 'x' } }, 'SHARDLOG_INVALID_ID'],
    ['an id with a control character', { aggregate: 'account', id: 'a\u0007b', command: 'open', input: { owner: 'x' } }, 'SHARDLOG_INVALID_ID'],
    ['a negative expectedVersion', { aggregate: 'account', id: 'a', command: 'open', input: { owner: 'x' }, expectedVersion: -1 }, 'SHARDLOG_INVALID_INPUT'],
  ];

  it.each(cases)('refuses %s with a typed error and writes nothing', async (_name, request, code) => {
    const runtime = await bank();
    await expect(runtime.dispatch(request as never)).rejects.toMatchObject({ code });
    await expect(runtime.dispatch(request as never)).rejects.toBeInstanceOf(ShardlogError);
    for (let partition = 0; partition < 16; partition++) {
      expect((await runtime.partitionEvents({ partition })).events).toEqual([]);
    }
  });

  it('lists schema issues with their paths', async () => {
    const runtime = await bank();
    await expect(
      runtime.dispatch({ aggregate: 'order', id: 'o', command: 'place', input: { customerId: 'c', items: [{ sku: 'a', quantity: 0, unitPrice: 1 }] } }),
    ).rejects.toMatchObject({ code: 'SHARDLOG_INVALID_INPUT', data: { issues: [expect.objectContaining({ path: ['items', '0', 'quantity'] })] } });
  });
});

describe('reads', () => {
  it('answers state at a version and at a time', async () => {
    const runtime = await bank();
    await openAccount(runtime, 'acc', 10);
    const before = new Date();
    await waitFor(() => Date.now() > before.getTime(), { everyMs: 1 });
    await runtime.dispatch({ aggregate: 'account', id: 'acc', command: 'withdraw', input: { amount: 4 } });
    expect(await runtime.state({ aggregate: 'account', id: 'acc', version: 1 })).toMatchObject({ version: 1, state: { balance: 0 } });
    expect(await runtime.state({ aggregate: 'account', id: 'acc', version: 2 })).toMatchObject({ version: 2, state: { balance: 10 } });
    expect(await runtime.state({ aggregate: 'account', id: 'acc', at: before })).toMatchObject({ version: 2, state: { balance: 10 } });
    expect(await runtime.state({ aggregate: 'account', id: 'acc', at: new Date(0) })).toMatchObject({ version: 0, state: { status: 'new' } });
    await expect(runtime.state({ aggregate: 'account', id: 'acc', version: 9 })).rejects.toMatchObject({ code: 'SHARDLOG_INVALID_QUERY' });
    await expect(runtime.state({ aggregate: 'account', id: 'acc', at: 'not a date' })).rejects.toMatchObject({ code: 'SHARDLOG_INVALID_QUERY' });
  });

  it('pages through a stream', async () => {
    const runtime = await bank();
    await openAccount(runtime, 'acc');
    for (let index = 0; index < 9; index++) await runtime.dispatch({ aggregate: 'account', id: 'acc', command: 'deposit', input: { amount: 1 } });
    const first = await runtime.events({ aggregate: 'account', id: 'acc', limit: 4 });
    const second = await runtime.events({ aggregate: 'account', id: 'acc', after: 4, limit: 4 });
    const last = await runtime.events({ aggregate: 'account', id: 'acc', after: 8, limit: 4 });
    expect([...first.events, ...second.events, ...last.events].map((event) => event.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(first.events[0]).toMatchObject({ type: 'AccountOpened', data: { owner: 'owner-acc' }, recordedAt: expect.stringMatching(/Z$/) });
    await expect(runtime.events({ aggregate: 'account', id: 'acc', limit: 0 })).rejects.toMatchObject({ code: 'SHARDLOG_INVALID_QUERY' });
  });
});

describe('lifecycle', () => {
  it('gives the same state after close and reopen', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const first = await createRuntime({ app, dataDir: temp.dir, partitions: 8, shards: 2, logger: silentLogger });
    for (let index = 0; index < 20; index++) await openAccount(first, `acc-${index}`, index + 1);
    const before = await Promise.all(Array.from({ length: 20 }, (_, index) => first.state({ aggregate: 'account', id: `acc-${index}` })));
    await first.close();
    await expect(first.dispatch({ aggregate: 'account', id: 'acc-1', command: 'deposit', input: { amount: 1 } })).rejects.toBeInstanceOf(RetryableError);
    await expect(first.state({ aggregate: 'account', id: 'acc-1' })).rejects.toMatchObject({ code: 'SHARDLOG_CLOSED' });

    const second = await createRuntime({ app, dataDir: temp.dir, logger: silentLogger });
    cleanup.push(() => second.close());
    expect(second.partitions).toBe(8);
    expect(second.shards).toBe(2);
    const after = await Promise.all(Array.from({ length: 20 }, (_, index) => second.state({ aggregate: 'account', id: `acc-${index}` })));
    expect(after).toEqual(before);
    const next = await second.dispatch({ aggregate: 'account', id: 'acc-3', command: 'deposit', input: { amount: 1 } });
    expect(next.version).toBe(3);
  });

  it('refuses to open a data dir with another partition or shard count', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const runtime = await createRuntime({ app, dataDir: temp.dir, partitions: 8, shards: 2, logger: silentLogger });
    await runtime.close();
    await expect(createRuntime({ app, dataDir: temp.dir, partitions: 16, logger: silentLogger })).rejects.toMatchObject({
      code: 'SHARDLOG_DATA_DIR_MISMATCH',
      message: expect.stringContaining('created with 8 partitions'),
    });
    await expect(createRuntime({ app, dataDir: temp.dir, shards: 3, logger: silentLogger })).rejects.toMatchObject({
      code: 'SHARDLOG_DATA_DIR_MISMATCH',
    });
  });

  it('refuses a second runtime on a data dir in use, and takes over a dead holder\'s lock', async () => {
    const started = await startBank();
    cleanup.push(started.stop);
    await expect(createRuntime({ app, dataDir: started.dir, logger: silentLogger })).rejects.toMatchObject({ code: 'SHARDLOG_DATA_DIR_LOCKED' });
    const other = makeTempDir();
    cleanup.push(other.remove);
    writeFileSync(join(other.dir, 'LOCK'), '999999999\n');
    const runtime = await createRuntime({ app, dataDir: other.dir, logger: silentLogger });
    cleanup.push(() => runtime.close());
    expect(readFileSync(join(other.dir, 'LOCK'), 'utf8')).toBe(`${process.pid}\n`);
    // A LOCK naming this very pid, left by a predecessor (a container restarting as pid 1).
    const reused = makeTempDir();
    cleanup.push(reused.remove);
    writeFileSync(join(reused.dir, 'LOCK'), `${process.pid}\n`);
    const again = await createRuntime({ app, dataDir: reused.dir, logger: silentLogger });
    cleanup.push(() => again.close());
    expect(readFileSync(join(reused.dir, 'LOCK'), 'utf8')).toBe(`${process.pid}\n`);
    expect(readdirSync(reused.dir).filter((name) => name.startsWith('LOCK.') && !name.startsWith('LOCK.db'))).toEqual([]);
  });

  it('lets accepted commands commit when closed under load', async () => {
    const started = await startBank();
    const runtime = started.runtime;
    await openAccount(runtime, 'acc');
    const inFlight = Array.from({ length: 100 }, () => runtime.dispatch({ aggregate: 'account', id: 'acc', command: 'deposit', input: { amount: 1 } }));
    await runtime.close();
    const settled = await Promise.allSettled(inFlight);
    expect(settled.every((result) => result.status === 'fulfilled')).toBe(true);
    const reopened = await createRuntime({ app, dataDir: started.dir, logger: silentLogger });
    cleanup.push(async () => {
      await reopened.close();
      await started.stop();
    });
    expect((await reopened.state({ aggregate: 'account', id: 'acc' })).state).toMatchObject({ balance: 100 });
  });
});

describe('live actors', () => {
  it('reloads evicted actors from snapshot plus later events', async () => {
    const runtime = await bank({ maxLiveActors: 2, shards: 1, partitions: 4 });
    for (let index = 0; index < 5; index++) await openAccount(runtime, `acc-${index}`);
    for (let round = 0; round < 130; round++) {
      await runtime.dispatch({ aggregate: 'account', id: `acc-${round % 5}`, command: 'deposit', input: { amount: 1 } });
    }
    for (let index = 0; index < 5; index++) {
      expect(await runtime.state({ aggregate: 'account', id: `acc-${index}` })).toMatchObject({ version: 27, state: { balance: 26 } });
    }
  });
});
