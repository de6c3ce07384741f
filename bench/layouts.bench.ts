/**
 * `npm run bench -- layouts`: what each B-tree of a storage layout costs a commit. Raw
 * better-sqlite3 (WAL, synchronous=FULL) appends one event row and one command_ids row per
 * command, 64 commands per transaction, over 1,000 streams in 64 partitions, after a prefill
 * (the per-stream and per-partition tails are spread over many pages by then, as in a log that
 * has run a while). Every row is the same data; only the tables and indexes differ. This is
 * the measurement behind issue 14's layout question, not a shipped layout.
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
  /** Work done between commits, outside them (an index kept behind the log). */
  between?: (db: Database.Database) => () => void;
}

const layouts: Layout[] = [
  { name: "today's shard log: events keyed (partition, seq) + UNIQUE (stream, version)", create: (db) => migrate(db) },
  { name: 'events keyed (partition, seq), no per-stream index', create: (db) => db.exec(`CREATE TABLE events (${eventColumns}, PRIMARY KEY (partition, seq)) WITHOUT ROWID; ${commandIds}`) },
  {
    name: 'append-only log (rowid) + index (partition, seq) + index (stream, version)',
    create: (db) => db.exec(`CREATE TABLE events (${eventColumns}); CREATE UNIQUE INDEX by_partition ON events (partition, seq); CREATE UNIQUE INDEX by_stream ON events (stream, version); ${commandIds}`),
  },
  { name: 'append-only log (rowid) + index (partition, seq)', create: (db) => db.exec(`CREATE TABLE events (${eventColumns}); CREATE UNIQUE INDEX by_partition ON events (partition, seq); ${commandIds}`) },
  {
    name: 'events keyed (partition, seq); per-stream index (integer stream id) written behind the commit every 1,024 events',
    create: (db) =>
      db.exec(`CREATE TABLE events (${eventColumns}, PRIMARY KEY (partition, seq)) WITHOUT ROWID; ${commandIds}
        CREATE TABLE streams (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE stream_index (stream_id INTEGER NOT NULL, version INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (stream_id, version)) WITHOUT ROWID;`),
    between: (db) => indexBehind(db, 1_024),
  },
  { name: 'append-only log (rowid), no secondary index', create: (db) => db.exec(`CREATE TABLE events (${eventColumns}); ${commandIds}`) },
];

/** Indexes each partition's events past its mark once `every` events wait, in one transaction of its own. */
function indexBehind(db: Database.Database, every: number): () => void {
  const marks = new Array<number>(partitions).fill(0);
  const tail = db.prepare<[number, number], { seq: number; stream: string; version: number }>('SELECT seq, stream, version FROM events WHERE partition = ? AND seq > ? ORDER BY seq');
  const streamId = db.prepare<[string], { id: number }>('SELECT id FROM streams WHERE name = ?');
  const newStream = db.prepare<[string]>('INSERT INTO streams (name) VALUES (?)');
  const insert = db.prepare<[number, number, number]>('INSERT INTO stream_index (stream_id, version, seq) VALUES (?, ?, ?)');
  const ids = new Map<string, number>();
  let waiting = 0;
  const index = db.transaction(() => {
    for (let partition = 0; partition < partitions; partition++) {
      for (const row of tail.all(partition, marks[partition]!)) {
        let id = ids.get(row.stream) ?? streamId.get(row.stream)?.id;
        if (id === undefined) id = Number(newStream.run(row.stream).lastInsertRowid);
        ids.set(row.stream, id);
        insert.run(id, row.version, row.seq);
        marks[partition] = row.seq;
      }
    }
  });
  return () => {
    waiting += batchSize;
    if (waiting < every) return;
    index();
    waiting = 0;
  };
}

function measure(layout: Layout): ResultRow {
  const dir = mkdtempSync(join(tmpdir(), 'shardlog-layout-'));
  const db = new Database(join(dir, 'log.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('cache_size = -32768');
    layout.create(db);
    const insertEvent = db.prepare('INSERT INTO events (partition, seq, stream, version, type, schema_version, data, meta, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const insertCommand = db.prepare('INSERT INTO command_ids (id, partition, seq, events, fingerprint, stream, result) VALUES (?, ?, ?, ?, ?, NULL, NULL)');
    const data = encodeStored({ amount: 1 });
    const meta = encodeStored({ commandId: newCommandId(Date.now()) });
    const fingerprint = Buffer.alloc(32, 7);
    const versions = new Array<number>(streams).fill(0);
    const seqs = new Array<number>(partitions).fill(0);
    const append = db.transaction(() => {
      const now = Date.now();
      for (let index = 0; index < batchSize; index++) {
        const stream = Math.floor(Math.random() * streams);
        const partition = stream % partitions;
        const seq = ++seqs[partition]!;
        insertEvent.run(partition, seq, `account/acc-${stream}`, ++versions[stream]!, 'Deposited', 1, data, meta, now);
        insertCommand.run(generatedCommandKey(newCommandId(now))!, partition, seq, 1, fingerprint);
      }
    });
    const between = layout.between?.(db) ?? (() => undefined);
    for (let rows = 0; rows < prefillRows; rows += batchSize) {
      append();
      between();
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
    const started = performance.now();
    let rows = 0;
    while (performance.now() - started < durationMs) {
      append();
      between();
      rows += batchSize;
    }
    const seconds = (performance.now() - started) / 1_000;
    return { name: layout.name, opsPerSec: round(rows / seconds, 0), p50Ms: Number.NaN, p99Ms: Number.NaN, msPerBatch: round((seconds * 1_000 * batchSize) / rows, 2) };
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function runLayouts(): Promise<void> {
  const rows = layouts.map(measure);
  const today = rows[0]!.opsPerSec;
  report('layouts', rows, {
    setup: { streams, partitions, batchSize, prefillRows, durability: 'WAL, synchronous=FULL' },
    ratios: Object.fromEntries(rows.map((row) => [row.name, round(row.opsPerSec / today, 2)])),
  });
  return Promise.resolve();
}
