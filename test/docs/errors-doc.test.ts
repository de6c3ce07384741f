import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorsDocPath, renderErrorsDoc } from '../../docs/generate-errors.ts';
import { errorCodes } from '../../runtime/errors.ts';

const onDisk = readFileSync(errorsDocPath, 'utf8');
const documentedCodes = [...onDisk.matchAll(/^\| `(SHARDLOG_[A-Z_]+)` \|/gm)].map((match) => match[1]);

describe('docs/errors.md', () => {
  it('is exactly what `npm run docs:errors` makes from the registry', () => {
    expect(onDisk, 'docs/errors.md is stale: run `npm run docs:errors`').toBe(renderErrorsDoc());
  });

  it('documents every code of the registry, once', () => {
    expect(documentedCodes).toEqual(Object.keys(errorCodes));
  });

  it('documents no code the registry does not have', () => {
    const unknown = documentedCodes.filter((code) => code === undefined || !Object.hasOwn(errorCodes, code));
    expect(unknown).toEqual([]);
  });

  it('states each code with its registered status and retry flag', () => {
    for (const [code, { status, retryable }] of Object.entries(errorCodes)) {
      expect(onDisk).toContain(`| \`${code}\` | ${status} | ${retryable ? 'yes' : 'no'} |`);
    }
  });
});
