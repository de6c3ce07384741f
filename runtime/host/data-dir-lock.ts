import Database from 'better-sqlite3';
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeError } from '../errors.ts';

const busyWaitMs = 200;

/**
 * Keeps a second writer off a data directory: two would both append to the same partitions.
 *
 * The lock is SQLite's own exclusive lock on `<data>/LOCK.db`, held by a write transaction
 * that stays open until release (it writes nothing). It is an fcntl lock, so the kernel drops it
 * when the holder dies (SIGKILL, OOM, power loss): a dead holder never blocks a restart, even
 * while it is an unreaped zombie or its pid is reused, and a live one always blocks. SQLite
 * tracks its locks per file inside one process too, so a second runtime in this process is
 * refused as well.
 *
 * `<data>/LOCK` carries the holder's pid, only to name it in the refusal. Releases before this
 * lock decided by that pid alone; a stale one is simply overwritten, and those releases
 * still refuse to start beside a live holder of this one.
 */
export class DataDirLock {
  private constructor(
    private readonly database: Database.Database,
    private readonly holderFile: string,
  ) {}

  /** Locks `dataDir` for this runtime; throws SHARDLOG_DATA_DIR_LOCKED if a live process (or runtime) holds it. */
  static acquire(dataDir: string): DataDirLock {
    const directory = resolve(dataDir);
    const holderFile = join(directory, 'LOCK');
    // A starter that loses a race holds a shared lock for a moment; the short busy wait lets
    // the winner through instead of refusing both; a live holder is refused after that wait.
    const database = new Database(join(directory, 'LOCK.db'), { timeout: busyWaitMs });
    try {
      database.exec('BEGIN EXCLUSIVE');
    } catch (error) {
      database.close();
      if (!isBusy(error)) throw error;
      throw makeError('SHARDLOG_DATA_DIR_LOCKED', `data dir ${directory} is in use by ${describeHolder(holderFile)}`, { pid: readHolder(holderFile) ?? null }, error);
    }
    try {
      writeHolder(holderFile);
    } catch (error) {
      database.close();
      throw error;
    }
    return new DataDirLock(database, holderFile);
  }

  release(): void {
    if (!this.database.open) return;
    try {
      if (readHolder(this.holderFile) === process.pid) unlinkSync(this.holderFile);
    } finally {
      this.database.close();
    }
  }
}

function isBusy(error: unknown): boolean {
  return error instanceof Database.SqliteError && (error.code === 'SQLITE_BUSY' || error.code.startsWith('SQLITE_BUSY_'));
}

function describeHolder(holderFile: string): string {
  const pid = readHolder(holderFile);
  if (pid === process.pid) return 'another runtime in this process';
  return pid === undefined ? 'another process' : `process ${pid}`;
}

/** Written aside and renamed, so a reader never sees half a pid. */
function writeHolder(holderFile: string): void {
  const draft = `${holderFile}.${process.pid}.draft`;
  writeFileSync(draft, `${process.pid}\n`);
  renameSync(draft, holderFile);
}

function readHolder(holderFile: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(holderFile, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
