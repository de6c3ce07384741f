import type { AnyAggregate } from '../define/app.ts';
import { evolve, initialStateOf, upcast } from '../define/execute.ts';
import { decodeStored } from '../codec.ts';
import type { Actor } from './actor-cache.ts';
import type { EventRow, ShardLog } from './shard-log.ts';

/** An event row as evolve and projections see it: decoded, and upcast to the newest shape. */
export function decodeEvent(aggregate: AnyAggregate, row: EventRow): { type: string; data: unknown } {
  return { type: row.type, data: upcast(aggregate, row.type, row.schema_version, decodeStored(row.data)) };
}

/** Folds rows into a state, returning the state and the last version folded. */
export function fold(aggregate: AnyAggregate, state: unknown, version: number, rows: Iterable<EventRow>): { state: unknown; version: number } {
  let current = state;
  let currentVersion = version;
  for (const row of rows) {
    current = evolve(aggregate, current, [decodeEvent(aggregate, row)]);
    currentVersion = row.version;
  }
  return { state: current, version: currentVersion };
}

/** The snapshot of a stream, unless it was taken under another snapshot schema of the aggregate. */
export function usableSnapshot(log: ShardLog, aggregate: AnyAggregate, stream: string): { state: unknown; version: number } | undefined {
  const snapshot = log.snapshot(stream);
  if (snapshot === undefined || snapshot.schema !== aggregate.snapshotSchema) return undefined;
  return { state: decodeStored(snapshot.state), version: snapshot.version };
}

/** Rebuilds a live actor from its latest usable snapshot plus the events after it. */
export function loadActor(log: ShardLog, aggregate: AnyAggregate, stream: string): Actor {
  const start = usableSnapshot(log, aggregate, stream) ?? { state: initialStateOf(aggregate), version: 0 };
  const { state, version } = fold(aggregate, start.state, start.version, log.streamEventsAfter(stream, start.version));
  return { stream, aggregate: aggregate.name, state, version };
}
