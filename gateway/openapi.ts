import { z } from 'zod';
import { commandOf } from '../runtime/define/execute.ts';
import type { App } from '../runtime/index.ts';
import { maxIdLength } from '../runtime/partitioning.ts';
import { httpSchemas } from './http-schemas.ts';

type JsonSchema = Record<string, unknown>;

const ref = (name: keyof typeof httpSchemas): JsonSchema => ({ $ref: `#/components/schemas/${name}` });

/** JSON Schema of a zod schema, as a member of this document (no `$schema`/`$id` of its own). */
function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, $id: _id, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

function componentSchemas(): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [name, schema] of Object.entries(httpSchemas)) registry.add(schema as z.ZodType, { id: name });
  const { schemas } = z.toJSONSchema(registry, { io: 'output', unrepresentable: 'any', uri: (id) => `#/components/schemas/${id}` });
  return Object.fromEntries(
    Object.entries(schemas).map(([name, schema]) => {
      const { $schema: _dialect, $id: _id, ...rest } = schema as JsonSchema;
      return [name, rest];
    }),
  );
}

// The no-control-character rule of ids (runtime/partitioning.ts), as a JSON Schema pattern.
const noControlCharacters = '^[^\\u0000-\\u001f\\u007f-\\u009f]*$';
const idSchema = { type: 'string', minLength: 1, maxLength: maxIdLength, pattern: noControlCharacters };
// Header values: HTTP trims surrounding blanks and carries Latin-1 at most, so the portable form is visible ASCII with inner spaces.
const keyHeaderSchema = { type: 'string', minLength: 1, maxLength: maxIdLength, pattern: '^[\\x21-\\x7e](?:[\\x20-\\x7e]*[\\x21-\\x7e])?$' };

const problem = (description: string) => ({ description, content: { 'application/problem+json': { schema: ref('Problem') } } });
const json = (description: string, schema: JsonSchema, headers?: Record<string, unknown>) => ({
  description,
  content: { 'application/json': { schema } },
  ...(headers === undefined ? {} : { headers }),
});
const pathParameter = (name: string, schema: JsonSchema, description?: string) => ({ name, in: 'path', required: true, schema, ...(description === undefined ? {} : { description }) });
const queryParameter = (name: string, schema: JsonSchema, description: string, required = false) => ({ name, in: 'query', required, schema, description });
const idParameter = pathParameter('id', idSchema, 'The aggregate id: 1 to 256 characters, no control characters (400 SHARDLOG_INVALID_ID otherwise)');

/** Statuses any route can answer: auth (when tokens are configured), a bad header or URL, shutting down or overloaded. */
const commonErrors = {
  '400': problem('A malformed request (SHARDLOG_MALFORMED_REQUEST) or query (SHARDLOG_INVALID_QUERY)'),
  '401': problem('No valid bearer token (auth on)'),
  '403': problem('The token lacks the scope'),
  '404': problem('Unknown route (SHARDLOG_NOT_FOUND)'),
  '503': problem('Shutting down, overloaded or a shard unavailable; see Retry-After'),
};
const retryAfter = { 'Retry-After': { description: 'Seconds to wait (with 503)', schema: { type: 'string', pattern: '^\\d+$' } } };

const ownerHeader = { description: 'In a cluster: the advertised URL of the node that owns this aggregate’s partition', schema: { type: 'string' } };

/**
 * OpenAPI 3.1 for this app, saying what the server does: one path per command with its input's
 * JSON Schema, one per projection, every read and operations route, and every body's schema
 * (generated from the zod schemas in http-schemas.ts). A test sends requests generated from
 * it to a running node and checks each answer against it.
 */
