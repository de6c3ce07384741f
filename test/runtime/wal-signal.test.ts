import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Checkpointer } from '../../runtime/host/checkpointer.ts';
import type { Logger } from '../../runtime/index.ts';
import { ShardLog, type EventRow } from '../../runtime/shard/shard-log.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { waitFor } from '../support/wait-for.ts';

const bound = 2 ** 20;
const payload = Buffer.alloc(4_000, 7);

/** A logger that keeps what it is told, so the test can wait on a line. */
function recordingLogger(): Logger & { lines: { level: string; details: object; message: string }[] } {
  const lines: { level: string; details: object; message: string }[] = [];
  const keep = (level: string) => (details: object, message: string) => void lines.push({ level, details, message });
  return { lines, info: keep('info'), warn: keep('warn'), error: keep('error') };
}

const temp = makeTempDir('shardlog-wal-');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(() => temp.remove());

describe('the WAL size signal of the checkpointer', () => {
  it('reports each shard log’s WAL, warns once while a reader holds it past the bound, and says when it is back under', async () => {
    const file = join(temp.dir, '0.db');
    const log = new ShardLog(file, 'fsync', { shard: 0, shards: 1, partitions: 1 });
    cleanups.push(() => log.close());
    let seq = 0;
    const told: { checkpointer?: Checkpointer } = {};
    const commitEvents = (count: number) => {
      const events: EventRow[] = Array.from({ length: count }, () => {
        seq += 1;
        return { partition: 0, seq, stream: 'wal/a', version: seq, type: 'Filled', schema_version: 1, data: payload, meta: null, recorded_at: Date.now() };
      });
      log.commit({ events, commands: [], snapshots: [] });
      // As the runtime does after every commit: the checkpointer passes only over logs written since.
      told.checkpointer?.written(0);
    };
    commitEvents(10);

    const logger = recordingLogger();
    const checkpointer = new Checkpointer([file], 10, logger, bound);
    told.checkpointer = checkpointer;
    cleanups.push(() => checkpointer.close());
    await waitFor(() => checkpointer.walSizes()[0]!.bytes > 0);
    expect(checkpointer.walSizes()).toEqual([{ shard: 0, bytes: expect.any(Number) as number }]);

    const reader = new Database(file, { readonly: true });
    cleanups.push(() => void (reader.open && reader.close()));
    reader.exec('BEGIN');
    const held = (reader.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
    expect(held).toBe(10);
    // About 4 MiB of events after the reader's snapshot: no checkpoint can reset the WAL past it.
    for (let batch = 0; batch < 10; batch++) commitEvents(100);

    const warnings = () => logger.lines.filter((line) => line.level === 'warn');
    await waitFor(() => warnings().length > 0, { timeoutMs: 30_000 });
    const [warning] = warnings();
    expect(warning!.message).toMatch(/^a reader holds an old snapshot: the WAL of shard 0 is \d+(\.\d)? MiB and cannot be checkpointed$/);
    expect(warning!.details).toMatchObject({ shard: 0, boundBytes: bound });
    const reported = checkpointer.walSizes()[0]!.bytes;
    expect(reported).toBeGreaterThan(4 * 10 ** 6);

    // More passes while still over the bound: the WAL keeps growing, the warning is not repeated.
    commitEvents(100);
    await waitFor(() => checkpointer.walSizes()[0]!.bytes > reported, { timeoutMs: 30_000 });
    expect(warnings()).toHaveLength(1);

    reader.exec('COMMIT');
    reader.close();
    // Once a pass has checkpointed everything, the next commit starts the WAL over.
    await waitFor(
      () => {
        commitEvents(1);
        return logger.lines.some((line) => line.level === 'info');
      },
      { timeoutMs: 30_000, everyMs: 20 },
    );
    const back = logger.lines.filter((line) => line.level === 'info');
    expect(back).toHaveLength(1);
    expect(back[0]!.message).toMatch(/^the WAL of shard 0 is back under 1 MiB/);
    expect(checkpointer.walSizes()[0]!.bytes).toBeLessThanOrEqual(bound);
    expect(warnings()).toHaveLength(1);
  });
});
