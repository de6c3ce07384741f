import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A shared object built from one of the C shims in this folder, to LD_PRELOAD into a node. */
export type PreloadShim = { library: string } | { skipped: string };

/** Compiles `support/<name>.c` with gcc into a fresh temp dir; says why not when gcc is missing or fails. */
export function buildPreloadShim(name: string): PreloadShim {
  if (process.platform !== 'linux') return { skipped: `LD_PRELOAD shims need Linux (this is ${process.platform})` };
  const source = fileURLToPath(new URL(`./${name}.c`, import.meta.url));
  const library = join(mkdtempSync(join(tmpdir(), 'shardlog-shim-')), `${name}.so`);
  try {
    execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-Wall', '-o', library, source, '-ldl'], { stdio: 'pipe' });
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { stderr?: Buffer };
    if (failure.code === 'ENOENT') return { skipped: 'gcc is not installed: the drill builds its LD_PRELOAD shim with it (apt-get install gcc)' };
    return { skipped: `gcc could not build ${name}.c: ${failure.stderr?.toString().trim() ?? failure.message}` };
  }
  return { library };
}
