import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const typescriptBlocks = [...readme.matchAll(/^```ts\n([\s\S]*?)^```\s*$/gm)].map((match) => match[1] ?? '');

/** The README's TypeScript blocks as one module: their imports merged, their code in order. */
function asOneModule(blocks: string[]): string {
  const named = new Map<string, Set<string>>();
  const code: string[] = [];
  for (const line of blocks.join('\n').split('\n')) {
    const imported = /^import \{ (.+) \} from '(.+)';$/.exec(line);
    if (imported === null) {
      code.push(line);
      continue;
    }
    const names = named.get(imported[2]!) ?? new Set<string>();
    for (const name of imported[1]!.split(',')) names.add(name.trim());
    named.set(imported[2]!, names);
  }
  const imports = [...named].map(([from, names]) => `import { ${[...names].join(', ')} } from '${from}';`);
  return [...imports, ...code].join('\n');
}

describe('README TypeScript', () => {
  it('shows an aggregate and given() specs that pass against it', { timeout: 120_000 }, async () => {
    expect(typescriptBlocks.length).toBeGreaterThanOrEqual(2);
    const source = asOneModule(typescriptBlocks);
    expect(source).toContain("from 'shardlog/testing'");
    // Inside the package, so `shardlog` and `shardlog/testing` resolve as a user's would.
    const dir = mkdtempSync(join(root, 'test/docs/.readme-'));
    try {
      const file = join(dir, 'readme-example.ts');
      writeFileSync(file, `${source}\nconsole.log('specs passed');\n`);
      const { stdout } = await run(process.execPath, ['--import', 'tsx', file], { cwd: root, timeout: 110_000 });
      expect(stdout.trim()).toBe('specs passed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
