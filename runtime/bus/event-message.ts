import { decodeStored, encodeStored } from '../codec.ts';
import type { BusEvent, PartitionBatch } from './bus-event.ts';

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

/**
 * The message body: msgpack `{partition, firstSeq, events: [{partition, seq, aggregate, id,
 * type, version, schemaVersion, data, metadata, recordedAt}]}`. Every number of the envelope
 * is a msgpack integer (int64 past 32 bits: `recordedAt` is epoch milliseconds), so readers in
 * typed languages get integers; `data` and `metadata` are as stored. `metadata` holds what the
 * command carried: `commandId`, and over HTTP `requestId`, beside the caller's own fields.
 */
export function encodeBatch(batch: PartitionBatch): Uint8Array {
  return encodeStored({ partition: batch.partition, firstSeq: wholeNumber(batch.firstSeq), events: batch.events.map(wireEvent) });
}

/** Reads both forms: integers as int64 (BigInt here) and, from older writers, float64. */
export function decodeBatch(bytes: Uint8Array): PartitionBatch {
  const batch = decodeStored<WireBatch>(bytes);
  if (typeof batch?.partition !== 'number' || !isWholeNumber(batch.firstSeq) || !Array.isArray(batch.events)) {
    throw new Error('not a Shardlog partition batch');
  }
  return {
    partition: batch.partition,
    firstSeq: Number(batch.firstSeq),
    events: batch.events.map((event) => ({ ...event, seq: Number(event.seq), version: Number(event.version), recordedAt: Number(event.recordedAt) })),
  };
}

type WireNumber = number | bigint;
type WireEvent = Omit<BusEvent, 'seq' | 'version' | 'recordedAt'> & { seq: WireNumber; version: WireNumber; recordedAt: WireNumber };
interface WireBatch {
  partition: number;
  firstSeq: WireNumber;
  events: WireEvent[];
}

function wireEvent(event: BusEvent): WireEvent {
  return { ...event, seq: wholeNumber(event.seq), version: wholeNumber(event.version), recordedAt: wholeNumber(event.recordedAt) };
}

/** msgpackr writes an integer past 32 bits as float64; a BigInt is written as int64. */
function wholeNumber(value: number): WireNumber {
  return Number.isSafeInteger(value) && value >>> 0 !== value ? BigInt(value) : value;
}

function isWholeNumber(value: unknown): value is WireNumber {
  return typeof value === 'number' || typeof value === 'bigint';
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
