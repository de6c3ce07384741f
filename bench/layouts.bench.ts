/**
 * `npm run bench -- layouts`: what each B-tree of a storage layout costs a commit. Raw
 * better-sqlite3 (WAL, synchronous=FULL) appends one event row and one command_ids row per
 * command, 64 commands per transaction, over 1,000 streams in 64 partitions, after a prefill
 * (the per-stream and per-partition tails are spread over many pages by then, as in a log that
 * has run a while). Every row is the same data; only the tables and indexes differ. This is
 * the measurement behind issue 14's layout question; the third row is the shipped one (ADR 0013).
 * Each row also splits a batch's time into its inserts and its COMMIT (WAL frames + fsync).
 * Knobs: BENCH_SECONDS (per layout, default 10), BENCH_LAYOUT_PREFILL (rows, default 100,000).
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeStored } from '../runtime/codec.ts';
import { newCommandId } from '../runtime/command-id.ts';
import { generatedCommandKey } from '../runtime/shard/generated-command-key.ts';
import { migrate } from '../runtime/shard/migrations.ts';
import type { EventRow } from '../runtime/shard/event-row.ts';
import { LogIndex } from '../runtime/shard/log-index.ts';
import { round } from './support/latency.ts';
import { envNumber, report, type ResultRow } from './support/results.ts';

const streams = 1_000;
const partitions = 64;
const batchSize = 64;
const durationMs = envNumber('BENCH_SECONDS', 10) * 1_000;
const prefillRows = envNumber('BENCH_LAYOUT_PREFILL', 100_000);

const commandIds = `CREATE TABLE command_ids (
  id BLOB PRIMARY KEY, partition INTEGER NOT NULL, seq INTEGER, events INTEGER NOT NULL, fingerprint BLOB NOT NULL, stream TEXT, result BLOB
) WITHOUT ROWID;`;
const eventColumns = 'partition INTEGER NOT NULL, seq INTEGER NOT NULL, stream TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL, schema_version INTEGER NOT NULL, data BLOB NOT NULL, meta BLOB, recorded_at INTEGER NOT NULL';

interface Layout {
  name: string;
  /** Creates the tables; `events` takes the nine event columns in the shard log's order. */
  create: (db: Database.Database) => void;
  /** The shard log's own LogIndex: it hands out the row ids, and indexes behind the commit as the shard thread does. */
  logIndex?: boolean;
}

const layouts: Layout[] = [
  { name: 'before migration 4: events keyed (partition, seq) + UNIQUE (stream, version)', create: (db) => db.exec(`CREATE TABLE events (${eventColumns}, PRIMARY KEY (partition, seq), UNIQUE (stream, version)) WITHOUT ROWID; ${commandIds}`) },
  { name: 'events keyed (partition, seq), no per-stream index', create: (db) => db.exec(`CREATE TABLE events (${eventColumns}, PRIMARY KEY (partition, seq)) WITHOUT ROWID; ${commandIds}`) },
  {
    name: "today's shard log (migration 5): append-only log, (partition, seq) and per-stream indexes behind the commit (LogIndex)",
    create: (db) => migrate(db),
    logIndex: true,
  },
  {
    name: 'append-only log (rowid) + index (partition, seq) + index (stream, version)',
    create: (db) => db.exec(`CREATE TABLE events (${eventColumns}); CREATE UNIQUE INDEX by_partition ON events (partition, seq); CREATE UNIQUE INDEX by_stream ON events (stream, version); ${commandIds}`),
  },
  { name: 'append-only log (rowid) + index (partition, seq)', create: (db) => db.exec(`CREATE TABLE events (${eventColumns}); CREATE UNIQUE INDEX by_partition ON events (partition, seq); ${commandIds}`) },
  { name: 'append-only log (rowid), no secondary index', create: (db) => db.exec(`CREATE TABLE events (${eventColumns}); ${commandIds}`) },
];

