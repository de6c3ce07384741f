import Database from 'better-sqlite3';
import type { EventRow } from './event-row.ts';

/**
 * Index once this many events wait: a stream read scans at most this many rows (of its own
 * partition: a few dozen when a shard holds tens of partitions). Fewer per chunk write the
 * index's pages more often: 512 gave about 0.8x the commands/s of 2,048 (`npm run bench -- core`).
 */
export const indexDueAt = 2_048;
/** Events one indexing transaction takes at most (the catch-up after a burst of copies goes in such steps). */
const chunk = 4_096;

/**
 * Reads one stream's events in version order: the indexed ones through `stream_index`, then the
 * ones past its partition's mark by scanning that partition's tail. Works on any connection to
 * a shard log, the owner's or a read-only one.
 */
export class StreamRows {
  private readonly selectId;
  private readonly selectIndexed;
  private readonly selectTail;

  constructor(db: Database.Database) {
    this.selectId = db.prepare<[string], { id: number }>('SELECT id FROM streams WHERE name = ?');
    this.selectIndexed = db.prepare<[number, number, number, number], EventRow>(
      `SELECT e.* FROM stream_index i CROSS JOIN events e ON e.partition = ? AND e.seq = i.seq
       WHERE i.stream_id = ? AND i.version > ? AND i.version <= ? ORDER BY i.version`,
    );
    this.selectTail = db.prepare<[number, number, string, number, number], EventRow>(
      'SELECT * FROM events WHERE partition = ? AND seq > ? AND stream = ? AND version > ? AND version <= ? ORDER BY seq',
    );
  }

  /** The stream's integer in the index, if it has one yet. */
  idOf(stream: string): number | undefined {
    return this.selectId.get(stream)?.id;
  }

  /** Up to `limit` events after a version (a negative limit: all of them, as SQL's LIMIT -1). */
  after(stream: string, partition: number, indexedTo: number, afterVersion: number, limit: number): EventRow[] {
    const rows: EventRow[] = [];
    if (limit === 0) return rows;
    for (const row of this.between(stream, partition, indexedTo, afterVersion, Number.MAX_SAFE_INTEGER)) {
      rows.push(row);
      if (rows.length === limit) break;
    }
    return rows;
  }

  /** Lazy, like any iterate(): a caller that stops early releases both statements. */
  *between(stream: string, partition: number, indexedTo: number, afterVersion: number, untilVersion: number): Generator<EventRow> {
    const id = this.idOf(stream);
    let last = afterVersion;
    if (id !== undefined) {
      for (const row of this.selectIndexed.iterate(partition, id, afterVersion, untilVersion)) {
        last = row.version;
        yield row;
      }
    }
    yield* this.selectTail.iterate(partition, indexedTo, stream, last, untilVersion);
  }
}

/**
 * The per-stream lookup of a shard log (stream → version → seq), kept behind the commit. A
 * commit appends its events in partition order only and so dirties no page per stream; this
 * index is written afterwards, in transactions of its own (no fsync of their own: it is
 * rebuilt from the events after a power loss), and a stream read finds what it has not taken
 * yet in the short tail of the stream's partition. See ADR 0013.
 */
export class StreamIndex {
  readonly rows: StreamRows;
  /** Per partition: every event up to this seq is indexed, none after it. */
  private readonly marks = new Map<number, number>();
  /** Per partition: its last seq in the log. */
  private readonly heads: Map<number, number>;
  private nextId: number;
  private readonly selectUnindexed;
  private readonly insertStream;
  private readonly insertEntry;
  private readonly deleteFrom;
  private readonly upsertMark;

