import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCursor } from '../../gateway/event-stream-cursor.ts';
import { http, startTestNode, type TestNode } from '../support/node.ts';
import { invalidValues, resolve, validate, validValues, type Schema } from '../support/json-schema.ts';

/**
 * Requests generated from the served /openapi.json, valid and deliberately invalid, sent over
 * real HTTP to a running node. Every answer must be documented: no 5xx, a status the operation
 * lists, a content type and body its schema accepts. A request the document calls valid must
 * also never be refused for its form (invalid input, id or header) nor miss its route.
 */

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  schema: Schema;
}
interface MediaType {
  schema: Schema;
}
interface Operation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: { required: boolean; content: Record<string, MediaType> };
  responses: Record<string, { content?: Record<string, MediaType> }>;
}
interface Endpoint {
  path: string;
  method: 'get' | 'post';
  operation: Operation;
}
interface GeneratedRequest {
  endpoint: Endpoint;
  valid: boolean;
  /** What was made invalid, when `valid` is false. */
  broken: string | undefined;
  path: Record<string, unknown>;
  query: Record<string, unknown>;
  headers: Record<string, unknown>;
  body: { value: unknown } | undefined;
}

const seed = Number(process.env.SHARDLOG_PROPERTY_SEED ?? 20_261_202);
const runs = Number(process.env.SHARDLOG_PROPERTY_RUNS ?? 400);
const knownIds = ['prop-acc-1', 'prop-acc-2', 'prop-order-1'];
// Fetch refuses header values outside these (and trims blanks): the generator keeps to what a client can send.
const sendableHeader = /^[\t\x20-\x7e\x80-\xff]*$/;

let server: TestNode;
let document: { paths: Record<string, Record<string, Operation>> };
let position = '0:1';
const partitions = 8;

beforeAll(async () => {
  server = await startTestNode({ partitions, viewWaitMs: 50 });
  document = (await http(`${server.url}/openapi.json`)).body as typeof document;
  await http(`${server.url}/commands/account/prop-acc-1/open`, { method: 'POST', json: { owner: 'ada' } });
  await http(`${server.url}/commands/account/prop-acc-2/open`, { method: 'POST', json: { owner: 'bob' } });
  const placed = await http(`${server.url}/commands/order/prop-order-1/place`, { method: 'POST', json: { customerId: 'c1', items: [{ sku: 'a', quantity: 1, unitPrice: 2 }] } });
  position = (placed.body as { position: string }).position;
});
afterAll(async () => {
  await server.stop();
});

function endpoints(): Endpoint[] {
  return Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({ path, method: method as 'get' | 'post', operation })),
  );
}

/** A parameter's values: ids also from the seeded instances, positions also a real one, so reads find something. */
function parameterValues(parameter: Parameter): fc.Arbitrary<unknown> {
  const fromSchema = parameter.in === 'header' ? validValues(document, parameter.schema).filter((value) => sendableHeader.test(asText(value))) : validValues(document, parameter.schema);
  if (parameter.in === 'path' && (parameter.name === 'id' || parameter.name === 'key')) return fc.oneof(fromSchema, fc.constantFrom(...knownIds, 'ada', 'c1'));
  if (parameter.name === 'after' && parameter.schema.pattern !== undefined) return fc.oneof(fromSchema, fc.constant(position));
  if (parameter.name === 'owner') return fc.oneof(fromSchema, fc.constant('ada'));
  if (parameter.name === 'lastEventId' || parameter.name === 'Last-Event-ID') return fc.oneof(fromSchema, fc.constant(encodeCursor(new Array<number>(partitions).fill(0))));
  return fromSchema;
}

function requests(endpoint: Endpoint): fc.Arbitrary<GeneratedRequest> {
  const parameters = endpoint.operation.parameters ?? [];
  const bodySchema = endpoint.operation.requestBody?.content['application/json']?.schema;
  const slot = (parameter: Parameter) => (parameter.required === true ? parameterValues(parameter) : fc.option(parameterValues(parameter), { nil: undefined, freq: 2 }));
  const validParts = fc.record({
    values: fc.tuple(...parameters.map(slot)),
    body: bodySchema === undefined ? fc.constant(undefined) : validValues(document, bodySchema).map((value) => ({ value })),
  });
  // One part made invalid: a parameter, or the body.
  const targets = [...parameters.filter((parameter) => breakableOnTheWire(parameter.schema)).map((parameter) => parameter.name), ...(bodySchema === undefined ? [] : ['body'])];
  const broken = targets.length === 0 ? fc.constant(undefined) : fc.option(fc.constantFrom(...targets), { nil: undefined, freq: 2 });
  return fc.tuple(validParts, broken).chain(([parts, target]) => {
    const parameter = parameters.find((each) => each.name === target);
    const invalid =
      target === undefined ? fc.constant(undefined) : parameter === undefined ? invalidValues(document, bodySchema!) : invalidValues(document, parameter.schema).map(asText).filter((text) => !validOnTheWire(parameter.schema, text) && (parameter.in !== 'header' || sendableHeader.test(text)));
    return invalid.map((bad): GeneratedRequest => {
      const request: GeneratedRequest = { endpoint, valid: target === undefined, broken: target, path: {}, query: {}, headers: {}, body: parts.body };
      parameters.forEach((parameter, index) => {
        const value = parameter.name === target ? bad : parts.values[index];
        if (value !== undefined) request[parameter.in === 'header' ? 'headers' : parameter.in][parameter.name] = value;
      });
      if (target === 'body') request.body = { value: bad };
      return request;
    });
  });
}

