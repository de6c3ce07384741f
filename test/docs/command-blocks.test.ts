import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../support/node-process.ts';
import { commandBlocks, documentedFiles, fencedLanguages, outputPattern, readDoc, shellLanguages, type CommandStep } from './command-blocks.ts';

const run = promisify(execFile);
/** Generous: `npx shardlog` compiles the CLI with tsx on each call, and this machine is shared. */
const stepTimeoutMs = 120_000;
const root = fileURLToPath(new URL('../../', import.meta.url));
const files = documentedFiles(root);
const blocksByFile = new Map(files.map((file) => [file, commandBlocks(file, readDoc(root, file))]));

/** The docs talk to a node on localhost:3000; the test's node listens on a free port. */
function pointedAt(node: NodeProcess, command: string): string {
  const hostPort = new URL(node.url).host;
  return command.replaceAll('http://127.0.0.1:3000', node.url).replaceAll('localhost:3000', hostPort).replaceAll('127.0.0.1:3000', hostPort);
}

async function runStep(node: NodeProcess, step: CommandStep): Promise<string[]> {
  const { stdout } = await run('bash', ['-c', pointedAt(node, step.command)], {
    cwd: root,
    // The CLI reads these when no flag is given, so `shardlog events …` and the admin commands reach the test's node.
    env: { ...process.env, SHARDLOG_DATA: node.dir, SHARDLOG_URL: node.url, FORCE_COLOR: '0', NO_COLOR: '1' },
    timeout: stepTimeoutMs,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line !== '');
}

describe('documentation command blocks', () => {
  it('writes every shell example as ```sh, so none escapes this test', () => {
    const elsewhere = files.flatMap((file) =>
      fencedLanguages(readDoc(root, file))
        .filter(({ language }) => shellLanguages.has(language) && language !== 'sh')
        .map(({ language, line }) => `${file}:${line} (${language})`),
    );
    expect(elsewhere).toEqual([]);
  });

  it('has runnable blocks, and marks few as no-run', () => {
    const all = [...blocksByFile.values()].flat();
    const runnable = all.filter((block) => block.runnable);
    expect(runnable.length).toBeGreaterThanOrEqual(5);
    expect(all.length - runnable.length).toBeLessThan(runnable.length);
  });
});

// One node for every page, as a reader would have: each page uses its own aggregate ids.
describe('documented commands, run against a node', () => {
  let node: NodeProcess;
  beforeAll(async () => {
    node = await startNodeProcess('docs', [], { readyWithinMs: 180_000 });
  }, 200_000);
  afterAll(async () => {
    if (node === undefined) return;
    node.signal('SIGTERM');
    await node.exited;
    node.removeDir();
  });

  for (const [file, blocks] of blocksByFile) {
    for (const block of blocks.filter((each) => each.runnable)) {
      it(`${file}: the block at line ${block.line} prints what it shows`, { timeout: stepTimeoutMs * (block.steps.length + 1) }, async () => {
        for (const step of block.steps) {
          const where = `${file}:${block.line}: ${step.command}`;
          const printed = await runStep(node, step).catch((error: unknown) => {
            throw new Error(`${where}\nfailed: ${error instanceof Error ? error.message : String(error)}\nnode output:\n${node.output()}`);
          });
          if (step.expected.length === 0) continue;
          expect(printed.length, `${where}\nprinted:\n${printed.join('\n')}`).toBe(step.expected.length);
          step.expected.forEach((expected, index) => {
            expect(printed[index], `${where}\nline ${index + 1} differs from the doc`).toMatch(outputPattern(expected));
          });
        }
      });
    }
  }
});
