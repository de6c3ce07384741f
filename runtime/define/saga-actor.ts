import { z } from 'zod';
import type { BusEvent } from '../bus/bus-event.ts';
import { formatPosition } from '../partitioning.ts';
import type { Aggregate, AnyAggregate, DecideContext } from './aggregate.ts';
import { commandOf } from './execute.ts';
import { reject, Rejection } from './rejection.ts';
import type { AnySaga, SagaContext, SagaEvent, SagaOutcome, SagaReaction } from './saga.ts';

/** A command a saga instance decided to send and has not seen the outcome of yet. */
export interface PendingCommand {
  step: number;
  aggregate: string;
  id: string;
  command: string;
  /** As the target command's schema parsed it. */
  input: unknown;
}

export type SagaStatus = 'new' | 'running' | SagaOutcome;

/** Everything the runtime keeps of one saga instance: its events fold into this. */
export interface SagaInstance {
  status: SagaStatus;
  state: unknown;
  /** ms since the epoch; 0 until it starts. */
  startedAt: number;
  nextStep: number;
  /** The outbox: sent commands whose outcome the instance has not seen. */
  pending: PendingCommand[];
  /** name → due time (ms since the epoch). */
  timers: Record<string, number>;
  /** Source partition → the last seq delivered from it: a redelivered event is recognised and ignored. */
  seen: Record<string, number>;
  /** The inputs of the last reaction, as the audit trail shows them. */
  handled: string[];
  /** Inputs whose handler kept failing (the saga's dead letters). */
  parked: ParkedInput[];
}

/**
 * One committed event delivered to a saga instance, as the bus carries it but with its payload
 * upcast to the newest shape; `step` when one of the instance's own commands caused it.
 */
export type DeliveredEvent = Omit<BusEvent, 'schemaVersion'> & { step?: number };

/** What the runtime asks of a saga instance. None of these is reachable from HTTP. */
export interface SagaInputs {
  react: { events: DeliveredEvent[] };
  settle: { step: number; ok: true } | { step: number; ok: false; code: string; detail: string; data: Record<string, unknown> };
  fire: { name: string; due: number };
  /** The runtime gave up retrying this input: it is taken as delivered and its handler calls are parked. */
  park: { kind: 'react' | 'settle' | 'fire'; input: SagaInputs['react'] | SagaInputs['settle'] | SagaInputs['fire']; error: string };
  /** Runs the parked handler calls again, in order, with the current code; all or nothing. */
  retry: Record<string, never>;
  /** Drops the parked handler calls. */
  skip: Record<string, never>;
}

/** The metadata a saga's command carries into its events, so the router brings them back to the instance. */
export interface SagaStepMetadata {
  saga: string;
  correlationId: string;
  step: number;
}

const sagaInputKinds = ['react', 'settle', 'fire', 'park', 'retry', 'skip'] as const satisfies readonly (keyof SagaInputs)[];

export const sagaEventTypes = ['SagaStarted', 'SagaReacted', 'SagaFinished'] as const;
export type SagaEventType = (typeof sagaEventTypes)[number];

const terminal = new Set<SagaStatus>(['completed', 'compensated', 'timed-out']);

export function isFinished(status: SagaStatus): boolean {
  return terminal.has(status);
}

export const newInstance = (): SagaInstance => ({ status: 'new', state: null, startedAt: 0, nextStep: 1, pending: [], timers: {}, seen: {}, handled: [], parked: [] });

/**
 * The id of a saga's step command: `<saga>/<correlationId>/<step>`, as DESIGN.md says; a
 * correlation id too long for a 256-character command id is replaced by its hash.
 */
export function stepCommandId(saga: string, correlationId: string, step: number): string {
  const id = `${saga}/${correlationId}/${step}`;
  if ([...id].length <= 256) return id;
  return `${saga}/#${fnv64(correlationId)}/${step}`;
}

