import type Database from 'better-sqlite3';
import { eventColumns, type EventRow } from './event-row.ts';

/**
 * The events past the index mark (ADR 0013): appended to the log, not yet in `partition_index`
 * or `stream_index`. Per partition in seq order, which is their row order.
 */
export interface LogTail {
  rowsOf(partition: number): readonly EventRow[];
  /** The partitions that have rows in the tail. */
  partitions(): Iterable<number>;
}

/** An event row with its row id, the key of the log and of both indexes. */
export interface IdentifiedRow {
  id: number;
  row: EventRow;
}

/**
 * The tail as the log's writer holds it: it appended every row, so it keeps the unindexed ones
 * in memory and no read of its own scans the log for them.
 */
export class MemoryTail implements LogTail {
  /** In row id order, which is each partition's seq order. */
  private rows: IdentifiedRow[] = [];
  private readonly byPartition = new Map<number, EventRow[]>();

  get size(): number {
    return this.rows.length;
  }

  rowsOf(partition: number): readonly EventRow[] {
    return this.byPartition.get(partition) ?? [];
  }

  partitions(): Iterable<number> {
    return this.byPartition.keys();
  }

  /** How many rows have an id above `mark`. */
  countAfter(mark: number): number {
    return this.rows.length - this.indexAfter(mark);
  }

  /** The first `limit` rows with an id above `mark`, in row id order. */
  after(mark: number, limit: number): readonly IdentifiedRow[] {
    const start = this.indexAfter(mark);
    return this.rows.slice(start, start + limit);
  }

  /** The position of the first row with an id above `mark`. */
  private indexAfter(mark: number): number {
    let low = 0;
    let high = this.rows.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.rows[middle]!.id <= mark) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** A partition's rows with their ids. */
  identifiedRowsOf(partition: number): readonly IdentifiedRow[] {
    return this.rows.filter(({ row }) => row.partition === partition);
  }

  append(id: number, row: EventRow): void {
    this.rows.push({ id, row });
    let rows = this.byPartition.get(row.partition);
    if (rows === undefined) this.byPartition.set(row.partition, (rows = []));
    rows.push(row);
  }

  /** The index took every row up to this id. */
  dropThrough(mark: number): void {
    const dropped = this.indexAfter(mark);
    if (dropped === 0) return;
    const gone = this.rows.slice(0, dropped);
    this.rows = this.rows.slice(dropped);
    const perPartition = new Map<number, number>();
    for (const { row } of gone) perPartition.set(row.partition, (perPartition.get(row.partition) ?? 0) + 1);
    for (const [partition, count] of perPartition) {
      const rows = this.byPartition.get(partition)!;
      if (count === rows.length) this.byPartition.delete(partition);
      else rows.splice(0, count);
    }
  }

  /** A partition's rows after this seq are gone from the log. */
  truncate(partition: number, afterSeq: number): void {
    this.rows = this.rows.filter(({ row }) => row.partition !== partition || row.seq <= afterSeq);
    const kept = (this.byPartition.get(partition) ?? []).filter((row) => row.seq <= afterSeq);
    if (kept.length === 0) this.byPartition.delete(partition);
    else this.byPartition.set(partition, kept);
  }
}

/**
 * The tail as any other connection finds it: the rows past the mark its read transaction
 * sees, read in one scan on first use. Valid only inside that read transaction.
 */
export class ScannedTail implements LogTail {
  private byPartition: Map<number, EventRow[]> | undefined;

  constructor(
    private readonly db: Database.Database,
    readonly mark: number,
  ) {}

  rowsOf(partition: number): readonly EventRow[] {
    if (this.byPartition === undefined) {
      this.byPartition = new Map();
      const rows = this.db.prepare<[number], EventRow>(`SELECT ${eventColumns} FROM events WHERE id > ? ORDER BY id`).all(this.mark);
      for (const row of rows) {
        let list = this.byPartition.get(row.partition);
        if (list === undefined) this.byPartition.set(row.partition, (list = []));
        list.push(row);
      }
    }
    return this.byPartition.get(partition) ?? [];
  }

  partitions(): Iterable<number> {
    this.rowsOf(0);
    return this.byPartition!.keys();
  }

}

/** The indexes' marks as a connection's current read transaction sees them: every row up to each is in that index. */
export function indexMarks(db: Database.Database): { partition: number; stream: number } {
  const marks = { partition: 0, stream: 0 };
  for (const { name, row } of db.prepare<[], { name: 'partition' | 'stream'; row: number }>('SELECT name, row FROM index_marks').all()) marks[name] = row;
  return marks;
}
