import { describe, expect, it } from 'vitest';
import { AssertionError } from 'node:assert';
import { account } from '../../actors/bank/account.ts';
import { given, reject } from '../../runtime/index.ts';

const opened = { type: 'AccountOpened', data: { owner: 'ada' } } as const;

describe('account', () => {
  it('opens once', () => {
    given(account).when('open', { owner: 'ada' }).then([opened]);
    given(account, [opened]).when('open', { owner: 'bob' }).then(reject('account-already-opened'));
  });

  it('takes deposits only when open', () => {
    given(account).when('deposit', { amount: 5 }).then(reject('account-not-open'));
    given(account, [opened]).when('deposit', { amount: 5 }).then([{ type: 'Deposited', data: { amount: 5 } }]);
  });

  it('refuses a withdrawal past the balance', () => {
    const history = [opened, { type: 'Deposited', data: { amount: 10 } }] as const;
    given(account, history).when('withdraw', { amount: 11 }).then(reject('insufficient-funds', 'balance 10 is less than 11'));
    given(account, history).when('withdraw', { amount: 10 }).then([{ type: 'Withdrawn', data: { amount: 10 } }]);
  });

  it('closes only at a zero balance', () => {
    given(account, [opened, { type: 'Deposited', data: { amount: 1 } }]).when('close', {}).then(reject('balance-not-zero'));
    given(account, [opened]).when('close', {}).then([{ type: 'AccountClosed', data: {} }]);
    given(account, [opened, { type: 'AccountClosed', data: {} }]).when('deposit', { amount: 1 }).then(reject('account-not-open'));
  });

  it('refuses non-positive amounts at the schema', () => {
    expect(() => given(account, [opened]).when('deposit', { amount: 0 }).then([])).toThrowError(expect.objectContaining({ code: 'SHARDLOG_INVALID_INPUT' }));
    expect(() => given(account, [opened]).when('deposit', { amount: -3 }).then([])).toThrowError(expect.objectContaining({ code: 'SHARDLOG_INVALID_INPUT' }));
  });

  it('keeps its balance exact and finite: a deposit past 1e15 is refused, amounts past 1e12 fail the schema', () => {
    const nearLimit = [opened, ...Array.from({ length: 1_000 }, () => ({ type: 'Deposited', data: { amount: 1e12 } }) as const)];
    given(account, nearLimit).when('deposit', { amount: 1 }).then(reject('balance-limit-exceeded'));
    given(account, nearLimit).when('withdraw', { amount: 1e12 }).then([{ type: 'Withdrawn', data: { amount: 1e12 } }]);
    given(account, nearLimit.slice(0, -1)).when('deposit', { amount: 1e12 }).then([{ type: 'Deposited', data: { amount: 1e12 } }]);
    expect(() => given(account, [opened]).when('deposit', { amount: 1e308 }).then([])).toThrowError(/too big|<=/i);
  });

  it('folds its balance', () => {
    const state = given(account, [opened, { type: 'Deposited', data: { amount: 7 } }]).when('withdraw', { amount: 2 }).state();
    expect(state).toEqual({ status: 'open', owner: 'ada', balance: 5 });
  });

  it('fails the spec helper when the expectation is wrong', () => {
    expect(() => given(account, [opened]).when('deposit', { amount: 5 }).then([{ type: 'Deposited', data: { amount: 6 } }])).toThrowError(AssertionError);
    expect(() => given(account, [opened]).when('deposit', { amount: 5 }).then(reject('insufficient-funds'))).toThrowError(AssertionError);
  });
});
