import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirLock } from '../../runtime/host/data-dir-lock.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { waitFor } from '../support/wait-for.ts';
import { processState, spawnUnreaped, type UnreapedProcess } from '../support/unreaped-process.ts';

const holderModule = fileURLToPath(new URL('../fixtures/data-dir-lock-holder.ts', import.meta.url));
let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function startHolder(dataDir: string): Promise<UnreapedProcess> {
  const holder = await spawnUnreaped(process.execPath, ['--import', 'tsx', holderModule, dataDir]);
  cleanup.push(holder.reap);
  await waitFor(
    () => {
      if (!holder.running()) throw new Error(`the holder exited: ${holder.output()}`);
      return holder.output().includes('held\n');
    },
    { timeoutMs: 30_000 },
  );
  return holder;
}

function acquire(dataDir: string): DataDirLock {
  const lock = DataDirLock.acquire(dataDir);
  cleanup.push(() => lock.release());
  return lock;
}

describe('the data dir lock', () => {
  it('refuses a data dir another live process holds, naming its pid', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const holder = await startHolder(temp.dir);
    expect(() => DataDirLock.acquire(temp.dir)).toThrowError(
      expect.objectContaining({ code: 'SHARDLOG_DATA_DIR_LOCKED', message: expect.stringContaining(`in use by process ${holder.pid}`), data: { pid: holder.pid } }),
    );
  });

  it('is free as soon as its holder is killed, while the holder is still an unreaped zombie', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const holder = await startHolder(temp.dir);
    await holder.killAndLeaveUnreaped();
    expect(processState(holder.pid)).toBe('Z');
    // kill(pid, 0) calls a zombie alive: a pid check alone would refuse here.
    expect(() => process.kill(holder.pid, 0)).not.toThrow();
    acquire(temp.dir);
    expect(readFileSync(join(temp.dir, 'LOCK'), 'utf8')).toBe(`${process.pid}\n`);
  });

  it('ignores a LOCK pid file left by an earlier release, even one naming a live process', () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    writeFileSync(join(temp.dir, 'LOCK'), `${process.ppid}\n`);
    acquire(temp.dir);
    expect(readFileSync(join(temp.dir, 'LOCK'), 'utf8')).toBe(`${process.pid}\n`);
  });

  it('refuses a second holder in this process until the first releases', () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const first = DataDirLock.acquire(temp.dir);
    expect(() => DataDirLock.acquire(temp.dir)).toThrowError(
      expect.objectContaining({ code: 'SHARDLOG_DATA_DIR_LOCKED', message: expect.stringContaining('another runtime in this process') }),
    );
    first.release();
    acquire(temp.dir);
  });
});
