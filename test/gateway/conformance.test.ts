import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toProblem } from '../../gateway/problem.ts';
import { makeError, RejectedError } from '../../runtime/index.ts';
import { http, startTestNode, type TestNode } from '../support/node.ts';

let server: TestNode;
beforeAll(async () => {
  server = await startTestNode();
});
afterAll(async () => {
  await server.stop();
});

const post = (path: string, json: unknown) => http(`${server.url}${path}`, { method: 'POST', json });
const get = (path: string) => http(`${server.url}${path}`);

function expectProblem(answer: { status: number; contentType: string; body: unknown }, status: number, code: string) {
  expect(answer.contentType).toContain('application/problem+json');
  expect(answer.body).toMatchObject({ status, code, type: expect.stringMatching(/^https:\/\//), title: expect.any(String), detail: expect.any(String) });
  expect(answer.status).toBe(status);
}

describe('amounts the domain cannot represent', () => {
  it('refuses a unit price that would make the total Infinity, as invalid input', async () => {
    const answer = await post('/commands/order/huge-1/place', { customerId: 'c1', items: [{ sku: 'a', quantity: 2, unitPrice: 1e308 }] });
    expectProblem(answer, 400, 'SHARDLOG_INVALID_INPUT');
    expect(answer.body).toMatchObject({ issues: [{ path: ['items', '0', 'unitPrice'] }] });
    expectProblem(await get('/aggregates/order/huge-1'), 404, 'SHARDLOG_NOT_FOUND');
  });

  it('takes the largest order the schema allows and keeps its total exact', async () => {
    const items = Array.from({ length: 3 }, (_, index) => ({ sku: `s${index}`, quantity: 1_000_000, unitPrice: 1_000_000 }));
    expect((await post('/commands/order/huge-2/place', { customerId: 'c1', items })).status).toBe(200);
    expect(await get('/aggregates/order/huge-2')).toMatchObject({ status: 200, body: { state: { total: 3e12 } } });
  });

  it('keeps an account balance finite: deposits of 1e308 are refused as input, and the account can still close', async () => {
    expect((await post('/commands/account/rich-1/open', { owner: 'ada' })).status).toBe(200);
    for (let deposit = 0; deposit < 2; deposit++) {
      expectProblem(await post('/commands/account/rich-1/deposit', { amount: 1e308 }), 400, 'SHARDLOG_INVALID_INPUT');
    }
    expect(await get('/aggregates/account/rich-1')).toMatchObject({ status: 200, body: { state: { balance: 0 }, version: 1 } });
    expect((await post('/commands/account/rich-1/close', {})).status).toBe(200);
  });
});

describe('problem documents', () => {
  it('never let error data replace type, title, status, detail or code', () => {
    const problem = toProblem(makeError('SHARDLOG_INVALID_EVENT', 'bad', { type: 'OrderPlaced', status: 200, title: 't', code: 'x', detail: 'd', event: 'OrderPlaced' }));
    expect(problem).toMatchObject({ type: 'https://shardlog.dev/problems/invalid-event', status: 500, code: 'SHARDLOG_INVALID_EVENT', detail: 'bad', title: 'Invalid event', event: 'OrderPlaced' });
  });

  it("never let a domain rejection's data replace them either, and keep its other fields", () => {
    const problem = toProblem(new RejectedError('insufficient-funds', 'low', { type: 'x', status: 200, title: 'y', balance: 3 }));
    expect(problem).toEqual({ type: 'https://shardlog.dev/problems/rejected', title: 'Rejected by the domain', status: 422, detail: 'low', code: 'insufficient-funds', balance: 3 });
  });
});

describe('GET /aggregates/:aggregate/:id', () => {
  it('answers 404 for a version of an aggregate with no events, as without ?version', async () => {
    expectProblem(await get('/aggregates/account/never-seen'), 404, 'SHARDLOG_NOT_FOUND');
    expectProblem(await get('/aggregates/account/never-seen?version=1'), 404, 'SHARDLOG_NOT_FOUND');
  });

  it('still answers 400 for a version past the current one of an aggregate that exists', async () => {
    await post('/commands/account/versioned-1/open', { owner: 'ada' });
    expect(await get('/aggregates/account/versioned-1?version=1')).toMatchObject({ status: 200, body: { version: 1 } });
    const past = await get('/aggregates/account/versioned-1?version=2');
    expectProblem(past, 400, 'SHARDLOG_INVALID_QUERY');
    expect(past.body).toMatchObject({ currentVersion: 1 });
  });
});

describe('an event its own schema refuses', () => {
  it('is the command\'s fault over HTTP: 422 SHARDLOG_EVENT_REFUSED, nothing written', async () => {
    const probeNode = await startTestNode({ appModule: new URL('../fixtures/probe-app.ts', import.meta.url).href });
    try {
      const answer = await http(`${probeNode.url}/commands/probe/p1/invalid`, { method: 'POST', json: {} });
      expectProblem(answer, 422, 'SHARDLOG_EVENT_REFUSED');
      expect(answer.body).toMatchObject({ type: 'https://shardlog.dev/problems/event-refused', event: 'Touched', issues: [{ path: ['n'] }] });
      expectProblem(await http(`${probeNode.url}/aggregates/probe/p1`), 404, 'SHARDLOG_NOT_FOUND');
    } finally {
      await probeNode.stop();
    }
  });
});

describe('aggregate ids as the document gives them', () => {
  it('takes the longest id in ASCII and in characters outside the BMP alike', async () => {
    // 256 code points, as the document's maxLength counts: the emoji id is 512 UTF-16 units.
    for (const id of ['a'.repeat(256), 'é'.repeat(256), '😀'.repeat(256)]) {
      const answer = await post(`/commands/account/${encodeURIComponent(id)}/open`, { owner: 'ada' });
      expect(answer.status, id.slice(0, 4)).toBe(200);
      expect((await get(`/aggregates/account/${encodeURIComponent(id)}`)).status).toBe(200);
    }
  });

  it('refuses an id of 257 characters as SHARDLOG_INVALID_ID', async () => {
    expectProblem(await post(`/commands/account/${'a'.repeat(257)}/open`, { owner: 'ada' }), 400, 'SHARDLOG_INVALID_ID');
    expectProblem(await post(`/commands/account/${encodeURIComponent('😀'.repeat(257))}/open`, { owner: 'ada' }), 400, 'SHARDLOG_INVALID_ID');
  });
});
