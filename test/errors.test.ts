import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { deserializeError, makeError, serializeError } from '../runtime/errors.ts';
import { errorCodes, RejectedError, RetryableError, ShardlogError, type ErrorCode } from '../runtime/index.ts';

const errorsDoc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

describe('error registry', () => {
  it.each(Object.keys(errorCodes))('documents %s in docs/errors.md', (code) => {
    expect(errorsDoc).toContain(`\`${code}\``);
  });

  it('gives every code an HTTP status and a sentence', () => {
    for (const [code, entry] of Object.entries(errorCodes)) {
      expect(entry.status, code).toBeGreaterThanOrEqual(400);
      expect(entry.doc.length, code).toBeGreaterThan(20);
    }
  });

  it('keeps class, code and data across a thread hop', () => {
    for (const code of Object.keys(errorCodes) as ErrorCode[]) {
      if (code === 'SHARDLOG_REJECTED') continue;
      const rebuilt = deserializeError(serializeError(makeError(code, 'm', { a: 1 })));
      expect(rebuilt).toBeInstanceOf(ShardlogError);
      expect(rebuilt).toMatchObject({ code, message: 'm', data: { a: 1 } });
      expect(rebuilt instanceof RetryableError).toBe(errorCodes[code].retryable);
    }
    const rejection = deserializeError(serializeError(new RejectedError('insufficient-funds', 'low', { balance: 3 })));
    expect(rejection).toBeInstanceOf(RejectedError);
    expect(rejection).toMatchObject({ code: 'SHARDLOG_REJECTED', data: { code: 'insufficient-funds', detail: 'low', balance: 3 } });
  });
});