/** A parameter travels as text: it is valid if the text, read as its schema's type, is. */
function validOnTheWire(schema: Schema, text: string): boolean {
  const type = resolve(document, schema).type;
  const read = (type === 'integer' || type === 'number') && /^-?\d+(?:\.\d+)?(?:e[+-]?\d+)?$/i.test(text) ? Number(text) : text;
  return validate(document, schema, read).length === 0;
}

/** Whether some text breaks the schema (any text is a valid unconstrained string). */
function breakableOnTheWire(schema: Schema): boolean {
  const s = resolve(document, schema);
  if (s.type !== 'string') return true;
  return ['pattern', 'minLength', 'maxLength', 'enum', 'const', 'format'].some((keyword) => keyword in s);
}

function asText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function describeRequest(request: GeneratedRequest, url: string): string {
  return JSON.stringify({ method: request.endpoint.method, url, headers: request.headers, body: request.body?.value, valid: request.valid, broken: request.broken });
}

const statuses = new Map<string, number>();
let sent = 0;

async function send(request: GeneratedRequest): Promise<void> {
  const { endpoint } = request;
  let path = endpoint.path;
  for (const [name, value] of Object.entries(request.path)) path = path.replace(`{${name}}`, encodeURIComponent(asText(value)));
  const query = new URLSearchParams(Object.entries(request.query).map(([name, value]): [string, string] => [name, asText(value)]));
  const url = `${server.url}${path}${query.size > 0 ? `?${query.toString()}` : ''}`;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    headers[name] = asText(value);
  }
  const shown = describeRequest(request, url);
  const controller = new AbortController();
  const response = await fetch(url, {
    method: endpoint.method.toUpperCase(),
    headers: { ...headers, ...(request.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(request.body === undefined ? {} : { body: JSON.stringify(request.body.value) ?? '' }),
    signal: controller.signal,
  });
  sent++;
  const key = `${endpoint.operation.operationId} ${response.status}${request.valid ? '' : ' (invalid)'}`;
  statuses.set(key, (statuses.get(key) ?? 0) + 1);
  const contentType = (response.headers.get('content-type') ?? '').split(';')[0]!.trim();
  const documented = endpoint.operation.responses[String(response.status)];
  if (contentType === 'text/event-stream') controller.abort();
  const text = contentType === 'text/event-stream' ? '' : await response.text();
  const context = `${shown}\n→ ${response.status} ${contentType} ${text.slice(0, 500)}`;

  // The one designed 5xx: ?after= waits a bounded time for a view, then 504 SHARDLOG_VIEW_BEHIND.
  const viewBehind = response.status === 504 && contentType === 'application/problem+json' && (JSON.parse(text) as { code: string }).code === 'SHARDLOG_VIEW_BEHIND';
  if (!viewBehind) expect(response.status, `a 5xx: ${context}`).toBeLessThan(500);
  expect(documented, `status not documented: ${context}`).toBeDefined();
  const media = documented!.content?.[contentType];
  expect(documented!.content === undefined || media !== undefined, `content type not documented: ${context}`).toBe(true);
  if (media !== undefined && contentType.endsWith('json')) {
    const errors = validate(document, media.schema, JSON.parse(text) as unknown);
    expect(errors, `body does not match its schema: ${context}`).toEqual([]);
  }
  if (request.valid && (response.status === 400 || response.status === 404)) {
    const problem = JSON.parse(text) as { code: string; detail: string };
    expect(['SHARDLOG_INVALID_INPUT', 'SHARDLOG_INVALID_ID', 'SHARDLOG_MALFORMED_REQUEST'], `a valid request refused for its form: ${context}`).not.toContain(problem.code);
    // The router's own 404 says "no route": a path the document lists must always route.
    expect(problem.detail.startsWith('no route'), `a documented path did not route: ${context}`).toBe(false);
  }
}

describe('the API as /openapi.json documents it', () => {
  it('answers every generated request as documented', { timeout: 600_000 }, async () => {
    const all = endpoints();
    expect(all.length).toBeGreaterThan(10);
    for (const endpoint of all) expect(() => resolve(document, { $ref: '#/components/schemas/Problem' }), endpoint.path).not.toThrow();
    const property = fc.asyncProperty(
      fc.constantFrom(...all).chain((endpoint) => requests(endpoint)),
      (request) => send(request),
    );
    try {
      await fc.assert(property, { numRuns: runs, seed, endOnFailure: true });
    } finally {
      console.log(`openapi property test: ${sent} requests sent (seed ${seed}); by operation and status:\n${[...statuses].sort().map(([key, count]) => `  ${key}: ${count}`).join('\n')}`);
    }
    expect(sent).toBe(runs);
  });
});
