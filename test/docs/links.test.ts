import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { documentedFiles } from './command-blocks.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('documentation links', () => {
  it.each(documentedFiles(root))('%s links only to files of this repository that exist', (file) => {
    const text = readFileSync(join(root, file), 'utf8');
    const targets = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1]!).filter((target) => !target.startsWith('#'));
    const broken = targets.filter((target) => {
      const path = join(dirname(join(root, file)), target.split('#')[0]!);
      return /^[a-z]+:/i.test(target) || relative(root, path).startsWith('..') || !existsSync(path);
    });
    expect(broken).toEqual([]);
  });
});
