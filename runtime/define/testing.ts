import { deepStrictEqual, fail } from 'node:assert/strict';
import type { AnyAggregate } from './app.ts';
import type { DecideContext } from './aggregate.ts';
import { commandOf, decide, evolve, initialStateOf } from './execute.ts';
import { Rejection } from './rejection.ts';

interface SpecEvent {
  type: string;
  data: unknown;
}

/**
 * Specifies one aggregate's behaviour with no threads and no files:
 *
 * ```ts
 * given(account, [{ type: 'AccountOpened', data: { owner: 'ada' } }])
 *   .when('withdraw', { amount: 5 })
 *   .then(reject('insufficient-funds'));
 * ```
 * `then` takes the exact events expected, or a rejection (matched on its code, and on its
 * detail when the expected one has a detail). Input is parsed by the command's schema first.
 */
export function given<A extends AnyAggregate>(aggregate: A, history: readonly SpecEvent[] = []) {
  return {
    when(command: keyof A['commands'] & string, input: unknown, context: Partial<DecideContext> = {}) {
      const state = evolve(aggregate, initialStateOf(aggregate), history);
      const ctx: DecideContext = { id: 'spec', commandId: 'spec-command', now: new Date(0), metadata: {}, ...context };
      const run = () => {
        const definition = commandOf(aggregate, command);
        if (definition === undefined) throw new Error(`aggregate "${aggregate.name}" has no command "${command}"`);
        return decide(aggregate, state, command, definition.input.parse(input), ctx);
      };
      return {
        then(expected: readonly SpecEvent[] | Rejection): void {
          const decision = run();
          if (expected instanceof Rejection) {
            if (decision.kind !== 'rejected') fail(`expected rejection "${expected.code}", got events ${JSON.stringify(decision.events)}`);
            deepStrictEqual(decision.rejection.code, expected.code);
            if (expected.detail !== '') deepStrictEqual(decision.rejection.detail, expected.detail);
            return;
          }
          if (decision.kind === 'rejected') fail(`expected events, got rejection "${decision.rejection.code}": ${decision.rejection.detail}`);
          deepStrictEqual(
            decision.events.map(({ type, data }) => ({ type, data })),
            expected.map(({ type, data }) => ({ type, data })),
          );
          evolve(aggregate, state, decision.events);
        },
        /** The state after the history and the command's events (for assertions on evolve). */
        state(): unknown {
          const decision = run();
          if (decision.kind === 'rejected') fail(`expected events, got rejection "${decision.rejection.code}"`);
          return evolve(aggregate, state, decision.events);
        },
      };
    },
  };
}
