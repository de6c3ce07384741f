import type { z } from 'zod';
import type { Rejection } from './rejection.ts';

/** What `decide` may know besides state and input. Everything in it is deterministic. */
export interface DecideContext {
  /** The aggregate id. */
  readonly id: string;
  /** The command id (the idempotency key). */
  readonly commandId: string;
  /** The batch's commit time; also every event's `recordedAt`. Use it instead of `Date.now()`. */
  readonly now: Date;
  /** Caller-supplied metadata, stored with each event. */
  readonly metadata: Readonly<Record<string, unknown>>;
}

type AnySchema = z.ZodType;

export interface EventDefinition<Schema extends AnySchema, State> {
  /** The payload schema of the newest version. */
  readonly schema: Schema;
  /** The payload's current version (default 1). Bump it with an upcaster when the shape changes. */
  readonly version?: number;
  /** `upcasters[n]` turns a version-n payload into a version-(n+1) payload. */
  readonly upcasters?: Readonly<Record<number, (data: never) => unknown>>;
  /** Pure: folds one event into the state. May return a new object or the mutated one. */
  readonly evolve: (state: State, data: z.output<Schema>) => NoInfer<State>;
}

/** One event as `decide` emits it: `{ type: 'Deposited', data: { amount: 5 } }`. */
export type EmittedEvent<Events extends Record<string, AnySchema>> = {
  [Type in keyof Events & string]: { readonly type: Type; readonly data: z.input<Events[Type]> };
}[keyof Events & string];

export type DecideResult<Events extends Record<string, AnySchema>> = readonly EmittedEvent<Events>[] | Rejection;

export interface CommandDefinition<Input extends AnySchema, State, Events extends Record<string, AnySchema>> {
  /** Validates the command's input at the edge; `decide` receives the parsed output. */
  readonly input: Input;
  /** Pure: the events this command causes, or a `reject(...)`. Must not do I/O. */
  readonly decide: (state: State, input: z.output<Input>, ctx: DecideContext) => DecideResult<Events>;
}

export interface AggregateConfig<
  Name extends string,
  State,
  Events extends Record<string, AnySchema>,
  Commands extends Record<string, AnySchema>,
> {
  readonly name: Name;
  readonly initialState: () => State;
  readonly events: { [Type in keyof Events]: EventDefinition<Events[Type], NoInfer<State>> };
  readonly commands: { [Command in keyof Commands]: CommandDefinition<Commands[Command], NoInfer<State>, Events> };
  /** Write a snapshot every this many events (default: never). */
  readonly snapshotEvery?: number;
  /** Bump when the state shape or `evolve` changes, so older snapshots are ignored (default 1). */
  readonly snapshotVersion?: number;
}

/** A defined aggregate type: the config, plus what the runtime derives from it once. */
export interface Aggregate<
  Name extends string = string,
  State = unknown,
  Events extends Record<string, AnySchema> = Record<string, AnySchema>,
  Commands extends Record<string, AnySchema> = Record<string, AnySchema>,
> extends AggregateConfig<Name, State, Events, Commands> {
  readonly kind: 'aggregate';
  /** Identifies the snapshot format: changes when snapshotVersion or any event version changes. */
  readonly snapshotSchema: string;
}

/**
 * Defines an aggregate type. Types flow from the schemas: an unknown event type or a wrong
 * payload in `decide` is a compile error.
 *
 * ```ts
 * const counter = defineAggregate({
 *   name: 'counter',
 *   initialState: () => ({ count: 0 }),
 *   events: { Added: { schema: z.object({ by: z.number() }), evolve: (s, e) => ({ count: s.count + e.by }) } },
 *   commands: { add: { input: z.object({ by: z.number() }), decide: (_s, i) => [{ type: 'Added', data: { by: i.by } }] } },
 * });
 * ```
 */
export function defineAggregate<
  const Name extends string,
  State,
  Events extends Record<string, AnySchema>,
  Commands extends Record<string, AnySchema>,
>(config: AggregateConfig<Name, State, Events, Commands>): Aggregate<Name, State, Events, Commands> {
  if (!/^[a-z][a-z0-9-]*$/.test(config.name)) {
    throw new TypeError(`aggregate name "${config.name}" must be lower-case letters, digits and dashes`);
  }
  if (config.snapshotEvery !== undefined && (!Number.isInteger(config.snapshotEvery) || config.snapshotEvery < 1)) {
    throw new TypeError(`aggregate "${config.name}": snapshotEvery must be a positive integer`);
  }
  const eventVersions = Object.entries(config.events as Record<string, { version?: number }>)
    .map(([type, event]) => `${type}@${event.version ?? 1}`)
    .sort()
    .join(',');
  return { ...config, kind: 'aggregate', snapshotSchema: `s${config.snapshotVersion ?? 1};${eventVersions}` };
}

/** The state type of a defined aggregate. */
export type StateOf<A> = A extends { initialState: () => infer State } ? State : never;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- variance: any aggregate's decide/evolve must fit
export type AnyAggregate = Aggregate<string, any, any, any>;
