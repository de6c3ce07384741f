/**
 * A domain refusal: `decide` returns (or throws) one when the command is not allowed in the
 * current state. It is recorded with the command id, so a repeat gets the same answer.
 */
export class Rejection {
  constructor(
    readonly code: string,
    readonly detail: string = '',
    readonly data: Readonly<Record<string, unknown>> = {},
  ) {}
}

/**
 * ```ts
 * if (state.balance < input.amount) return reject('insufficient-funds', `balance is ${state.balance}`);
 * ```
 */
export function reject(code: string, detail = '', data: Record<string, unknown> = {}): Rejection {
  return new Rejection(code, detail, data);
}
