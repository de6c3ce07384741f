import { decodeStored } from '../codec.ts';
import type { EventRow } from '../shard/shard-log.ts';

/**
 * One committed event as the bus carries it, embedded or over JetStream: the payload as
 * stored (not upcast; `schemaVersion` says its shape), so a consumer upcasts with its own code.
 */
export interface BusEvent {
  partition: number;
  seq: number;
  aggregate: string;
  id: string;
  type: string;
  /** The aggregate version this event brought it to. */
  version: number;
  schemaVersion: number;
  data: unknown;
  metadata: Record<string, unknown>;
  /** Commit time, ms since the epoch. */
  recordedAt: number;
}

/** A run of consecutive events of one partition: `events[i].seq === firstSeq + i`. */
export interface PartitionBatch {
  partition: number;
  firstSeq: number;
  events: BusEvent[];
}

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
