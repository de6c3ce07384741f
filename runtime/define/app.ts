import { makeError } from '../errors.ts';
import type { AnyAggregate } from './aggregate.ts';
import type { AnyProjection } from './projection.ts';
import type { AnySaga } from './saga.ts';

/** An application: its aggregate types, and the module that exports it (shard threads import it). */
export interface App<Aggregates extends readonly AnyAggregate[] = readonly AnyAggregate[]> {
  readonly kind: 'app';
  readonly module: string;
  readonly aggregates: Aggregates;
  readonly aggregateByName: ReadonlyMap<string, AnyAggregate>;
  readonly projections: readonly AnyProjection[];
  readonly projectionByName: ReadonlyMap<string, AnyProjection>;
  readonly sagas: readonly AnySaga[];
  readonly sagaByName: ReadonlyMap<string, AnySaga>;
}

export type { AnyAggregate } from './aggregate.ts';

/**
 * Collects an app. `module` is the URL of the file that exports it (pass `import.meta.url`),
 * because each shard thread loads the app by importing that module: functions cannot cross
 * threads.
 *
 * ```ts
 * export default defineApp({ module: import.meta.url, aggregates: [account, order] });
 * ```
 */
export function defineApp<const Aggregates extends readonly AnyAggregate[]>(config: {
  module: string;
  aggregates: Aggregates;
  projections?: readonly AnyProjection[];
  sagas?: readonly AnySaga[];
}): App<Aggregates> {
  const aggregateByName = new Map<string, AnyAggregate>();
  for (const aggregate of config.aggregates) {
    if (aggregateByName.has(aggregate.name)) throw new TypeError(`aggregate "${aggregate.name}" is defined twice`);
    aggregateByName.set(aggregate.name, aggregate);
  }
  const projections = config.projections ?? [];
  const projectionByName = new Map<string, AnyProjection>();
  for (const projection of projections) {
    if (projectionByName.has(projection.name)) throw new TypeError(`projection "${projection.name}" is defined twice`);
    for (const source of projection.from) {
      if (aggregateByName.get(source.name) !== source) throw new TypeError(`projection "${projection.name}" reads aggregate "${source.name}", which is not in the app`);
    }
    projectionByName.set(projection.name, projection);
  }
  const sagas = config.sagas ?? [];
  const sagaByName = new Map<string, AnySaga>();
  for (const saga of sagas) {
    if (sagaByName.has(saga.name) || aggregateByName.has(saga.name)) throw new TypeError(`saga "${saga.name}" is defined twice, or shares its name with an aggregate`);
    for (const aggregate of saga.aggregates) {
      if (aggregateByName.get(aggregate.name) !== aggregate) throw new TypeError(`saga "${saga.name}" uses aggregate "${aggregate.name}", which is not in the app`);
    }
    sagaByName.set(saga.name, saga);
  }
  return { kind: 'app', module: config.module, aggregates: config.aggregates, aggregateByName, projections, projectionByName, sagas, sagaByName };
}

/** The app's projection of that name; throws SHARDLOG_UNKNOWN_PROJECTION if it has none. */
export function projectionNamed(app: App, name: string): AnyProjection {
  const projection = app.projectionByName.get(name);
  if (projection === undefined) throw makeError('SHARDLOG_UNKNOWN_PROJECTION', `unknown projection "${name}"`, { projection: name });
  return projection;
}

/** The app's saga of that name; throws SHARDLOG_UNKNOWN_SAGA if it has none. */
export function sagaNamed(app: App, name: string): AnySaga {
  const saga = app.sagaByName.get(name);
  if (saga === undefined) throw makeError('SHARDLOG_UNKNOWN_SAGA', `unknown saga "${name}"`, { saga: name });
  return saga;
}

/** The app's aggregate type of that name; throws SHARDLOG_UNKNOWN_AGGREGATE if it has none. */
export function aggregateNamed(app: App, name: string): AnyAggregate {
  const aggregate = app.aggregateByName.get(name);
  if (aggregate === undefined) throw makeError('SHARDLOG_UNKNOWN_AGGREGATE', `unknown aggregate "${name}"`, { aggregate: name });
  return aggregate;
}

function isApp(value: unknown): value is App {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'app';
}

/** Imports an app module and returns its default export (or its `app` export). */
export async function loadApp(module: string): Promise<App> {
  const exports = (await import(module)) as { default?: unknown; app?: unknown };
  const app = isApp(exports.default) ? exports.default : exports.app;
  if (!isApp(app)) throw new TypeError(`module ${module} exports no app: export default defineApp({...})`);
  return app;
}