export function openApiDocument(app: App): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  const aggregateNames = app.aggregates.map((aggregate) => aggregate.name);
  const errors = { ...commonErrors, '503': { ...commonErrors['503'], headers: retryAfter } };

  for (const aggregate of app.aggregates) {
    for (const command of Object.keys(aggregate.commands)) {
      const definition = commandOf(aggregate, command)!;
      paths[`/commands/${aggregate.name}/{id}/${command}`] = {
        post: {
          operationId: `${aggregate.name}.${command}`,
          tags: [aggregate.name],
          summary: `Run ${aggregate.name}.${command}`,
          description: 'In a cluster every answer, errors included, names the partition owner’s advertised URL in Shardlog-Owner: sending there skips the forwarding hop.',
          parameters: [
            idParameter,
            { name: 'Idempotency-Key', in: 'header', schema: keyHeaderSchema, description: 'The command id: a repeat returns the same status and body; the same key with another body is 422 SHARDLOG_IDEMPOTENCY_KEY_REUSED. Empty or over 256 characters: 400.' },
            { name: 'If-Match', in: 'header', schema: { type: 'string', pattern: '^(?:W/)?"?[0-9]{1,15}"?$' }, description: 'Run only at this aggregate version, as an ETag ("3"); otherwise 412 with actualVersion. Any other form: 400.' },
            { name: 'Prefer', in: 'header', schema: { type: 'string' }, description: 'respond-async (in a comma list) answers 202 once the input is valid; other preferences are ignored' },
          ],
          requestBody: {
            // An absent or blank body is the empty input {}: commands whose input accepts it need none.
            required: !definition.input.safeParse({}).success,
            content: { 'application/json': { schema: jsonSchemaOf(definition.input, 'input') } },
          },
          responses: {
            '200': json('Committed', ref('CommandReply'), { ETag: { description: 'The new version, "<version>"', schema: { type: 'string', pattern: '^"\\d+"$' } }, 'Shardlog-Owner': ownerHeader }),
            '202': json('Accepted (Prefer: respond-async): the input was valid; poll Location', ref('Accepted'), {
              Location: { description: '/commands/<commandId>', schema: { type: 'string' } },
              'Shardlog-Owner': ownerHeader,
            }),
            ...errors,
            '400': problem('Malformed JSON, a bad header, an invalid id (SHARDLOG_INVALID_ID) or input failing the schema (SHARDLOG_INVALID_INPUT, issues listed)'),
            '412': problem('If-Match does not match the current version (actualVersion given)'),
            '413': problem('Body over the limit'),
            '415': problem('Body is not JSON in UTF-8'),
            '422': problem(
              "Refused: by the domain (code is the domain's), Idempotency-Key reused with another body, or an event the command would write fails its own schema (SHARDLOG_EVENT_REFUSED)",
            ),
          },
        },
      };
    }
  }

  paths['/commands/{commandId}'] = {
    get: {
      operationId: 'commandStatus',
      summary: 'The outcome of a command by its id',
      parameters: [pathParameter('commandId', idSchema, 'The Idempotency-Key given, or the commandId of a reply (400 SHARDLOG_INVALID_INPUT if malformed)')],
      responses: { '200': json('pending, committed (with the reply), rejected or failed (with the problem)', ref('CommandStatus')), ...errors, '404': problem('No command with this id is pending or recorded') },
    },
  };

  const aggregateParameter = pathParameter('aggregate', { type: 'string', enum: aggregateNames }, 'An aggregate type (404 SHARDLOG_UNKNOWN_AGGREGATE otherwise)');
  paths['/aggregates/{aggregate}/{id}'] = {
    get: {
      operationId: 'aggregateState',
      summary: "An aggregate's state: now, right after a version, or as of a time",
      parameters: [
        aggregateParameter,
        idParameter,
        queryParameter('version', { type: 'integer', minimum: 1, maximum: 999_999_999_999_999 }, 'The state right after this version; 400 past the current one. Not with ?at (400).'),
        queryParameter('at', { type: 'string', format: 'date-time' }, 'The state as of this time (any form Date.parse reads; ISO 8601 is portable). Not with ?version (400).'),
      ],
      responses: {
        '200': json('State and version', ref('AggregateState'), { ETag: { description: '"<version>"', schema: { type: 'string' } } }),
        ...errors,
        '404': problem('Unknown aggregate type, or this aggregate has no events (at that time)'),
      },
    },
  };
  paths['/aggregates/{aggregate}/{id}/events'] = {
    get: {
      operationId: 'aggregateEvents',
      summary: "An aggregate's events, oldest first",
      parameters: [
        aggregateParameter,
        idParameter,
        queryParameter('after', { type: 'integer', minimum: 0, maximum: 999_999_999_999_999 }, 'Events after this version (default 0)'),
        queryParameter('limit', { type: 'integer', minimum: 1, maximum: 1000 }, 'At most this many (default 100)'),
      ],
      responses: { '200': json('Events, oldest first', ref('AggregateEvents')), ...errors, '404': problem('Unknown aggregate type, or no events at all (with after=0)') },
    },
  };

  if (app.sagas.length > 0) {
    paths['/sagas/{saga}/{correlationId}'] = {
      get: {
        operationId: 'sagaInstance',
        summary: 'One saga instance: its state, status, version, and pending commands and timers',
        parameters: [
          pathParameter('saga', { type: 'string', enum: app.sagas.map((saga) => saga.name) }, 'A saga of the app (404 SHARDLOG_UNKNOWN_SAGA otherwise)'),
          pathParameter('correlationId', idSchema, 'The instance: 1 to 256 characters, no control characters (400 SHARDLOG_INVALID_ID otherwise)'),
        ],
        responses: { '200': json('The instance', ref('SagaInstance')), ...errors, '404': problem('Unknown saga, or no instance of it ever started with this id') },
      },
    };
  }

  const afterParameter = queryParameter(
    'after',
    { type: 'string', pattern: '^\\d{1,6}:\\d{1,15}$' },
    "A position from a command reply: wait (bounded) until the projection has applied it. 400 if its partition is not below the node's partition count.",
  );
  const viewErrors = {
    ...errors,
    '503': problem('The projection is halted short of ?after (SHARDLOG_PROJECTION_HALTED), or the node is unavailable'),
    '504': problem('?after: the projection had not reached that position within the wait (SHARDLOG_VIEW_BEHIND, with behindBy)'),
  };
  for (const projection of app.projections) {
    paths[`/views/${projection.name}/{key}`] = {
      get: {
        operationId: `${projection.name}.get`,
        tags: ['views'],
        summary: `One ${projection.name} document by key`,
        parameters: [pathParameter('key', { type: 'string', minLength: 1, maxLength: 512 }, 'The document key (over 1,024 UTF-16 units: 400)'), afterParameter],
        responses: { '200': json('The document', ref('JsonValue')), ...viewErrors, '404': problem('No document with this key') },
      },
    };
    const indexes = projection.indexes ?? [];
    if (indexes.length === 0) continue;
    paths[`/views/${projection.name}`] = {
      get: {
        operationId: `${projection.name}.query`,
        tags: ['views'],
        summary: `${projection.name} documents by an indexed field (${indexes.join(', ')}), in key order`,
        description: 'Give exactly one indexed field (400 otherwise).',
        parameters: [
          ...indexes.map((field) => queryParameter(field, { type: 'string' }, `Documents whose ${field} equals this`, indexes.length === 1)),
          queryParameter('limit', { type: 'integer', minimum: 1, maximum: 1000 }, 'Page size (default 100)'),
          queryParameter('cursor', { type: 'string', pattern: '^[A-Za-z0-9_-]{1,400}$' }, 'The cursor of the previous page'),
          afterParameter,
        ],
        responses: { '200': json('A page of documents', ref('ViewPage')), ...viewErrors, '404': problem('Unknown route') },
      },
    };
  }

  const eventTypes = app.aggregates.flatMap((aggregate) => Object.keys(aggregate.events).flatMap((type) => [type, `${aggregate.name}.${type}`]));
  paths['/events'] = {
    get: {
      operationId: 'eventStream',
      summary: 'Committed events as Server-Sent Events',
      description:
        'Each message: `id: <cursor>`, `event: <aggregate>.<Type>`, `data: {aggregate, id, type, version, position, data, metadata, recordedAt}`. Starts at the present, or at the beginning with ?from=start; resumes exactly after Last-Event-ID. The stream stays open.',
      parameters: [
        queryParameter('aggregate', { type: 'string', pattern: `^(?:${aggregateNames.join('|')})(?:,(?:${aggregateNames.join('|')}))*$` }, 'Only these aggregate types (comma list; 404 SHARDLOG_UNKNOWN_AGGREGATE for an unknown one)'),
        queryParameter('type', { type: 'string', pattern: `^(?:${eventTypes.map(escapeRegex).join('|')})(?:,(?:${eventTypes.map(escapeRegex).join('|')}))*$` }, 'Only these event types, as Type or aggregate.Type (comma list; 400 for an unknown one)'),
        queryParameter('id', idSchema, 'Only this aggregate id; needs exactly one ?aggregate= (400 otherwise)'),
        queryParameter('from', { type: 'string', enum: ['start', 'now'] }, 'Where to start without a cursor (default now)'),
        queryParameter('lastEventId', { type: 'string', pattern: '^v1\\.[A-Za-z0-9_-]*$' }, 'A cursor, as Last-Event-ID (400 if malformed)'),
        { name: 'Last-Event-ID', in: 'header', schema: { type: 'string', pattern: '^v1\\.[A-Za-z0-9_-]*$' }, description: 'The id of the last message received (400 if malformed)' },
      ],
      responses: {
        '200': { description: 'The event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } },
        ...errors,
        '404': problem('Unknown aggregate type in ?aggregate='),
      },
    },
  };

  paths['/healthz'] = { get: { operationId: 'health', summary: 'The process is alive', responses: { '200': json('Alive', ref('Health')), '503': errors['503'] } } };
  paths['/readyz'] = {
    get: {
      operationId: 'readiness',
      summary: 'Whether this node takes commands',
      responses: {
        '200': json('Every shard serving', ref('Readiness')),
        '503': {
          description: 'A shard not serving or the node leaving its cluster (the same body, status "unavailable"); a problem while shutting down',
          content: { 'application/json': { schema: ref('Readiness') }, 'application/problem+json': { schema: ref('Problem') } },
        },
      },
    },
  };
  paths['/cluster/partitions'] = {
    get: {
      operationId: 'clusterPartitions',
      summary: 'Each partition’s owner and its advertised URL, as this node last saw them (open, like /readyz)',
      parameters: [
        { name: 'aggregate', in: 'query', schema: { type: 'string', enum: aggregateNames }, description: 'With id: only the partition of this aggregate instance' },
        { name: 'id', in: 'query', schema: { type: 'string', minLength: 1, maxLength: 256 }, description: 'With aggregate' },
      ],
      responses: {
        '200': json('Owners', {
          type: 'object',
          required: ['partitions', 'owners'],
          properties: {
            partitions: { type: 'integer', minimum: 1 },
            owners: {
              type: 'array',
              items: {
                type: 'object',
                required: ['partition', 'nodeId', 'url', 'epoch'],
                properties: { partition: { type: 'integer', minimum: 0 }, nodeId: { type: 'string' }, url: { type: ['string', 'null'] }, epoch: { type: 'integer', minimum: 0 } },
              },
            },
          },
        }),
        '400': problem('aggregate without id or the reverse (SHARDLOG_INVALID_QUERY), or an invalid id (SHARDLOG_INVALID_ID)'),
        '404': problem('This node is not in a cluster (SHARDLOG_NOT_FOUND), or no such aggregate (SHARDLOG_UNKNOWN_AGGREGATE)'),
        '503': errors['503'],
      },
    },
  };
  paths['/metrics'] = {
    get: {
      operationId: 'metrics',
      summary: 'Prometheus metrics (scope metrics)',
      responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } }, '401': errors['401'], '403': errors['403'], '503': errors['503'] },
    },
  };
  paths['/openapi.json'] = {
    get: { operationId: 'openapi', summary: 'This document', responses: { '200': json('OpenAPI 3.1', { type: 'object', required: ['openapi', 'paths'] }), '503': errors['503'] } },
  };

  return {
    openapi: '3.1.0',
    info: { title: 'Shardlog', version: '0.1.0', description: 'Commands, write-side reads, read models, the event stream and operations of a Shardlog node. Every error is application/problem+json.' },
    paths,
    components: { schemas: componentSchemas(), securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{}, { bearer: [] }],
  };
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
