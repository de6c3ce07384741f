/**
 * The 16-byte key of a command id the runtime generated (a UUIDv7 in canonical lowercase
 * form). Stored as bytes it is less than half the size of its text, and since it starts with
 * its time in milliseconds, records older than a cutoff form one key range: retention deletes
 * that range instead of keeping an index by time.
 */
const dashes = new Set([8, 13, 18, 23]);

/** A lowercase hex digit's value, or -1. */
function nibble(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/**
 * The bytes of a canonical (lowercase, hyphenated) UUID, or undefined for any other id (a
 * client's key). Decoded by hand: a regex, `replaceAll` and `Buffer.from(hex)` cost about
 * 5 µs per command on the shard thread (`--cpu-prof`), this a fraction of that.
 */
export function generatedCommandKey(commandId: string): Buffer | undefined {
  if (commandId.length !== 36) return undefined;
  const key = Buffer.allocUnsafe(16);
  let byte = 0;
  for (let index = 0; index < 36; ) {
    if (dashes.has(index)) {
      if (commandId.charCodeAt(index) !== 45) return undefined;
      index += 1;
      continue;
    }
    const high = nibble(commandId.charCodeAt(index));
    const low = nibble(commandId.charCodeAt(index + 1));
    if (high < 0 || low < 0) return undefined;
    key[byte++] = (high << 4) | low;
    index += 2;
  }
  return key;
}

/** The canonical text of a key made by `generatedCommandKey`. */
export function generatedCommandId(key: Uint8Array): string {
  const hex = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The smallest key of a UUIDv7 made at or after `ms`: every key below it was made before. */
export function generatedKeyFloor(ms: number): Buffer {
  const key = Buffer.alloc(16);
  key.writeUIntBE(Math.max(0, Math.floor(ms)), 0, 6);
  return key;
}
