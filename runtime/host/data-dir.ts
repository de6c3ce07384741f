import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeError } from '../errors.ts';

/**
 * `<data>/meta.json`: the layout of a data directory. P never changes; T changes only through
 * `shardlog reshard`, whose swap is in progress while `reshard` is present.
 */
export interface DataDirMeta {
  format: 1;
  partitions: number;
  shards: number;
  hash: 'fnv1a32';
  reshard?: { from: number; to: number };
}

const metaFile = 'meta.json';

/**
 * Creates the data directory on first use, or checks that the layout asked for matches the
 * stored one. Options left out take the stored values, so a restart on another machine keeps
 * the layout the data was written with.
 */
export function openDataDir(dataDir: string, wanted: { partitions?: number | undefined; shards?: number | undefined }, defaults: { partitions: number; shards: number }): DataDirMeta {
  mkdirSync(join(dataDir, 'shards'), { recursive: true });
  const stored = readMeta(dataDir);
  if (stored === undefined) {
    const meta: DataDirMeta = { format: 1, partitions: wanted.partitions ?? defaults.partitions, shards: wanted.shards ?? defaults.shards, hash: 'fnv1a32' };
    if (meta.shards > meta.partitions) {
      throw makeError('SHARDLOG_INVALID_CONFIG', `shards (${meta.shards}) cannot exceed partitions (${meta.partitions})`);
    }
    writeMetaAtomically(dataDir, meta);
    return meta;
  }
  if (wanted.partitions !== undefined && wanted.partitions !== stored.partitions) {
    throw makeError(
      'SHARDLOG_DATA_DIR_MISMATCH',
      `data dir ${dataDir} was created with ${stored.partitions} partitions, not ${wanted.partitions}: the partition count is fixed at creation (omit it to use the stored one)`,
      { stored: stored.partitions, wanted: wanted.partitions },
    );
  }
  if (wanted.shards !== undefined && wanted.shards !== stored.shards) {
    throw makeError(
      'SHARDLOG_DATA_DIR_MISMATCH',
      `data dir ${dataDir} has ${stored.shards} shards, not ${wanted.shards}: run \`shardlog reshard --data ${dataDir} --shards ${wanted.shards}\` first (it moves the partitions' rows between shard files), or start with --shards ${stored.shards}`,
      { stored: stored.shards, wanted: wanted.shards },
    );
  }
  return stored;
}

/** The stored layout, or undefined if the directory holds no Shardlog data yet. */
export function readMeta(dataDir: string): DataDirMeta | undefined {
  let text: string;
  try {
    text = readFileSync(join(dataDir, metaFile), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const meta = JSON.parse(text) as Partial<DataDirMeta>;
  if (meta.format !== 1 || meta.hash !== 'fnv1a32' || !Number.isInteger(meta.partitions) || !Number.isInteger(meta.shards)) {
    throw makeError('SHARDLOG_DATA_DIR_MISMATCH', `${join(dataDir, metaFile)} is not a Shardlog format-1 layout: ${text.slice(0, 200)}`);
  }
  return meta as DataDirMeta;
}

/** Written to a temp file, fsynced, renamed, and the directory fsynced: never half a file. */
export function writeMetaAtomically(dataDir: string, meta: DataDirMeta): void {
  const temp = join(dataDir, `${metaFile}.tmp`);
  writeFileSync(temp, `${JSON.stringify(meta, null, 2)}\n`);
  const file = openSync(temp, 'r');
  fsyncSync(file);
  closeSync(file);
  renameSync(temp, join(dataDir, metaFile));
  const directory = openSync(dataDir, 'r');
  fsyncSync(directory);
  closeSync(directory);
}
