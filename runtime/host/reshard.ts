import Database from 'better-sqlite3';
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeError } from '../errors.ts';
import { partitionOf, shardOf } from '../partitioning.ts';
import { ShardLog } from '../shard/shard-log.ts';
import { readMeta, writeMetaAtomically, type DataDirMeta } from './data-dir.ts';
import { DataDirLock } from './data-dir-lock.ts';

const tables = ['events', 'commands', 'command_ids', 'snapshots', 'relay', 'saga_instances', 'saga_routed'] as const;
type Table = (typeof tables)[number];
const copyChunk = 5_000;

export interface ReshardProgress {
  copiedRows: number;
  totalRows: number;
}

/**
 * Changes a data directory's shard count T offline: builds the new shard files beside the
 * old ones (`shards.next/`), then swaps them in. meta.json is the commit point, so a crash at
 * any step leaves either the old layout or a swap that the next open completes. Refuses while
 * a node serves the directory.
 */
export function reshardDataDir(dataDir: string, shards: number, onProgress: (progress: ReshardProgress) => void = () => undefined): { from: number; to: number; rows: number } {
  const directory = resolve(dataDir);
  if (!existsSync(join(directory, 'meta.json'))) throw makeError('SHARDLOG_INVALID_CONFIG', `${directory} holds no Shardlog data (no meta.json)`);
  const lock = DataDirLock.acquire(directory);
  try {
    finishInterruptedReshard(directory);
    const meta = readMeta(directory);
    if (meta === undefined) throw makeError('SHARDLOG_INVALID_CONFIG', `${directory} holds no Shardlog data (no meta.json)`);
    if (!Number.isSafeInteger(shards) || shards < 1 || shards > meta.partitions) {
      throw makeError('SHARDLOG_INVALID_CONFIG', `shards must be an integer from 1 to the partition count (${meta.partitions}), got ${shards}`);
    }
    if (shards === meta.shards) return { from: meta.shards, to: shards, rows: 0 };
    const rows = buildNextShards(directory, meta, shards, onProgress);
    writeMetaAtomically(directory, { ...meta, shards, reshard: { from: meta.shards, to: shards } });
    finishInterruptedReshard(directory);
    return { from: meta.shards, to: shards, rows };
  } finally {
    lock.release();
  }
}

/** Completes a committed swap, or drops an uncommitted build. Safe to run at every open. */
export function finishInterruptedReshard(directory: string): void {
  const meta = readMeta(directory);
  const next = join(directory, 'shards.next');
  const current = join(directory, 'shards');
  const previous = join(directory, 'shards.prev');
  if (meta?.reshard === undefined) {
    if (existsSync(next)) rmSync(next, { recursive: true, force: true });
    if (existsSync(previous)) rmSync(previous, { recursive: true, force: true });
    return;
  }
  if (existsSync(next)) {
    if (existsSync(current) && !existsSync(previous)) renameSync(current, previous);
    else if (existsSync(current)) rmSync(current, { recursive: true, force: true });
    renameSync(next, current);
    fsyncDirectory(directory);
  }
  const { reshard: _done, ...settled } = meta;
  writeMetaAtomically(directory, settled);
  rmSync(previous, { recursive: true, force: true });
}

function buildNextShards(directory: string, meta: DataDirMeta, shards: number, onProgress: (progress: ReshardProgress) => void): number {
  const next = join(directory, 'shards.next');
  rmSync(next, { recursive: true, force: true });
  mkdirSync(next);
  const sources = readdirSync(join(directory, 'shards'))
    .filter((name) => /^\d+\.db$/.test(name))
    .map((name) => new Database(join(directory, 'shards', name), { readonly: true }));
  const targets = Array.from({ length: shards }, (_, shard) => {
    // Creating the log through ShardLog gives it the schema and the identity of the new layout.
    new ShardLog(join(next, `${shard}.db`), 'fsync', { shard, shards, partitions: meta.partitions }).close();
    const db = new Database(join(next, `${shard}.db`));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    return db;
  });
  try {
    // A source not opened since an upgrade lacks the tables of later migrations: it has no rows for them.
    const tablesOf = (db: Database.Database) => tables.filter((table) => db.prepare('SELECT 1 FROM sqlite_schema WHERE type = ? AND name = ?').get('table', table) !== undefined);
    const totalRows = sources.reduce((sum, db) => sum + tablesOf(db).reduce((rows, table) => rows + (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n, 0), 0);
    let copiedRows = 0;
    const inserts = targets.map((db) => Object.fromEntries(tables.map((table) => [table, insertStatement(db, table)])) as Record<Table, Database.Statement>);
    for (const source of sources) {
      for (const table of tablesOf(source)) {
        const rows = source.prepare(`SELECT * FROM ${table}`).raw(false);
        let chunk: Record<string, unknown>[] = [];
        const flush = () => {
          for (const target of targets) target.exec('BEGIN');
          for (const row of chunk) inserts[targetShard(table, row, meta.partitions, shards)]![table].run(row);
          for (const target of targets) target.exec('COMMIT');
          copiedRows += chunk.length;
          chunk = [];
          onProgress({ copiedRows, totalRows });
        };
        for (const row of rows.iterate() as IterableIterator<Record<string, unknown>>) {
          chunk.push(row);
          if (chunk.length === copyChunk) flush();
        }
        if (chunk.length > 0) flush();
      }
    }
    for (const target of targets) target.pragma('wal_checkpoint(TRUNCATE)');
    return copiedRows;
  } finally {
    for (const db of [...sources, ...targets]) db.close();
    for (let shard = 0; shard < shards; shard++) fsyncFile(join(next, `${shard}.db`));
    fsyncDirectory(next);
  }
}

function insertStatement(db: Database.Database, table: Table): Database.Statement {
  // An event's row id is its place in one log: the target gives it its own.
  const columns = (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((column) => column.name).filter((name) => table !== 'events' || name !== 'id');
  return db.prepare(`INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((column) => `@${column}`).join(', ')})`);
}

function targetShard(table: Table, row: Record<string, unknown>, partitions: number, shards: number): number {
  const partition = table === 'commands' || table === 'snapshots' ? partitionOf(row.stream as string, partitions) : (row.partition as number);
  return shardOf(partition, shards);
}

function fsyncFile(path: string): void {
  const file = openSync(path, 'r');
  fsyncSync(file);
  closeSync(file);
}

function fsyncDirectory(path: string): void {
  fsyncFile(path);
}
