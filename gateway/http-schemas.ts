import { z } from 'zod';
import { errorCodes } from '../runtime/index.ts';

/**
 * The shapes of the bodies the gateway answers with, as zod schemas: the OpenAPI document is
 * generated from them (`z.toJSONSchema`), and the property test checks every answer against
 * that document, so a route that drifts from these shapes fails a test.
 */

/** Any JSON value: states, payloads and view documents are whatever the app's functions build. */
export const jsonValue = z.json();

const position = z.string().regex(/^\d{1,6}:\d{1,15}$/).describe('<partition>:<seq>');

const issue = z.object({
  path: z.array(z.string()),
  message: z.string(),
  code: z.string(),
});

export const problemBody = z
  .looseObject({
    type: z.url().describe('https://shardlog.dev/problems/<code in kebab case>, or …/rejected for a domain refusal'),
    title: z.string(),
    status: z.int().min(400).max(599),
    detail: z.string(),
    code: z.string().describe(`A stable code: one of ${Object.keys(errorCodes).join(', ')}; for 422 the domain's own rejection code.`),
    issues: z.array(issue).optional().describe('SHARDLOG_INVALID_INPUT and SHARDLOG_EVENT_REFUSED: each problem with its path'),
  })
  .describe("RFC 9457 problem. The error's data (e.g. actualVersion, retryAfterMs, a rejection's own fields) are further members; they never replace these.");

export const commandReplyBody = z.object({
  aggregate: z.string(),
  id: z.string(),
  commandId: z.string(),
  version: z.int().min(0).describe('The aggregate version after the command (also the ETag)'),
  position: position.nullable().describe('Position of the last event written; null when the command wrote none'),
  events: z.array(z.object({ type: z.string(), version: z.int().min(1) })),
});

export const acceptedBody = z.object({ commandId: z.string(), status: z.literal('pending') });

export const commandStatusBody = z.discriminatedUnion('status', [
  acceptedBody,
  z.object({ commandId: z.string(), status: z.literal('committed'), reply: commandReplyBody }),
  z.object({ commandId: z.string(), status: z.enum(['rejected', 'failed']), problem: problemBody }),
]);

export const aggregateStateBody = z.object({
  state: jsonValue.describe("The aggregate's state as its evolve functions built it"),
  version: z.int().min(1),
});

export const aggregateEventsBody = z.object({
  events: z.array(
    z.object({
      type: z.string(),
      version: z.int().min(1),
      position,
      data: jsonValue,
      recordedAt: z.iso.datetime().describe('Commit time'),
    }),
  ),
});

export const sagaInstanceBody = z.object({
  saga: z.string(),
  correlationId: z.string(),
  state: jsonValue.describe("The saga's own state, as its handlers left it"),
  status: z.enum(['running', 'completed', 'compensated', 'timed-out']),
  version: z.int().min(1),
  startedAt: z.iso.datetime(),
  pending: z.object({
    commands: z
      .array(z.object({ step: z.int().min(1), commandId: z.string(), aggregate: z.string(), id: z.string(), command: z.string(), input: jsonValue }))
      .describe('Commands decided and not yet settled (the outbox), with the id each is sent with'),
    timers: z.array(z.object({ name: z.string(), dueAt: z.iso.datetime() })),
  }),
  lastHandled: z.array(z.string()).describe('The inputs its last reaction handled'),
  parked: z.array(z.object({ input: z.string(), error: z.string(), parkedAt: z.iso.datetime() })).describe('Inputs whose handler kept failing (shardlog dlq retry|skip)'),
});

export const viewPageBody = z.object({
  items: z.array(z.object({ key: z.string(), doc: jsonValue })),
  cursor: z.string().nullable().describe('Pass back as ?cursor= for the next page; null on the last'),
});

export const healthBody = z.object({ status: z.literal('ok') });

export const readinessBody = z.object({
  status: z.enum(['ready', 'unavailable']),
  shards: z.array(z.object({ shard: z.int().min(0), status: z.string(), queued: z.int().min(0) })),
  projections: z.array(z.looseObject({ name: z.string(), state: z.string() })),
  bus: z.looseObject({ kind: z.enum(['embedded', 'jetstream']) }),
  cluster: z.looseObject({}).optional(),
});

/** Every named body, by the name it has under the document's `components.schemas`. */
export const httpSchemas = {
  JsonValue: jsonValue,
  Problem: problemBody,
  CommandReply: commandReplyBody,
  Accepted: acceptedBody,
  CommandStatus: commandStatusBody,
  AggregateState: aggregateStateBody,
  AggregateEvents: aggregateEventsBody,
  ViewPage: viewPageBody,
  SagaInstance: sagaInstanceBody,
  Health: healthBody,
  Readiness: readinessBody,
} as const;
