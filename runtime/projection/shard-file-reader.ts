import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { BusEvent } from '../bus/bus-event.ts';
import { busEventFromRow } from '../shard/bus-event-row.ts';
import { shardOf } from '../partitioning.ts';
import type { EventRow } from '../shard/shard-log.ts';
import { LogRows } from '../shard/log-rows.ts';
import { FollowedTail } from '../shard/followed-tail.ts';
import type { MemoryTail } from '../shard/log-tail.ts';

/**
 * Reads committed events straight from the shard logs, read-only: the embedded bus. WAL lets
 * these reads run beside each shard's writer without blocking it or being blocked.
 */
export class ShardFileReader {
  private readonly connections: Database.Database[];
  private readonly rows: LogRows[];
  private readonly followed: FollowedTail[];
  /** Inside `together`: each log's tail past its index mark, as its read transaction sees it. */
  private tails: (MemoryTail | undefined)[] | undefined;
  /** During a pass (`sharing`): the pages read so far, by partition and position. */
  private pages: Map<string, EventRow[]> | undefined;

  constructor(dataDir: string, shards: number) {
    this.connections = Array.from({ length: shards }, (_, shard) => new Database(join(dataDir, 'shards', `${shard}.db`), { readonly: true, fileMustExist: true }));
    this.rows = this.connections.map((db) => new LogRows(db));
    this.followed = this.connections.map((db) => new FollowedTail(db));
  }

  /**
   * Runs `reads` inside one read transaction per shard log. Each statement outside one is a
   * transaction of its own, and starting one on a WAL database costs more than a short read
   * itself (about 6 µs of a 10 µs lookup here): one per catch-up round instead of one per
   * partition read. The indexes' mark and the tail past it are read once per transaction,
   * and only by a read that gets that far: a read outside one would see the mark of one
   * moment and the indexes of another.
   */
  together<T>(reads: () => T): T {
    if (this.tails !== undefined) return reads();
    const begun: Database.Database[] = [];
    try {
      for (const db of this.connections) {
        db.exec('BEGIN');
        begun.push(db);
      }
      this.tails = this.connections.map(() => undefined);
      return reads();
    } finally {
      this.tails = undefined;
      for (const db of begun) if (db.inTransaction) db.exec('COMMIT');
    }
  }

  private tailOf(shard: number): MemoryTail {
    const tails = this.tails!;
    return (tails[shard] ??= this.followed[shard]!.refresh());
  }

  /**
   * Runs one pass of every projection over the same heads: a page one projection read is
   * handed to the next that asks for the same partition and position, so the projections of
   * a node cost one read between them. Events at a committed position never change on a
   * single node; a cluster's handoff can cut a partition, but there the files are read only
   * by rebuilds, for which a cut within a pass is the same race as one between a read and its
   * apply, and the JetStream feed that follows applies the stream's own events. Each
   * projection decodes its own copy of the rows.
   */
  async sharing<T>(pass: () => Promise<T>): Promise<T> {
    this.pages = new Map();
    try {
      return await pass();
    } finally {
      this.pages = undefined;
    }
  }

  /** Up to `limit` events after `after`: fewer when a page shared in this pass ends sooner (the caller reads on from there). */
  read(partition: number, after: number, limit: number): BusEvent[] {
    const key = `${partition}:${after}`;
    let rows = this.pages?.get(key);
    if (rows === undefined) {
      const shard = shardOf(partition, this.connections.length);
      rows = this.together(() => this.rows[shard]!.partitionAfter(partition, after, limit, this.tailOf(shard)));
      // Only a page that reached the partition's head is kept: the projections that keep up ask
      // for the same one, while a catch-up's full pages (a rebuild) are read once, and keeping
      // them to the end of the pass cost a rebuild a fifth of its rate in garbage collection.
      if (rows.length < limit) this.pages?.set(key, rows);
    }
    return (rows.length > limit ? rows.slice(0, limit) : rows).map(busEventFromRow);
  }

  heads(): Map<number, number> {
    return this.together(() => {
      const heads = new Map<number, number>();
      for (const [shard, rows] of this.rows.entries()) for (const [partition, seq] of rows.heads(this.tailOf(shard))) heads.set(partition, seq);
      return heads;
    });
  }

  close(): void {
    for (const db of this.connections) if (db.open) db.close();
  }
}
