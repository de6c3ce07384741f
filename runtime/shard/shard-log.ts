import Database from 'better-sqlite3';
import type { Durability } from '../protocol.ts';
import { decodeStored, encodeStored } from '../codec.ts';
import { formatPosition, partitionOf } from '../partitioning.ts';
import type { CommandReply } from '../protocol.ts';
import { generatedCommandKey, generatedKeyFloor } from './generated-command-key.ts';
import { migrate } from './migrations.ts';
import { SagaTables, type SagaRow } from './saga-tables.ts';
import type { EventRow } from './event-row.ts';
import { LogIndex } from './log-index.ts';

export type { EventRow } from './event-row.ts';

export interface CommandRow {
  id: string;
  stream: string;
  fingerprint: Buffer;
  result: Buffer;
  recorded_at: number;
}

/**
 * The record of a command whose id the runtime generated. One that appended events stores
 * only where its events are (`seq` of the last, `events` how many); its reply is rebuilt from
 * them. Any other outcome (a rejection, no events) stores its stream and encoded reply.
 */
export type GeneratedCommandRow =
  | { key: Buffer; partition: number; seq: number; events: number; fingerprint: Buffer; stream: null; result: null }
  | { key: Buffer; partition: number; seq: null; events: 0; fingerprint: Buffer; stream: string; result: Buffer };

/** A command's record as lookups return it, whichever table holds it. */
export interface StoredCommand {
  stream: string;
  fingerprint: Buffer;
  result: Buffer;
}

export interface SnapshotRow {
  stream: string;
  version: number;
  state: Buffer;
  schema: string;
}

/** Everything one group commit writes, in one transaction. */
export interface BatchWrite {
  events: EventRow[];
  /** Records of commands with a client's id (`Idempotency-Key`). */
  commands: CommandRow[];
  generatedCommands?: GeneratedCommandRow[];
  snapshots: SnapshotRow[];
  /** Rows of the saga instances this batch changed. */
  sagas?: SagaRow[];
}

export interface ShardIdentity {
  shard: number;
  shards: number;
  partitions: number;
}

/**
 * One shard's SQLite log. Opened and used only by its owning thread, so every call is
 * synchronous and no statement ever waits on a lock held by another writer.
 */
export class ShardLog {
  private readonly db: Database.Database;
  private readonly insertEvent;
  private readonly insertCommand;
  private readonly insertGeneratedCommand;
  private readonly upsertSnapshot;
  private readonly selectCommand;
  private readonly selectGeneratedCommand;
  private readonly selectSnapshot;
  private readonly deleteOldCommands;
  private readonly deleteOldGeneratedCommands;
  private readonly upsertPublished;
  private readonly commitBatch: (batch: BatchWrite, firstRowId: number) => void;
  readonly sagas: SagaTables;
  private readonly index: LogIndex;
  /** Per partition: its last seq in the log. A commit must continue it, as the log's (partition, seq) key once checked. */
  private readonly heads: Map<number, number>;
  private readonly partitions: number;

