import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import app from '../../actors/app.ts';
import { createRuntime, reshardDataDir, type Runtime } from '../../runtime/index.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { makeTempDir } from '../support/temp-dir.ts';

const cleanup = cleanupAfterEach();

async function snapshotOf(runtime: Runtime<typeof app>, ids: string[]) {
  const states = await Promise.all(ids.map((id) => runtime.state({ aggregate: 'account', id })));
  const partitions = [];
  for (let partition = 0; partition < runtime.partitions; partition++) partitions.push((await runtime.partitionEvents({ partition, limit: 1_000 })).events);
  return { states, partitions };
}

describe('reshard', () => {
  it('moves every partition to its new shard file and keeps state, seqs and idempotency', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const ids = Array.from({ length: 60 }, (_, index) => `acc-${index}`);
    const before = await createRuntime({ app, dataDir: temp.dir, partitions: 12, shards: 2, logger: silentLogger });
    for (const id of ids) {
      await before.dispatch({ aggregate: 'account', id, command: 'open', input: { owner: id } });
      await before.dispatch({ aggregate: 'account', id, command: 'deposit', input: { amount: 5 }, commandId: `dep-${id}` });
    }
    const expected = await snapshotOf(before, ids);
    await before.close();

    for (const shards of [3, 1, 4]) {
      const progress: number[] = [];
      expect(reshardDataDir(temp.dir, shards, ({ copiedRows }) => progress.push(copiedRows))).toMatchObject({ to: shards });
      expect(progress.at(-1)).toBeGreaterThanOrEqual(240);
      expect(JSON.parse(readFileSync(join(temp.dir, 'meta.json'), 'utf8'))).toEqual({ format: 1, partitions: 12, shards, hash: 'fnv1a32' });
      expect(existsSync(join(temp.dir, 'shards.next'))).toBe(false);
      expect(existsSync(join(temp.dir, 'shards.prev'))).toBe(false);
      const after = await createRuntime({ app, dataDir: temp.dir, logger: silentLogger });
      expect(after.shards).toBe(shards);
      expect(await snapshotOf(after, ids)).toEqual(expected);
      // A repeated command id is still recognised after its record moved.
      expect((await after.dispatch({ aggregate: 'account', id: 'acc-7', command: 'deposit', input: { amount: 5 }, commandId: 'dep-acc-7' })).version).toBe(2);
      await after.close();
    }
  });

  it('refuses while a node serves the data dir, and names itself when started with another T', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const runtime = await createRuntime({ app, dataDir: temp.dir, partitions: 8, shards: 2, logger: silentLogger });
    expect(() => reshardDataDir(temp.dir, 3)).toThrowError(expect.objectContaining({ code: 'SHARDLOG_DATA_DIR_LOCKED' }));
    await runtime.close();
    await expect(createRuntime({ app, dataDir: temp.dir, shards: 3, logger: silentLogger })).rejects.toMatchObject({
      message: expect.stringContaining('shardlog reshard'),
    });
    expect(() => reshardDataDir(temp.dir, 9)).toThrowError(/from 1 to the partition count \(8\)/);
  });

  it('drops a build that never committed and completes a swap that did', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const runtime = await createRuntime({ app, dataDir: temp.dir, partitions: 8, shards: 2, logger: silentLogger });
    await runtime.dispatch({ aggregate: 'account', id: 'a', command: 'open', input: { owner: 'a' } });
    await runtime.close();

    // Crashed while building: shards.next exists, meta.json still says 2 shards.
    mkdirSync(join(temp.dir, 'shards.next'));
    writeFileSync(join(temp.dir, 'shards.next', '0.db'), 'half a file');
    const reopened = await createRuntime({ app, dataDir: temp.dir, logger: silentLogger });
    expect(reopened.shards).toBe(2);
    expect(existsSync(join(temp.dir, 'shards.next'))).toBe(false);
    expect((await reopened.state({ aggregate: 'account', id: 'a' })).version).toBe(1);
    await reopened.close();

    // Crashed after the commit point (meta.json says 3, reshard pending), before the swap:
    // the old files are still in shards/, the new ones in shards.next/. The next open completes it.
    const oldLayout = join(temp.dir, 'old-layout');
    cpSync(join(temp.dir, 'shards'), oldLayout, { recursive: true });
    reshardDataDir(temp.dir, 3);
    renameSync(join(temp.dir, 'shards'), join(temp.dir, 'shards.next'));
    renameSync(oldLayout, join(temp.dir, 'shards'));
    writeFileSync(join(temp.dir, 'meta.json'), JSON.stringify({ format: 1, partitions: 8, shards: 3, hash: 'fnv1a32', reshard: { from: 2, to: 3 } }));
    const finished = await createRuntime({ app, dataDir: temp.dir, logger: silentLogger });
    cleanup.push(() => finished.close());
    expect(finished.shards).toBe(3);
    expect((await finished.state({ aggregate: 'account', id: 'a' })).version).toBe(1);
    expect(JSON.parse(readFileSync(join(temp.dir, 'meta.json'), 'utf8'))).toEqual({ format: 1, partitions: 8, shards: 3, hash: 'fnv1a32' });
    expect(existsSync(join(temp.dir, 'shards.prev'))).toBe(false);
  });
});
