import Database from 'better-sqlite3';
import type { EventRow } from './event-row.ts';
import { LogRows } from './log-rows.ts';
import { indexMarks } from './log-tail.ts';
import { type TailPosition, WriterTail } from './writer-tail.ts';

/**
 * Index partitions once this many events wait. A chunk writes the tail page of each partition
 * it touches: fewer events per chunk rewrite those pages more often.
 */
export const indexDueAt = 2_048;
/**
 * Index streams once this many events wait. A chunk writes a page per stream it touches, so
 * with streams that take many events (the bank's 1,000 accounts) a larger chunk costs less per
 * event: 2.9 µs at 16,384 against 17 µs at 2,048 (ADR 0013). Both chunks are written in
 * pieces of `indexPiece` entries in key order, each a short transaction over its own range.
 */
export const streamIndexDueAt = 16_384;
/** Events one partition chunk takes at most. */
const chunk = 4_096;
/**
 * Entries one indexing transaction writes: about 1 ms of the shard thread, which a request
 * waits for when it comes due (the shard engine spreads a chunk over the requests that follow).
 */
const indexPiece = 384;
/** Stream ids kept in memory at most; past this the map starts over (a miss costs one lookup). */
const streamIdCacheSize = 65_536;

type Mark = 'partition' | 'stream';

/** An index entry: (partition, seq) or (stream id, version), and the row it points at. */
type Entry = [key: number, order: number, row: number];

/** One key's (partition's or stream's) entries of a chunk, in order. */
interface KeyRun {
  key: number;
  orders: number[];
  rows: number[];
}

/** A chunk being written piece by piece: its entries as runs in key order, how far the pieces got, and where the mark goes when all are in. */
interface IndexChunk {
  runs: KeyRun[];
  run: number;
  offset: number;
  until: number;
}

/**
 * The writer's side of a shard log's two lookups, `partition_index` ((partition, seq) → row)
 * and `stream_index` ((stream, version) → row), both kept behind the commit (ADR 0013). A
 * commit appends rows at the end of the log and dirties no page per partition or per stream;
 * the indexes take them afterwards, in transactions of their own (no fsync of their own: they
 * are rebuilt from the log after a power loss), each up to its mark, a row id. The rows past
 * the lower mark are known in memory (`tail`: their positions), so the writer's reads never scan the log for them;
 * a read finds a stream's or a partition's indexed prefix, then the rest in the tail.
 */
export class LogIndex {
  readonly rows: LogRows;
  readonly tail: WriterTail;
  /** Per index: every row up to this id is in it, none after it. */
  private readonly marks: Record<Mark, number>;
  /** The id the next appended row gets: above every row ever written and both marks, so never one an index has passed. */
  private nextRowId: number;
  private nextStreamId: number;
  private readonly streamIds = new Map<string, number>();
  /** Per index: the chunk being written piece by piece, if one is under way. */
  private chunks: Record<Mark, IndexChunk | undefined> = { partition: undefined, stream: undefined };
  /**
   * Whether `tail` holds every row past the lower mark: from the first full indexing at open
   * on, as this writer appends every row. Before that (rows a crash left unindexed) they are
   * read from the log.
   */
  private tailComplete = false;
  private readonly selectUnindexed;
  private readonly insertStream;
  /** Per index: its entry's insert (a repeat is no conflict) and lookup. */
  private readonly entryStatements: Record<Mark, { insert: Database.Statement<[number, number, number]>; select: Database.Statement<[number, number], { row: number }> }>;
  private readonly deleteStreamEntries;
  private readonly deletePartitionEntries;
  private readonly upsertMark;
  private readonly countCut;

