import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { makeError } from '../errors.ts';

/**
 * `<data>/LOCK` holds the pid of the process serving a data directory. Two writers on one
 * directory would both append to the same partitions; this refuses the second at start.
 * A lock left by a dead process (kill -9, power loss) is taken over.
 */
export class DataDirLock {
  private constructor(private readonly path: string) {}

  static acquire(dataDir: string): DataDirLock {
    const path = join(dataDir, 'LOCK');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const file = openSync(path, 'wx');
        writeSync(file, `${process.pid}\n`);
        closeSync(file);
        return new DataDirLock(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = readHolder(path);
      if (holder !== undefined && isAlive(holder)) {
        const who = holder === process.pid ? 'another runtime in this process' : `process ${holder}`;
        throw makeError('SHARDLOG_DATA_DIR_LOCKED', `data dir ${dataDir} is in use by ${who}; if that is wrong, delete ${path}`, { pid: holder });
      }
      unlinkSync(path);
    }
    throw makeError('SHARDLOG_DATA_DIR_LOCKED', `could not lock data dir ${dataDir}: another process keeps taking ${path}`);
  }

  release(): void {
    try {
      if (readHolder(this.path) === process.pid) unlinkSync(this.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}

function readHolder(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
