import type Database from 'better-sqlite3';
import type { EventRow } from './event-row.ts';
import type { LogTail } from './log-tail.ts';

const joinedColumns = 'e.partition, e.seq, e.stream, e.version, e.type, e.schema_version, e.data, e.meta, e.recorded_at';

/**
 * Reads a shard log by stream or by partition: what the indexes hold through them, then the
 * tail past their mark. Works on any connection; one that is not the writer's must read inside
 * one read transaction, with the mark and tail of that transaction (ScannedTail).
 */
export class LogRows {
  private readonly selectStreamId;
  private readonly selectStreamIndexed;
  private readonly selectPartitionIndexed;
  private readonly selectPartitionHead;
  private readonly selectNextIndexedHead;

  constructor(db: Database.Database) {
    this.selectStreamId = db.prepare<[string], { id: number }>('SELECT id FROM streams WHERE name = ?');
    this.selectStreamIndexed = db.prepare<[number, number, number], EventRow>(
      `SELECT ${joinedColumns} FROM stream_index i CROSS JOIN events e ON e.id = i.row
       WHERE i.stream_id = ? AND i.version > ? AND i.version <= ? ORDER BY i.version`,
    );
    this.selectPartitionIndexed = db.prepare<[number, number, number], EventRow>(
      `SELECT ${joinedColumns} FROM partition_index i CROSS JOIN events e ON e.id = i.row
       WHERE i.partition = ? AND i.seq > ? ORDER BY i.seq LIMIT ?`,
    );
    this.selectPartitionHead = db.prepare<[number], EventRow>(
      `SELECT ${joinedColumns} FROM partition_index i CROSS JOIN events e ON e.id = i.row
       WHERE i.partition = ? ORDER BY i.seq DESC LIMIT 1`,
    );
    // The next partition after one, with its last seq: two index seeks, where a GROUP BY reads every entry.
    this.selectNextIndexedHead = db.prepare<[number], { partition: number | null; seq: number | null }>(
      'SELECT partition, MAX(seq) AS seq FROM partition_index WHERE partition = (SELECT MIN(partition) FROM partition_index WHERE partition > ?)',
    );
  }

  /** The stream's integer in the index, if it has one yet. */
  streamIdOf(stream: string): number | undefined {
    return this.selectStreamId.get(stream)?.id;
  }

  /** Lazy, like any iterate(): a caller that stops early releases the statement. */
  *streamBetween(stream: string, partition: number, tail: LogTail, afterVersion: number, untilVersion: number): Generator<EventRow> {
    const id = this.streamIdOf(stream);
    let last = afterVersion;
    if (id !== undefined) {
      for (const row of this.selectStreamIndexed.iterate(id, afterVersion, untilVersion)) {
        last = row.version;
        yield row;
      }
    }
    for (const row of tail.rowsOfStream(partition, stream)) {
      if (row.version > last && row.version <= untilVersion) yield row;
    }
  }

  /** Up to `limit` events of a stream after a version. */
  streamAfter(stream: string, partition: number, tail: LogTail, afterVersion: number, limit: number): EventRow[] {
    const rows: EventRow[] = [];
    if (limit <= 0) return rows;
    for (const row of this.streamBetween(stream, partition, tail, afterVersion, Number.MAX_SAFE_INTEGER)) {
      rows.push(row);
      if (rows.length === limit) break;
    }
    return rows;
  }

  /** Up to `limit` events of a partition after a seq, in seq order. */
  partitionAfter(partition: number, afterSeq: number, limit: number, tail: LogTail): EventRow[] {
    // A reader that keeps up asks for what the tail holds: the index has nothing after afterSeq.
    if ((tail.firstSeqOf(partition) ?? Number.POSITIVE_INFINITY) <= afterSeq + 1) return tail.rowsAfter(partition, afterSeq, limit);
    const rows = this.selectPartitionIndexed.all(partition, afterSeq, limit);
    if (rows.length === limit) return rows;
    for (const row of tail.rowsAfter(partition, rows.at(-1)?.seq ?? afterSeq, limit - rows.length)) rows.push(row);
    return rows;
  }

  /** The last event of a partition, if it has any. */
  partitionHead(partition: number, tail: LogTail): EventRow | undefined {
    const head = tail.headOf(partition);
    return head === undefined ? this.selectPartitionHead.get(partition) : tail.rowsAfter(partition, head - 1, 1)[0];
  }

  /** The last seq of every partition that has events (for opens: two index seeks per partition). */
  heads(tail: LogTail): Map<number, number> {
    const heads = new Map<number, number>();
    for (let after = -1; ; ) {
      const { partition, seq } = this.selectNextIndexedHead.get(after)!;
      if (partition === null || seq === null) break;
      heads.set(partition, seq);
      after = partition;
    }
    for (const partition of tail.partitions()) heads.set(partition, tail.headOf(partition)!);
    return heads;
  }
}
