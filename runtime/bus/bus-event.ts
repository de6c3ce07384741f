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

/** Events per partition, each partition's in the order given (a commit's: seq order). */
export function eventsByPartition(events: readonly BusEvent[]): Map<number, BusEvent[]> {
  const byPartition = new Map<number, BusEvent[]>();
  for (const event of events) {
    const kept = byPartition.get(event.partition);
    if (kept === undefined) byPartition.set(event.partition, [event]);
    else kept.push(event);
  }
  return byPartition;
}
