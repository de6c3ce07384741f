import { decodeStored, encodeStored } from '../runtime/codec.ts';
import { makeError } from '../runtime/index.ts';

const prefix = 'v1.';

/**
 * Where an SSE client stands: the last seq it was sent of every partition. Events of
 * different partitions have no total order, so resuming exactly needs all of them; the
 * encoding is `v1.` + base64url(msgpack array of P seqs), about 2–4 bytes per partition.
 */
export function encodeCursor(seqs: readonly number[]): string {
  return prefix + Buffer.from(encodeStored(seqs)).toString('base64url');
}

export function decodeCursor(raw: string, partitions: number): number[] {
  const invalid = (why: string) => makeError('SHARDLOG_INVALID_QUERY', `Last-Event-ID is not a cursor of this node (${why}): reconnect without it to start from now`);
  if (!raw.startsWith(prefix) || raw.length > 16 + partitions * 16 || !/^[A-Za-z0-9_-]*$/.test(raw.slice(prefix.length))) throw invalid('malformed');
  let seqs: unknown;
  try {
    seqs = decodeStored(Buffer.from(raw.slice(prefix.length), 'base64url'));
  } catch {
    throw invalid('undecodable');
  }
  if (!Array.isArray(seqs) || seqs.length !== partitions) throw invalid(`expected ${partitions} partitions`);
  if (!seqs.every((seq) => Number.isSafeInteger(seq) && (seq as number) >= 0)) throw invalid('bad sequence');
  return seqs as number[];
}
