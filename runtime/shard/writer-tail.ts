import type Database from 'better-sqlite3';
import { eventColumns, type EventRow } from './event-row.ts';
import { firstAbove, type LogTail } from './log-tail.ts';

/** Where a row past the index marks is: all the indexes need of it. */
export interface TailPosition {
  id: number;
  partition: number;
  seq: number;
  stream: string;
  version: number;
}

/** One partition's rows in the tail, in seq order (their row order). */
interface PartitionPositions {
  ids: number[];
  seqs: number[];
  streams: string[];
}

/** One stream's rows appended since the stream chunk last started, in log (and version) order. */
export interface StreamGroup {
  ids: number[];
  versions: number[];
}

/** Above this many rows in an id range per one of the partition's, reading the range would scan mostly other partitions' rows. */
const sparseRange = 4;

/**
 * The tail as the log's writer holds it: it appended every row, so it knows where each one is
 * and no read of its own scans the log to find them. It keeps their positions only, in
 * columns, and reads a row back by its id when asked for it (from the page cache: it was just
 * written). Holding the rows themselves (an object and two buffers per event) was 85% of what
 * the shard thread's young generation had to copy at each scavenge, and then promote.
 */
export class WriterTail implements LogTail {
  /** Every row's position, in row id order, column by column. */
  private ids: number[] = [];
  private partitionOf: number[] = [];
  private seqs: number[] = [];
  private streams: string[] = [];
  private versions: number[] = [];
  private readonly byPartition = new Map<number, PartitionPositions>();
  /**
   * The rows appended since the last `takeStreamGroups`, per stream: the stream index's next
   * chunk, already grouped by key. Grouping 16,384 positions when the chunk starts cost that
   * request 8–10 ms; here each append pays a map lookup. Not kept across a cut.
   */
  private streamGroups = new Map<string, StreamGroup>();
  private groupedRows = 0;
  private groupsComplete = true;
  private readonly selectRow;
  private readonly selectRange;

  constructor(db: Database.Database) {
    this.selectRow = db.prepare<[number], EventRow>(`SELECT ${eventColumns} FROM events WHERE id = ?`);
    this.selectRange = db.prepare<[number, number, number], EventRow>(`SELECT ${eventColumns} FROM events WHERE id BETWEEN ? AND ? AND partition = ? ORDER BY id`);
  }

  get size(): number {
    return this.ids.length;
  }

  rowsOfStream(partition: number, stream: string): readonly EventRow[] {
    const found = this.byPartition.get(partition);
    if (found === undefined) return [];
    const ids: number[] = [];
    for (let index = 0; index < found.ids.length; index++) if (found.streams[index] === stream) ids.push(found.ids[index]!);
    return ids.map((id) => this.rowWithId(id));
  }

  rowsAfter(partition: number, afterSeq: number, limit: number): EventRow[] {
    const found = this.byPartition.get(partition);
    if (found === undefined || limit <= 0) return [];
    const start = firstAbove(found.seqs.length, (index) => found.seqs[index]!, afterSeq);
    return this.partitionRun(found.ids.slice(start, start + limit), partition);
  }

  firstSeqOf(partition: number): number | undefined {
    return this.byPartition.get(partition)?.seqs[0];
  }

  headOf(partition: number): number | undefined {
    return this.byPartition.get(partition)?.seqs.at(-1);
  }

  partitions(): Iterable<number> {
    return this.byPartition.keys();
  }

  /** How many rows have an id above `mark`. */
  countAfter(mark: number): number {
    return this.ids.length - this.indexAfter(mark);
  }

  /** The positions of the first `limit` rows with an id above `mark`, in row id order. */
  after(mark: number, limit: number): TailPosition[] {
    const start = this.indexAfter(mark);
    const end = Math.min(this.ids.length, start + limit);
    const positions: TailPosition[] = [];
    for (let index = start; index < end; index++) {
      positions.push({ id: this.ids[index]!, partition: this.partitionOf[index]!, seq: this.seqs[index]!, stream: this.streams[index]!, version: this.versions[index]! });
    }
    return positions;
  }

  /** The ids of a partition's rows with a seq above `afterSeq`. */
  idsAfter(partition: number, afterSeq: number): number[] {
    const found = this.byPartition.get(partition);
    if (found === undefined) return [];
    return found.ids.slice(firstAbove(found.seqs.length, (index) => found.seqs[index]!, afterSeq));
  }

