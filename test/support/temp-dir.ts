import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh directory under the OS temp dir, and a function that removes it. */
export function makeTempDir(prefix = 'shardlog-test-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

// Until every test imports these from their own files (cli.test.ts and dispatch.test.ts are
// being changed elsewhere), they stay importable from here too.
export { silentLogger } from './silent-logger.ts';
export { waitFor } from './wait-for.ts';
