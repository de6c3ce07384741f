import { decodeStored, encodeStored } from '../codec.ts';
import type { PartitionBatch } from './bus-event.ts';

/** Room left under the server's max payload for the message's headers. */
const headerAllowance = 1_024;

export function subjectOf(prefix: string, partition: number): string {
  return `${prefix}.events.${partition}`;
}

/** The prefix as it appears in JetStream stream and KV bucket names: upper case, `_` for anything else. */
export function upperPrefixOf(prefix: string): string {
  return prefix.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

export function streamNameOf(prefix: string): string {
  return `${upperPrefixOf(prefix)}_EVENTS`;
}

/** `Nats-Msg-Id` of a batch: JetStream drops a second publish of the same id within its dedupe window. */
export function msgIdOf(partition: number, firstSeq: number): string {
  return `${partition}:${firstSeq}`;
}

export function encodeBatch(batch: PartitionBatch): Uint8Array {
  return encodeStored(batch);
}

export function decodeBatch(bytes: Uint8Array): PartitionBatch {
  const batch = decodeStored<PartitionBatch>(bytes);
  if (typeof batch?.partition !== 'number' || typeof batch.firstSeq !== 'number' || !Array.isArray(batch.events)) {
    throw new Error('not a Shardlog partition batch');
  }
  return batch;
}

/**
 * Splits a batch into consecutive runs whose messages fit under `maxPayload` bytes. One event
 * larger than that cannot be published: the body limit must stay under the server's payload.
 */
export function splitUnderPayload(batch: PartitionBatch, maxPayload: number): { batch: PartitionBatch; bytes: Uint8Array }[] {
  const limit = maxPayload - headerAllowance;
  const whole = encodeBatch(batch);
  if (whole.byteLength <= limit) return [{ batch, bytes: whole }];
  const runs: { batch: PartitionBatch; bytes: Uint8Array }[] = [];
  let start = 0;
  while (start < batch.events.length) {
    let end = start + 1;
    let bytes = encodeBatch(slice(batch, start, end));
    if (bytes.byteLength > limit) {
      const event = batch.events[start]!;
      throw new Error(`event ${event.partition}:${event.seq} is ${bytes.byteLength} bytes encoded, over the NATS max payload (${maxPayload}): lower --body-limit or raise max_payload`);
    }
    // Grow the run while it fits; doubling then one-by-one keeps re-encoding cheap.
    for (let step = 1; end < batch.events.length; ) {
      const next = Math.min(batch.events.length, end + step);
      const candidate = encodeBatch(slice(batch, start, next));
      if (candidate.byteLength > limit) {
        if (step === 1) break;
        step = 1;
        continue;
      }
      end = next;
      bytes = candidate;
      step *= 2;
    }
    runs.push({ batch: slice(batch, start, end), bytes });
    start = end;
  }
  return runs;
}

function slice(batch: PartitionBatch, start: number, end: number): PartitionBatch {
  return { partition: batch.partition, firstSeq: batch.events[start]!.seq, events: batch.events.slice(start, end) };
}
