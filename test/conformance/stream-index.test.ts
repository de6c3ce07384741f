/**
 * The per-stream index is written behind the commit (ADR 0013): whatever it has taken so far,
 * a stream read must give exactly the stream's events, in version order, as a model of the
 * log says. Random commits, index chunks of random size, cuts (a handoff's truncation),
 * copies in (a catch-up) and reopens, checked against the model after every step.
 */
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import app from '../../actors/app.ts';
import { readStreamEvents } from '../../runtime/host/log-reader.ts';
import { writeMetaAtomically } from '../../runtime/host/data-dir.ts';
import { partitionOf } from '../../runtime/partitioning.ts';
import { ShardLog, type EventRow } from '../../runtime/shard/shard-log.ts';
import { CorruptLogError, indexDueAt, streamIndexDueAt } from '../../runtime/shard/log-index.ts';
import { LogRows } from '../../runtime/shard/log-rows.ts';
import { indexMarks, ScannedTail } from '../../runtime/shard/log-tail.ts';
import { FollowedTail } from '../../runtime/shard/followed-tail.ts';
import { startBank } from '../support/runtime.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { waitFor } from '../support/wait-for.ts';

const partitions = 2;
const identity = { shard: 0, shards: 1, partitions };
const streams = ['account/a', 'account/b', 'account/c', 'account/d', 'account/e'];

type Step =
  | { kind: 'commit'; picks: number[] }
  | { kind: 'index-partitions'; piece: number; limit: number }
  | { kind: 'index-streams'; piece: number }
  | { kind: 'truncate'; partition: number; keep: number }
  | { kind: 'copy-in'; stream: number; count: number }
  | { kind: 'reopen' };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('commit' as const), picks: fc.array(fc.nat(streams.length - 1), { minLength: 1, maxLength: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('index-partitions' as const), piece: fc.integer({ min: 1, max: 12 }), limit: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('index-streams' as const), piece: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), partition: fc.nat(partitions - 1), keep: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('copy-in' as const), stream: fc.nat(streams.length - 1), count: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
);

/** What the log holds: every event, by partition in seq order. */
class Model {
  readonly partitions = new Map<number, EventRow[]>();

  append(stream: string, recordedAt: number): EventRow {
    const partition = partitionOf(stream, partitions);
    const rows = this.partitions.get(partition) ?? [];
    this.partitions.set(partition, rows);
    const version = rows.filter((row) => row.stream === stream).length + 1;
    const row: EventRow = { partition, seq: rows.length + 1, stream, version, type: 'Deposited', schema_version: 1, data: Buffer.from([0xc0]), meta: null, recorded_at: recordedAt };
    rows.push(row);
    return row;
  }

  truncate(partition: number, afterSeq: number): void {
    this.partitions.set(partition, (this.partitions.get(partition) ?? []).slice(0, afterSeq));
  }

  stream(stream: string): EventRow[] {
    return (this.partitions.get(partitionOf(stream, partitions)) ?? []).filter((row) => row.stream === stream);
  }
}

/** What another connection (the projector's, the CLI's) reads in one read transaction: the indexes, then the tail it scans past their marks. */
function expectOtherConnectionReads(file: string, model: Model): void {
  const db = new Database(file, { readonly: true });
  try {
    db.transaction(() => {
      const rows = new LogRows(db);
      const marks = indexMarks(db);
      const partitionTail = new ScannedTail(db, marks.partition);
      const streamTail = new ScannedTail(db, marks.stream);
      const heads = new Map<number, number>();
      for (let partition = 0; partition < partitions; partition++) {
        const expected = model.partitions.get(partition) ?? [];
        if (expected.length > 0) heads.set(partition, expected.length);
        expect(rows.partitionAfter(partition, 0, 1_000, partitionTail), `partition ${partition}, other connection`).toEqual(expected);
        expect(rows.partitionAfter(partition, 1, 3, partitionTail), `partition ${partition}, other connection`).toEqual(expected.slice(1, 4));
        expect(rows.partitionHead(partition, partitionTail), `partition ${partition}, other connection`).toEqual(expected.at(-1));
      }
      expect(rows.heads(partitionTail)).toEqual(heads);
      for (const stream of streams) {
        expect(rows.streamAfter(stream, partitionOf(stream, partitions), streamTail, 0, 1_000), `${stream}, other connection`).toEqual(model.stream(stream));
      }
    })();
  } finally {
    db.close();
  }
}

