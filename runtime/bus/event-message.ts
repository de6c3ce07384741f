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
