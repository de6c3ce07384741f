import { randomFillSync } from 'node:crypto';

// Random bytes are drawn 4 KiB at a time: one randomFillSync per id cost 6% of the main
// thread at 12k commands/s.
const pool = new Uint8Array(4096);
let offset = pool.length;
const hex = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Ids generated for
 * commands sort by time, so their index entries append at the right edge of the `commands`
 * B-tree instead of dirtying a random page per command (random v4 ids doubled the WAL
 * volume of a batch).
 */
export function newCommandId(now = Date.now()): string {
  if (offset + 10 > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const b = pool.subarray(offset, offset + 10);
  offset += 10;
  const time = now.toString(16).padStart(12, '0');
  return (
    `${time.slice(0, 8)}-${time.slice(8, 12)}-7${hex[b[0]!]!.slice(1)}${hex[b[1]!]}-` +
    `${hex[(b[2]! & 0x3f) | 0x80]}${hex[b[3]!]}-${hex[b[4]!]}${hex[b[5]!]}${hex[b[6]!]}${hex[b[7]!]}${hex[b[8]!]}${hex[b[9]!]}`
  );
}