function measure(layout: Layout): ResultRow {
  const dir = mkdtempSync(join(tmpdir(), 'shardlog-layout-'));
  const db = new Database(join(dir, 'log.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('cache_size = -32768');
    layout.create(db);
    const logIndex = layout.logIndex === true ? new LogIndex(db, true) : undefined;
    const insertEvent = logIndex
      ? db.prepare('INSERT INTO events (id, partition, seq, stream, version, type, schema_version, data, meta, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      : db.prepare('INSERT INTO events (partition, seq, stream, version, type, schema_version, data, meta, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const insertCommand = db.prepare('INSERT INTO command_ids (id, partition, seq, events, fingerprint, stream, result) VALUES (?, ?, ?, ?, ?, NULL, NULL)');
    const data = encodeStored({ amount: 1 });
    const meta = encodeStored({ commandId: newCommandId(Date.now()) });
    const fingerprint = Buffer.alloc(32, 7);
    const versions = new Array<number>(streams).fill(0);
    const seqs = new Array<number>(partitions).fill(0);
    let appended: [number, EventRow][] = [];
    // BEGIN and COMMIT by hand, to time the COMMIT (the WAL frames and the fsync) apart from the inserts.
    const spent = { inserts: 0, commits: 0 };
    const append = () => {
      const started = performance.now();
      db.exec('BEGIN');
      const now = Date.now();
      appended = [];
      for (let index = 0; index < batchSize; index++) {
        const stream = Math.floor(Math.random() * streams);
        const partition = stream % partitions;
        const seq = ++seqs[partition]!;
        const row: EventRow = { partition, seq, stream: `account/acc-${stream}`, version: ++versions[stream]!, type: 'Deposited', schema_version: 1, data, meta, recorded_at: now };
        const values = [row.partition, row.seq, row.stream, row.version, row.type, row.schema_version, row.data, row.meta, row.recorded_at];
        if (logIndex === undefined) {
          insertEvent.run(...values);
        } else {
          const id = logIndex.takeRowIds(1);
          insertEvent.run(id, ...values);
          appended.push([id, row]);
        }
        insertCommand.run(generatedCommandKey(newCommandId(now))!, partition, seq, 1, fingerprint);
      }
      const inserted = performance.now();
      db.exec('COMMIT');
      spent.inserts += inserted - started;
      spent.commits += performance.now() - inserted;
    };
    // Behind the commit, outside it, as the shard thread does after each batch.
    const afterCommit = (rows: [number, EventRow][]) => {
      if (logIndex === undefined) return;
      for (const [id, row] of rows) logIndex.appended(id, row);
      if (logIndex.due) logIndex.indexStep();
    };
    for (let rows = 0; rows < prefillRows; rows += batchSize) {
      append();
      afterCommit(appended);
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
    spent.inserts = 0;
    spent.commits = 0;
    const started = performance.now();
    let rows = 0;
    while (performance.now() - started < durationMs) {
      append();
      afterCommit(appended);
      rows += batchSize;
    }
    const seconds = (performance.now() - started) / 1_000;
    const batches = rows / batchSize;
    return {
      name: layout.name,
      opsPerSec: round(rows / seconds, 0),
      p50Ms: Number.NaN,
      p99Ms: Number.NaN,
      msPerBatch: round((seconds * 1_000) / batches, 3),
      insertMsPerBatch: round(spent.inserts / batches, 3),
      commitMsPerBatch: round(spent.commits / batches, 3),
    };
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function runLayouts(): Promise<void> {
  const rows = layouts.map(measure);
  const before = rows[0]!.opsPerSec;
  report('layouts', rows, {
    setup: { streams, partitions, batchSize, prefillRows, durability: 'WAL, synchronous=FULL' },
    ratios: Object.fromEntries(rows.map((row) => [row.name, round(row.opsPerSec / before, 2)])),
  });
  return Promise.resolve();
}
