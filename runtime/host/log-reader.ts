import Database from 'better-sqlite3';
import { join, resolve } from 'node:path';
import { aggregateNamed, type App } from '../define/app.ts';
import { makeError } from '../errors.ts';
import { assertValidId, partitionOf, shardOf, streamName } from '../partitioning.ts';
import type { StoredEvent } from '../protocol.ts';
import { ShardReads } from '../shard/reads.ts';
import type { EventRow } from '../shard/shard-log.ts';
import { LogRows } from '../shard/log-rows.ts';
import { indexMarks, ScannedTail } from '../shard/log-tail.ts';
import { eventColumns } from '../shard/event-row.ts';
import { readMeta } from './data-dir.ts';

/**
 * Reads one stream straight from its shard file, read-only, with no runtime: works while a
 * node serves the same data dir (WAL readers never block the writer) or when none does.
 */
export function readStreamEvents(app: App, dataDir: string, query: { aggregate: string; id: string; after: number; limit: number }): StoredEvent[] {
  const aggregate = aggregateNamed(app, query.aggregate);
  assertValidId(query.id);
  const directory = resolve(dataDir);
  const meta = readMeta(directory);
  if (meta === undefined) throw makeError('SHARDLOG_INVALID_CONFIG', `${directory} holds no Shardlog data (no meta.json)`);
  const stream = streamName(query.aggregate, query.id);
  const file = join(directory, 'shards', `${shardOf(partitionOf(stream, meta.partitions), meta.shards)}.db`);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    // One read transaction: the index and its marks as of one moment, whatever the writer does meanwhile.
    const rows = db.transaction(() => {
      if (db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'index_marks'").get() === undefined) {
        // Not opened since an upgrade to migration 5: read the stream from the table itself
        // (through its (stream, version) key before migration 4, by a scan after it).
        return db
          .prepare<[string, number, number], EventRow>(`SELECT ${eventColumns} FROM events WHERE stream = ? AND version > ? ORDER BY version LIMIT ?`)
          .all(stream, query.after, query.limit);
      }
      const tail = new ScannedTail(db, indexMarks(db).stream);
      return new LogRows(db).streamAfter(stream, partitionOf(stream, meta.partitions), tail, query.after, query.limit);
    })();
    return rows.map((row) => ShardReads.toStoredEvent(aggregate, row));
  } finally {
    db.close();
  }
}
