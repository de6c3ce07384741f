/**
 * The embedded bus's reader: a catch-up round reads every partition in one read transaction
 * per shard log (one snapshot), and never keeps that transaction past the round, whatever
 * the round does; and the projections of one pass share what one of them read.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeStored } from '../../runtime/codec.ts';
import { ShardFileReader } from '../../runtime/projection/shard-file-reader.ts';
import { ShardLog, type EventRow } from '../../runtime/shard/shard-log.ts';
import { makeTempDir } from '../support/temp-dir.ts';

const identity = { shard: 0, shards: 1, partitions: 2 };

function event(partition: number, seq: number): EventRow {
  return { partition, seq, stream: `account/p${partition}`, version: seq, type: 'Deposited', schema_version: 1, data: encodeStored({ amount: seq }), meta: null, recorded_at: seq };
}

describe('the shard file reader', () => {
  let temp: ReturnType<typeof makeTempDir>;
  let log: ShardLog;
  let reader: ShardFileReader;

  beforeEach(() => {
    temp = makeTempDir('shardlog-file-reader-');
    mkdirSync(join(temp.dir, 'shards'));
    log = new ShardLog(join(temp.dir, 'shards', '0.db'), 'fsync', identity);
    reader = new ShardFileReader(temp.dir, 1);
  });

  afterEach(() => {
    reader.close();
    log.close();
    temp.remove();
  });

  it('reads a round from one snapshot, and the next round sees what was committed meanwhile', () => {
    log.commit({ events: [event(0, 1)], commands: [], snapshots: [] });
    const inRound = reader.together(() => {
      const first = reader.read(0, 0, 10);
      log.commit({ events: [event(1, 1)], commands: [], snapshots: [] });
      return [first, reader.read(1, 0, 10)];
    });
    expect(inRound.map((events) => events.map((e) => `${e.partition}:${e.seq}`))).toEqual([['0:1'], []]);
    expect(reader.read(1, 0, 10).map((e) => e.data)).toEqual([{ amount: 1 }]);
  });

  it('ends its read transaction when a round throws, so checkpoints can copy the whole WAL', () => {
    log.commit({ events: [event(0, 1)], commands: [], snapshots: [] });
    expect(() =>
      reader.together(() => {
        reader.read(0, 0, 10);
        throw new Error('a projection failed mid-round');
      }),
    ).toThrow('a projection failed mid-round');
    log.commit({ events: [event(0, 2)], commands: [], snapshots: [] });
    const checkpointer = new Database(join(temp.dir, 'shards', '0.db'));
    try {
      // A reader still holding its snapshot would leave `busy` at 1: TRUNCATE waits for every reader.
      expect(checkpointer.pragma('wal_checkpoint(TRUNCATE)')).toEqual([{ busy: 0, log: 0, checkpointed: 0 }]);
    } finally {
      checkpointer.close();
    }
  });

  it('hands a page read in a pass to the next projection asking for it, each with its own decoded copy', async () => {
    log.commit({ events: [event(0, 1), event(0, 2)], commands: [], snapshots: [] });
    await reader.sharing(() => {
      const first = reader.read(0, 0, 10);
      log.commit({ events: [event(0, 3)], commands: [], snapshots: [] });
      const second = reader.read(0, 0, 10);
      // The same page as the first projection's (not the event committed since), decoded anew.
      expect(second.map((e) => e.seq)).toEqual([1, 2]);
      expect(second[0]!.data).toEqual(first[0]!.data);
      expect(second[0]!.data).not.toBe(first[0]!.data);
      expect(reader.read(0, 0, 1).map((e) => e.seq)).toEqual([1]);
      // Reading on from where the shared page ends finds the rest.
      expect(reader.read(0, 2, 10).map((e) => e.seq)).toEqual([3]);
      return Promise.resolve();
    });
    expect(reader.read(0, 0, 10).map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('keeps no full page for the pass (a catch-up reads each once), only pages that reached the head', async () => {
    log.commit({ events: [event(1, 1), event(1, 2)], commands: [], snapshots: [] });
    await reader.sharing(() => {
      expect(reader.read(1, 0, 1).map((e) => e.seq)).toEqual([1]);
      log.commit({ events: [event(1, 3)], commands: [], snapshots: [] });
      // Not the page above: read again, and by now the partition holds three.
      expect(reader.read(1, 0, 10).map((e) => e.seq)).toEqual([1, 2, 3]);
      return Promise.resolve();
    });
  });
});