function fnv64(text: string): string {
  let high = 0x811c9dc5;
  let low = 0x01000193;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    high = Math.imul(high ^ code, 0x01000193) >>> 0;
    low = Math.imul(low ^ code ^ high, 0x5bd1e995) >>> 0;
  }
  return `${high.toString(16).padStart(8, '0')}${low.toString(16).padStart(8, '0')}`;
}

/** The step metadata of an event's command, when a saga of this app sent it. */
export function stepOf(metadata: Record<string, unknown>): SagaStepMetadata | undefined {
  const { saga, correlationId, step } = metadata as Partial<SagaStepMetadata>;
  if (typeof saga !== 'string' || typeof correlationId !== 'string' || typeof step !== 'number') return undefined;
  return { saga, correlationId, step };
}

type Handler = (state: unknown, input: unknown, ctx: SagaContext) => SagaReaction<unknown, readonly AnyAggregate[]> | undefined | void;

export function sagaHandlerOf(saga: AnySaga, type: string): Handler | undefined {
  const handlers = saga.on as Record<string, Handler | undefined>;
  return Object.hasOwn(handlers, type) ? handlers[type] : undefined;
}

export function correlationOf(saga: AnySaga, event: SagaEvent): string | null {
  const correlate = saga.correlate as ((event: SagaEvent) => string | null) | Record<string, ((event: SagaEvent) => string | null) | undefined>;
  const find = typeof correlate === 'function' ? correlate : Object.hasOwn(correlate, event.type) ? correlate[event.type] : undefined;
  const id = find?.(event);
  return typeof id === 'string' && id.length > 0 ? id : null;
}

export function sagaEventOf(event: DeliveredEvent): SagaEvent {
  return {
    type: `${event.aggregate}.${event.type}`,
    aggregate: event.aggregate,
    id: event.id,
    version: event.version,
    position: formatPosition(event.partition, event.seq),
    data: event.data,
    metadata: event.metadata,
    recordedAt: new Date(event.recordedAt),
  };
}

/** A handler threw, or returned what cannot be done: the input becomes a `saga-handler-failed` rejection. */
class SagaHandlerFailure extends Error {}

/**
 * Runs one input through a saga's handlers: the pure core of a saga instance, used by its
 * actor on a shard and by the given/when/then helper. Returns the next instance, or the
 * same object when nothing changed. A handler that throws, or returns a command its target
 * would refuse as input, makes a Rejection `saga-handler-failed`: nothing of the input is kept.
 */
export function stepSaga<K extends keyof SagaInputs>(saga: AnySaga, current: SagaInstance, kind: K, input: SagaInputs[K], ctx: DecideContext): SagaInstance | Rejection {
  try {
    return step(saga, current, kind, input, ctx);
  } catch (error) {
    if (error instanceof SagaHandlerFailure) return reject('saga-handler-failed', error.message);
    throw error;
  }
}

/** A handler call, as a parked input keeps it to run again on `retry`. */
export type HandlerCall =
  | { on: 'event'; event: DeliveredEvent }
  | { on: 'rejection'; rejection: { step: number; command: Omit<PendingCommand, 'step'>; code: string; detail: string; data: Record<string, unknown> } }
  | { on: 'timer'; name: string };

/** An input whose handler kept failing: kept in the instance until `retry` runs it again or `skip` drops it. */
export interface ParkedInput {
  call: HandlerCall;
  description: string;
  error: string;
  parkedAt: number;
}

function invoke(saga: AnySaga, state: unknown, call: HandlerCall, context: SagaContext): ReturnType<Handler> {
  if (call.on === 'event') return sagaHandlerOf(saga, `${call.event.aggregate}.${call.event.type}`)?.(state, sagaEventOf(call.event), context);
  if (call.on === 'rejection') return saga.onRejected?.(state, call.rejection as never, context);
  return saga.onTimer?.(state, { name: call.name }, context);
}

