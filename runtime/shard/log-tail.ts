import type Database from 'better-sqlite3';
import { eventColumns, type EventRow } from './event-row.ts';

/**
 * The events past the index mark (ADR 0013): appended to the log, not yet in `partition_index`
 * or `stream_index`. Per partition in seq order, which is their row order.
 */
export interface LogTail {
  /** The stream's rows in the tail (it lives in this partition), in version order. */
  rowsOfStream(partition: number, stream: string): readonly EventRow[];
  /** Up to `limit` of the partition's rows in the tail with a seq above `afterSeq`, in seq order. */
  rowsAfter(partition: number, afterSeq: number, limit: number): EventRow[];
  /** The partition's first seq in the tail, if it has rows there: every later one is there too. */
  firstSeqOf(partition: number): number | undefined;
  /** The partition's last seq in the tail, if it has rows there. */
  headOf(partition: number): number | undefined;
  /** The partitions that have rows in the tail. */
  partitions(): Iterable<number>;
}

/** The position of the first of `length` ascending numbers (the `at`-th is `at(index)`) above `after`. */
export function firstAbove(length: number, at: (index: number) => number, after: number): number {
  let low = 0;
  let high = length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (at(middle) <= after) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** An event row with its row id, the key of the log and of both indexes. */
interface IdentifiedRow {
  id: number;
  row: EventRow;
}

/** The tail with its rows in memory (FollowedTail keeps the rows it read between its read transactions). */
export class MemoryTail implements LogTail {
  /** In row id order, which is each partition's seq order. */
  private rows: IdentifiedRow[] = [];
  private readonly byPartition = new Map<number, EventRow[]>();

  rowsOfStream(partition: number, stream: string): readonly EventRow[] {
    return (this.byPartition.get(partition) ?? []).filter((row) => row.stream === stream);
  }

  rowsAfter(partition: number, afterSeq: number, limit: number): EventRow[] {
    const rows = this.byPartition.get(partition);
    if (rows === undefined || limit <= 0) return [];
    const start = firstAbove(rows.length, (index) => rows[index]!.seq, afterSeq);
    return rows.slice(start, start + limit);
  }

  firstSeqOf(partition: number): number | undefined {
    return this.byPartition.get(partition)?.[0]?.seq;
  }

  headOf(partition: number): number | undefined {
    return this.byPartition.get(partition)?.at(-1)?.seq;
  }

  partitions(): Iterable<number> {
    return this.byPartition.keys();
  }

  /** The position of the first row with an id above `mark`. */
  private indexAfter(mark: number): number {
    return firstAbove(this.rows.length, (index) => this.rows[index]!.id, mark);
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
}

/** Where a partition's rows in the tail are: their row ids and seqs, in order. */
interface TailPositions {
  ids: number[];
  seqs: number[];
}

/**
 * The tail as any other connection finds it, past the mark its read transaction sees. The
 * first use reads only the rows' positions (id, partition, seq), in one scan; a read then
 * fetches just the rows it returns, by their id range. Valid only inside that read transaction.
 */
export class ScannedTail implements LogTail {
  private positions: Map<number, TailPositions> | undefined;

  constructor(
    private readonly db: Database.Database,
    readonly mark: number,
  ) {}

  rowsOfStream(partition: number, stream: string): readonly EventRow[] {
    return this.rowsAfter(partition, -1, Number.MAX_SAFE_INTEGER).filter((row) => row.stream === stream);
  }

  rowsAfter(partition: number, afterSeq: number, limit: number): EventRow[] {
    const found = this.scanned().get(partition);
    if (found === undefined || limit <= 0) return [];
    const start = firstAbove(found.seqs.length, (index) => found.seqs[index]!, afterSeq);
    const end = Math.min(found.ids.length, start + limit);
    if (start >= end) return [];
    return statementsOf(this.db).rowsBetween.all(found.ids[start]!, found.ids[end - 1]!, partition);
  }

  firstSeqOf(partition: number): number | undefined {
    return this.scanned().get(partition)?.seqs[0];
  }

  headOf(partition: number): number | undefined {
    return this.scanned().get(partition)?.seqs.at(-1);
  }

  partitions(): Iterable<number> {
    return this.scanned().keys();
  }

  private scanned(): Map<number, TailPositions> {
    if (this.positions !== undefined) return this.positions;
    this.positions = new Map();
    for (const [id, partition, seq] of statementsOf(this.db).positions.iterate(this.mark)) {
      let found = this.positions.get(partition);
      if (found === undefined) this.positions.set(partition, (found = { ids: [], seqs: [] }));
      found.ids.push(id);
      found.seqs.push(seq);
    }
    return this.positions;
  }
}

/** ScannedTail's statements, prepared once per connection. */
const statements = new WeakMap<Database.Database, ReturnType<typeof prepareStatements>>();

function prepareStatements(db: Database.Database) {
  return {
    positions: db.prepare<[number], [number, number, number]>('SELECT id, partition, seq FROM events WHERE id > ? ORDER BY id').raw(),
    rowsBetween: db.prepare<[number, number, number], EventRow>(`SELECT ${eventColumns} FROM events WHERE id BETWEEN ? AND ? AND partition = ? ORDER BY id`),
    marks: db.prepare<[], { name: string; row: number }>('SELECT name, row FROM index_marks'),
  };
}

function statementsOf(db: Database.Database): ReturnType<typeof prepareStatements> {
  let prepared = statements.get(db);
  if (prepared === undefined) statements.set(db, (prepared = prepareStatements(db)));
  return prepared;
}

/** What `index_marks` holds: each index's mark, and how many partition cuts the log has seen. */
export interface LogMarks {
  /** Every row up to this id is in `partition_index`. */
  partition: number;
  /** Every row up to this id is in `stream_index`. */
  stream: number;
  /** Bumped by every cut of a partition (a cluster handoff): a reader's rows from before may be gone. */
  cuts: number;
}

/** The log's marks as a connection's current read transaction sees them. */
export function indexMarks(db: Database.Database): LogMarks {
  const marks: LogMarks = { partition: 0, stream: 0, cuts: 0 };
  for (const { name, row } of statementsOf(db).marks.all()) if (name === 'partition' || name === 'stream' || name === 'cuts') marks[name] = row;
  return marks;
}
