import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeError } from '../errors.ts';

/** Data dirs this process holds: a LOCK naming our own pid but absent here is a dead predecessor's. */
const heldHere = new Set<string>();

/**
 * `<data>/LOCK` holds the pid of the process serving a data directory. Two writers on one
 * directory would both append to the same partitions; this refuses the second at start.
 * The file appears with its content in one step (written aside, then hard-linked), and a
 * lock left by a dead process (kill -9, power loss, a container restarting with the same
 * pid) is taken over by renaming it away first, so two starters cannot both win.
 */
export class DataDirLock {
  private constructor(
    private readonly directory: string,
    private readonly path: string,
  ) {}

  static acquire(dataDir: string): DataDirLock {
    const directory = resolve(dataDir);
    const path = join(directory, 'LOCK');
    for (let attempt = 0; attempt < 3; attempt++) {
      const draft = `${path}.${process.pid}.${Date.now()}.draft`;
      writeFileSync(draft, `${process.pid}\n`);
      try {
        linkSync(draft, path);
        heldHere.add(directory);
        return new DataDirLock(directory, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      } finally {
        unlinkSync(draft);
      }
      const holder = readHolder(path);
      if (holder !== undefined && isAlive(holder) && (holder !== process.pid || heldHere.has(directory))) {
        const who = holder === process.pid ? 'another runtime in this process' : `process ${holder}`;
        throw makeError('SHARDLOG_DATA_DIR_LOCKED', `data dir ${directory} is in use by ${who}; if that is wrong, delete ${path}`, { pid: holder });
      }
      const aside = `${path}.stale.${process.pid}.${Date.now()}`;
      try {
        renameSync(path, aside);
        unlinkSync(aside);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    throw makeError('SHARDLOG_DATA_DIR_LOCKED', `could not lock data dir ${directory}: another process keeps taking ${path}`);
  }

  release(): void {
    heldHere.delete(this.directory);
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
