import { describe, expect, it } from 'vitest';
import { assertValidId, fnv1a32, partitionOf, shardOf } from '../runtime/partitioning.ts';

describe('partitioning', () => {
  it('hashes with 32-bit FNV-1a over UTF-8 (reference vectors)', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
    expect(fnv1a32('é')).toBe(fnv1a32('\u00e9'));
  });

  it('places a stream in one partition and a partition on shard p mod T', () => {
    const partition = partitionOf('account/acc-42', 64);
    expect(partition).toBe(fnv1a32('account/acc-42') % 64);
    expect(shardOf(partition, 3)).toBe(partition % 3);
  });

  it('spreads keys over every partition', () => {
    const seen = new Set(Array.from({ length: 2_000 }, (_, index) => partitionOf(`account/${index}`, 64)));
    expect(seen.size).toBe(64);
  });

  it('refuses empty, over-long and control-character ids', () => {
    for (const id of ['', 'x'.repeat(257), 'a\nb', 'tab\there', '\u0000', 'del\u007f']) {
      expect(() => assertValidId(id), JSON.stringify(id)).toThrowError(expect.objectContaining({ code: 'SHARDLOG_INVALID_ID' }));
    }
    expect(() => assertValidId('x'.repeat(256))).not.toThrow();
    expect(() => assertValidId('ünïcode-ok 42')).not.toThrow();
  });
});
