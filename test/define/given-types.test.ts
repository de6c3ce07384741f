import { describe, expect, expectTypeOf, it } from 'vitest';
import { AssertionError } from 'node:assert';
import { z } from 'zod';
import { account } from '../../actors/bank/account.ts';
import { defineAggregate, given, reject, type ExpectedEvent, type HistoryEvent } from '../../runtime/index.ts';

const opened = { type: 'AccountOpened', data: { owner: 'ada' } } as const;

// Each @ts-expect-error below must stay the only mistake on its line: `npm run typecheck` fails
// if that line compiles. Each also runs, to show what the runtime says when a cast gets it past.
describe('given() types', () => {
  it('takes only the aggregate own events as history', () => {
    expectTypeOf<HistoryEvent<typeof account>['type']>().toEqualTypeOf<'AccountOpened' | 'Deposited' | 'Withdrawn' | 'AccountClosed'>();
    given(account, [opened, { type: 'Deposited', data: { amount: 1 } }]).when('withdraw', { amount: 1 }).then([{ type: 'Withdrawn', data: { amount: 1 } }]);

    // @ts-expect-error an event type the aggregate does not define
    expect(() => given(account, [opened, { type: 'Deposit', data: { amount: 1 } }])).toThrowError(TypeError);
    // @ts-expect-error a payload field the event does not have
    expect(() => given(account, [opened, { type: 'Deposited', data: { amont: 1 } }])).toThrowError(TypeError);
    // @ts-expect-error a payload field of the wrong type
    expect(() => given(account, [opened, { type: 'Deposited', data: { amount: '1' } }])).toThrowError(TypeError);
    // @ts-expect-error the payload of another event type
    expect(() => given(account, [{ type: 'AccountOpened', data: { amount: 1 } }])).toThrowError(TypeError);
  });

  it('takes only the aggregate own command names, with their input', () => {
    // @ts-expect-error a command the aggregate does not define
    expect(() => given(account).when('withdrw', { amount: 1 }).then([])).toThrowError(expect.objectContaining({ code: 'SHARDLOG_UNKNOWN_COMMAND' }));
    // @ts-expect-error an input field the command does not take
    expect(() => given(account, [opened]).when('deposit', { amont: 1 }).then([])).toThrowError(expect.objectContaining({ code: 'SHARDLOG_INVALID_INPUT' }));
    // @ts-expect-error an input field of the wrong type
    expect(() => given(account, [opened]).when('deposit', { amount: '1' }).then([])).toThrowError(expect.objectContaining({ code: 'SHARDLOG_INVALID_INPUT' }));
    // @ts-expect-error the input of another command
    expect(() => given(account).when('open', { amount: 1 }).then([])).toThrowError(expect.objectContaining({ code: 'SHARDLOG_INVALID_INPUT' }));
  });

  it('expects only the aggregate own events, or a rejection', () => {
    given(account, [opened]).when('deposit', { amount: 1 }).then([{ type: 'Deposited', data: { amount: 1 } }]);
    given(account).when('deposit', { amount: 1 }).then(reject('account-not-open'));

    // @ts-expect-error an event type the aggregate does not define
    expect(() => given(account, [opened]).when('deposit', { amount: 1 }).then([{ type: 'Deposit', data: { amount: 1 } }])).toThrowError(AssertionError);
    // @ts-expect-error a payload field of the wrong type
    expect(() => given(account, [opened]).when('deposit', { amount: 1 }).then([{ type: 'Deposited', data: { amount: '1' } }])).toThrowError(AssertionError);
    // @ts-expect-error neither events nor a rejection
    expect(() => given(account, [opened]).when('deposit', { amount: 1 }).then('account-not-open')).toThrowError(TypeError);
  });

  it('types history and input as the schemas take them, and expected events as the log holds them', () => {
    const tagged = defineAggregate({
      name: 'tagged',
      initialState: () => ({ label: '' }),
      events: { Tagged: { schema: z.object({ label: z.string().default('none') }), evolve: (_state, { label }) => ({ label }) } },
      commands: { tag: { input: z.object({ label: z.string().optional() }), decide: (_state, { label }) => [{ type: 'Tagged', data: label === undefined ? {} : { label } }] } },
    });
    expectTypeOf<HistoryEvent<typeof tagged>['data']>().toEqualTypeOf<{ readonly label?: string | undefined }>();
    expectTypeOf<ExpectedEvent<typeof tagged>['data']>().toEqualTypeOf<{ readonly label: string }>();

    expect(given(tagged, [{ type: 'Tagged', data: {} }]).when('tag', { label: 'x' }).state()).toEqual({ label: 'x' });
    given(tagged).when('tag', {}).then([{ type: 'Tagged', data: { label: 'none' } }]);
    // @ts-expect-error the log holds the schema's output, where the default is filled in
    expect(() => given(tagged).when('tag', {}).then([{ type: 'Tagged', data: {} }])).toThrowError(AssertionError);
  });
});
