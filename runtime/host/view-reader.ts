import Database from 'better-sqlite3';
import { makeError } from '../errors.ts';
import { indexedExpression } from '../projection/view-store.ts';
import type { ViewPage } from '../view-calls.ts';

export type { ViewPage };

/**
 * Reads one view file on the main thread. Point reads take microseconds in SQLite, so they
 * run synchronously; the connection is query-only and reopened lazily after a rebuild swap.
 */
export class ViewReader {
  private db: Database.Database | undefined;

  constructor(
    private file: string,
    private readonly indexes: readonly string[],
  ) {}

  get(key: string): unknown {
    const row = this.connection().prepare<[string], { doc: string }>('SELECT doc FROM docs WHERE key = ?').get(key);
    return row === undefined ? undefined : (JSON.parse(row.doc) as unknown);
  }

  /** Documents whose indexed `field` equals `value` (as text, or as a number when it reads as one), in key order. */
  query(field: string, value: string, limit: number, cursor: string | undefined): ViewPage {
    if (!this.indexes.includes(field)) {
      throw makeError('SHARDLOG_INVALID_QUERY', `"${field}" is not an indexed field of this view (indexed: ${this.indexes.join(', ') || 'none'})`);
    }
    const after = cursor === undefined ? '' : decodeCursor(cursor);
    const numeric = /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
    const rows = this.connection()
      .prepare<[string, string | number, string, number], { key: string; doc: string }>(
        `SELECT key, doc FROM docs WHERE ${indexedExpression(field)} IN (?, ?) AND key > ? ORDER BY key LIMIT ?`,
      )
      .all(value, numeric, after, limit + 1);
    const more = rows.length > limit;
    const items = rows.slice(0, limit).map((row) => ({ key: row.key, doc: JSON.parse(row.doc) as unknown }));
    return { items, cursor: more ? Buffer.from(items[items.length - 1]!.key).toString('base64url') : null };
  }

  /** Closes the connection; the next read opens `file` (the new one after a swap). */
  reopenAt(file: string): void {
    this.close();
    this.file = file;
  }

  close(): void {
    if (this.db?.open) this.db.close();
    this.db = undefined;
  }

  private connection(): Database.Database {
    if (this.db === undefined) {
      this.db = new Database(this.file, { fileMustExist: true, timeout: 1_000 });
      this.db.pragma('query_only = ON');
    }
    return this.db;
  }
}

function decodeCursor(cursor: string): string {
  if (!/^[A-Za-z0-9_-]{1,400}$/.test(cursor)) throw makeError('SHARDLOG_INVALID_QUERY', 'malformed cursor');
  return Buffer.from(cursor, 'base64url').toString();
}
