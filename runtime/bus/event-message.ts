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

/** The header naming the last seq a batch message holds: a reader that wants only the head need not decode the body. */
export const lastSeqHeader = 'Shardlog-Last-Seq';

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
 * Splits a batch into consecutive runs whose messages fit under `maxPayload` bytes, cutting
 * only between commands: a node copying a partition from the stream after its writer died
 * then never holds part of a command (its record, rebuilt from the events, would claim the
 * whole reply). Only a command too large for one message is cut between its events. One
 * event larger than the payload cannot be published: the body limit must stay under it.
 */
export function splitUnderPayload(batch: PartitionBatch, maxPayload: number): { batch: PartitionBatch; bytes: Uint8Array }[] {
  const limit = maxPayload - headerAllowance;
  const whole = encodeBatch(batch);
  if (whole.byteLength <= limit) return [{ batch, bytes: whole }];
  const runs: { batch: PartitionBatch; bytes: Uint8Array }[] = [];
  const commandEnds = commandEndsOf(batch);
  let start = 0;
  while (start < batch.events.length) {
    const fitting = longestRun(batch, start, commandEnds.filter((end) => end > start), limit) ?? longestRun(batch, start, eventEnds(start, batch.events.length), limit);
    if (fitting === undefined) {
      const event = batch.events[start]!;
      const size = encodeBatch(slice(batch, start, start + 1)).byteLength;
      throw new Error(`event ${event.partition}:${event.seq} is ${size} bytes encoded, over the NATS max payload (${maxPayload}): lower --body-limit or raise max_payload`);
    }
    runs.push(fitting);
    start = start + fitting.batch.events.length;
  }
  return runs;
}

/** The index after each command's last event (consecutive events sharing a command id are one command). */
function commandEndsOf(batch: PartitionBatch): number[] {
  const ends: number[] = [];
  const { events } = batch;
  for (let index = 1; index <= events.length; index++) {
    const commandId = events[index - 1]!.metadata.commandId;
    if (index === events.length || commandId === undefined || events[index]!.metadata.commandId !== commandId) ends.push(index);
  }
  return ends;
}

function eventEnds(start: number, length: number): number[] {
  return Array.from({ length: length - start }, (_, index) => start + index + 1);
}

/** The run from `start` to the furthest of `ends` whose message fits; doubling then one-by-one keeps re-encoding cheap. */
function longestRun(batch: PartitionBatch, start: number, ends: readonly number[], limit: number): { batch: PartitionBatch; bytes: Uint8Array } | undefined {
  let best: { batch: PartitionBatch; bytes: Uint8Array } | undefined;
  let index = 0;
  for (let step = 1; index < ends.length; ) {
    const candidateIndex = Math.min(ends.length - 1, index + step - 1);
    const run = slice(batch, start, ends[candidateIndex]!);
    const bytes = encodeBatch(run);
    if (bytes.byteLength > limit) {
      if (step === 1) break;
      step = 1;
      continue;
    }
    best = { batch: run, bytes };
    index = candidateIndex + 1;
    step *= 2;
  }
  return best;
}

function slice(batch: PartitionBatch, start: number, end: number): PartitionBatch {
  return { partition: batch.partition, firstSeq: batch.events[start]!.seq, events: batch.events.slice(start, end) };
}
