import { z } from 'zod';
import { commandOf } from '../runtime/define/execute.ts';
import type { App } from '../runtime/index.ts';
import { errorCodes } from '../runtime/index.ts';

const problemSchema = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail', 'code'],
  properties: {
    type: { type: 'string', format: 'uri' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string', description: `A stable code: one of ${Object.keys(errorCodes).join(', ')}; for 422 the domain's own rejection code.` },
    issues: { type: 'array', items: { type: 'object', properties: { path: { type: 'array', items: { type: 'string' } }, message: { type: 'string' } } } },
  },
  additionalProperties: true,
};

const commandReplySchema = {
  type: 'object',
  required: ['aggregate', 'id', 'commandId', 'version', 'position', 'events'],
  properties: {
    aggregate: { type: 'string' },
    id: { type: 'string' },
    commandId: { type: 'string' },
    version: { type: 'integer' },
    position: { type: ['string', 'null'], description: '<partition>:<seq> of the last event' },
    events: { type: 'array', items: { type: 'object', properties: { type: { type: 'string' }, version: { type: 'integer' } } } },
  },
};

const problem = (description: string) => ({ description, content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } });
const json = (description: string, schema: unknown) => ({ description, content: { 'application/json': { schema } } });
const idParameter = { name: 'id', in: 'path', required: true, schema: { type: 'string', minLength: 1, maxLength: 256 } };
const commonErrors = {
  '401': problem('No valid bearer token (auth on)'),
  '403': problem('The token lacks the scope'),
  '404': problem('Unknown route, aggregate, command or aggregate id'),
  '503': problem('Overloaded or shutting down; see Retry-After'),
};

/** OpenAPI 3.1 for this app: one path per command, with its input's JSON Schema, and every read. */
export function openApiDocument(app: App): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  for (const aggregate of app.aggregates) {
    for (const command of Object.keys(aggregate.commands)) {
      const definition = commandOf(aggregate, command)!;
      paths[`/commands/${aggregate.name}/{id}/${command}`] = {
        post: {
          operationId: `${aggregate.name}.${command}`,
          tags: [aggregate.name],
          parameters: [
            idParameter,
            { name: 'Idempotency-Key', in: 'header', schema: { type: 'string', maxLength: 256 }, description: 'Command id; a repeat returns the same status and body' },
            { name: 'If-Match', in: 'header', schema: { type: 'string' }, description: 'Expected version as an ETag, e.g. "3"' },
            { name: 'Prefer', in: 'header', schema: { type: 'string', enum: ['respond-async'] } },
          ],
          requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(definition.input, { io: 'input', unrepresentable: 'any' }) } } },
          responses: {
            '200': { ...json('Committed', commandReplySchema), headers: { ETag: { schema: { type: 'string' } } } },
            '202': { ...json('Accepted (Prefer: respond-async)', { type: 'object' }), headers: { Location: { schema: { type: 'string' } } } },
            '400': problem('Malformed JSON or input failing the schema (issues listed)'),
            '412': problem('If-Match does not match the current version (actualVersion given)'),
            '413': problem('Body over the limit'),
            '415': problem('Body is not application/json'),
            '422': problem("Rejected by the domain (code is the domain's), or Idempotency-Key reused with another body"),
            ...commonErrors,
          },
        },
      };
    }
  }
  paths['/commands/{commandId}'] = {
    get: { operationId: 'commandStatus', parameters: [{ name: 'commandId', in: 'path', required: true, schema: { type: 'string' } }], responses: { '200': json('pending, committed (with the reply), rejected or failed (with the problem)', { type: 'object' }), ...commonErrors } },
  };
  paths['/aggregates/{aggregate}/{id}'] = {
    get: {
      operationId: 'aggregateState',
      parameters: [
        { name: 'aggregate', in: 'path', required: true, schema: { type: 'string', enum: app.aggregates.map((aggregate) => aggregate.name) } },
        idParameter,
        { name: 'version', in: 'query', schema: { type: 'integer', minimum: 1 } },
        { name: 'at', in: 'query', schema: { type: 'string', format: 'date-time' } },
      ],
      responses: { '200': json('State and version', { type: 'object', properties: { state: {}, version: { type: 'integer' } } }), '400': problem('Bad query'), ...commonErrors },
    },
  };
  paths['/aggregates/{aggregate}/{id}/events'] = {
    get: {
      operationId: 'aggregateEvents',
      parameters: [
        { name: 'aggregate', in: 'path', required: true, schema: { type: 'string' } },
        idParameter,
        { name: 'after', in: 'query', schema: { type: 'integer', minimum: 0 } },
        { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000 } },
      ],
      responses: { '200': json('Events, oldest first', { type: 'object' }), '400': problem('Bad query'), ...commonErrors },
    },
  };
  for (const [path, description] of [
    ['/healthz', 'The process is alive'],
    ['/readyz', 'Every shard is open and serving (503 otherwise)'],
    ['/metrics', 'Prometheus metrics'],
    ['/openapi.json', 'This document'],
  ] as const) {
    paths[path] = { get: { responses: { '200': { description } } } };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Shardlog', version: '0.1.0', description: 'Commands, write-side reads and operations of a Shardlog node.' },
    paths,
    components: { schemas: { Problem: problemSchema }, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
  };
}
