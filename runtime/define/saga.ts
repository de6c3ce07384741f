import type { z } from 'zod';
import type { AnyAggregate } from './aggregate.ts';
import type { EventPayloads, ProjectionEvent } from './projection.ts';

type AnySchema = z.ZodType;

/** One event as a saga handler sees it: the same shape a projection handler gets. */
export type SagaEvent<Type extends string = string, Data = unknown> = ProjectionEvent<Type, Data>;

type CommandsOf<Agg> = Agg extends { readonly name: infer Name extends string; readonly commands: infer Commands }
  ? {
      [Command in keyof Commands & string]: {
        readonly aggregate: Name;
        readonly id: string;
        readonly command: Command;
        readonly input: Commands[Command] extends { input: infer Input extends AnySchema } ? z.input<Input> : never;
      };
    }[keyof Commands & string]
  : never;

/** A command a saga sends, typed from the app's aggregates: a wrong aggregate, command or input does not compile. */
export type SagaCommand<Targets extends readonly AnyAggregate[]> = CommandsOf<Targets[number]>;

/** How a saga instance ended. */
export type SagaOutcome = 'completed' | 'compensated' | 'timed-out';

/** What a handler decides: everything in it commits in one transaction with the input it handled. */
export interface SagaReaction<State, Targets extends readonly AnyAggregate[]> {
  /** The new state (omitted: unchanged). */
  readonly state?: State;
  /** Commands to send, in order; each gets the next step number and the id `<saga>/<correlationId>/<step>`. */
  readonly send?: readonly SagaCommand<Targets>[];
  /** Timers to set (name → milliseconds from now; setting a set timer moves it) and to cancel. */
  readonly timers?: { readonly set?: Readonly<Record<string, number>>; readonly cancel?: readonly string[] };
  /** Ends the instance: it reacts to nothing after this, its timers are dropped, commands already decided are still sent. */
  readonly finish?: SagaOutcome;
}

/** A command this saga sent that its aggregate refused (or could not run): delivered to `onRejected`. */
export interface SagaRejection<Targets extends readonly AnyAggregate[]> {
  readonly step: number;
  readonly command: SagaCommand<Targets>;
  /** The domain's reason (`out-of-stock`), or the Shardlog error code when the command could not run at all. */
  readonly code: string;
  readonly detail: string;
  readonly data: Readonly<Record<string, unknown>>;
}

export interface SagaContext {
  readonly correlationId: string;
  /** The commit time of this reaction; use it instead of `Date.now()`. */
  readonly now: Date;
}

type Reaction<State, Targets extends readonly AnyAggregate[]> = SagaReaction<State, Targets> | undefined | void;

type SagaEventOf<Payloads, Type extends keyof Payloads & string> = SagaEvent<Type, Payloads[Type]>;
type AnySagaEventOf<Payloads> = { [Type in keyof Payloads & string]: SagaEventOf<Payloads, Type> }[keyof Payloads & string];

export type SagaHandlers<State, Payloads, Targets extends readonly AnyAggregate[]> = {
  [Type in keyof Payloads & string]?: (state: State, event: SagaEventOf<Payloads, Type>, ctx: SagaContext) => Reaction<NoInfer<State>, NoInfer<Targets>>;
};

export type SagaCorrelation<Payloads> = {
  [Type in keyof Payloads & string]?: (event: SagaEventOf<Payloads, Type>) => string | null;
};

export interface SagaConfig<Name extends string, State, Sources extends readonly AnyAggregate[]> {
  /** Lower-case letters, digits and dashes, unlike any aggregate's: instances are `<name>/<correlationId>`. */
  readonly name: Name;
  /** The aggregates whose events it reacts to and to which it sends commands (for the types). */
  readonly aggregates: Sources;
  /** The events that start an instance; any other event for an instance that has not started is ignored. */
  readonly startedBy: readonly (keyof EventPayloads<Sources> & string)[];
  /**
   * Which instance an event is for (its correlation id), or null for none: one function for
   * every handled event, or one per event type. An event caused by a command of this saga
   * also reaches the instance that sent it.
   */
  readonly correlate: ((event: AnySagaEventOf<EventPayloads<Sources>>) => string | null) | SagaCorrelation<EventPayloads<Sources>>;
  readonly initialState: (correlationId: string) => State;
  /** Pure reactions to events, by `<aggregate>.<Event>`. Events without a handler are not delivered. */
  readonly on: NoInfer<SagaHandlers<State, EventPayloads<Sources>, Sources>>;
  /** A command of this saga was refused (a domain rejection) or could not run. Without it, the instance is parked. */
  readonly onRejected?: NoInfer<(state: State, rejection: SagaRejection<Sources>, ctx: SagaContext) => Reaction<State, Sources>>;
  /** A timer fired, `timeout` included. */
  readonly onTimer?: NoInfer<(state: State, timer: { readonly name: string }, ctx: SagaContext) => Reaction<State, Sources>>;
  /**
   * Sets the timer `timeout` when an instance starts (ms). Without an `onTimer` that handles
   * it, the instance finishes as `timed-out`.
   */
  readonly timeoutMs?: number;
}

export interface Saga<Name extends string = string, State = unknown, Sources extends readonly AnyAggregate[] = readonly AnyAggregate[]>
  extends SagaConfig<Name, State, Sources> {
  readonly kind: 'saga';
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- variance: any saga's handlers must fit
export type AnySaga = Saga<string, any, readonly AnyAggregate[]>;

/**
 * Defines a saga (process manager): an event-sourced instance per correlation id that reacts
 * to events from any aggregate of the app and sends commands back, with timers. Handlers are
 * pure; what they return commits in one transaction on the instance's shard.
 *
 * ```ts
 * const welcome = defineSaga({
 *   name: 'welcome', aggregates: [account],
 *   startedBy: ['account.AccountOpened'],
 *   correlate: (event) => event.id,
 *   initialState: () => ({}),
 *   on: { 'account.AccountOpened': (state, event) => ({ send: [{ aggregate: 'account', id: event.id, command: 'deposit', input: { amount: 5 } }], finish: 'completed' }) },
 * });
 * ```
 */
export function defineSaga<const Name extends string, State, const Sources extends readonly AnyAggregate[]>(
  config: SagaConfig<Name, State, Sources>,
): Saga<Name, State, Sources> {
  if (!/^[a-z][a-z0-9-]{0,62}$/.test(config.name)) throw new TypeError(`saga name "${config.name}" must be lower-case letters, digits and dashes`);
  const known = new Set(config.aggregates.flatMap((aggregate) => Object.keys(aggregate.events).map((type) => `${aggregate.name}.${type}`)));
  for (const type of [...Object.keys(config.on), ...config.startedBy]) {
    if (!known.has(type)) throw new TypeError(`saga "${config.name}" names "${type}", which none of its aggregates defines`);
  }
  for (const type of config.startedBy) {
    if (!Object.hasOwn(config.on, type)) throw new TypeError(`saga "${config.name}" is started by "${type}" but has no handler for it`);
  }
  for (const type of Object.keys(config.on)) {
    if (typeof config.correlate !== 'function' && typeof (config.correlate as Record<string, unknown>)[type] !== 'function') {
      throw new TypeError(`saga "${config.name}" has no correlate for "${type}"`);
    }
  }
  if (config.timeoutMs !== undefined && !(Number.isSafeInteger(config.timeoutMs) && config.timeoutMs > 0)) {
    throw new TypeError(`saga "${config.name}": timeoutMs must be a positive integer`);
  }
  return { ...config, kind: 'saga' };
}
