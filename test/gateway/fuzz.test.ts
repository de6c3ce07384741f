import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../support/node.ts';
import { seededRandom } from '../support/seeded-random.ts';

let server: TestNode;
beforeAll(async () => {
  server = await startTestNode({ bodyLimit: 8192 });
});
afterAll(async () => {
  await server.stop();
});

const garbageBodies = [
  '',
  '{',
  '}',
  'null',
  '[]',
  '"string"',
  '12',
  '{"amount":}',
  '{"amount":"NaN"}',
  '{"amount":-1}',
  '{"amount":0}',
  '{"amount":1e400}',
  '{"owner":""}',
  '{"__proto__":{"x":1}}',
  '{"constructor":{"prototype":{"x":1}}}',
  '{"a":'.repeat(100),
  `${'['.repeat(5000)}${']'.repeat(5000)}`,
  '\u0000\u0001\u0002',
  '{"amount":1,"amount":"x"}',
  'x'.repeat(9000),
  '{"items":[{"sku":"a","quantity":1.5,"unitPrice":1}],"customerId":"c"}',
];
const badIds = ['', 'a%00b', 'a%0Ab', 'x'.repeat(300), 'a%7Fb', 'tab%09id', '%C2%85'];
const aggregates = ['account', 'order', 'nope', '__proto__', 'constructor', '', '%00'];
const commands = ['deposit', 'withdraw', 'place', 'toString', '__proto__', 'hasOwnProperty', ''];
const methods = ['GET', 'PUT', 'DELETE', 'PATCH', 'POST', 'OPTIONS'];
const contentTypes = ['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', 'multipart/form-data', ''];
const headerSets: Record<string, string>[] = [
  {},
  { 'if-match': 'garbage' },
  { 'if-match': '"-1"' },
  { 'idempotency-key': '' },
  { 'idempotency-key': 'k'.repeat(300) },
  { prefer: 'respond-async' },
  { authorization: 'Bearer nope' },
];

function send(method: string, path: string, headers: Record<string, string>, body: string): Promise<{ status: number; contentType: string; text: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(server.url);
    const request = httpRequest({ host: url.hostname, port: url.port, method, path, headers: { ...headers, ...(body === '' ? {} : { 'content-length': String(Buffer.byteLength(body)) }) } }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, contentType: String(response.headers['content-type'] ?? ''), text }));
    });
    request.on('error', reject);
    if (body !== '') request.write(body);
    request.end();
  });
}

async function countEvents(): Promise<number> {
  let total = 0;
  for (let partition = 0; partition < server.node.runtime.partitions; partition++) {
    total += (await server.node.runtime.partitionEvents({ partition, limit: 1_000 })).events.length;
  }
  return total;
}

describe('the gateway under random malformed requests', () => {
  it('answers every one with a 4xx problem+json, stays up, and writes nothing', async () => {
    const before = await countEvents();
    const { next, pick } = seededRandom(20261123);
    for (let round = 0; round < 400; round++) {
      const kind = next();
      let method = 'POST';
      let path: string;
      let body = pick(garbageBodies);
      const headers: Record<string, string> = { ...pick(headerSets) };
      const contentType = pick(contentTypes);
      if (contentType !== '') headers['content-type'] = contentType;
      if (kind < 0.5) {
        // A command route with a bad body, content type or header: never valid input for the command.
        path = `/commands/${pick(['account', 'order'])}/${pick(['f-1', 'f-2'])}/${pick(['deposit', 'withdraw', 'place', 'cancel'])}`;
      } else if (kind < 0.75) {
        path = `/commands/${pick(aggregates)}/${pick(badIds)}/${pick(commands)}`;
        body = '{"amount":1,"owner":"x"}';
        headers['content-type'] = 'application/json';
      } else {
        method = pick(methods);
        path = pick(['/', '/commands', '/commands/x', '/aggregates/account', `/aggregates/account/${pick(badIds)}?version=${pick(['-1', 'x', '1e9', ''])}`, '/views', '/%', '/..%2f..%2fetc/passwd']);
        if (method === 'GET') body = '';
      }
      const answer = await send(method, path, headers, body);
      const label = `${method} ${path} [${JSON.stringify(headers)}] ${body.slice(0, 60)}`;
      expect(answer.status, label).toBeGreaterThanOrEqual(400);
      expect(answer.status, label).toBeLessThan(500);
      expect(answer.contentType, label).toContain('application/problem+json');
      const problem = JSON.parse(answer.text) as { status: number; type: string; code: string };
      expect(problem.status, label).toBe(answer.status);
      expect(problem.code, label).toEqual(expect.any(String));
    }
    expect((await send('GET', '/healthz', {}, '')).status).toBe(200);
    expect(await countEvents()).toBe(before);
  });
});
