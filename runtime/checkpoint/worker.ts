/**
 * The piscina entry of the checkpointer thread. It holds a second connection to each shard
 * log and copies committed WAL frames into the database file (PASSIVE: it never waits for,
 * nor blocks, the shard's writer), so shard threads never stall a commit on a checkpoint.
 * It writes no rows: each log still has exactly one writer.
 */
import Database from 'better-sqlite3';
import { isMainThread } from 'node:worker_threads';

if (isMainThread) throw new Error('runtime/checkpoint/worker.ts runs only inside the checkpointer thread');

export type CheckpointTask = { type: 'checkpoint'; file: string } | { type: 'close' };
export interface CheckpointResult {
  /** WAL frames in the log, and how many of them are now in the database file. */
  walFrames: number;
  checkpointed: number;
  /** Bytes of WAL in use after the pass (its frames times the page size); null when the pass could not run. */
  walBytes: number | null;
}

const connections = new Map<string, { db: Database.Database; pageSize: number }>();

function closeAll(): void {
  for (const { db } of connections.values()) if (db.open) db.close();
  connections.clear();
}

process.on('exit', closeAll);

export default function runCheckpointTask(task: CheckpointTask): CheckpointResult | null {
  if (task.type === 'close') {
    closeAll();
    return null;
  }
  let connection = connections.get(task.file);
  if (connection === undefined) {
    const db = new Database(task.file, { fileMustExist: true, timeout: 0 });
    db.pragma('synchronous = FULL');
    connection = { db, pageSize: db.pragma('page_size', { simple: true }) as number };
    connections.set(task.file, connection);
  }
  const [row] = connection.db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
  // -1 when the pass could not run (the shard's own backstop checkpoint held the lock): size unknown.
  const walFrames = row?.log ?? -1;
  return { walFrames, checkpointed: row?.checkpointed ?? -1, walBytes: walFrames < 0 ? null : walFrames * connection.pageSize };
}
