import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { BusEvent } from '../bus/bus-event.ts';
import { busEventFromRow } from '../shard/bus-event-row.ts';
import { shardOf } from '../partitioning.ts';
import type { EventRow } from '../shard/shard-log.ts';

/**
 * Reads committed events straight from the shard logs, read-only: the embedded bus. WAL lets
 * these reads run beside each shard's writer without blocking it or being blocked.
 */
export class ShardFileReader {
  private readonly connections: Database.Database[];
  private readonly selectAfter;
  private readonly selectHeads;
  /** During a pass (`sharing`): the pages read so far, by partition and position. */
  private pages: Map<string, EventRow[]> | undefined;

  constructor(dataDir: string, shards: number) {
    this.connections = Array.from({ length: shards }, (_, shard) => new Database(join(dataDir, 'shards', `${shard}.db`), { readonly: true, fileMustExist: true }));
    this.selectAfter = this.connections.map((db) =>
      db.prepare<[number, number, number], EventRow>('SELECT * FROM events WHERE partition = ? AND seq > ? ORDER BY seq LIMIT ?'),
    );
    this.selectHeads = this.connections.map((db) => db.prepare<[], { partition: number; seq: number }>('SELECT partition, MAX(seq) AS seq FROM events GROUP BY partition'));
  }

  /**
   * Runs `reads` inside one read transaction per shard log. Each statement outside one is a
   * transaction of its own, and starting one on a WAL database costs more than a short read
   * itself (about 6 µs of a 10 µs lookup here): one per catch-up round instead of one per
   * partition read.
   */
  together<T>(reads: () => T): T {
    const begun: Database.Database[] = [];
    try {
      for (const db of this.connections) {
        db.exec('BEGIN');
        begun.push(db);
      }
      return reads();
    } finally {
      for (const db of begun) if (db.inTransaction) db.exec('COMMIT');
    }
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
      rows = this.selectAfter[shardOf(partition, this.connections.length)]!.all(partition, after, limit);
      // Only a page that reached the partition's head is kept: the projections that keep up ask
      // for the same one, while a catch-up's full pages (a rebuild) are read once, and keeping
      // them to the end of the pass cost a rebuild a fifth of its rate in garbage collection.
      if (rows.length < limit) this.pages?.set(key, rows);
    }
    return (rows.length > limit ? rows.slice(0, limit) : rows).map(busEventFromRow);
  }

  heads(): Map<number, number> {
    const heads = new Map<number, number>();
    for (const select of this.selectHeads) for (const row of select.all()) heads.set(row.partition, row.seq);
    return heads;
  }

  close(): void {
    for (const db of this.connections) if (db.open) db.close();
  }
}
