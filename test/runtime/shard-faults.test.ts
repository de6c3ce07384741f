import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRuntime, RetryableError, type Runtime, type RuntimeOptions } from '../../runtime/index.ts';
import probeApp from '../fixtures/probe-app.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { waitFor } from '../support/wait-for.ts';

const cleanup = cleanupAfterEach();

type ProbeRuntime = Runtime<typeof probeApp>;

async function probeRuntime(options: Partial<RuntimeOptions<typeof probeApp>> = {}) {
  const temp = makeTempDir();
  const runtime = await createRuntime({ app: probeApp, dataDir: temp.dir, partitions: 1, shards: 1, logger: silentLogger, ...options });
  cleanup.push(temp.remove, () => runtime.close());
  return { runtime, dir: temp.dir };
}

const touch = (runtime: ProbeRuntime, id: string) => runtime.dispatch({ aggregate: 'probe', id, command: 'touch', input: {} });

describe('a failing decide', () => {
  it('fails only its own command when it throws', async () => {
    const { runtime } = await probeRuntime();
    const [before, buggy, after] = await Promise.allSettled([
      touch(runtime, 'a'),
      runtime.dispatch({ aggregate: 'probe', id: 'b', command: 'buggy', input: {} }),
      touch(runtime, 'a'),
    ]);
    expect(before).toMatchObject({ status: 'fulfilled', value: { version: 1 } });
    expect(buggy).toMatchObject({ status: 'rejected', reason: { code: 'SHARDLOG_DECIDE_FAILED', message: expect.stringContaining('bug in decide') } });
    expect(after).toMatchObject({ status: 'fulfilled', value: { version: 2 } });
  });

  it('fails later commands of a batch on an aggregate whose evolve threw, retryably, and commits the rest', async () => {
    const { runtime } = await probeRuntime();
    const results = await Promise.allSettled([
      touch(runtime, 'p'),
      runtime.dispatch({ aggregate: 'probe', id: 'p', command: 'cursedTouch', input: {} }),
      touch(runtime, 'p'),
      touch(runtime, 'q'),
    ]);
    expect(results[0]).toMatchObject({ status: 'fulfilled', value: { version: 1 } });
    expect(results[1]).toMatchObject({ status: 'rejected', reason: { code: 'SHARDLOG_DECIDE_FAILED' } });
    expect(results[2]).toMatchObject({ status: 'rejected', reason: { code: 'SHARDLOG_ACTOR_RESET' } });
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(RetryableError);
    expect(results[3]).toMatchObject({ status: 'fulfilled', value: { version: 1 } });
    expect(await runtime.state({ aggregate: 'probe', id: 'p' })).toEqual({ state: { touches: 1 }, version: 1 });
    expect((await touch(runtime, 'p')).version).toBe(2);
  });

  it('refuses an input the codec cannot carry, alone, without counting a crash', async () => {
    const { runtime } = await probeRuntime();
    const [huge, neighbour] = await Promise.allSettled([
      runtime.dispatch({ aggregate: 'probe', id: 'h', command: 'huge', input: { v: '1180591620717411303424' } }),
      touch(runtime, 'n'),
    ]);
    expect(huge).toMatchObject({ status: 'rejected', reason: { code: 'SHARDLOG_INVALID_INPUT' } });
    expect(neighbour).toMatchObject({ status: 'fulfilled', value: { version: 1 } });
    expect(runtime.stats()[0]).toMatchObject({ crashes: 0, status: 'serving' });
  });

  it('refuses an event that fails its own schema as the command\'s fault, writing nothing', async () => {
    const { runtime } = await probeRuntime();
    await expect(runtime.dispatch({ aggregate: 'probe', id: 'a', command: 'invalid', input: {} })).rejects.toMatchObject({
      code: 'SHARDLOG_EVENT_REFUSED',
      data: { event: 'Touched', issues: [{ path: ['n'] }] },
    });
    expect((await runtime.state({ aggregate: 'probe', id: 'a' })).version).toBe(0);
  });

  it('fails an event type the aggregate does not define as a bug, writing nothing', async () => {
    const { runtime } = await probeRuntime();
    await expect(runtime.dispatch({ aggregate: 'probe', id: 'g', command: 'ghost', input: {} })).rejects.toMatchObject({ code: 'SHARDLOG_INVALID_EVENT', data: { event: 'Haunted' } });
    expect((await runtime.state({ aggregate: 'probe', id: 'g' })).version).toBe(0);
  });
});

