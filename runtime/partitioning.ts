import { makeError } from './errors.ts';

const encoder = new TextEncoder();

/** FNV-1a, 32 bits, over the UTF-8 bytes of the key. Never change it: it places every stored event. */
export function fnv1a32(key: string): number {
  let hash = 0x811c9dc5;
  const bytes = encoder.encode(key);
  for (const byte of bytes) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The stream name of one aggregate instance, e.g. `account/acc-42`. */
export function streamName(aggregate: string, id: string): string {
  return `${aggregate}/${id}`;
}

export function partitionOf(stream: string, partitions: number): number {
  return fnv1a32(stream) % partitions;
}

/** Partition p lives on shard p mod T. */
export function shardOf(partition: number, shards: number): number {
  return partition % shards;
}

export function formatPosition(partition: number, seq: number): string {
  return `${partition}:${seq}`;
}

/** The partition and seq of a position this runtime formatted (`<partition>:<seq>`). */
export function parsePosition(position: string): { partition: number; seq: number } {
  const colon = position.indexOf(':');
  return { partition: Number(position.slice(0, colon)), seq: Number(position.slice(colon + 1)) };
}

export const maxIdLength = 256;
// eslint-disable-next-line no-control-regex -- the point is to find control characters
const controlCharacters = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Throws SHARDLOG_INVALID_ID unless the id is 1..256 characters with no control characters.
 * Characters are code points, as JSON Schema's maxLength counts them (an emoji is one, not two).
 */
export function assertValidId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.length === 0 || (id.length > maxIdLength && [...id].length > maxIdLength) || controlCharacters.test(id)) {
    const shown = typeof id === 'string' ? JSON.stringify(id.slice(0, 40)) : typeof id;
    throw makeError('SHARDLOG_INVALID_ID', `invalid aggregate id ${shown}: use 1 to ${maxIdLength} characters with no control characters`, {
      id: typeof id === 'string' ? id.slice(0, maxIdLength) : null,
    });
  }
}
