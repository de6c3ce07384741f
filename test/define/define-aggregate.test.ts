import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import type { account } from '../../actors/bank/account.ts';
import { defineAggregate, given, reject, type StateOf } from '../../runtime/index.ts';

const counter = defineAggregate({
  name: 'counter',
  initialState: () => ({ count: 0 }),
  events: {
    Added: { schema: z.object({ by: z.number() }), evolve: (state, { by }) => ({ count: state.count + by }) },
    Renamed: {
      schema: z.object({ label: z.string() }),
      version: 2,
      upcasters: { 1: (old: { name: string }) => ({ label: old.name }) },
      evolve: (state) => state,
    },
  },
  commands: {
    add: { input: z.object({ by: z.number().int() }), decide: (_state, { by }) => [{ type: 'Added', data: { by } }] },
    addTwice: {
      input: z.object({ by: z.number() }),
      decide: (state, { by }, ctx) => {
        expectTypeOf(ctx.now).toEqualTypeOf<Date>();
        if (state.count > 100) return reject('too-big');
        return [
          { type: 'Added', data: { by } },
          { type: 'Added', data: { by } },
        ];
      },
    },
  },
});

describe('defineAggregate', () => {
  it('infers state, event and input types from the schemas', () => {
    expectTypeOf<StateOf<typeof counter>>().toEqualTypeOf<{ count: number }>();
    defineAggregate({
      name: 'typed',
      initialState: () => ({ n: 0 }),
      events: { Bumped: { schema: z.object({ by: z.number() }), evolve: (state, { by }) => ({ n: state.n + by }) } },
      commands: {
        // @ts-expect-error an event type the aggregate does not define
        wrongType: { input: z.object({}), decide: () => [{ type: 'Bumpd', data: { by: 1 } }] },
        // @ts-expect-error a payload that does not match the event schema
        wrongPayload: { input: z.object({}), decide: () => [{ type: 'Bumped', data: { by: 'one' } }] },
        // @ts-expect-error input fields come from the input schema
        wrongInput: { input: z.object({ a: z.number() }), decide: (_s, input) => [{ type: 'Bumped', data: { by: input.b } }] },
      },
    });
    expect(counter.snapshotSchema).toBe('s1;Added@1,Renamed@2');
  });

  it('rejects names that cannot be a stream prefix', () => {
    expect(() => defineAggregate({ name: 'Bad/Name', initialState: () => ({}), events: {}, commands: {} })).toThrowError(/lower-case/);
  });

  it('runs decide and evolve through the spec helper', () => {
    given(counter, [{ type: 'Added', data: { by: 101 } }]).when('addTwice', { by: 1 }).then(reject('too-big'));
    expect(given(counter).when('addTwice', { by: 2 }).state()).toEqual({ count: 4 });
  });

  it('uses the example account type end to end', () => {
    expectTypeOf<StateOf<typeof account>>().toEqualTypeOf<{ status: 'new' | 'open' | 'closed'; owner: string; balance: number }>();
  });
});
