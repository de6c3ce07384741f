/**
 * The 16-byte key of a command id the runtime generated (a UUIDv7 in canonical lowercase
 * form). Stored as bytes it is less than half the size of its text, and since it starts with
 * its time in milliseconds, records older than a cutoff form one key range: retention deletes
 * that range instead of keeping an index by time.
 */
const canonicalUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The bytes of a canonical UUID, or undefined for any other id (a client's key). */
export function generatedCommandKey(commandId: string): Buffer | undefined {
  if (commandId.length !== 36 || !canonicalUuid.test(commandId)) return undefined;
  return Buffer.from(commandId.replaceAll('-', ''), 'hex');
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
