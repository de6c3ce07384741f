import { AssertionError } from 'node:assert';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import type { AnyAggregate, DecideContext } from './aggregate.ts';
import type { EventPayloads } from './projection.ts';
import { Rejection } from './rejection.ts';
import type { AnySaga, Saga, SagaCommand, SagaOutcome } from './saga.ts';
import { type DeliveredEvent, newInstance, type SagaInputs, type SagaInstance, type SagaStatus, stepSaga } from './saga-actor.ts';

/** Accepts `as const` literals as well: a spec never mutates what it is given. */
type Immutable<T> = T extends (...args: never[]) => unknown ? T : T extends object ? { readonly [K in keyof T]: Immutable<T[K]> } : T;

/** One event in a saga spec: `{ type: 'order.OrderPlaced', id: 'o-1', data: {...} }` (`id` defaults to the correlation id). */
export type SagaSpecEvent<Sources extends readonly AnyAggregate[]> = {
  [Type in keyof EventPayloads<Sources> & string]: { readonly type: Type; readonly id?: string; readonly data: Immutable<EventPayloads<Sources>[Type]> };
}[keyof EventPayloads<Sources> & string];

/** What a saga may be given: an event, the refusal of one of the commands it sent, or a timer that fires. */
export type SagaSpecInput<Sources extends readonly AnyAggregate[]> =
  | SagaSpecEvent<Sources>
  | { readonly rejected: { readonly aggregate: Sources[number]['name']; readonly command: string; readonly id?: string; readonly code: string; readonly detail?: string } }
  | { readonly timer: string };

export interface SagaExpectation<Sources extends readonly AnyAggregate[]> {
  /** Exactly the commands this input sends, in order (default: none). */
  readonly send?: readonly SagaCommand<Sources>[];
  /** Timers set by this input: name → ms from the input (default: none checked). */
  readonly timers?: Readonly<Record<string, number>>;
  /** The instance's status after the input (default: not checked). */
  readonly status?: SagaStatus;
  /** How it finished, if it did. */
  readonly finish?: SagaOutcome;
}

/**
 * Specifies a saga's behaviour with no threads and no files: given what happened, when one
 * more input arrives, then these commands are sent and these timers set. Event types and
 * payloads are checked against the saga's aggregates at compile time, and parsed by their
 * schemas at run time, as the log would hold them.
 *
 * ```ts
 * givenSaga(orderFulfilment, [{ type: 'order.OrderPlaced', data: { customerId: 'c', items, total: 10 } }], { correlationId: 'o-1' })
 *   .when({ type: 'inventory.StockReserved', id: 'tea', data: { orderId: 'o-1', quantity: 1 } })
 *   .then({ send: [{ aggregate: 'payment', id: 'o-1', command: 'authorize', input: { customerId: 'c', amount: 10 } }] });
 * ```
 */
export function givenSaga<Name extends string, State, const Sources extends readonly AnyAggregate[]>(
  saga: Saga<Name, State, Sources>,
  history: readonly SagaSpecInput<Sources>[] = [],
  options: { correlationId?: string; now?: Date } = {},
) {
  const loose = saga as unknown as AnySaga;
  const correlationId = options.correlationId ?? 'spec';
  const start = (options.now ?? new Date(0)).getTime();
  let seq = 0;
  let clock = start;
  const feed = (instance: SagaInstance, input: SagaSpecInput<Sources>, label: string): SagaInstance => {
    clock += 1;
    const ctx: DecideContext = { id: correlationId, commandId: `spec-${label}`, now: new Date(clock), metadata: {} };
    const [kind, value] = inputOf(loose, instance, input, correlationId, ++seq, clock, label);
    const next = stepSaga(loose, instance, kind, value as never, ctx);
    if (next instanceof Rejection) throw new AssertionError({ message: `${saga.name}: ${label}: ${next.detail}`, actual: next.code, expected: 'a reaction' });
    return next;
  };
  let before = newInstance();
  history.forEach((input, index) => {
    before = feed(before, input, `history ${index} (${describe(input)})`);
  });
  return {
    when(input: SagaSpecInput<Sources>) {
      const label = `given ${history.length} input(s) when ${describe(input)}`;
      const after = () => feed(before, input, label);
      return {
        then(expected: SagaExpectation<Sources>): void {
          const next = after();
          const known = new Set(before.pending.map((command) => command.step));
          const sent = next.pending.filter((command) => !known.has(command.step)).map(({ aggregate, id, command, input: sentInput }) => ({ aggregate, id, command, input: sentInput }));
          const wanted = (expected.send ?? []).map((command) => ({ ...command, input: parsedInput(loose, command) }));
          if (!isDeepStrictEqual(sent, wanted)) fail(`${saga.name}: ${label}\n  expected to send ${JSON.stringify(wanted)}\n  sent             ${JSON.stringify(sent)}`, sent, wanted);
          if (expected.timers !== undefined) {
            const set = Object.fromEntries(Object.entries(next.timers).filter(([name, due]) => before.timers[name] !== due).map(([name, due]) => [name, due - clock]));
            if (!isDeepStrictEqual(set, expected.timers)) fail(`${saga.name}: ${label}\n  expected timers ${JSON.stringify(expected.timers)}\n  set             ${JSON.stringify(set)}`, set, expected.timers);
          }
          const status = expected.status ?? expected.finish;
          if (status !== undefined && next.status !== status) fail(`${saga.name}: ${label}\n  expected status ${status}\n  got ${next.status}`, next.status, status);
          if (expected.finish === undefined && expected.status === undefined && next.status !== before.status && next.status !== 'running') {
            fail(`${saga.name}: ${label}\n  expected it to go on\n  it finished ${next.status}`, next.status, before.status);
          }
        },
        /** The saga's own state after the input. */
        state(): State {
          return after().state as State;
        },
      };
    },
  };
}

