import type { App } from '../define/app.ts';
import { correlationOf, type DeliveredEvent, sagaEventOf, sagaHandlerOf, stepOf } from '../define/saga-actor.ts';
import { decodeStored } from '../codec.ts';
import type { SagaDeliveries } from '../protocol.ts';
import { decodeEvent } from './actor-loader.ts';
import type { EventRow } from './shard-log.ts';

/**
 * Which saga instances one partition's events go to: each event a saga has a handler for,
 * to the instance its `correlate` names, and each event a saga's own command caused, to the
 * instance that sent it (with the step, so the instance settles it). Saga events go nowhere.
 */
export function sagaDeliveriesOf(app: App, partition: number, rows: readonly EventRow[], upTo: number): SagaDeliveries {
  const deliveries: SagaDeliveries['deliveries'] = [];
  for (const row of rows) {
    const slash = row.stream.indexOf('/');
    const aggregate = app.aggregateByName.get(row.stream.slice(0, slash));
    if (aggregate === undefined) continue;
    const type = `${aggregate.name}.${row.type}`;
    let event: DeliveredEvent | undefined;
    for (const saga of app.sagas) {
      if (!saga.aggregates.includes(aggregate)) continue;
      const handled = sagaHandlerOf(saga, type) !== undefined;
      if (!handled && row.meta === null) continue;
      event ??= {
        partition: row.partition,
        seq: row.seq,
        aggregate: aggregate.name,
        id: row.stream.slice(slash + 1),
        type: row.type,
        version: row.version,
        data: decodeEvent(aggregate, row).data,
        metadata: row.meta === null ? {} : decodeStored<Record<string, unknown>>(row.meta),
        recordedAt: row.recorded_at,
      };
      const step = stepOf(event.metadata);
      const own = step !== undefined && step.saga === saga.name ? step : undefined;
      if (own !== undefined) deliveries.push({ saga: saga.name, correlationId: own.correlationId, event: { ...event, step: own.step } });
      if (!handled) continue;
      const correlationId = correlationOf(saga, sagaEventOf(event));
      if (correlationId !== null && correlationId !== own?.correlationId) deliveries.push({ saga: saga.name, correlationId, event });
    }
  }
  return { partition, upTo, deliveries };
}
