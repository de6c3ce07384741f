import type { App } from './app.ts';
import { correlationOf, type DeliveredEvent, sagaEventOf, sagaHandlerOf, stepOf } from './saga-actor.ts';

export interface SagaDelivery {
  saga: string;
  correlationId: string;
  event: DeliveredEvent;
}

/**
 * Which saga instances committed events go to: each event a saga has a handler for, to the
 * instance its `correlate` names, and each event a saga's own command caused, to the instance
 * that sent it (with the step, so the instance settles it). Saga events go nowhere. Pure: the
 * main thread runs it on a commit's events, a shard thread on events read back from its log.
 */
export function sagaDeliveriesOf(app: App, events: Iterable<DeliveredEvent>): SagaDelivery[] {
  const deliveries: SagaDelivery[] = [];
  for (const event of events) {
    const aggregate = app.aggregateByName.get(event.aggregate);
    if (aggregate === undefined) continue;
    const type = `${event.aggregate}.${event.type}`;
    for (const saga of app.sagas) {
      if (!saga.aggregates.includes(aggregate)) continue;
      const handled = sagaHandlerOf(saga, type) !== undefined;
      const step = stepOf(event.metadata);
      const own = step !== undefined && step.saga === saga.name ? step : undefined;
      if (own !== undefined) deliveries.push({ saga: saga.name, correlationId: own.correlationId, event: { ...event, step: own.step } });
      if (!handled) continue;
      const correlationId = correlationOf(saga, sagaEventOf(event));
      if (correlationId !== null && correlationId !== own?.correlationId) deliveries.push({ saga: saga.name, correlationId, event });
    }
  }
  return deliveries;
}

/** Whether any saga of the app uses this aggregate, so its events may concern one (cheap: no payload needed). */
export function mayConcernSagas(app: App, aggregate: string): boolean {
  const definition = app.aggregateByName.get(aggregate);
  return definition !== undefined && app.sagas.some((saga) => saga.aggregates.includes(definition));
}
