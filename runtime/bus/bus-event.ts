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
