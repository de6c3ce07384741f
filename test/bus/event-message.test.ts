import { describe, expect, it } from 'vitest';
import type { BusEvent, PartitionBatch } from '../../runtime/bus/bus-event.ts';
import { decodeBatch, encodeBatch } from '../../runtime/bus/event-message.ts';
import { decodeStored, encodeStored } from '../../runtime/codec.ts';

const recordedAt = Date.UTC(2026, 11, 2, 12, 30, 0, 123);

function event(seq: number, overrides: Partial<BusEvent> = {}): BusEvent {
  return {
    partition: 3,
    seq,
    aggregate: 'account',
    id: 'acc-1',
    type: 'Deposited',
    version: seq,
    schemaVersion: 1,
    data: { amount: 2.5 },
    metadata: { commandId: `c-${seq}`, requestId: 'req-1' },
    recordedAt,
    ...overrides,
  };
}

const batch: PartitionBatch = { partition: 3, firstSeq: 41, events: [event(41), event(42, { seq: 42, recordedAt: recordedAt + 1 })] };

/** The msgpack type byte that follows the map key `name` (each key appears once per event here). */
function typeBytesAfterKey(bytes: Uint8Array, name: string): number[] {
  const key = Buffer.from(encodeStored(name));
  const found: number[] = [];
  const buffer = Buffer.from(bytes);
  for (let at = buffer.indexOf(key); at !== -1; at = buffer.indexOf(key, at + 1)) found.push(buffer[at + key.length]!);
  return found;
}

describe('JetStream event message', () => {
  it('round-trips a batch exactly', () => {
    expect(decodeBatch(encodeBatch(batch))).toEqual(batch);
  });

  it('writes recordedAt (epoch ms) as a msgpack int64, not a float64', () => {
    const bytes = encodeBatch(batch);
    expect(typeBytesAfterKey(bytes, 'recordedAt')).toEqual([0xd3, 0xd3]);
    const raw = decodeStored<{ events: { recordedAt: unknown }[] }>(bytes);
    expect(raw.events.map((each) => each.recordedAt)).toEqual([BigInt(recordedAt), BigInt(recordedAt + 1)]);
  });

  it('keeps small integers in their shortest msgpack form', () => {
    const bytes = encodeBatch(batch);
    // 41 and 42 are positive fixints (one byte, under 0x80).
    expect(typeBytesAfterKey(bytes, 'seq')).toEqual([41, 42]);
  });

  it('writes seq and version past 32 bits as integers too', () => {
    const far = 2 ** 40 + 7;
    const big: PartitionBatch = { partition: 0, firstSeq: far, events: [event(far, { partition: 0, version: far })] };
    const bytes = encodeBatch(big);
    expect(typeBytesAfterKey(bytes, 'seq')).toEqual([0xd3]);
    expect(decodeBatch(bytes)).toEqual(big);
  });

  it('still reads a message written before, with recordedAt as a float64', () => {
    const old = encodeStored(batch);
    expect(typeBytesAfterKey(old, 'recordedAt')).toEqual([0xcb, 0xcb]);
    expect(decodeBatch(old)).toEqual(batch);
  });

  it('refuses bytes that are not a partition batch', () => {
    expect(() => decodeBatch(encodeStored({ partition: 'x', firstSeq: 1, events: [] }))).toThrowError(/not a Shardlog partition batch/);
  });
});