  /** `heads`: the last seq of each partition in the log as it is opened. */
  constructor(
    private readonly db: Database.Database,
    private readonly fsync: boolean,
    heads: ReadonlyMap<number, number>,
  ) {
    this.rows = new StreamRows(db);
    this.heads = new Map(heads);
    for (const row of db.prepare<[], { partition: number; seq: number }>('SELECT partition, seq FROM stream_index_marks').all()) this.marks.set(row.partition, row.seq);
    this.nextId = (db.prepare<[], { id: number | null }>('SELECT MAX(id) AS id FROM streams').get()?.id ?? 0) + 1;
    this.selectUnindexed = db.prepare<[number, number, number], { seq: number; stream: string; version: number }>(
      'SELECT seq, stream, version FROM events WHERE partition = ? AND seq > ? ORDER BY seq LIMIT ?',
    );
    this.insertStream = db.prepare<[string, number]>('INSERT INTO streams (name, id) VALUES (?, ?)');
    this.insertEntry = db.prepare<[number, number, number]>('INSERT INTO stream_index (stream_id, version, seq) VALUES (?, ?, ?)');
    this.deleteFrom = db.prepare<[number, number]>('DELETE FROM stream_index WHERE stream_id = ? AND version >= ?');
    this.upsertMark = db.prepare<[number, number]>('INSERT INTO stream_index_marks (partition, seq) VALUES (?, ?) ON CONFLICT (partition) DO UPDATE SET seq = excluded.seq');
  }

  /** The last indexed seq of a partition: stream reads scan its events after this one. */
  markOf(partition: number): number {
    return this.marks.get(partition) ?? 0;
  }

  /** Events in the log the index has not taken yet. */
  get pending(): number {
    let waiting = 0;
    for (const [partition, head] of this.heads) waiting += Math.max(0, head - this.markOf(partition));
    return waiting;
  }

  get due(): boolean {
    return this.pending >= indexDueAt;
  }

  /** The log gained events up to `seq` in the partition (a commit, or a copy from the stream). */
  appended(partition: number, seq: number): void {
    if (seq > (this.heads.get(partition) ?? 0)) this.heads.set(partition, seq);
  }

  /**
   * The partition's events after `afterSeq` are gone (a cluster handoff cut them), with these
   * first dropped versions per stream: their entries go, in the caller's transaction.
   */
  truncated(partition: number, afterSeq: number, firstDropped: ReadonlyMap<string, number>): void {
    for (const [stream, version] of firstDropped) {
      const id = this.rows.idOf(stream);
      if (id !== undefined) this.deleteFrom.run(id, version);
    }
    if (this.markOf(partition) > afterSeq) this.upsertMark.run(partition, afterSeq);
  }

  /** Call once the transaction that ran `truncated` has committed. */
  afterTruncate(partition: number, afterSeq: number): void {
    if (this.markOf(partition) > afterSeq) this.marks.set(partition, afterSeq);
    this.heads.set(partition, Math.min(this.heads.get(partition) ?? 0, afterSeq));
  }

  /** Indexes up to one chunk of waiting events in one transaction; returns how many. */
  indexChunk(limit = chunk): number {
    const moved = new Map<number, number>();
    const nextIdBefore = this.nextId;
    let done = 0;
    if (this.fsync) this.db.pragma('synchronous = NORMAL');
    try {
      this.db.transaction(() => {
        for (const [partition, head] of this.heads) {
          let mark = this.markOf(partition);
          if (mark >= head || done >= limit) continue;
          const rows = this.selectUnindexed.all(partition, mark, limit - done);
          // A head past the log's last event (a batch that did not commit) has nothing left to index.
          if (rows.length === 0) this.heads.set(partition, mark);
          for (const row of rows) {
            this.insertEntry.run(this.idOf(row.stream), row.version, row.seq);
            mark = row.seq;
            done += 1;
          }
          this.upsertMark.run(partition, mark);
          moved.set(partition, mark);
        }
      })();
    } catch (error) {
      this.nextId = nextIdBefore;
      if (error instanceof Database.SqliteError && error.code.startsWith('SQLITE_CONSTRAINT')) {
        throw new CorruptLogError(`shard log ${this.db.name}: a stream holds one version twice (${error.message}); the log is corrupt`);
      }
      throw error;
    } finally {
      if (this.fsync) this.db.pragma('synchronous = FULL');
    }
    for (const [partition, mark] of moved) this.marks.set(partition, mark);
    return done;
  }

  /** Indexes everything waiting (at open: after a crash, a migration or a reshard). */
  indexAll(): void {
    while (this.pending > 0 && this.indexChunk(20_000) > 0);
  }

  private idOf(stream: string): number {
    const known = this.rows.idOf(stream);
    if (known !== undefined) return known;
    const id = this.nextId++;
    this.insertStream.run(stream, id);
    return id;
  }
}

/** The log breaks an invariant the index checks (one event per stream version): nothing more is served from it. */
export class CorruptLogError extends Error {}
