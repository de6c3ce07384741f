import type Database from 'better-sqlite3';
import { eventColumns } from './event-row.ts';
import { indexMarks, MemoryTail } from './log-tail.ts';

/** `id`, then `eventColumns` in their order. */
type RawRow = [id: number, partition: number, seq: number, stream: string, version: number, type: string, schema_version: number, data: Buffer, meta: Buffer | null, recorded_at: number];

/**
 * The tail past the partition mark as a reader that keeps coming back holds it (the
 * projector's embedded bus, a read transaction per round): the rows it read in earlier
 * transactions are still in the log, so each transaction reads only the rows appended since.
 * A ScannedTail scans the whole tail (up to a partition chunk) and then each partition's id
 * range every time; with a round per batch that was most of the projector thread's time.
 */
export class FollowedTail {
  private tail = new MemoryTail();
  /** Every row up to this id is in `tail` or in `partition_index`. */
  private through = 0;
  private cuts = 0;
  private readonly selectAfter;

  constructor(private readonly db: Database.Database) {
    // Raw rows, made into EventRows here: one object per row, where a row object with its id would need a second without it.
    this.selectAfter = db.prepare<[number], RawRow>(`SELECT id, ${eventColumns} FROM events WHERE id > ? ORDER BY id`).raw();
  }

  /** The tail as the connection's current read transaction sees it; valid until the next call. */
  refresh(): MemoryTail {
    const marks = indexMarks(this.db);
    if (marks.cuts !== this.cuts) {
      // A partition was cut: rows held from before may be gone, and their ids taken again.
      this.tail = new MemoryTail();
      this.through = 0;
      this.cuts = marks.cuts;
    }
    this.tail.dropThrough(marks.partition);
    for (const [id, partition, seq, stream, version, type, schema_version, data, meta, recorded_at] of this.selectAfter.iterate(Math.max(this.through, marks.partition))) {
      this.tail.append(id, { partition, seq, stream, version, type, schema_version, data, meta, recorded_at });
      this.through = id;
    }
    return this.tail;
  }
}