function step<K extends keyof SagaInputs>(saga: AnySaga, current: SagaInstance, kind: K, input: SagaInputs[K], ctx: DecideContext): SagaInstance {
  const next: SagaInstance = structuredClone(current);
  next.handled = [];
  const context: SagaContext = { correlationId: ctx.id, now: ctx.now };
  const now = ctx.now.getTime();
  let changed = false;
  // `park` runs its input like the original, except that each handler call is parked, not made.
  const parking = kind === 'park' ? (input as SagaInputs['park']) : undefined;
  const run = (description: string, call: HandlerCall): void => {
    changed = true;
    if (parking !== undefined) {
      next.parked.push({ call, description, error: parking.error, parkedAt: now });
      next.handled.push(`${description} parked`);
      return;
    }
    let reaction: ReturnType<Handler>;
    try {
      reaction = invoke(saga, next.state, call, context);
    } catch (error) {
      if (error instanceof SagaHandlerFailure) throw error;
      throw new SagaHandlerFailure(`${saga.name} ${description}: ${error instanceof Error ? error.message : String(error)}`);
    }
    next.handled.push(description);
    if (reaction !== undefined) apply(saga, next, reaction, now, description);
  };
  const effective = parking === undefined ? { kind: kind, input: input as unknown } : { kind: parking.kind, input: parking.input };

  if (effective.kind === 'react') {
    for (const event of (effective.input as SagaInputs['react']).events) {
      const partition = String(event.partition);
      if ((next.seen[partition] ?? 0) >= event.seq) continue;
      const type = `${event.aggregate}.${event.type}`;
      const description = `${type}@${formatPosition(event.partition, event.seq)}`;
      if (event.step !== undefined) changed = settleStep(next, event.step) || changed;
      if (next.status === 'new') {
        if (!(saga.startedBy as readonly string[]).includes(type)) continue;
        next.status = 'running';
        next.state = saga.initialState(ctx.id);
        next.startedAt = now;
        if (saga.timeoutMs !== undefined) next.timers.timeout = now + saga.timeoutMs;
      }
      // A finished instance records nothing more, except the settling of its last steps above.
      if (isFinished(next.status)) continue;
      next.seen[partition] = event.seq;
      changed = true;
      if (sagaHandlerOf(saga, type) !== undefined) run(description, { on: 'event', event });
      else next.handled.push(description);
    }
  } else if (effective.kind === 'settle') {
    const outcome = effective.input as SagaInputs['settle'];
    const pending = next.pending.find((command) => command.step === outcome.step);
    if (pending !== undefined) {
      settleStep(next, outcome.step);
      changed = true;
      const description = outcome.ok ? `step ${outcome.step} done` : `step ${outcome.step} refused: ${outcome.code}`;
      if (!outcome.ok && !isFinished(next.status) && saga.onRejected !== undefined) {
        const { step: _step, ...command } = pending;
        run(description, { on: 'rejection', rejection: { step: outcome.step, command, code: outcome.code, detail: outcome.detail, data: outcome.data } });
      } else {
        next.handled.push(description);
      }
    }
  } else if (effective.kind === 'fire') {
    const { name, due } = effective.input as SagaInputs['fire'];
    if (next.timers[name] === due && !isFinished(next.status)) {
      delete next.timers[name];
      changed = true;
      const description = `timer ${name}`;
      if (saga.onTimer !== undefined) run(description, { on: 'timer', name });
      else if (name === 'timeout') {
        next.handled.push(description);
        finish(next, 'timed-out');
      } else next.handled.push(description);
    }
  } else if (kind === 'retry') {
    const parked = next.parked;
    next.parked = [];
    for (const entry of parked) {
      if (isFinished(next.status)) next.handled.push(`${entry.description} dropped: the saga has finished`);
      else run(entry.description, entry.call);
    }
    changed = parked.length > 0;
  } else if (kind === 'skip') {
    next.handled = next.parked.map((entry) => `${entry.description} skipped`);
    changed = next.parked.length > 0;
    next.parked = [];
  }
  return changed ? next : current;
}

function settleStep(instance: SagaInstance, step: number): boolean {
  const index = instance.pending.findIndex((command) => command.step === step);
  if (index < 0) return false;
  instance.pending.splice(index, 1);
  return true;
}

