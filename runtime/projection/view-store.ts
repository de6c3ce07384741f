import Database from 'better-sqlite3';
import { join } from 'node:path';

/** `<data>/views/<name>.v<version>.db`: one projection version's documents, checkpoints and dead letters. */
export function viewFile(dataDir: string, name: string, version: number): string {
  return join(dataDir, 'views', `${name}.v${version}.db`);
}

/** Numbered migrations of a view file; `PRAGMA user_version` counts those that ran. */
const migrations: readonly string[] = [
  `CREATE TABLE docs (
     key TEXT PRIMARY KEY,
     doc TEXT NOT NULL,
     updated_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE checkpoints (
     partition INTEGER PRIMARY KEY,
     seq INTEGER NOT NULL,
     recorded_at INTEGER NOT NULL
   );
   CREATE TABLE dead_letters (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     partition INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     event BLOB NOT NULL,
     error TEXT NOT NULL,
     attempts INTEGER NOT NULL,
     parked_at INTEGER NOT NULL,
     UNIQUE (partition, seq)
   );
   CREATE TABLE view_meta (
     key TEXT PRIMARY KEY,
     value TEXT NOT NULL
   ) WITHOUT ROWID;`,
];

export function migrateView(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) throw new Error(`view ${db.name} has schema version ${current}, newer than this Shardlog: upgrade Shardlog`);
  for (let version = current; version < migrations.length; version++) {
    db.transaction(() => {
      db.exec(migrations[version]!);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}

/** The SQL expression an index on a top-level document field is built on, and queried by. */
export function indexedExpression(field: string): string {
  return `json_extract(doc, '$.${field}')`;
}

export interface DeadLetterRow {
  id: number;
  partition: number;
  seq: number;
  event: Buffer;
  error: string;
  attempts: number;
  parked_at: number;
}

/** Opens a view file for writing (the projector thread is its only writer). */
export function openViewForWriting(file: string, indexes: readonly string[]): Database.Database {
  const db = new Database(file, { timeout: 5_000 });
  try {
    db.pragma('journal_mode = WAL');
    // Documents and checkpoint commit together, so a power loss can only roll both back to
    // an earlier consistent point, which the projector re-applies from: no fsync per batch.
    db.pragma('synchronous = NORMAL');
    migrateView(db);
    for (const field of indexes) db.exec(`CREATE INDEX IF NOT EXISTS "docs_by_${field}" ON docs (${indexedExpression(field)}, key)`);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}