function inputOf(
  saga: AnySaga,
  instance: SagaInstance,
  input: unknown,
  correlationId: string,
  seq: number,
  now: number,
  label: string,
): [keyof SagaInputs, unknown] {
  if (typeof input === 'object' && input !== null && 'timer' in input) {
    const name = (input as { timer: string }).timer;
    const due = instance.timers[name];
    if (due === undefined) throw new TypeError(`${saga.name}: ${label}: timer "${name}" is not set`);
    return ['fire', { name, due }];
  }
  if (typeof input === 'object' && input !== null && 'rejected' in input) {
    const { aggregate, command, id, code, detail } = (input as { rejected: { aggregate: string; command: string; id?: string; code: string; detail?: string } }).rejected;
    const pending = instance.pending.find((sent) => sent.aggregate === aggregate && sent.command === command && (id === undefined || sent.id === id));
    if (pending === undefined) throw new TypeError(`${saga.name}: ${label}: it sent no ${aggregate}.${command}${id === undefined ? '' : ` to ${id}`} that is still pending`);
    return ['settle', { step: pending.step, ok: false, code, detail: detail ?? '', data: {} }];
  }
  const { type, id, data } = input as { type: string; id?: string; data: unknown };
  const dot = type.indexOf('.');
  const aggregate = saga.aggregates.find((candidate) => candidate.name === type.slice(0, dot));
  const definition: { schema: z.ZodType } | undefined = aggregate !== undefined && Object.hasOwn(aggregate.events, type.slice(dot + 1)) ? aggregate.events[type.slice(dot + 1)] : undefined;
  if (aggregate === undefined || definition === undefined) throw new TypeError(`${saga.name}: ${label}: none of its aggregates defines "${type}"`);
  const parsed = definition.schema.safeParse(data);
  if (!parsed.success) throw new TypeError(`${saga.name}: ${label}: ${type} fails its schema\n${z.prettifyError(parsed.error)}`);
  const event: DeliveredEvent = {
    partition: 0,
    seq,
    aggregate: aggregate.name,
    id: id ?? correlationId,
    type: type.slice(dot + 1),
    version: seq,
    data: parsed.data,
    metadata: {},
    recordedAt: now,
  };
  return ['react', { events: [event] }];
}

function parsedInput(saga: AnySaga, command: { aggregate: string; command: string; input: unknown }): unknown {
  const target = saga.aggregates.find((aggregate) => aggregate.name === command.aggregate);
  const definition = target !== undefined && Object.hasOwn(target.commands, command.command) ? (target.commands[command.command] as { input: z.ZodType }) : undefined;
  return definition?.input.safeParse(command.input).data ?? command.input;
}

function describe(input: unknown): string {
  if (typeof input === 'object' && input !== null && 'timer' in input) return `timer ${(input as { timer: string }).timer}`;
  if (typeof input === 'object' && input !== null && 'rejected' in input) {
    const { aggregate, command, code } = (input as { rejected: { aggregate: string; command: string; code: string } }).rejected;
    return `${aggregate}.${command} rejected ${code}`;
  }
  return (input as { type: string }).type;
}

function fail(message: string, actual: unknown, expected: unknown): never {
  throw new AssertionError({ message, actual, expected });
}
