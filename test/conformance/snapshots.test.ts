/**
 * Snapshot conformance: the cases of the Akka Persistence TCK's SnapshotStoreSpec, ported to
 * Shardlog's snapshots. Shardlog has no snapshot store API: a shard keeps one snapshot per
 * stream (the latest) in its log's `snapshots` table, written by the group commit every
 * `snapshotEvery` events in the same transaction as those events. Loading is implicit: a
 * read of the state now or at a version starts from the snapshot when it may.
 *
 * The TCK's selection criteria map to the reads that choose a snapshot: "max sequence nr"
 * is the version asked for (`state({version})` uses the snapshot only at or below it); "max
 * timestamp" has no counterpart, since snapshots carry no time: a read as of a time
 * (`state({at})`) never starts from one. There is no delete: a newer snapshot replaces the
 * older one, and a handoff that truncates a partition drops the snapshots of the streams it
 * cut. The cases say so where they stand in for the TCK's.
 *
 * To see which path a read took, the suite saves snapshots whose state no fold of the
 * events could produce (a payload list starting with a marker).
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeStored, encodeStored } from '../../runtime/codec.ts';
import { createRuntime, defineAggregate, defineApp } from '../../runtime/index.ts';
import { partitionOf } from '../../runtime/partitioning.ts';
import type { ShardWorkerData } from '../../runtime/protocol.ts';
import { ActorCache } from '../../runtime/shard/actor-cache.ts';
import { GroupCommit } from '../../runtime/shard/group-commit.ts';
import { ShardReads } from '../../runtime/shard/reads.ts';
import { ShardLog, type EventRow } from '../../runtime/shard/shard-log.ts';
import app, { journal } from '../fixtures/journal-app.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { silentLogger } from '../support/silent-logger.ts';

const id = 'pid';
const stream = `journal/${id}`;
const written = 12;
/** Event v is recorded at v seconds past the epoch, so a time between two events is easy to name. */
const recordedAtOf = (version: number) => version * 1_000;
const payloads = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, index) => `a-${from + index}`);

let temp: { dir: string; remove: () => void };
let log: ShardLog;

function eventRow(version: number): EventRow {
  return {
    partition: 0,
    seq: version,
    stream,
    version,
    type: 'Persisted',
    schema_version: 1,
    data: encodeStored({ payload: `a-${version}`, decidedAt: recordedAtOf(version) }),
    meta: encodeStored({ commandId: `c-${version}` }),
    recorded_at: recordedAtOf(version),
  };
}

/** The TCK's SaveSnapshot: a state no fold of the events produces, so a read that used it shows it. */
function saveSnapshot(version: number, marker: string | string[], schema = journal.snapshotSchema): void {
  const state = { payloads: Array.isArray(marker) ? marker : [marker] };
  log.commit({ events: [], commands: [], snapshots: [{ stream, version, state: encodeStored(state), schema }] });
}

/** Fresh reads with an empty actor cache: every state is loaded from the log. */
function reads(forApp = app): ShardReads {
  return new ShardReads(forApp, log, new ActorCache(0));
}

beforeEach(() => {
  temp = makeTempDir('shardlog-tck-snapshots-');
  log = new ShardLog(join(temp.dir, '0.db'), 'fsync', { shard: 0, shards: 1, partitions: 1 });
  log.commit({ events: Array.from({ length: written }, (_, index) => eventRow(index + 1)), commands: [], snapshots: [] });
});

afterEach(() => {
  log.close();
  temp.remove();
});