  constructor(file: string, durability: Durability, identity: ShardIdentity) {
    this.partitions = identity.partitions;
    // This thread is the only writer; a lock held elsewhere (a backup tool, a stray process)
    // fails the commit after a second rather than stalling the shard.
    this.db = new Database(file, { timeout: 1_000 });
    try {
      this.db.pragma('journal_mode = WAL');
      // FULL fsyncs the WAL on every commit; NORMAL fsyncs only at checkpoints, so a power
      // loss (never a process crash) can roll back the most recent commits.
      this.db.pragma(`synchronous = ${durability === 'fsync' ? 'FULL' : 'NORMAL'}`);
      this.db.pragma('cache_size = -32768');
      this.db.pragma('temp_store = MEMORY');
      // The checkpointer thread copies the WAL into the database in the background; this
      // connection checkpoints only past 8 MiB of WAL, as a backstop that also lets the WAL
      // restart from its beginning, by then with little left to copy. See ADR 0006.
      this.db.pragma('wal_autocheckpoint = 2048');
      this.db.pragma('journal_size_limit = 16777216');
      migrate(this.db);
      this.checkIdentity(identity);
    } catch (error) {
      this.db.close();
      throw error;
    }
    // Positional parameters: binding by name costs a property lookup per column per row.
    this.insertEvent = this.db.prepare<[number, number, number, string, number, string, number, Buffer, Buffer | null, number]>(
      'INSERT INTO events (id, partition, seq, stream, version, type, schema_version, data, meta, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.insertCommand = this.db.prepare<[string, string, Buffer, Buffer, number]>(
      'INSERT INTO commands (id, stream, fingerprint, result, recorded_at) VALUES (?, ?, ?, ?, ?)',
    );
    this.insertGeneratedCommand = this.db.prepare<[Buffer, number, number | null, number, Buffer, string | null, Buffer | null]>(
      'INSERT INTO command_ids (id, partition, seq, events, fingerprint, stream, result) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.upsertSnapshot = this.db.prepare<SnapshotRow>(
      `INSERT INTO snapshots (stream, version, state, schema) VALUES (@stream, @version, @state, @schema)
       ON CONFLICT (stream) DO UPDATE SET version = excluded.version, state = excluded.state, schema = excluded.schema`,
    );
    this.selectCommand = this.db.prepare<[string], CommandRow>('SELECT * FROM commands WHERE id = ?');
    this.selectGeneratedCommand = this.db.prepare<[Buffer], Omit<GeneratedCommandRow, 'key'>>(
      'SELECT partition, seq, events, fingerprint, stream, result FROM command_ids WHERE id = ?',
    );
    this.selectSnapshot = this.db.prepare<[string], SnapshotRow>('SELECT * FROM snapshots WHERE stream = ?');
    this.deleteOldCommands = this.db.prepare<[number, number]>(
      'DELETE FROM commands WHERE id IN (SELECT id FROM commands WHERE recorded_at < ? LIMIT ?)',
    );
    this.deleteOldGeneratedCommands = this.db.prepare<[Buffer, number]>(
      'DELETE FROM command_ids WHERE id IN (SELECT id FROM command_ids WHERE id < ? LIMIT ?)',
    );
    this.upsertPublished = this.db.prepare<[number, number]>(
      `INSERT INTO relay (partition, published_seq) VALUES (?, ?)
       ON CONFLICT (partition) DO UPDATE SET published_seq = MAX(published_seq, excluded.published_seq)`,
    );
    this.sagas = new SagaTables(this.db);
    try {
      this.index = new LogIndex(this.db, durability === 'fsync');
      this.index.indexAll();
      this.heads = this.index.rows.heads(this.index.tail);
    } catch (error) {
      this.db.close();
      throw error;
    }
    this.commitBatch = this.db.transaction((batch: BatchWrite, firstRowId: number) => {
      this.insertEvents(batch.events, firstRowId);
      for (const c of batch.commands) this.insertCommand.run(c.id, c.stream, c.fingerprint, c.result, c.recorded_at);
      for (const c of batch.generatedCommands ?? []) this.insertGeneratedCommand.run(c.key, c.partition, c.seq, c.events, c.fingerprint, c.stream, c.result);
      for (const snapshot of batch.snapshots) this.upsertSnapshot.run(snapshot);
      for (const row of batch.sagas ?? []) this.sagas.write(row);
    });
  }

  /** A log belongs to one shard of one layout: opening it under another is refused. */
  private checkIdentity(identity: ShardIdentity): void {
    const rows = this.db.prepare<[], { key: string; value: string }>('SELECT key, value FROM shard_meta').all();
    const stored = new Map(rows.map((row) => [row.key, row.value]));
    const wanted = new Map(Object.entries(identity).map(([key, value]) => [key, String(value)]));
    if (stored.size === 0) {
      const insert = this.db.prepare('INSERT INTO shard_meta (key, value) VALUES (?, ?)');
      this.db.transaction(() => {
        for (const [key, value] of wanted) insert.run(key, value);
      })();
      return;
    }
    for (const [key, value] of wanted) {
      if (stored.get(key) !== value) {
        throw new Error(`shard log ${this.db.name} was written with ${key}=${stored.get(key)}, opened with ${key}=${value}`);
      }
    }
  }

  /** The highest seq of every partition that has events. */
  lastSeqs(): Map<number, number> {
    return new Map(this.heads);
  }

  /** The latest recorded_at of the last event of any partition (0: no events), where a restarted shard's clock resumes. */
  lastRecordedAt(): number {
    let latest = 0;
    for (const partition of this.heads.keys()) latest = Math.max(latest, this.index.rows.partitionHead(partition, this.index.tail)?.recorded_at ?? 0);
    return latest;
  }

  /** The highest seq of one partition (0: no events). */
  lastSeq(partition: number): number {
    return this.heads.get(partition) ?? 0;
  }

  /** Writes the whole batch in one transaction (and, with `fsync`, one fsync), or nothing. */
  commit(batch: BatchWrite): void {
    const heads = this.continuedHeads(batch.events);
    const firstRowId = this.index.takeRowIds(batch.events.length);
    this.commitBatch(batch, firstRowId);
    this.appended(batch.events, firstRowId, heads);
  }