describe('a shard thread that dies', () => {
  it('fails its in-flight commands as outcome-unknown, restarts, and serves again', async () => {
    const { runtime } = await probeRuntime({ restart: { initialDelayMs: 20 } });
    await touch(runtime, 'a');
    const retriedTouch = { aggregate: 'probe', id: 'a', command: 'touch', input: {}, commandId: 'touch-2' } as const;
    const inFlight = await Promise.allSettled([runtime.dispatch(retriedTouch), runtime.dispatch({ aggregate: 'probe', id: 'x', command: 'exit', input: {} })]);
    for (const result of inFlight) {
      expect(result).toMatchObject({ status: 'rejected', reason: { code: 'SHARDLOG_OUTCOME_UNKNOWN' } });
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(RetryableError);
    }
    expect(runtime.stats()[0]).toMatchObject({ crashes: 1 });
    // The thread died before committing: the retry applies the touch, exactly once.
    expect((await runtime.dispatch(retriedTouch)).version).toBe(2);
    expect((await runtime.dispatch(retriedTouch)).version).toBe(2);
    expect((await touch(runtime, 'a')).version).toBe(3);
    expect(runtime.stats()[0]?.status).toBe('serving');
  });

  it('survives an uncaught error thrown after a batch, whether or not its reply got out', async () => {
    const { runtime } = await probeRuntime({ restart: { initialDelayMs: 20 } });
    const retriedTouch = { aggregate: 'probe', id: 'a', command: 'touch', input: {}, commandId: 'touch-1' } as const;
    const inFlight = await Promise.allSettled([runtime.dispatch(retriedTouch), runtime.dispatch({ aggregate: 'probe', id: 'x', command: 'crash', input: {} })]);
    for (const result of inFlight) {
      if (result.status === 'rejected') expect(result.reason).toMatchObject({ code: 'SHARDLOG_OUTCOME_UNKNOWN' });
    }
    await waitFor(() => runtime.stats()[0]?.crashes === 1);
    // Committed or not, a retry with the same command id leaves exactly one touch.
    expect((await runtime.dispatch(retriedTouch)).version).toBe(1);
    expect((await touch(runtime, 'a')).version).toBe(2);
  });

  it('is restarted after running out of memory under its heap cap', async () => {
    const { runtime } = await probeRuntime({ shardMemoryMb: 48, restart: { initialDelayMs: 20 } });
    await expect(runtime.dispatch({ aggregate: 'probe', id: 'x', command: 'hog', input: {} })).rejects.toMatchObject({ code: 'SHARDLOG_OUTCOME_UNKNOWN' });
    expect((await touch(runtime, 'a')).version).toBe(1);
  });

  it('is left down, failing fast, after it keeps dying', async () => {
    const { runtime } = await probeRuntime({ restart: { maxCrashes: 2, initialDelayMs: 5, maxDelayMs: 20 } });
    for (let crash = 0; crash < 3; crash++) {
      await expect(runtime.dispatch({ aggregate: 'probe', id: 'x', command: 'exit', input: {} })).rejects.toMatchObject({ code: 'SHARDLOG_OUTCOME_UNKNOWN' });
    }
    await waitFor(() => runtime.stats()[0]?.status === 'unavailable');
    await expect(touch(runtime, 'a')).rejects.toMatchObject({ code: 'SHARDLOG_SHARD_UNAVAILABLE' });
    await expect(runtime.state({ aggregate: 'probe', id: 'a' })).rejects.toMatchObject({ code: 'SHARDLOG_SHARD_UNAVAILABLE' });
  });

  it('is tried again after its cool-down, and serves', { timeout: 120_000 }, async () => {
    // The window must hold two crashes even when restarting a thread takes seconds (a loaded CI machine).
    const { runtime } = await probeRuntime({ restart: { maxCrashes: 1, windowMs: 20_000, initialDelayMs: 5, maxDelayMs: 20 } });
    await touch(runtime, 'a');
    for (let crash = 0; crash < 2; crash++) {
      await expect(runtime.dispatch({ aggregate: 'probe', id: 'x', command: 'exit', input: {} })).rejects.toMatchObject({ code: 'SHARDLOG_OUTCOME_UNKNOWN' });
    }
    await waitFor(() => runtime.stats()[0]?.status === 'unavailable');
    await expect(touch(runtime, 'a')).rejects.toMatchObject({ code: 'SHARDLOG_SHARD_UNAVAILABLE', data: { retryAfterMs: expect.any(Number) } });
    await waitFor(() => runtime.stats()[0]?.status === 'serving', { timeoutMs: 50_000, everyMs: 50 });
    expect((await touch(runtime, 'a')).version).toBe(2);
  });
});

describe('a failed commit', () => {
  it('fails the batch with a retryable error, reverts its actors, and loses nothing after', async () => {
    const { runtime, dir } = await probeRuntime();
    await touch(runtime, 'a');
    // Another connection holding the write lock makes the shard's commit fail, as an I/O error would.
    const intruder = new Database(join(dir, 'shards', '0.db'));
    cleanup.push(() => {
      if (intruder.open) intruder.close();
    });
    intruder.exec('BEGIN IMMEDIATE');
    const failed = await Promise.allSettled([touch(runtime, 'a'), touch(runtime, 'b')]);
    for (const result of failed) expect(result).toMatchObject({ status: 'rejected', reason: { code: 'SHARDLOG_COMMIT_FAILED' } });
    intruder.exec('ROLLBACK');
    intruder.close();
    expect((await touch(runtime, 'a')).version).toBe(2);
    expect((await touch(runtime, 'b')).version).toBe(1);
    const { events } = await runtime.partitionEvents({ partition: 0 });
    expect(events.map((event) => event.position)).toEqual(['0:1', '0:2', '0:3']);
  });
});