function finish(instance: SagaInstance, outcome: SagaOutcome): void {
  instance.status = outcome;
  instance.timers = {};
}

function apply(saga: AnySaga, instance: SagaInstance, reaction: SagaReaction<unknown, readonly AnyAggregate[]>, now: number, description: string): void {
  if (typeof reaction !== 'object' || reaction === null) throw new SagaHandlerFailure(`${saga.name} ${description}: a handler must return a reaction object or nothing`);
  if (reaction.state !== undefined) instance.state = reaction.state;
  for (const command of reaction.send ?? []) instance.pending.push({ step: instance.nextStep++, ...checkedCommand(saga, command, description) });
  for (const name of reaction.timers?.cancel ?? []) delete instance.timers[name];
  for (const [name, afterMs] of Object.entries(reaction.timers?.set ?? {})) {
    if (typeof afterMs !== 'number' || !Number.isFinite(afterMs) || afterMs < 0) {
      throw new SagaHandlerFailure(`${saga.name} ${description}: timer "${name}" needs a finite, non-negative delay in ms`);
    }
    instance.timers[name] = now + Math.ceil(afterMs);
  }
  if (reaction.finish !== undefined) {
    if (!terminal.has(reaction.finish)) throw new SagaHandlerFailure(`${saga.name} ${description}: finish must be completed, compensated or timed-out`);
    finish(instance, reaction.finish);
  }
}

/** A sent command with its input as the target's schema parses it; a bad one is the handler's bug. */
function checkedCommand(saga: AnySaga, command: { aggregate: string; id: string; command: string; input: unknown }, description: string): Omit<PendingCommand, 'step'> {
  const target = saga.aggregates.find((aggregate) => aggregate.name === command.aggregate);
  const definition = target === undefined ? undefined : commandOf(target, command.command);
  if (definition === undefined) throw new SagaHandlerFailure(`${saga.name} ${description}: sends ${command.aggregate}.${command.command}, which its aggregates do not define`);
  if (typeof command.id !== 'string' || command.id.length === 0) throw new SagaHandlerFailure(`${saga.name} ${description}: ${command.aggregate}.${command.command} needs an id`);
  const parsed = definition.input.safeParse(command.input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map(({ path, message }) => `${path.join('.') || '(input)'}: ${message}`).join('; ');
    throw new SagaHandlerFailure(`${saga.name} ${description}: invalid input for ${command.aggregate}.${command.command}: ${issues}`);
  }
  return { aggregate: command.aggregate, id: command.id, command: command.command, input: parsed.data };
}

const anything = z.custom<never>(() => true);

/**
 * A saga as the shards run it: an aggregate type named after the saga, whose one state is
 * the SagaInstance and whose commands are the runtime's inputs. Every reaction appends one
 * event carrying the whole instance after it, so the log alone rebuilds it (and the outbox
 * and timer rows a shard keeps beside it).
 */
export function sagaActorOf(saga: AnySaga): AnyAggregate {
  const evolveTo = (_state: SagaInstance, data: SagaInstance) => data;
  const events = Object.fromEntries(sagaEventTypes.map((type) => [type, { schema: anything, evolve: evolveTo }]));
  const command = (kind: keyof SagaInputs) => ({
    input: anything,
    decide: (state: SagaInstance, input: never, ctx: DecideContext) => {
      const next = stepSaga(saga, state, kind, input, ctx);
      if (next instanceof Rejection || next === state) return next === state ? [] : next;
      const type: SagaEventType = state.status === 'new' ? 'SagaStarted' : isFinished(next.status) && !isFinished(state.status) ? 'SagaFinished' : 'SagaReacted';
      return [{ type, data: next }];
    },
  });
  const actor: Aggregate<string, SagaInstance> = {
    kind: 'aggregate',
    name: saga.name,
    initialState: newInstance,
    events: events as never,
    commands: Object.fromEntries(sagaInputKinds.map((kind) => [kind, command(kind)])) as never,
    snapshotSchema: 'saga1',
  };
  return actor;
}