  /**
   * The heads after appending these events, or an error if one does not continue its
   * partition: a position written twice or a gap would corrupt the log, and no table key
   * checks it at the commit any more (the partition index does, behind it).
   */
  private continuedHeads(events: readonly EventRow[]): Map<number, number> {
    const heads = new Map<number, number>();
    for (const event of events) {
      const head = heads.get(event.partition) ?? this.lastSeq(event.partition);
      if (event.seq !== head + 1) {
        throw new Error(`shard log ${this.db.name}: partition ${event.partition} is at seq ${head}, an append brought seq ${event.seq}`);
      }
      heads.set(event.partition, event.seq);
    }
    return heads;
  }

  /** Inside the caller's transaction: the events at the end of the log, with the row ids from `firstRowId` on. */
  private insertEvents(events: readonly EventRow[], firstRowId: number): void {
    let id = firstRowId;
    for (const e of events) this.insertEvent.run(id++, e.partition, e.seq, e.stream, e.version, e.type, e.schema_version, e.data, e.meta, e.recorded_at);
  }

  private appended(events: readonly EventRow[], firstRowId: number, heads: ReadonlyMap<number, number>): void {
    let id = firstRowId;
    for (const event of events) this.index.appended(id++, event);
    for (const [partition, seq] of heads) this.heads.set(partition, seq);
  }

  /** Whether enough events wait for the indexes that `indexBehind` should run. */
  get indexDue(): boolean {
    return this.index.due;
  }

  /** One transaction of the indexes' work behind the commit: the partitions' next piece, or the streams'. Returns the entries written. */
  indexBehind(): number {
    return this.index.indexStep();
  }

  /** The partition chunk's next piece into the partition index now, in one transaction (a chunk takes up to `limit` events). */
  indexPartitions(piece?: number, limit?: number): void {
    this.index.indexPartitions(piece, limit);
  }

  /** The next piece of at most `piece` entries into the stream index now, in one transaction. */
  indexStreams(piece?: number): void {
    this.index.indexStreams(piece);
  }

  /** Events the indexes have not taken yet. */
  get indexPending(): number {
    return this.index.pending;
  }

  /**
   * The record of a command id, from whichever table holds it: a generated id may also sit
   * in `commands` (written before migration 2, or copied from the stream in a handoff).
   */
  findCommand(id: string): StoredCommand | undefined {
    const key = generatedCommandKey(id);
    const generated = key === undefined ? undefined : this.selectGeneratedCommand.get(key);
    if (generated === undefined) return this.selectCommand.get(id);
    if (generated.seq === null) return { stream: generated.stream!, fingerprint: generated.fingerprint, result: generated.result! };
    const events = this.index.rows.partitionAfter(generated.partition, generated.seq - generated.events, generated.events, this.index.tail);
    const last = events.at(-1);
    if (last === undefined || events.length !== generated.events) {
      throw new Error(`shard log ${this.db.name}: the events of command ${id} (${generated.partition}:${generated.seq}) are missing`);
    }
    const reply: CommandReply = {
      ok: true,
      result: { version: last.version, position: formatPosition(generated.partition, generated.seq), events: events.map(({ type, version }) => ({ type, version })) },
    };
    return { stream: last.stream, fingerprint: generated.fingerprint, result: encodeStored(reply) };
  }

  snapshot(stream: string): SnapshotRow | undefined {
    return this.selectSnapshot.get(stream);
  }

  streamEventsAfter(stream: string, afterVersion: number, limit = Number.MAX_SAFE_INTEGER): EventRow[] {
    return this.index.rows.streamAfter(stream, partitionOf(stream, this.partitions), this.index.tail, afterVersion, limit);
  }

  private streamRows(stream: string, afterVersion: number, untilVersion: number): Generator<EventRow> {
    return this.index.rows.streamBetween(stream, partitionOf(stream, this.partitions), this.index.tail, afterVersion, untilVersion);
  }

  /**
   * Lazy: the query starts at the first row asked for, and stopping early resets it. An
   * `iterate()` handed out directly holds its statement (and the connection) busy from the
   * call on, so a caller that never read it made every later statement fail, commits too.
   */
  *streamEventsBetween(stream: string, afterVersion: number, untilVersion: number): Generator<EventRow> {
    yield* this.streamRows(stream, afterVersion, untilVersion);
  }

  /** In version order, up to the first event recorded after the time: a prefix of the stream, never one with gaps. */
  *streamEventsUntilTime(stream: string, recordedAtMost: number): Generator<EventRow> {
    for (const row of this.streamRows(stream, 0, Number.MAX_SAFE_INTEGER)) {
      if (row.recorded_at > recordedAtMost) return;
      yield row;
    }
  }

  partitionEventsAfter(partition: number, afterSeq: number, limit: number): EventRow[] {
    return this.index.rows.partitionAfter(partition, afterSeq, limit, this.index.tail);
  }