describe('a snapshot store (the snapshots of a shard log)', () => {
  it('finds no snapshot of an unknown stream, whose state is the initial one at version 0', () => {
    expect(log.snapshot('journal/unknown')).toBeUndefined();
    expect(reads().stateNow('journal', 'unknown')).toEqual({ state: { payloads: [] }, version: 0 });
  });

  it('finds no snapshot of a stream that has events but never reached snapshotEvery, and folds its events', () => {
    expect(log.snapshot(stream)).toBeUndefined();
    expect(reads().stateNow('journal', id)).toEqual({ state: { payloads: payloads(1, written) }, version: written });
  });

  it('loads the most recent snapshot, then the events after it', () => {
    saveSnapshot(10, 'snapshot@10');
    expect(reads().stateNow('journal', id)).toEqual({ state: { payloads: ['snapshot@10', 'a-11', 'a-12'] }, version: written });
  });

  it('does not load a snapshot past the version asked for (non-matching sequence number criteria), and folds the events instead', () => {
    saveSnapshot(10, 'snapshot@10');
    expect(reads().stateAtVersion('journal', id, 7)).toEqual({ state: { payloads: payloads(1, 7) }, version: 7 });
    expect(reads().stateAtVersion('journal', id, 9)).toEqual({ state: { payloads: payloads(1, 9) }, version: 9 });
  });

  it('loads the snapshot at or below the version asked for (an upper sequence number bound)', () => {
    saveSnapshot(10, 'snapshot@10');
    expect(reads().stateAtVersion('journal', id, 10)).toEqual({ state: { payloads: ['snapshot@10'] }, version: 10 });
    expect(reads().stateAtVersion('journal', id, 11)).toEqual({ state: { payloads: ['snapshot@10', 'a-11'] }, version: 11 });
  });

  it('never loads a snapshot for a read as of a time: snapshots carry no timestamp (timestamp criteria)', () => {
    saveSnapshot(10, 'snapshot@10');
    expect(reads().stateAtTime('journal', id, recordedAtOf(written))).toEqual({ state: { payloads: payloads(1, written) }, version: written });
    expect(reads().stateAtTime('journal', id, recordedAtOf(5) + 500)).toEqual({ state: { payloads: payloads(1, 5) }, version: 5 });
  });

  it('finds nothing as of a time before the first event (non-matching timestamp criteria)', () => {
    saveSnapshot(10, 'snapshot@10');
    expect(reads().stateAtTime('journal', id, recordedAtOf(1) - 1)).toEqual({ state: { payloads: [] }, version: 0 });
  });

  it('overwrites a snapshot saved again at the same sequence number', () => {
    saveSnapshot(10, 'snapshot@10');
    saveSnapshot(10, 'snapshot@10-modified');
    const row = log.snapshot(stream);
    expect(row?.version).toBe(10);
    expect(decodeStored(row!.state)).toEqual({ payloads: ['snapshot@10-modified'] });
    expect(reads().stateNow('journal', id).state).toEqual({ payloads: ['snapshot@10-modified', 'a-11', 'a-12'] });
  });

  it('keeps only the latest snapshot of a stream: below it, reads fold from the first event', () => {
    saveSnapshot(5, 'snapshot@5');
    saveSnapshot(10, 'snapshot@10');
    expect(log.snapshot(stream)?.version).toBe(10);
    expect(reads().stateAtVersion('journal', id, 7)).toEqual({ state: { payloads: payloads(1, 7) }, version: 7 });
  });

  it('ignores a snapshot taken under another snapshot schema (a changed state shape)', () => {
    const journalV2 = defineAggregate({ ...journal, snapshotVersion: 2 });
    const appV2 = defineApp({ module: import.meta.url, aggregates: [journalV2] });
    saveSnapshot(10, 'snapshot@10');
    expect(reads(appV2).stateNow('journal', id)).toEqual({ state: { payloads: payloads(1, written) }, version: written });
    expect(reads(appV2).stateAtVersion('journal', id, 10)).toEqual({ state: { payloads: payloads(1, 10) }, version: 10 });
  });

  it('saves and loads a big snapshot (2 MiB of state)', () => {
    const big = 'x'.repeat(2 * 1024 * 1024);
    saveSnapshot(written, [big]);
    expect(reads().stateNow('journal', id)).toEqual({ state: { payloads: [big] }, version: written });
  });

  it('has no delete: truncating a partition (a handoff) drops the snapshot of every stream it cut, so no state outlives its events', () => {
    saveSnapshot(10, 'snapshot@10');
    log.truncatePartition(0, 7);
    expect(log.snapshot(stream)).toBeUndefined();
    expect(reads().stateNow('journal', id)).toEqual({ state: { payloads: payloads(1, 7) }, version: 7 });
  });

  it('writes no snapshot when the commit that carried it fails', () => {
    saveSnapshot(10, 'snapshot@10');
    let failure: unknown;
    try {
      // The second command record repeats the first's id: the write fails after the event and before the snapshot.
      const record = { id: 'repeated', stream, fingerprint: Buffer.alloc(0), result: Buffer.from([0xc0]), recorded_at: 1 };
      log.commit({ events: [eventRow(written + 1)], commands: [record, record], snapshots: [{ stream, version: written + 1, state: encodeStored({ payloads: ['lost'] }), schema: journal.snapshotSchema }] });
    } catch (error) {
      failure = error;
    }
    expect((failure as { code?: unknown }).code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY');
    expect(log.snapshot(stream)?.version).toBe(10);
    expect(log.lastSeq(0)).toBe(written);
  });
});

describe('snapshots written by the group commit', () => {
  const config: ShardWorkerData = { shard: 0, shards: 1, partitions: 1, dataDir: '', appModule: app.module, durability: 'fsync', maxLiveActors: 10, returnEvents: 'none' as const };

  it('saves one every snapshotEvery events, at the version of the command that crossed the multiple, in the events\' transaction', () => {
    const commit = new GroupCommit(app, log, new ActorCache(10), config);
    const fresh = 'fresh';
    const persist = (count: number, n: number) =>
      commit.run([{ commandId: `w-${n}`, aggregate: 'journal', id: fresh, command: 'persist', input: { payloads: Array.from({ length: count }, (_, index) => `p-${n}-${index}`) } }]);
    expect(partitionOf(`journal/${fresh}`, 1)).toBe(0);
    persist(3, 1);
    expect(log.snapshot(`journal/${fresh}`)).toBeUndefined();
    persist(3, 2);
    expect(log.snapshot(`journal/${fresh}`)?.version).toBe(6);
    for (let n = 3; n <= 6; n++) persist(1, n);
    const row = log.snapshot(`journal/${fresh}`);
    expect(row?.version).toBe(10);
    const folded = reads().stateAtVersion('journal', fresh, 9);
    expect(decodeStored<{ payloads: string[] }>(row!.state).payloads).toEqual([...(folded.state as { payloads: string[] }).payloads, 'p-6-0']);
  });
});

describe('snapshots through the public Runtime API', () => {
  it('answers every version the same with or without snapshots, and loads the latest snapshot after a restart', async () => {
    const dir = makeTempDir('shardlog-tck-snapshot-runtime-');
    try {
      const first = await createRuntime({ app, dataDir: dir.dir, partitions: 1, shards: 1, logger: silentLogger });
      try {
        for (let n = 1; n <= written; n++) await first.dispatch({ aggregate: 'journal', id, command: 'persist', input: { payloads: [`a-${n}`] } });
        for (let version = 0; version <= written; version++) {
          expect(await first.state({ aggregate: 'journal', id, version })).toEqual({ state: { payloads: payloads(1, version) }, version });
        }
      } finally {
        await first.close();
      }

      // Replace the snapshot the runtime wrote (at 10) with one only a load from it can show.
      const db = new Database(join(dir.dir, 'shards', '0.db'));
      try {
        expect(db.prepare('SELECT version FROM snapshots WHERE stream = ?').pluck().get(stream)).toBe(10);
        db.prepare('UPDATE snapshots SET state = ? WHERE stream = ?').run(encodeStored({ payloads: ['snapshot@10'] }), stream);
      } finally {
        db.close();
      }

      const second = await createRuntime({ app, dataDir: dir.dir, logger: silentLogger });
      try {
        expect(await second.state({ aggregate: 'journal', id })).toEqual({ state: { payloads: ['snapshot@10', 'a-11', 'a-12'] }, version: written });
        expect(await second.state({ aggregate: 'journal', id, version: 9 })).toEqual({ state: { payloads: payloads(1, 9) }, version: 9 });
        expect(await second.state({ aggregate: 'journal', id, at: new Date(Date.now() + 60_000) })).toEqual({ state: { payloads: payloads(1, written) }, version: written });
      } finally {
        await second.close();
      }
    } finally {
      dir.remove();
    }
  });
});
