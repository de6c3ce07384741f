import { Packr } from 'msgpackr';

/**
 * Plain msgpack (maps, no record extension) for everything: what lands in a log must decode
 * with no shared state, in any language, forever; and thread messages must decode on their
 * own, since each side of a thread boundary has its own codec instance.
 */
export const storedCodec = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });
export const wireCodec = new Packr({ useRecords: false, mapsAsObjects: true });

export function encodeStored(value: unknown): Buffer {
  return storedCodec.pack(value);
}

export function decodeStored<T = unknown>(bytes: Uint8Array): T {
  return storedCodec.unpack(bytes) as T;
}

/** Encodes a thread message into its own ArrayBuffer, so it can be transferred rather than cloned. */
export function encodeWire(value: unknown): Uint8Array {
  const packed = wireCodec.pack(value);
  const owned = new Uint8Array(packed.byteLength);
  owned.set(packed);
  return owned;
}

export function decodeWire<T>(bytes: Uint8Array): T {
  return wireCodec.unpack(bytes) as T;
}