  append(id: number, row: Pick<EventRow, 'partition' | 'seq' | 'stream' | 'version'>): void {
    this.ids.push(id);
    this.partitionOf.push(row.partition);
    this.seqs.push(row.seq);
    this.streams.push(row.stream);
    this.versions.push(row.version);
    let found = this.byPartition.get(row.partition);
    if (found === undefined) this.byPartition.set(row.partition, (found = { ids: [], seqs: [], streams: [] }));
    found.ids.push(id);
    found.seqs.push(row.seq);
    found.streams.push(row.stream);
    let group = this.streamGroups.get(row.stream);
    if (group === undefined) this.streamGroups.set(row.stream, (group = { ids: [], versions: [] }));
    group.ids.push(id);
    group.versions.push(row.version);
    this.groupedRows += 1;
  }

  /**
   * The rows appended since the last call, grouped per stream, if that is exactly the `count`
   * rows past the stream mark (else undefined: a chunk failed, a cut happened, or the log was
   * opened with rows already past the mark); starts the next grouping either way.
   */
  takeStreamGroups(count: number): Map<string, StreamGroup> | undefined {
    const groups = this.groupsComplete && this.groupedRows === count ? this.streamGroups : undefined;
    this.streamGroups = new Map();
    this.groupedRows = 0;
    this.groupsComplete = true;
    return groups;
  }

  /** The index took every row up to this id. */
  dropThrough(mark: number): void {
    const dropped = this.indexAfter(mark);
    if (dropped === 0) return;
    const perPartition = new Map<number, number>();
    for (let index = 0; index < dropped; index++) perPartition.set(this.partitionOf[index]!, (perPartition.get(this.partitionOf[index]!) ?? 0) + 1);
    for (const column of [this.ids, this.partitionOf, this.seqs, this.streams, this.versions]) column.splice(0, dropped);
    for (const [partition, count] of perPartition) {
      const found = this.byPartition.get(partition)!;
      if (count === found.ids.length) {
        this.byPartition.delete(partition);
        continue;
      }
      found.ids.splice(0, count);
      found.seqs.splice(0, count);
      found.streams.splice(0, count);
    }
  }

  /** A partition's rows after this seq are gone from the log. */
  truncate(partition: number, afterSeq: number): void {
    this.groupsComplete = false;
    const kept = this.ids.map((_, index) => index).filter((index) => this.partitionOf[index] !== partition || this.seqs[index]! <= afterSeq);
    this.ids = kept.map((index) => this.ids[index]!);
    this.seqs = kept.map((index) => this.seqs[index]!);
    this.streams = kept.map((index) => this.streams[index]!);
    this.versions = kept.map((index) => this.versions[index]!);
    this.partitionOf = kept.map((index) => this.partitionOf[index]!);
    const found = this.byPartition.get(partition);
    if (found === undefined) return;
    const count = firstAbove(found.seqs.length, (index) => found.seqs[index]!, afterSeq);
    if (count === 0) {
      this.byPartition.delete(partition);
      return;
    }
    found.ids.length = count;
    found.seqs.length = count;
    found.streams.length = count;
  }

  /** The position of the first row with an id above `mark`. */
  private indexAfter(mark: number): number {
    return firstAbove(this.ids.length, (index) => this.ids[index]!, mark);
  }

  /**
   * Consecutive rows of a partition in the tail, read back from the log: by their id range
   * when the partition holds at least 1/`sparseRange` of the rows in it (no other row of the
   * partition is in that range), else one by one.
   */
  private partitionRun(ids: readonly number[], partition: number): EventRow[] {
    if (ids.length === 0) return [];
    const first = ids[0]!;
    const last = ids.at(-1)!;
    if (last - first + 1 <= sparseRange * ids.length) return this.selectRange.all(first, last, partition);
    return ids.map((id) => this.rowWithId(id));
  }

  private rowWithId(id: number): EventRow {
    const row = this.selectRow.get(id);
    // The tail lists only rows the writer appended and has not cut: one missing is a bug, not a state to serve around.
    if (row === undefined) throw new Error(`shard log: row ${id} is in the tail but not in the log`);
    return row;
  }
}
