import type { App } from '../define/app.ts';
import type { DeliveredEvent } from '../define/saga-actor.ts';
import { mayConcernSagas, sagaDeliveriesOf } from '../define/saga-routing.ts';
import { decodeStored } from '../codec.ts';
import type { SagaDeliveries } from '../protocol.ts';
import { decodeEvent } from './actor-loader.ts';
import type { EventRow } from './shard-log.ts';

/** One partition's events read back from the log, and the saga instances they go to. */
export function partitionSagaDeliveries(app: App, partition: number, rows: readonly EventRow[], upTo: number): SagaDeliveries {
  const events: DeliveredEvent[] = [];
  for (const row of rows) {
    const slash = row.stream.indexOf('/');
    const aggregateName = row.stream.slice(0, slash);
    if (!mayConcernSagas(app, aggregateName)) continue;
    const aggregate = app.aggregateByName.get(aggregateName)!;
    events.push({
      partition: row.partition,
      seq: row.seq,
      aggregate: aggregateName,
      id: row.stream.slice(slash + 1),
      type: row.type,
      version: row.version,
      data: decodeEvent(aggregate, row).data,
      metadata: row.meta === null ? {} : decodeStored<Record<string, unknown>>(row.meta),
      recordedAt: row.recorded_at,
    });
  }
  return { partition, upTo, deliveries: sagaDeliveriesOf(app, events) };
}
