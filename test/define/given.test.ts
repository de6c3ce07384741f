import { describe, expect, it } from 'vitest';
import { AssertionError } from 'node:assert';
import { account } from '../../actors/bank/account.ts';
import { given, reject, ShardlogError } from '../../runtime/index.ts';

const opened = { type: 'AccountOpened', data: { owner: 'ada' } } as const;

/** Runs a spec expected to fail and returns what it threw. */
function failureOf(spec: () => unknown): unknown {
  try {
    spec();
  } catch (error) {
    return error;
  }
  throw new Error('the spec passed, but it should have failed');
}

function assertionOf(spec: () => unknown): AssertionError {
  const error = failureOf(spec);
  expect(error).toBeInstanceOf(AssertionError);
  return error as AssertionError;
}

describe('given().when().then()', () => {
  it('passes when the command emits exactly the expected events', () => {
    expect(() => given(account, [opened]).when('deposit', { amount: 5 }).then([{ type: 'Deposited', data: { amount: 5 } }])).not.toThrow();
  });

  it('fails with both event lists when the events differ', () => {
    const error = assertionOf(() => given(account, [opened]).when('deposit', { amount: 5 }).then([{ type: 'Deposited', data: { amount: 6 } }]));
    expect(error.message).toBe(
      'account: given [AccountOpened] when deposit {"amount":5}\n  expected events [Deposited {"amount":6}]\n  got events      [Deposited {"amount":5}]',
    );
    expect(error.actual).toEqual([{ type: 'Deposited', data: { amount: 5 } }]);
    expect(error.expected).toEqual([{ type: 'Deposited', data: { amount: 6 } }]);
  });

  it('fails when the command emits more events than expected', () => {
    const error = assertionOf(() => given(account, [opened]).when('deposit', { amount: 5 }).then([]));
    expect(error.actual).toEqual([{ type: 'Deposited', data: { amount: 5 } }]);
    expect(error.expected).toEqual([]);
  });

  it('fails with the rejection when events were expected', () => {
    const error = assertionOf(() => given(account).when('deposit', { amount: 5 }).then([{ type: 'Deposited', data: { amount: 5 } }]));
    expect(error.message).toContain('got rejection "account-not-open" (account is new)');
  });

  it('matches a rejection on its code, and on its detail only when one is expected', () => {
    expect(() => given(account).when('deposit', { amount: 5 }).then(reject('account-not-open'))).not.toThrow();
    expect(() => given(account).when('deposit', { amount: 5 }).then(reject('account-not-open', 'account is new'))).not.toThrow();

    const wrongCode = assertionOf(() => given(account).when('deposit', { amount: 5 }).then(reject('insufficient-funds')));
    expect(wrongCode.message).toContain('expected rejection "insufficient-funds"\n  got rejection "account-not-open" (account is new)');
    expect(wrongCode.actual).toEqual({ code: 'account-not-open' });

    const wrongDetail = assertionOf(() => given(account).when('deposit', { amount: 5 }).then(reject('account-not-open', 'account is closed')));
    expect(wrongDetail.actual).toEqual({ code: 'account-not-open', detail: 'account is new' });
    expect(wrongDetail.expected).toEqual({ code: 'account-not-open', detail: 'account is closed' });
  });

  it('fails with the events when a rejection was expected', () => {
    const error = assertionOf(() => given(account, [opened]).when('deposit', { amount: 5 }).then(reject('account-not-open')));
    expect(error.message).toContain('expected rejection "account-not-open"\n  got events [Deposited {"amount":5}]');
  });

  it('parses the input by its schema first, as the runtime does', () => {
    const error = failureOf(() => given(account, [opened]).when('deposit', { amount: 0 }).then([]));
    expect(error).toBeInstanceOf(ShardlogError);
    expect((error as ShardlogError).code).toBe('SHARDLOG_INVALID_INPUT');
    expect((error as ShardlogError).data).toEqual({ issues: [expect.objectContaining({ path: ['amount'], code: 'too_small' })] });
    expect((error as ShardlogError).message).toMatch(/^account: given \[AccountOpened\] when deposit \{"amount":0\}: invalid input\n/);
  });

  it('refuses a history event its schema refuses', () => {
    const error = failureOf(() => given(account, [opened, { type: 'Deposited', data: { amount: -1 } }]));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as TypeError).message).toMatch(/^account: history event 1 \(Deposited\) fails its schema\n/);
  });

  it('gives the state after the history and the command', () => {
    const state = given(account, [opened, { type: 'Deposited', data: { amount: 7 } }]).when('withdraw', { amount: 2 }).state();
    expect(state.balance).toBe(5);
    const error = assertionOf(() => given(account).when('withdraw', { amount: 2 }).state());
    expect(error.message).toContain('got rejection "account-not-open"');
  });
});
