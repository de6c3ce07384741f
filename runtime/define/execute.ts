import type { z } from 'zod';
import { makeError } from '../errors.ts';
import type { AnyAggregate } from './app.ts';
import type { DecideContext } from './aggregate.ts';
import { Rejection } from './rejection.ts';

/** An event ready to append: its payload already validated against the newest schema. */
export interface DecidedEvent {
  type: string;
  schemaVersion: number;
  data: unknown;
}

export type Decision = { kind: 'events'; events: DecidedEvent[] } | { kind: 'rejected'; rejection: Rejection };

interface SchemaIssue {
  path: PropertyKey[];
  message: string;
  code: string;
}

interface EventHandlers {
  schema: { safeParse(data: unknown): { success: boolean; data?: unknown; error?: { issues: SchemaIssue[] } } };
  version?: number;
  upcasters?: Record<number, (data: unknown) => unknown>;
  evolve: (state: unknown, data: unknown) => unknown;
}

/** A command definition with its types erased, as the runtime handles every aggregate alike. */
export interface LooseCommand {
  input: z.ZodType;
  decide: (state: unknown, input: unknown, ctx: DecideContext) => unknown;
}

export function commandOf(aggregate: AnyAggregate, name: string): LooseCommand | undefined {
  return Object.hasOwn(aggregate.commands, name) ? (aggregate.commands[name] as LooseCommand) : undefined;
}

export function initialStateOf(aggregate: AnyAggregate): unknown {
  return aggregate.initialState() as unknown;
}

function eventHandlers(aggregate: AnyAggregate, type: string): EventHandlers | undefined {
  return Object.hasOwn(aggregate.events, type) ? (aggregate.events[type] as EventHandlers) : undefined;
}

/**
 * Runs `decide` and validates what it returns. A returned or thrown Rejection is a decision;
 * anything else thrown is a bug in the aggregate and becomes SHARDLOG_DECIDE_FAILED.
 * Nothing here touches state: the caller evolves only once the whole decision is valid.
 */
export function decide(aggregate: AnyAggregate, state: unknown, command: string, input: unknown, ctx: DecideContext): Decision {
  const definition = commandOf(aggregate, command);
  if (definition === undefined) {
    throw makeError('SHARDLOG_UNKNOWN_COMMAND', `aggregate "${aggregate.name}" has no command "${command}"`, { aggregate: aggregate.name, command });
  }
  let result: unknown;
  try {
    result = definition.decide(state, input, ctx);
  } catch (error) {
    if (error instanceof Rejection) return { kind: 'rejected', rejection: error };
    const message = error instanceof Error ? error.message : String(error);
    throw makeError('SHARDLOG_DECIDE_FAILED', `${aggregate.name}.${command} threw: ${message}`, { aggregate: aggregate.name, command }, error);
  }
  if (result instanceof Rejection) return { kind: 'rejected', rejection: result };
  if (!Array.isArray(result)) {
    throw makeError('SHARDLOG_INVALID_EVENT', `${aggregate.name}.${command} must return an array of events or reject(...)`, { aggregate: aggregate.name, command });
  }
  const events = (result as { type: unknown; data: unknown }[]).map((event) => validateEvent(aggregate, command, event));
  return { kind: 'events', events };
}

function validateEvent(aggregate: AnyAggregate, command: string, event: { type: unknown; data: unknown }): DecidedEvent {
  const type = typeof event?.type === 'string' ? event.type : String(event?.type);
  const handlers = eventHandlers(aggregate, type);
  if (handlers === undefined) {
    throw makeError('SHARDLOG_INVALID_EVENT', `${aggregate.name}.${command} emitted unknown event "${type}"`, { aggregate: aggregate.name, command, event: type });
  }
  const parsed = handlers.schema.safeParse(event.data);
  // The event type is right, so decide is sound: this input made a payload the event cannot
  // hold (an overflowing total, say). That is the command's fault, not the server's.
  if (!parsed.success) {
    throw makeError('SHARDLOG_EVENT_REFUSED', `${aggregate.name}.${command}: this input makes an invalid ${type}`, {
      aggregate: aggregate.name,
      command,
      event: type,
      issues: (parsed.error?.issues ?? []).map(issueSummary),
    });
  }
  return { type, schemaVersion: handlers.version ?? 1, data: parsed.data };
}

/** The same `{path, message, code}` an input issue has, so clients read both alike. */
function issueSummary({ path, message, code }: SchemaIssue): { path: string[]; message: string; code: string } {
  return { path: path.map(String), message, code };
}

/** Folds events (already in the newest shape) into a state. */
export function evolve(aggregate: AnyAggregate, state: unknown, events: readonly { type: string; data: unknown }[]): unknown {
  let next = state;
  for (const event of events) {
    const handlers = eventHandlers(aggregate, event.type);
    if (handlers === undefined) throw new Error(`aggregate "${aggregate.name}" has no event "${event.type}" (stored in its log)`);
    next = handlers.evolve(next, event.data);
  }
  return next;
}

/** Brings a stored payload up to the event's newest version through its declared upcasters. */
export function upcast(aggregate: AnyAggregate, type: string, schemaVersion: number, data: unknown): unknown {
  const handlers = eventHandlers(aggregate, type);
  const current = handlers?.version ?? 1;
  let payload = data;
  for (let version = schemaVersion; version < current; version++) {
    const step = handlers?.upcasters?.[version];
    if (step === undefined) throw new Error(`${aggregate.name}.${type}: no upcaster from version ${version}`);
    payload = step(payload);
  }
  return payload;
}