  constructor(
    private readonly db: Database.Database,
    private readonly fsync: boolean,
  ) {
    this.rows = new LogRows(db);
    this.tail = new WriterTail(db);
    this.marks = indexMarks(db);
    const lastRow = db.prepare<[], { id: number | null }>('SELECT MAX(id) AS id FROM events').get()?.id ?? 0;
    this.nextRowId = Math.max(lastRow, this.marks.partition, this.marks.stream) + 1;
    this.nextStreamId = (db.prepare<[], { id: number | null }>('SELECT MAX(id) AS id FROM streams').get()?.id ?? 0) + 1;
    this.selectUnindexed = db.prepare<[number, number], TailPosition>('SELECT id, partition, seq, stream, version FROM events WHERE id > ? ORDER BY id LIMIT ?');
    this.insertStream = db.prepare<[string, number]>('INSERT INTO streams (name, id) VALUES (?, ?)');
    // A piece written before a crash is written again after it: the same entry is no conflict.
    this.entryStatements = {
      stream: {
        insert: db.prepare<[number, number, number]>('INSERT INTO stream_index (stream_id, version, row) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
        select: db.prepare<[number, number], { row: number }>('SELECT row FROM stream_index WHERE stream_id = ? AND version = ?'),
      },
      partition: {
        insert: db.prepare<[number, number, number]>('INSERT INTO partition_index (partition, seq, row) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
        select: db.prepare<[number, number], { row: number }>('SELECT row FROM partition_index WHERE partition = ? AND seq = ?'),
      },
    };
    this.deleteStreamEntries = db.prepare<[number, number]>('DELETE FROM stream_index WHERE stream_id = ? AND version >= ?');
    this.deletePartitionEntries = db.prepare<[number, number]>('DELETE FROM partition_index WHERE partition = ? AND seq > ?');
    this.upsertMark = db.prepare<[Mark, number]>('INSERT INTO index_marks (name, row) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET row = excluded.row');
    // Readers that keep rows between transactions (FollowedTail) start over when this moves.
    this.countCut = db.prepare("INSERT INTO index_marks (name, row) VALUES ('cuts', 1) ON CONFLICT (name) DO UPDATE SET row = row + 1");
  }

  /** Ids for `count` rows about to be appended; an append that fails leaves a gap, which is harmless. */
  takeRowIds(count: number): number {
    const first = this.nextRowId;
    this.nextRowId += count;
    return first;
  }

  /** The log gained this row (a commit, or a copy from the stream), once its transaction has committed. */
  appended(id: number, row: EventRow): void {
    this.tail.append(id, row);
  }

  /** Events in the log one of the indexes has not taken yet (after an open: none, it indexes everything). */
  get pending(): number {
    return this.tail.size;
  }

  /** Whether `indexStep` has work worth a transaction now. */
  get due(): boolean {
    return (
      this.chunks.partition !== undefined ||
      this.chunks.stream !== undefined ||
      this.tail.countAfter(this.marks.partition) >= indexDueAt ||
      this.tail.countAfter(this.marks.stream) >= streamIndexDueAt
    );
  }

  /** One transaction of indexing: the partitions' next piece if their chunk is under way or due, else the streams'. */
  indexStep(): number {
    if (this.chunks.partition !== undefined || this.tail.countAfter(this.marks.partition) >= indexDueAt) return this.indexPartitions();
    return this.indexStreams();
  }

  /**
   * The partition's events after `afterSeq` are gone (a cluster handoff cuts them), with these
   * first dropped versions per stream: their entries go, in the caller's transaction.
   */
  truncated(partition: number, afterSeq: number, firstDropped: ReadonlyMap<string, number>): void {
    for (const [stream, version] of firstDropped) {
      const id = this.rows.streamIdOf(stream);
      if (id !== undefined) this.deleteStreamEntries.run(id, version);
    }
    this.deletePartitionEntries.run(partition, afterSeq);
    this.countCut.run();
  }

  /** Call once the transaction that ran `truncated` has committed. */
  afterTruncate(partition: number, afterSeq: number): void {
    this.tail.truncate(partition, afterSeq);
    // Their entries may name rows that are gone; they are built again from what is left.
    this.chunks = { partition: undefined, stream: undefined };
  }

  /**
   * The next piece of the partition chunk into `partition_index`, in one transaction; starts
   * the chunk (up to `limit` rows past the partition mark) if none is under way. Returns how
   * many entries it wrote.
   */
  indexPartitions(piece = indexPiece, limit = chunk): number {
    return this.indexPiece('partition', piece, limit, (row) => [row.partition, row.seq, row.id]);
  }

  /**
   * The next piece of the stream chunk into `stream_index`, in one transaction; starts the
   * chunk (every row past the stream mark, up to `limit`) if none is under way. Returns how
   * many entries it wrote.
   */
  indexStreams(piece = indexPiece, limit = Number.MAX_SAFE_INTEGER): number {
    const nextStreamIdBefore = this.nextStreamId;
    try {
      return this.indexPiece('stream', piece, limit, (row) => [this.streamIdOf(row.stream), row.version, row.id]);
    } catch (error) {
      this.nextStreamId = nextStreamIdBefore;
      this.streamIds.clear();
      throw error;
    }
  }

  /**
   * One piece of an index's chunk, in one transaction. The chunk's entries are in key order,
   * so each piece writes its own range of the B-tree, and each key's (partition's or stream's)
   * indexed entries stay a prefix of its own; the mark moves once the last piece is in. An
   * entry a piece wrote before a crash is written again after it, which is no conflict.
   */
  private indexPiece(mark: Mark, piece: number, limit: number, entryOf: (row: TailPosition) => Entry): number {
    /** Where this piece left the chunk, taken once its transaction has committed. */
    let reached: { run: number; offset: number } | undefined;
    try {
      return this.indexing(() => {
        if (this.chunks[mark] === undefined) {
          const grouped = mark === 'stream' ? this.groupedStreamChunk(limit) : undefined;
          if (grouped !== undefined) {
            this.chunks[mark] = grouped;
          } else {
            const rows = this.unindexed(this.marks[mark], limit);
            if (rows.length === 0) {
              this.moveMark(mark, this.markAfter(rows, limit));
              return 0;
            }
            this.chunks[mark] = { runs: inKeyOrder(rows.map(entryOf)), run: 0, offset: 0, until: this.markAfter(rows, limit) };
          }
        }
        const work = this.chunks[mark];
        let { run, offset } = work;
        let written = 0;
        while (written < piece && run < work.runs.length) {
          const { key, orders, rows } = work.runs[run]!;
          const end = Math.min(rows.length, offset + piece - written);
          for (let index = offset; index < end; index++) this.insertEntry(mark, key, orders[index]!, rows[index]!);
          written += end - offset;
          offset = end;
          if (offset === rows.length) {
            run += 1;
            offset = 0;
          }
        }
        if (run === work.runs.length) this.moveMark(mark, work.until);
        reached = { run, offset };
        return written;
      }, () => {
        const work = this.chunks[mark];
        if (work === undefined || reached === undefined) return;
        work.run = reached.run;
        work.offset = reached.offset;
        if (work.run === work.runs.length) this.chunks[mark] = undefined;
      });
    } catch (error) {
      this.chunks[mark] = undefined;
      throw error;
    }
  }

  /**
   * The stream chunk from the tail's own grouping of the rows past the stream mark (every one
   * of them, in key order), when the tail has it: one stream id lookup per stream instead of
   * one per row, and no grouping. Undefined when the chunk must be read from the positions.
   */
  private groupedStreamChunk(limit: number): IndexChunk | undefined {
    const count = this.tail.countAfter(this.marks.stream);
    const groups = this.tail.takeStreamGroups(count);
    if (!this.tailComplete || groups === undefined || count === 0 || count > limit) return undefined;
    const runs = [...groups].map(([stream, { ids, versions }]) => ({ key: this.streamIdOf(stream), orders: versions, rows: ids }));
    runs.sort((a, b) => a.key - b.key);
    return { runs, run: 0, offset: 0, until: this.nextRowId - 1 };
  }

  /** An entry already there must point at the same row (a piece written again after a crash); another row means the log holds a position or a version twice. */
  private insertEntry(mark: Mark, key: number, order: number, row: number): void {
    const { insert, select } = this.entryStatements[mark];
    if (insert.run(key, order, row).changes > 0 || select.get(key, order)?.row === row) return;
    const entry = mark === 'partition' ? `a partition position is held twice (partition ${key}, seq ${order})` : `a stream version is held twice (stream id ${key}, version ${order})`;
    throw new CorruptLogError(`shard log ${this.db.name}: ${entry}; the log is corrupt`);
  }

  /** Indexes everything waiting (at open: after a crash, a migration or a reshard). */
  indexAll(): void {
    while (this.indexPartitions(20_000, 20_000) > 0 || this.chunks.partition !== undefined);
    while (this.indexStreams(20_000, 20_000) > 0 || this.chunks.stream !== undefined);
    this.tailComplete = true;
  }

  /** Runs one indexing transaction, without an fsync of its own; `committed` sees its result once it has committed. */
  private indexing(write: () => number, committed: (result: number) => void = () => undefined): number {
    const before = { ...this.marks };
    let result = 0;
    if (this.fsync) this.db.pragma('synchronous = NORMAL');
    try {
      result = this.db.transaction(write)();
    } catch (error) {
      Object.assign(this.marks, before);
      if (error instanceof Database.SqliteError && error.code.startsWith('SQLITE_CONSTRAINT')) {
        throw new CorruptLogError(`shard log ${this.db.name}: a partition position is held twice (${error.message}); the log is corrupt`);
      }
      throw error;
    } finally {
      if (this.fsync) this.db.pragma('synchronous = FULL');
    }
    committed(result);
    this.tail.dropThrough(Math.min(this.marks.partition, this.marks.stream));
    return result;
  }

  private unindexed(after: number, limit: number): TailPosition[] {
    if (!this.tailComplete) return this.selectUnindexed.all(after, limit);
    return this.tail.after(after, limit);
  }

  /** Where a mark goes after these rows: past the last row there is nothing more to take (ids of failed or cut appends never come back). */
  private markAfter(rows: readonly TailPosition[], limit: number): number {
    return rows.length < limit ? this.nextRowId - 1 : rows.at(-1)!.id;
  }

  /** In the indexing transaction; `indexing` puts the mark back if it does not commit. */
  private moveMark(mark: Mark, row: number): void {
    if (row === this.marks[mark]) return;
    this.upsertMark.run(mark, row);
    this.marks[mark] = row;
  }

  private streamIdOf(stream: string): number {
    let id = this.streamIds.get(stream) ?? this.rows.streamIdOf(stream);
    if (id === undefined) {
      id = this.nextStreamId++;
      this.insertStream.run(stream, id);
    }
    if (this.streamIds.size >= streamIdCacheSize) this.streamIds.clear();
    this.streamIds.set(stream, id);
    return id;
  }
}

/**
 * Entries as runs per key, in (key, order) order. Rows come in log order, in which each key's
 * entries are already in order: grouping by key and sorting the keys costs a fraction of
 * sorting 16,384 entries with a comparator (which took up to 18 ms of the request that
 * started a chunk).
 */
function inKeyOrder(entries: Entry[]): KeyRun[] {
  const byKey = new Map<number, Entry[]>();
  for (const entry of entries) {
    const group = byKey.get(entry[0]);
    if (group === undefined) byKey.set(entry[0], [entry]);
    else group.push(entry);
  }
  return [...byKey.keys()]
    .sort((a, b) => a - b)
    .map((key) => {
      const group = byKey.get(key)!;
      if (group.some((entry, index) => index > 0 && entry[1] < group[index - 1]![1])) group.sort((a, b) => a[1] - b[1]);
      return { key, orders: group.map((entry) => entry[1]), rows: group.map((entry) => entry[2]) };
    });
}

/** The log breaks an invariant the indexes check (one event per partition position and per stream version): nothing more is served from it. */
export class CorruptLogError extends Error {}