  /** Records how far the relay has published, [partition, seq, …]; never moves backwards. */
  recordPublished(marks: readonly number[]): void {
    this.db.transaction(() => {
      for (let index = 0; index < marks.length; index += 2) this.upsertPublished.run(marks[index]!, marks[index + 1]!);
    })();
  }

  /** The relay's published seq of every partition it has published. */
  publishedSeqs(): Map<number, number> {
    const rows = this.db.prepare<[], { partition: number; published_seq: number }>('SELECT partition, published_seq FROM relay').all();
    return new Map(rows.map((row) => [row.partition, row.published_seq]));
  }

  /**
   * Forgets a partition's events after `afterSeq` with the command records behind them, and
   * the snapshots of the streams it touched: the cluster does this to events the stream never
   * confirmed before a node takes the partition (back), then copies the stream's own.
   * Returns the streams it cut.
   */
  truncatePartition(partition: number, afterSeq: number): string[] {
    const cut = this.db.transaction(() => {
      const dropped = this.partitionEventsAfter(partition, afterSeq, Number.MAX_SAFE_INTEGER);
      const firstDropped = new Map<string, number>();
      for (const { stream, version } of dropped) if (!firstDropped.has(stream)) firstDropped.set(stream, version);
      this.db
        .prepare<[number, number]>('DELETE FROM events WHERE id IN (SELECT row FROM partition_index WHERE partition = ? AND seq > ?)')
        .run(partition, afterSeq);
      const deleteRow = this.db.prepare<[number]>('DELETE FROM events WHERE id = ?');
      for (const id of this.index.tail.idsAfter(partition, afterSeq)) deleteRow.run(id);
      this.index.truncated(partition, afterSeq, firstDropped);
      const deleteCommand = this.db.prepare<[string]>('DELETE FROM commands WHERE id = ?');
      const deleteGeneratedCommand = this.db.prepare<[Buffer]>('DELETE FROM command_ids WHERE id = ?');
      const deleteSnapshot = this.db.prepare<[string]>('DELETE FROM snapshots WHERE stream = ?');
      for (const { stream, meta } of dropped) {
        const commandId = meta === null ? undefined : decodeStored<{ commandId?: unknown }>(meta).commandId;
        if (typeof commandId === 'string') {
          deleteCommand.run(commandId);
          const key = generatedCommandKey(commandId);
          if (key !== undefined) deleteGeneratedCommand.run(key);
        }
        deleteSnapshot.run(stream);
      }
      this.db
        .prepare<[number, number]>('INSERT INTO relay (partition, published_seq) VALUES (?, ?) ON CONFLICT (partition) DO UPDATE SET published_seq = excluded.published_seq')
        .run(partition, afterSeq);
      // Events past the cut are replaced by the stream's: they must be delivered to sagas again.
      this.db.prepare<[number, number]>('UPDATE saga_routed SET routed_seq = MIN(routed_seq, ?) WHERE partition = ?').run(afterSeq, partition);
      return [...firstDropped.keys()];
    })();
    this.index.afterTruncate(partition, afterSeq);
    if (afterSeq === 0) this.heads.delete(partition);
    else if (this.lastSeq(partition) > afterSeq) this.heads.set(partition, afterSeq);
    return cut;
  }

  /** Appends events copied from the stream (a partition's catch-up), their command records, and marks them published. */
  appendReplica(events: readonly EventRow[], commands: readonly CommandRow[], partition: number, publishedSeq: number): void {
    const insertCommandIfAbsent = this.db.prepare<[string, string, Buffer, Buffer, number]>(
      'INSERT OR IGNORE INTO commands (id, stream, fingerprint, result, recorded_at) VALUES (?, ?, ?, ?, ?)',
    );
    const heads = this.continuedHeads(events);
    const firstRowId = this.index.takeRowIds(events.length);
    this.db.transaction(() => {
      this.insertEvents(events, firstRowId);
      for (const c of commands) insertCommandIfAbsent.run(c.id, c.stream, c.fingerprint, c.result, c.recorded_at);
      this.upsertPublished.run(partition, publishedSeq);
    })();
    this.appended(events, firstRowId, heads);
  }

  /**
   * Deletes at most `limit` command records older than the cutoff; returns how many. A
   * generated id's age is the time in its key (the gateway's clock when it made the id).
   */
  pruneCommands(recordedBefore: number, limit: number): number {
    const generated = this.deleteOldGeneratedCommands.run(generatedKeyFloor(recordedBefore), limit).changes;
    if (generated >= limit) return generated;
    return generated + this.deleteOldCommands.run(recordedBefore, limit - generated).changes;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
