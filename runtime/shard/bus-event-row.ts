import type { BusEvent } from '../bus/bus-event.ts';
import { decodeStored } from '../codec.ts';
import type { EventRow } from './shard-log.ts';

/** A stored event row as the bus carries it (payload as stored, not upcast). */
export function busEventFromRow(row: EventRow): BusEvent {
  const slash = row.stream.indexOf('/');
  return {
    partition: row.partition,
    seq: row.seq,
    aggregate: row.stream.slice(0, slash),
    id: row.stream.slice(slash + 1),
    type: row.type,
    version: row.version,
    schemaVersion: row.schema_version,
    data: decodeStored(row.data),
    metadata: row.meta === null ? {} : decodeStored<Record<string, unknown>>(row.meta),
    recordedAt: row.recorded_at,
  };
}
