import type Database from 'better-sqlite3';
import type { z } from 'zod';
import type { AnyAggregate } from './aggregate.ts';

type AnySchema = z.ZodType;

/** `{ 'account.Deposited': { amount: number }, … }` for one aggregate type. */
type EventPayloadsOf<Agg> = Agg extends { readonly name: infer Name extends string; readonly events: infer Definitions }
  ? { [Type in keyof Definitions & string as `${Name}.${Type}`]: Definitions[Type] extends { schema: infer Schema extends AnySchema } ? z.output<Schema> : never }
  : never;

type UnionToIntersection<U> = (U extends unknown ? (value: U) => void : never) extends (value: infer I) => void ? I : never;

/** Every event payload of the source aggregates, keyed `<aggregate>.<Event>`. */
export type EventPayloads<Sources extends readonly AnyAggregate[]> = UnionToIntersection<EventPayloadsOf<Sources[number]>>;

/** One event as a projection handler sees it: payload upcast to its newest shape. */
export interface ProjectionEvent<Type extends string = string, Data = unknown> {
  /** `<aggregate>.<Event>`, e.g. `account.Deposited`. */
  readonly type: Type;
  readonly aggregate: string;
  /** The aggregate id. */
  readonly id: string;
  /** The aggregate version this event brought it to. */
  readonly version: number;
  /** `<partition>:<seq>`. */
  readonly position: string;
  readonly data: Data;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly recordedAt: Date;
}

/** What a handler may use besides its document: the projection's own SQLite database, inside the same transaction. */
export interface ProjectionContext {
  readonly db: Database.Database;
}

type EventOf<Payloads, Type extends keyof Payloads & string> = ProjectionEvent<Type, Payloads[Type]>;

/** The union of every source event, each with its own payload type. */
type AnyEventOf<Payloads> = { [Type in keyof Payloads & string]: EventOf<Payloads, Type> }[keyof Payloads & string];

export type ProjectionHandlers<Doc, Payloads> = {
  [Type in keyof Payloads & string]?: (doc: Doc, event: EventOf<Payloads, Type>, context: ProjectionContext) => Doc | null;
};

export type ProjectionKeys<Payloads> = {
  [Type in keyof Payloads & string]?: (event: EventOf<Payloads, Type>, context: ProjectionContext) => string | null;
};

export interface ProjectionConfig<Name extends string, Doc, Sources extends readonly AnyAggregate[]> {
  /** Lower-case letters, digits and dashes; names the file `views/<name>.v<version>.db` and the routes. */
  readonly name: Name;
  /** Bump when handlers change meaning: the new version is built from position 0 beside the old one. */
  readonly version: number;
  /** The aggregate types whose events it reads (for the types of `on`). */
  readonly from: Sources;
  /** The document a key starts from. */
  readonly initial: (key: string) => Doc;
  /**
   * Which document an event updates: one function for every handled event, or one per event
   * type. Returning null ignores the event.
   */
  readonly key: ((event: AnyEventOf<EventPayloads<Sources>>, context: ProjectionContext) => string | null) | ProjectionKeys<EventPayloads<Sources>>;
  /** Pure folds: the next document, or null to delete it. Events without a handler are skipped. */
  readonly on: ProjectionHandlers<Doc, EventPayloads<Sources>>;
  /** Top-level document fields readable with `GET /views/<name>?<field>=…`. */
  readonly indexes?: readonly (keyof Doc & string)[];
  /** When a handler keeps failing: `halt` (default) stops the projection, `skip` parks the event and goes on. Both park it in the dead-letter table. */
  readonly onError?: 'halt' | 'skip';
  /** Attempts before an event is parked (default 4, with exponential backoff from 50 ms). */
  readonly attempts?: number;
  /** Creates the projection's own tables (e.g. a lookup a key function reads); run once per file, in a transaction. */
  readonly setup?: (db: Database.Database) => void;
}

export interface Projection<Name extends string = string, Doc = unknown, Sources extends readonly AnyAggregate[] = readonly AnyAggregate[]>
  extends ProjectionConfig<Name, Doc, Sources> {
  readonly kind: 'projection';
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- variance: any projection's handlers must fit
export type AnyProjection = Projection<string, any, readonly AnyAggregate[]>;

const indexedField = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * Defines a read model. Handler names and payload types come from the source aggregates:
 * a misspelt event or a wrong field is a compile error.
 *
 * ```ts
 * const balances = defineProjection({
 *   name: 'balances', version: 1, from: [account],
 *   initial: () => ({ balance: 0 }),
 *   key: (event) => event.id,
 *   on: { 'account.Deposited': (doc, e) => ({ balance: doc.balance + e.data.amount }) },
 * });
 * ```
 */
export function defineProjection<const Name extends string, Doc, const Sources extends readonly AnyAggregate[]>(
  config: ProjectionConfig<Name, Doc, Sources>,
): Projection<Name, Doc, Sources> {
  if (!/^[a-z][a-z0-9-]{0,62}$/.test(config.name)) throw new TypeError(`projection name "${config.name}" must be lower-case letters, digits and dashes`);
  if (!Number.isSafeInteger(config.version) || config.version < 1) throw new TypeError(`projection "${config.name}": version must be a positive integer`);
  for (const field of config.indexes ?? []) {
    if (!indexedField.test(field)) throw new TypeError(`projection "${config.name}": cannot index "${field}" (letters, digits, underscore)`);
  }
  if (config.attempts !== undefined && !(Number.isSafeInteger(config.attempts) && config.attempts >= 1)) {
    throw new TypeError(`projection "${config.name}": attempts must be a positive integer`);
  }
  if (config.onError !== undefined && config.onError !== 'halt' && config.onError !== 'skip') {
    throw new TypeError(`projection "${config.name}": onError must be "halt" or "skip"`);
  }
  const known = new Set(config.from.flatMap((aggregate) => Object.keys(aggregate.events).map((type) => `${aggregate.name}.${type}`)));
  for (const type of Object.keys(config.on)) {
    if (!known.has(type)) throw new TypeError(`projection "${config.name}" handles "${type}", which none of its source aggregates defines`);
    if (typeof config.key !== 'function' && typeof (config.key as Record<string, unknown>)[type] !== 'function') {
      throw new TypeError(`projection "${config.name}" has no key for "${type}"`);
    }
  }
  return { ...config, kind: 'projection' };
}

/** The key function for one event type, whichever form `key` took. */
export function keyFunctionOf(projection: AnyProjection, type: string): ((event: ProjectionEvent, context: ProjectionContext) => string | null) | undefined {
  const key = projection.key as ((event: ProjectionEvent, context: ProjectionContext) => string | null) | Record<string, (event: ProjectionEvent, context: ProjectionContext) => string | null>;
  return typeof key === 'function' ? key : key[type];
}

export function handlerOf(projection: AnyProjection, type: string): ((doc: unknown, event: ProjectionEvent, context: ProjectionContext) => unknown) | undefined {
  const handlers = projection.on as Record<string, ((doc: unknown, event: ProjectionEvent, context: ProjectionContext) => unknown) | undefined>;
  return Object.hasOwn(handlers, type) ? handlers[type] : undefined;
}
