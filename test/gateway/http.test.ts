import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTokens } from '../../gateway/auth.ts';
import { startNode } from '../../gateway/node.ts';
import { http, startTestNode, type TestNode } from '../support/node.ts';
import { waitFor } from '../support/wait-for.ts';

let server: TestNode;
beforeAll(async () => {
  server = await startTestNode({ bodyLimit: 4096 });
});
afterAll(async () => {
  await server.stop();
});

const post = (path: string, json: unknown, headers: Record<string, string> = {}) => http(`${server.url}${path}`, { method: 'POST', json, headers });
const get = (path: string, headers: Record<string, string> = {}) => http(`${server.url}${path}`, { headers });

function expectProblem(answer: { status: number; contentType: string; body: unknown }, status: number, code?: string) {
  expect(answer.status).toBe(status);
  expect(answer.contentType).toContain('application/problem+json');
  expect(answer.body).toMatchObject({ status, type: expect.stringMatching(/^https:\/\//), title: expect.any(String), detail: expect.any(String) });
  if (code !== undefined) expect(answer.body).toMatchObject({ code });
}

describe('POST /commands/:aggregate/:id/:command', () => {
  it('commits and replies 200 with the version as ETag', async () => {
    const answer = await post('/commands/account/http-1/open', { owner: 'ada' });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('etag')).toBe('"1"');
    expect(answer.body).toMatchObject({ aggregate: 'account', id: 'http-1', version: 1, position: expect.stringMatching(/^\d+:\d+$/), events: [{ type: 'AccountOpened', version: 1 }] });
  });

  it('answers a repeated Idempotency-Key with the same status and body, and refuses it with another body', async () => {
    await post('/commands/account/http-2/open', { owner: 'ada' });
    const first = await post('/commands/account/http-2/deposit', { amount: 5 }, { 'idempotency-key': 'dep-http-2' });
    const again = await post('/commands/account/http-2/deposit', { amount: 5 }, { 'idempotency-key': 'dep-http-2' });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    const refusedOnce = await post('/commands/account/http-2/withdraw', { amount: 500 }, { 'idempotency-key': 'wd-http-2' });
    const refusedAgain = await post('/commands/account/http-2/withdraw', { amount: 500 }, { 'idempotency-key': 'wd-http-2' });
    expectProblem(refusedOnce, 422, 'insufficient-funds');
    expect(refusedAgain.body).toEqual(refusedOnce.body);
    expectProblem(await post('/commands/account/http-2/deposit', { amount: 6 }, { 'idempotency-key': 'dep-http-2' }), 422, 'SHARDLOG_IDEMPOTENCY_KEY_REUSED');
    expect(await get('/aggregates/account/http-2')).toMatchObject({ status: 200, body: { version: 2, state: { balance: 5 } } });
  });

  it('answers 412 with the current version when If-Match is stale', async () => {
    await post('/commands/account/http-3/open', { owner: 'ada' });
    const stale = await post('/commands/account/http-3/deposit', { amount: 1 }, { 'if-match': '"7"' });
    expectProblem(stale, 412, 'SHARDLOG_VERSION_MISMATCH');
    expect(stale.body).toMatchObject({ actualVersion: 1 });
    expect((await post('/commands/account/http-3/deposit', { amount: 1 }, { 'if-match': '"1"' })).status).toBe(200);
    expectProblem(await post('/commands/account/http-3/deposit', { amount: 1 }, { 'if-match': 'yesterday' }), 400, 'SHARDLOG_MALFORMED_REQUEST');
  });

  it('accepts Prefer: respond-async with 202 and a Location that reports the outcome', async () => {
    const accepted = await post('/commands/account/http-4/open', { owner: 'ada' }, { prefer: 'respond-async' });
    expect(accepted.status).toBe(202);
    const location = accepted.headers.get('location');
    expect(location).toMatch(/^\/commands\/.+/);
    let status: unknown;
    await waitFor(async () => {
      status = (await get(location!)).body;
      return (status as { status: string }).status !== 'pending';
    });
    expect(status).toMatchObject({ status: 'committed', reply: { aggregate: 'account', id: 'http-4', version: 1 } });
    const rejected = await post('/commands/account/http-4/open', { owner: 'bob' }, { prefer: 'respond-async', 'idempotency-key': 'async-reject' });
    expect(rejected.status).toBe(202);
    await waitFor(async () => ((await get('/commands/async-reject')).body as { status: string }).status !== 'pending');
    expect((await get('/commands/async-reject')).body).toMatchObject({ status: 'rejected', problem: { status: 422, code: 'account-already-opened' } });
    // Invalid input is refused at once, not accepted.
    expectProblem(await post('/commands/account/http-4/deposit', { amount: 'x' }, { prefer: 'respond-async' }), 400, 'SHARDLOG_INVALID_INPUT');
  });

  it('reports a synchronous command by id from the log', async () => {
    await post('/commands/account/http-5/open', { owner: 'ada' }, { 'idempotency-key': 'sync-open-5' });
    expect(await get('/commands/sync-open-5')).toMatchObject({ status: 200, body: { status: 'committed', reply: { id: 'http-5', version: 1 } } });
    expectProblem(await get('/commands/never-sent'), 404, 'SHARDLOG_NOT_FOUND');
  });

  it('accepts JSON with a UTF-8 charset parameter and refuses other charsets', async () => {
    expect((await http(`${server.url}/commands/account/http-8/open`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: '{"owner":"ada"}' })).status).toBe(200);
    expectProblem(await http(`${server.url}/commands/account/http-8/deposit`, { method: 'POST', headers: { 'content-type': 'application/json; charset=latin1' }, body: '{"amount":1}' }), 415);
  });

  it('takes an empty body as empty input, but not JSON null', async () => {
    await post('/commands/account/http-7/open', { owner: 'ada' });
    expectProblem(await http(`${server.url}/commands/account/http-7/close`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'null' }), 400, 'SHARDLOG_INVALID_INPUT');
    expect((await http(`${server.url}/commands/account/http-7/close`, { method: 'POST' })).status).toBe(200);
  });

  it('refuses bad requests with problem+json', async () => {
    expectProblem(await post('/commands/account/http-6/deposit', { amount: -1 }), 400, 'SHARDLOG_INVALID_INPUT');
    const schema = await post('/commands/order/o-1/place', { customerId: 'c', items: [{ sku: 's', quantity: 0, unitPrice: 1 }] });
    expect(schema.body).toMatchObject({ issues: [{ path: ['items', '0', 'quantity'] }] });
    expectProblem(await http(`${server.url}/commands/account/http-6/open`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"owner":' }), 400, 'SHARDLOG_MALFORMED_REQUEST');
    expectProblem(await http(`${server.url}/commands/account/http-6/open`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"owner":"x","__proto__":{"admin":true}}' }), 400);
    expectProblem(await http(`${server.url}/commands/account/http-6/open`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"owner":"x","constructor":{"prototype":{}}}' }), 400);
    expectProblem(await http(`${server.url}/commands/account/http-6/open`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `${'['.repeat(200)}${']'.repeat(200)}` }), 400);
    expectProblem(await http(`${server.url}/commands/account/http-6/open`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'owner=ada' }), 415, 'SHARDLOG_UNSUPPORTED_MEDIA_TYPE');
    expectProblem(await post('/commands/account/http-6/open', { owner: 'x'.repeat(5000) }), 413, 'SHARDLOG_BODY_TOO_LARGE');
    expectProblem(await post('/commands/nope/http-6/open', {}), 404, 'SHARDLOG_UNKNOWN_AGGREGATE');
    expectProblem(await post('/commands/account/http-6/explode', {}), 404, 'SHARDLOG_UNKNOWN_COMMAND');
    expectProblem(await post(`/commands/account/${'x'.repeat(300)}/open`, { owner: 'a' }), 400, 'SHARDLOG_INVALID_ID');
    expectProblem(await post('/commands/account/a%0Ab/open', { owner: 'a' }), 400, 'SHARDLOG_INVALID_ID');
    expectProblem(await post('/nowhere', {}), 404, 'SHARDLOG_NOT_FOUND');
    expectProblem(await http(`${server.url}/commands/account/x/open`, { method: 'DELETE' }), 404);
  });
});

describe('GET /aggregates/:aggregate/:id', () => {
  it('serves state now, at a version and at a time, and 404 for an id with no events', async () => {
    await post('/commands/account/read-1/open', { owner: 'ada' });
    await post('/commands/account/read-1/deposit', { amount: 10 });
    const now = await get('/aggregates/account/read-1');
    expect(now).toMatchObject({ status: 200, body: { version: 2, state: { balance: 10 } } });
    expect(now.headers.get('etag')).toBe('"2"');
    expect(await get('/aggregates/account/read-1?version=1')).toMatchObject({ status: 200, body: { version: 1, state: { balance: 0 } } });
    expect(await get(`/aggregates/account/read-1?at=${encodeURIComponent(new Date().toISOString())}`)).toMatchObject({ status: 200, body: { version: 2 } });
    expectProblem(await get('/aggregates/account/read-1?at=2000-01-01T00:00:00Z'), 404, 'SHARDLOG_NOT_FOUND');
    expectProblem(await get('/aggregates/account/read-1?version=9'), 400, 'SHARDLOG_INVALID_QUERY');
    expectProblem(await get('/aggregates/account/read-1?version=abc'), 400, 'SHARDLOG_INVALID_QUERY');
    expectProblem(await get('/aggregates/account/nobody'), 404, 'SHARDLOG_NOT_FOUND');
    expectProblem(await get('/aggregates/nope/read-1'), 404, 'SHARDLOG_UNKNOWN_AGGREGATE');
  });

  it('pages through events', async () => {
    await post('/commands/account/read-2/open', { owner: 'ada' });
    for (let index = 0; index < 4; index++) await post('/commands/account/read-2/deposit', { amount: index + 1 });
    const page = await get('/aggregates/account/read-2/events?after=1&limit=2');
    expect(page.body).toMatchObject({ events: [{ type: 'Deposited', version: 2, data: { amount: 1 } }, { version: 3 }] });
    expect((page.body as { events: object[] }).events[0]).toEqual({ type: 'Deposited', version: 2, position: expect.any(String), data: { amount: 1 }, recordedAt: expect.any(String) });
    expectProblem(await get('/aggregates/account/read-2/events?limit=0'), 400, 'SHARDLOG_INVALID_QUERY');
    expectProblem(await get('/aggregates/account/nobody/events'), 404, 'SHARDLOG_NOT_FOUND');
  });
});

describe('operations', () => {
  it('reports liveness, readiness, metrics and OpenAPI', async () => {
    expect(await get('/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await get('/readyz')).toMatchObject({ status: 200, body: { status: 'ready', shards: [{ status: 'serving' }, { status: 'serving' }] } });
    await post('/commands/account/ops-1/open', { owner: 'ada' });
    const metrics = (await get('/metrics')).body as string;
    expect(metrics).toMatch(/shardlog_commands_total\{aggregate="account",command="open",outcome="committed"\} [1-9]/);
    expect(metrics).toContain('shardlog_batch_size_bucket');
    // The open committed one transaction on its shard, timed there.
    expect(metrics).toMatch(/shardlog_commit_duration_seconds_count\{shard="\d"\} [1-9]/);
    expect(metrics).toContain('shardlog_shard_queue_depth{shard="0"}');
    expect(metrics).toMatch(/shardlog_events_appended_total\{shard="\d"\} [1-9]/);
    const openapi = (await get('/openapi.json')).body as { openapi: string; paths: Record<string, { post?: { requestBody: unknown } }> };
    expect(openapi.openapi).toBe('3.1.0');
    expect(openapi.paths['/commands/account/{id}/deposit']?.post?.requestBody).toMatchObject({
      content: { 'application/json': { schema: { type: 'object', properties: { amount: { type: 'number', exclusiveMinimum: 0 } } } } },
    });
  });
});

describe('overload', () => {
  it('answers 503 with Retry-After past the shard queue bound, and loses nothing it accepted', async () => {
    const small = await startTestNode({ shards: 1, tuning: { maxQueuedCommands: 2 } });
    try {
      await http(`${small.url}/commands/account/hot/open`, { method: 'POST', json: { owner: 'ada' } });
      const answers = await Promise.all(Array.from({ length: 200 }, () => http(`${small.url}/commands/account/hot/deposit`, { method: 'POST', json: { amount: 1 } })));
      const overloaded = answers.filter((answer) => answer.status === 503);
      const committed = answers.filter((answer) => answer.status === 200);
      expect(overloaded.length).toBeGreaterThan(0);
      expect(overloaded[0]?.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(overloaded[0]?.body).toMatchObject({ code: 'SHARDLOG_OVERLOADED' });
      expect(committed.length + overloaded.length).toBe(200);
      expect((await http(`${small.url}/aggregates/account/hot`)).body).toMatchObject({ version: 1 + committed.length, state: { balance: committed.length } });
      // Accepted-for-later (202) is only said of commands that were queued.
      const asyncAnswers = await Promise.all(
        Array.from({ length: 100 }, () => http(`${small.url}/commands/account/hot/deposit`, { method: 'POST', json: { amount: 1 }, headers: { prefer: 'respond-async' } })),
      );
      expect(asyncAnswers.every((answer) => answer.status === 202 || answer.status === 503)).toBe(true);
      expect(asyncAnswers.some((answer) => answer.status === 503)).toBe(true);
    } finally {
      await small.stop();
    }
  });
});

describe('auth', () => {
  const tokens = parseTokens(
    JSON.stringify({
      tokens: [
        { name: 'teller', token: 'teller-token-0123456789', scopes: ['command:account:deposit', 'command:account:open'] },
        { name: 'auditor', token: 'auditor-token-0123456789', scopes: ['read'] },
        { name: 'ops', token: 'ops-token-0123456789abc', scopes: ['admin'] },
      ],
    }),
    'test',
  );

  it('checks bearer tokens and scopes', async () => {
    const secured = await startTestNode({ tokens });
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
    try {
      const call = (path: string, json: unknown, headers: Record<string, string> = {}) => http(`${secured.url}${path}`, { method: 'POST', json, headers });
      expectProblem(await call('/commands/account/a/open', { owner: 'x' }), 401, 'SHARDLOG_UNAUTHENTICATED');
      // Authentication comes before the body is read.
      expectProblem(await http(`${secured.url}/commands/account/a/open`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' }), 401);
      expectProblem(await call('/commands/account/a/open', { owner: 'x' }, bearer('wrong-token-000000000')), 401);
      expect((await call('/commands/account/a/open', { owner: 'x' }, bearer('teller-token-0123456789'))).status).toBe(200);
      expectProblem(await call('/commands/account/a/withdraw', { amount: 1 }, bearer('teller-token-0123456789')), 403, 'SHARDLOG_FORBIDDEN');
      expectProblem(await http(`${secured.url}/aggregates/account/a`, { headers: bearer('teller-token-0123456789') }), 403);
      expect((await http(`${secured.url}/aggregates/account/a`, { headers: bearer('auditor-token-0123456789') })).status).toBe(200);
      expectProblem(await call('/commands/account/a/deposit', { amount: 1 }, bearer('auditor-token-0123456789')), 403);
      expect((await call('/commands/account/a/withdraw', { amount: 1 }, bearer('ops-token-0123456789abc'))).status).toBe(422);
      expectProblem(await http(`${secured.url}/metrics`), 401);
      expect((await http(`${secured.url}/metrics`, { headers: bearer('ops-token-0123456789abc') })).status).toBe(200);
      expect((await http(`${secured.url}/healthz`)).status).toBe(200);
    } finally {
      await secured.stop();
    }
  });

  it('refuses to serve beyond loopback with auth off unless told it is insecure', async () => {
    await expect(
      startNode({
        port: 0,
        host: '0.0.0.0',
        dataDir: '/nonexistent-never-created',
        appModule: new URL('../../actors/app.ts', import.meta.url).href,
        durability: 'fsync',
        nodeId: 't',
        tokens: [],
        insecure: false,
        bodyLimit: 1024,
        logLevel: 'silent',
      }),
    ).rejects.toMatchObject({ code: 'SHARDLOG_INVALID_CONFIG', message: expect.stringContaining('--insecure') });
  });
});
