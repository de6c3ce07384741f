import Database from 'better-sqlite3';
import { join, resolve } from 'node:path';
import { aggregateNamed, type App } from '../define/app.ts';
import { makeError } from '../errors.ts';
import { assertValidId, partitionOf, shardOf, streamName } from '../partitioning.ts';
import type { StoredEvent } from '../protocol.ts';
import { ShardReads } from '../shard/reads.ts';
import type { EventRow } from '../shard/shard-log.ts';
import { StreamRows } from '../shard/stream-index.ts';
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
      if (db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'stream_index_marks'").get() === undefined) {
        // Not opened since an upgrade: the layout before migration 4 indexes (stream, version) in the table.
        return db.prepare<[string, number, number], EventRow>('SELECT * FROM events WHERE stream = ? AND version > ? ORDER BY version LIMIT ?').all(stream, query.after, query.limit);
      }
      const partition = partitionOf(stream, meta.partitions);
      const mark = db.prepare<[number], { seq: number }>('SELECT seq FROM stream_index_marks WHERE partition = ?').get(partition)?.seq ?? 0;
      return new StreamRows(db).after(stream, partition, mark, query.after, query.limit);
    })();
    return rows.map((row) => ShardReads.toStoredEvent(aggregate, row));
  } finally {
    db.close();
  }
}