/** What a reader that keeps its connection and its tail between read transactions (the projector) reads now. */
function expectFollowerReads(follower: { db: Database.Database; tail: FollowedTail }, model: Model): void {
  follower.db.transaction(() => {
    const rows = new LogRows(follower.db);
    const tail = follower.tail.refresh();
    for (let partition = 0; partition < partitions; partition++) {
      const expected = model.partitions.get(partition) ?? [];
      expect(rows.partitionAfter(partition, 0, 1_000, tail), `partition ${partition}, follower`).toEqual(expected);
      expect(rows.partitionAfter(partition, Math.max(0, expected.length - 2), 5, tail), `partition ${partition}, follower`).toEqual(expected.slice(Math.max(0, expected.length - 2)));
    }
  })();
}

function versions(rows: Iterable<EventRow>): number[] {
  return [...rows].map((row) => row.version);
}

describe('the per-stream index, written behind the commit', () => {
  it('never changes what a stream read returns, whatever it has indexed yet', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => {
        const temp = makeTempDir('shardlog-stream-index-');
        const file = join(temp.dir, '0.db');
        let log = new ShardLog(file, 'fsync', identity);
        const followerDb = new Database(file, { readonly: true });
        const follower = { db: followerDb, tail: new FollowedTail(followerDb) };
        const model = new Model();
        let clock = 1;
        try {
          for (const [index, next] of steps.entries()) {
            if (next.kind === 'commit') {
              const events = next.picks.map((pick) => model.append(streams[pick]!, clock++));
              log.commit({ events, commands: [], snapshots: [] });
            } else if (next.kind === 'index-partitions') {
              log.indexPartitions(next.piece, next.limit);
            } else if (next.kind === 'index-streams') {
              log.indexStreams(next.piece);
            } else if (next.kind === 'truncate') {
              const held = model.partitions.get(next.partition)?.length ?? 0;
              const afterSeq = Math.floor(held * next.keep);
              log.truncatePartition(next.partition, afterSeq);
              model.truncate(next.partition, afterSeq);
            } else if (next.kind === 'copy-in') {
              const stream = streams[next.stream]!;
              const events = Array.from({ length: next.count }, () => model.append(stream, clock++));
              log.appendReplica(events, [], events[0]!.partition, events.at(-1)!.seq);
            } else {
              log.close();
              log = new ShardLog(file, 'fsync', identity);
              expect(log.indexPending).toBe(0);
            }
            for (const stream of streams) {
              const expected = model.stream(stream);
              expect(versions(log.streamEventsAfter(stream, 0)), stream).toEqual(versions(expected));
              expect(log.streamEventsAfter(stream, 1, 2), stream).toEqual(expected.slice(1, 3));
              const last = expected.length;
              expect(versions(log.streamEventsBetween(stream, 1, Math.max(1, last - 1))), stream).toEqual(versions(expected.slice(1, Math.max(1, last - 1))));
              const middle = expected[Math.floor(last / 2)]?.recorded_at ?? 0;
              expect(versions(log.streamEventsUntilTime(stream, middle)), stream).toEqual(versions(expected.filter((row) => row.recorded_at <= middle)));
            }
            for (let partition = 0; partition < partitions; partition++) {
              const expected = model.partitions.get(partition) ?? [];
              expect(log.partitionEventsAfter(partition, 0, 1_000), `partition ${partition}`).toEqual(expected);
              expect(log.partitionEventsAfter(partition, 1, 3), `partition ${partition}`).toEqual(expected.slice(1, 4));
              expect(log.lastSeq(partition)).toBe(expected.length);
            }
            expectOtherConnectionReads(file, model);
            // Every other step, so that the follower also meets several changes at once.
            if (index % 2 === 0) expectFollowerReads(follower, model);
          }
        } finally {
          followerDb.close();
          log.close();
          temp.remove();
        }
      }),
      { numRuns: 60 },
    );
  });

  it('is read the same by the read-only reader of another connection, indexed or not', () => {
    const temp = makeTempDir('shardlog-stream-index-reader-');
    try {
      writeMetaAtomically(temp.dir, { format: 1, partitions, shards: 1, hash: 'fnv1a32' });
      mkdirSync(join(temp.dir, 'shards'));
      const log = new ShardLog(join(temp.dir, 'shards', '0.db'), 'fsync', identity);
      const model = new Model();
      const read = (id: string) => readStreamEvents(app, temp.dir, { aggregate: 'account', id, after: 0, limit: 1_000 }).map((event) => event.version);
      try {
        for (let round = 0; round < 3; round++) {
          log.commit({ events: streams.flatMap((stream) => [model.append(stream, round), model.append(stream, round)]), commands: [], snapshots: [] });
          if (round === 1) {
            log.indexPartitions(7, 7);
            log.indexStreams(3);
          }
          for (const stream of streams) expect(read(stream.slice('account/'.length))).toEqual(versions(model.stream(stream)));
        }
      } finally {
        log.close();
      }
    } finally {
      temp.remove();
    }
  });

  it('keeps up behind a running shard thread, between its requests', async () => {
    const bank = await startBank({ shards: 1, partitions: 4 });
    try {
      for (let round = 0; round < (streamIndexDueAt + 2 * indexDueAt) / 250; round++) {
        await Promise.all(Array.from({ length: 250 }, (_, n) => bank.runtime.dispatch({ aggregate: 'account', id: `acc-${round}-${n}`, command: 'open', input: { owner: 'o' } })));
      }
      const unindexed = (index: string) => {
        const db = new Database(join(bank.dir, 'shards', '0.db'), { readonly: true });
        try {
          const events = db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM events').get()!.n;
          return events - db.prepare<[], { n: number }>(`SELECT COUNT(*) AS n FROM ${index}`).get()!.n;
        } finally {
          db.close();
        }
      };
      // Indexing runs between requests, once enough events wait: what is left is under that,
      // once the thread has had its turns after the last reply.
      await waitFor(() => unindexed('partition_index') < indexDueAt && unindexed('stream_index') < streamIndexDueAt, { timeoutMs: 30_000 });
      expect(unindexed('partition_index')).toBeLessThan(indexDueAt);
      expect(unindexed('stream_index')).toBeLessThan(streamIndexDueAt);
      expect(await bank.runtime.state({ aggregate: 'account', id: 'acc-0-0' })).toMatchObject({ version: 1 });
    } finally {
      await bank.stop();
    }
  });

  it('refuses an append that does not continue its partition, before writing anything', () => {
    const temp = makeTempDir('shardlog-log-position-');
    const file = join(temp.dir, '0.db');
    try {
      const log = new ShardLog(file, 'fsync', identity);
      const model = new Model();
      const first = model.append('account/a', 1);
      log.commit({ events: [first], commands: [], snapshots: [] });
      expect(() => log.commit({ events: [{ ...first, version: 2 }], commands: [], snapshots: [] })).toThrow(/is at seq 1, an append brought seq 1/);
      expect(() => log.appendReplica([{ ...first, seq: 3, version: 2 }], [], first.partition, 3)).toThrow(/is at seq 1, an append brought seq 3/);
      expect(log.partitionEventsAfter(first.partition, 0, 10)).toEqual([first]);
      log.close();
    } finally {
      temp.remove();
    }
  });

  it('finds a stream version written twice when it indexes it, and refuses to open that log', () => {
    const temp = makeTempDir('shardlog-stream-index-corrupt-');
    const file = join(temp.dir, '0.db');
    try {
      const log = new ShardLog(file, 'fsync', identity);
      const model = new Model();
      const first = model.append('account/a', 1);
      // The commit no longer checks versions (the actor's serial execution does): a second event with version 1.
      log.commit({ events: [first, { ...first, seq: first.seq + 1 }], commands: [], snapshots: [] });
      expect(() => log.indexStreams()).toThrow(CorruptLogError);
      log.close();
      expect(() => new ShardLog(file, 'fsync', identity)).toThrow(/held twice/);
    } finally {
      temp.remove();
    }
  });

  it('is filled at open from a log whose index is missing (a crash before indexing, a reshard, a migration)', () => {
    const temp = makeTempDir('shardlog-stream-index-open-');
    const file = join(temp.dir, '0.db');
    try {
      const model = new Model();
      let log = new ShardLog(file, 'fsync', identity);
      log.commit({ events: Array.from({ length: 300 }, (_, n) => model.append(streams[n % streams.length]!, n)), commands: [], snapshots: [] });
      log.close();
      const raw = new Database(file);
      raw.exec('DELETE FROM stream_index; DELETE FROM partition_index; DELETE FROM index_marks; DELETE FROM streams');
      raw.close();
      log = new ShardLog(file, 'fsync', identity);
      try {
        expect(log.indexPending).toBe(0);
        for (const stream of streams) expect(versions(log.streamEventsAfter(stream, 0))).toEqual(versions(model.stream(stream)));
      } finally {
        log.close();
      }
    } finally {
      temp.remove();
    }
  });
});
