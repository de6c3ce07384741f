import { makeError } from '../errors.ts';
import type { AnyAggregate, App } from './app.ts';
import { sagaActorOf } from './saga-actor.ts';

const sagaActorsByApp = new WeakMap<App, Map<string, AnyAggregate>>();

/** The app's sagas as the aggregate types a shard runs them as, made once per app. */
export function sagaActors(app: App): ReadonlyMap<string, AnyAggregate> {
  let actors = sagaActorsByApp.get(app);
  if (actors === undefined) {
    actors = new Map(app.sagas.map((saga) => [saga.name, sagaActorOf(saga)]));
    sagaActorsByApp.set(app, actors);
  }
  return actors;
}

/**
 * What a shard may run under this name: one of the app's aggregates, or one of its sagas.
 * Only shards ask this: the edge and the public API know aggregates alone, so no caller can
 * send a saga's inputs.
 */
export function actorNamed(app: App, name: string): AnyAggregate {
  const actor = app.aggregateByName.get(name) ?? sagaActors(app).get(name);
  if (actor === undefined) throw makeError('SHARDLOG_UNKNOWN_AGGREGATE', `unknown aggregate "${name}"`, { aggregate: name });
  return actor;
}
