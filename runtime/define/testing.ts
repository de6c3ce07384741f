import { AssertionError } from 'node:assert';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { makeError } from '../errors.ts';
import type { AnyAggregate } from './app.ts';
import type { DecideContext, StateOf } from './aggregate.ts';
import { commandOf, decide, evolve, initialStateOf } from './execute.ts';
import { Rejection } from './rejection.ts';

/** Accepts `as const` literals as well: a spec never mutates what it is given. */
export { givenSaga } from './saga-testing.ts';

type Immutable<T> = T extends (...args: never[]) => unknown ? T : T extends object ? { readonly [K in keyof T]: Immutable<T[K]> } : T;

type EventTypeOf<A extends AnyAggregate> = keyof A['events'] & string;

/** One of the aggregate's events as `decide` emits it (its schema's input): what a history holds. */
export type HistoryEvent<A extends AnyAggregate> = {
  [Type in EventTypeOf<A>]: { readonly type: Type; readonly data: Immutable<z.input<A['events'][Type]['schema']>> };
}[EventTypeOf<A>];

/** One of the aggregate's events as its log records it (its schema's output): what `then` expects. */
export type ExpectedEvent<A extends AnyAggregate> = {
  [Type in EventTypeOf<A>]: { readonly type: Type; readonly data: Immutable<z.output<A['events'][Type]['schema']>> };
}[EventTypeOf<A>];

/** The input of one of the aggregate's commands, before its schema parses it. */
export type CommandInput<A extends AnyAggregate, Command extends keyof A['commands']> = Immutable<z.input<A['commands'][Command]['input']>>;

interface LooseEvent {
  readonly type: string;
  readonly data: unknown;
}

/**
 * Specifies one aggregate's behaviour with no threads and no files. Event types, payloads,
 * command names and inputs are checked against the aggregate's schemas at compile time.
 *
 * ```ts
 * import { given, reject } from 'shardlog';
 *
 * given(account, [{ type: 'AccountOpened', data: { owner: 'ada' } }])
 *   .when('withdraw', { amount: 5 })
 *   .then(reject('insufficient-funds'));
 * ```
 * The history's payloads are parsed by their event schemas (as the runtime does before it
 * stores them), then folded with `evolve`. The command's input is parsed by its schema; an
 * invalid one throws SHARDLOG_INVALID_INPUT, as the runtime would answer. `then` takes the
 * exact events expected (compared with deep strict equality on type and data), or a
 * rejection, matched on its code, and on its detail when the expected one has a detail. A
 * mismatch throws an AssertionError whose message names the spec, the expected and the
 * actual outcome.
 */
export function given<A extends AnyAggregate>(aggregate: A, history: readonly HistoryEvent<A>[] = []) {
  const parsedHistory = history.map((event: LooseEvent, index) => parseHistoryEvent(aggregate, event, index));
  return {
    when<Command extends keyof A['commands'] & string>(command: Command, input: CommandInput<A, Command>, context: Partial<DecideContext> = {}) {
      const spec = `${aggregate.name}: given [${parsedHistory.map(({ type }) => type).join(', ')}] when ${command} ${JSON.stringify(input)}`;
      const state = evolve(aggregate, initialStateOf(aggregate), parsedHistory);
      const ctx: DecideContext = { id: 'spec', commandId: 'spec-command', now: new Date(0), metadata: {}, ...context };
      const run = () => {
        const definition = commandOf(aggregate, command);
        if (definition === undefined) {
          throw makeError('SHARDLOG_UNKNOWN_COMMAND', `aggregate "${aggregate.name}" has no command "${command}"`, { aggregate: aggregate.name, command });
        }
        const parsed = definition.input.safeParse(input);
        if (!parsed.success) {
          throw makeError('SHARDLOG_INVALID_INPUT', `${spec}: invalid input\n${z.prettifyError(parsed.error)}`, {
            issues: parsed.error.issues.map(({ path, message, code }) => ({ path: path.map(String), message, code })),
          });
        }
        return decide(aggregate, state, command, parsed.data, ctx);
      };
      return {
        then(expected: readonly ExpectedEvent<A>[] | Rejection): void {
          const decision = run();
          if (expected instanceof Rejection) {
            const wanted = expected.detail === '' ? { code: expected.code } : { code: expected.code, detail: expected.detail };
            if (decision.kind !== 'rejected') {
              mismatch(`${spec}\n  expected rejection ${describeRejection(expected)}\n  got events ${describeEvents(decision.events)}`, decision.events, wanted);
            }
            const got = expected.detail === '' ? { code: decision.rejection.code } : { code: decision.rejection.code, detail: decision.rejection.detail };
            if (!isDeepStrictEqual(got, wanted)) {
              mismatch(`${spec}\n  expected rejection ${describeRejection(expected)}\n  got rejection ${describeRejection(decision.rejection)}`, got, wanted);
            }
            return;
          }
          if (decision.kind === 'rejected') {
            mismatch(`${spec}\n  expected events ${describeEvents(expected)}\n  got rejection ${describeRejection(decision.rejection)}`, decision.rejection, expected);
          }
          const actual = decision.events.map(({ type, data }) => ({ type, data }));
          const wanted = expected.map(({ type, data }: LooseEvent) => ({ type, data }));
          if (!isDeepStrictEqual(actual, wanted)) {
            mismatch(`${spec}\n  expected events ${describeEvents(wanted)}\n  got events      ${describeEvents(actual)}`, actual, wanted);
          }
          evolve(aggregate, state, decision.events);
        },
        /** The state after the history and the command's events (for assertions on evolve). */
        state(): StateOf<A> {
          const decision = run();
          if (decision.kind === 'rejected') {
            mismatch(`${spec}\n  expected events\n  got rejection ${describeRejection(decision.rejection)}`, decision.rejection, 'events');
          }
          return evolve(aggregate, state, decision.events) as StateOf<A>;
        },
      };
    },
  };
}

/** History holds what the log would: each payload as its event schema parses it. */
function parseHistoryEvent(aggregate: AnyAggregate, event: LooseEvent, index: number): LooseEvent {
  const definition: { schema: z.ZodType } | undefined = Object.hasOwn(aggregate.events, event.type) ? aggregate.events[event.type] : undefined;
  if (definition === undefined) throw new TypeError(`${aggregate.name}: history event ${index} has type "${event.type}", which the aggregate does not define`);
  const parsed = definition.schema.safeParse(event.data);
  if (!parsed.success) {
    throw new TypeError(`${aggregate.name}: history event ${index} (${event.type}) fails its schema\n${z.prettifyError(parsed.error)}`);
  }
  return { type: event.type, data: parsed.data };
}

function mismatch(message: string, actual: unknown, expected: unknown): never {
  throw new AssertionError({ message, actual, expected });
}

function describeEvents(events: readonly LooseEvent[]): string {
  return `[${events.map(({ type, data }) => `${type} ${JSON.stringify(data)}`).join(', ')}]`;
}

function describeRejection({ code, detail }: Rejection): string {
  return detail === '' ? `"${code}"` : `"${code}" (${detail})`;
}
