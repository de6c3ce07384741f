import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { decodeCursor } from '../../gateway/event-stream-cursor.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { http, startTestNode } from '../support/node.ts';
import { subscribe } from '../support/sse-client.ts';
import { waitFor } from '../support/wait-for.ts';

const cleanup = cleanupAfterEach();

async function post(url: string, path: string, json: unknown) {
  const answer = await http(`${url}${path}`, { method: 'POST', json });
  expect(answer.status).toBe(200);
  return answer.body as { position: string };
}

describe('GET /events', () => {
  it('streams live events in per-partition order, filtered by aggregate, type and id', async () => {
    const { url, stop } = await startTestNode();
    cleanup.push(stop);
    await post(url, '/commands/account/before/open', { owner: 'old' });
    const all = await subscribe(`${url}/events`);
    cleanup.push(all.close);
    expect(all.response.headers.get('content-type')).toContain('text/event-stream');
    const orders = await subscribe(`${url}/events?aggregate=order`);
    cleanup.push(orders.close);
    const deposits = await subscribe(`${url}/events?type=Deposited`);
    cleanup.push(deposits.close);
    const one = await subscribe(`${url}/events?aggregate=account&id=a-1`);
    cleanup.push(one.close);
    await waitFor(() => all.messages.length > 0);

    for (let index = 0; index < 4; index++) {
      await post(url, `/commands/account/a-${index}/open`, { owner: 'x' });
      await post(url, `/commands/account/a-${index}/deposit`, { amount: index + 1 });
    }
    await post(url, '/commands/order/o-1/place', { customerId: 'c1', items: [{ sku: 's', quantity: 1, unitPrice: 2 }] });

    // The order starts the order-fulfilment saga, whose events (and the cancel it sends: sku
    // `s` is out of stock) stream too: count what this test wrote.
    const written = () => all.events().filter((message) => message.data!.aggregate === 'account' || message.event === 'order.OrderPlaced');
    await waitFor(() => written().length === 9 && orders.events().length >= 1 && deposits.events().length === 4 && one.events().length === 2);
    expect(all.events().some((message) => message.data!.id === 'before')).toBe(false);
    const byPartition = new Map<string, number[]>();
    for (const message of all.events()) {
      const [partition, seq] = message.data!.position.split(':');
      byPartition.set(partition!, [...(byPartition.get(partition!) ?? []), Number(seq)]);
    }
    for (const seqs of byPartition.values()) expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(orders.events()[0]).toMatchObject({ event: 'order.OrderPlaced', data: { aggregate: 'order', id: 'o-1', type: 'OrderPlaced', version: 1, data: { customerId: 'c1', total: 2 } } });
    expect(deposits.events().map((message) => message.data!.data)).toEqual(expect.arrayContaining([{ amount: 1 }, { amount: 2 }, { amount: 3 }, { amount: 4 }]));
    expect(one.events().map((message) => message.event)).toEqual(['account.AccountOpened', 'account.Deposited']);
  });

  it('resumes with Last-Event-ID exactly: nothing missed, nothing twice; from=start replays everything', async () => {
    const { url, stop, node } = await startTestNode();
    cleanup.push(stop);
    const first = await subscribe(`${url}/events`);
    await waitFor(() => first.messages.length > 0);
    for (let index = 0; index < 10; index++) await post(url, `/commands/account/r-${index}/open`, { owner: 'r' });
    await waitFor(() => first.events().length === 10);
    const lastId = first.events().at(-1)!.id!;
    await first.close();

    for (let index = 10; index < 25; index++) await post(url, `/commands/account/r-${index}/open`, { owner: 'r' });
    const resumed = await subscribe(`${url}/events`, { 'last-event-id': lastId });
    cleanup.push(resumed.close);
    for (let index = 25; index < 30; index++) await post(url, `/commands/account/r-${index}/open`, { owner: 'r' });
    // Nothing more is due once the last event's cursor has reached every partition's head.
    const heads = node.runtime.knownHeads();
    const caughtUp = () => {
      const lastSeen = resumed.events().at(-1)?.id;
      if (lastSeen === undefined) return false;
      const cursor = decodeCursor(lastSeen, node.runtime.partitions);
      return [...heads].every(([partition, head]) => cursor[partition]! >= head);
    };
    await waitFor(caughtUp);
    const ids = [...first.events(), ...resumed.events()].map((message) => message.data!.id).sort();
    expect(ids).toEqual(Array.from({ length: 30 }, (_, index) => `r-${index}`).sort());

    const replay = await subscribe(`${url}/events?from=start`);
    cleanup.push(replay.close);
    await waitFor(() => replay.events().length === 30);
  });

  it('refuses a malformed cursor or filter with problem+json', async () => {
    const { url, stop } = await startTestNode();
    cleanup.push(stop);
    for (const [path, headers, code] of [
      ['/events', { 'last-event-id': 'garbage' }, 'SHARDLOG_INVALID_QUERY'],
      ['/events', { 'last-event-id': 'v1.kgE' }, 'SHARDLOG_INVALID_QUERY'],
      ['/events?aggregate=nope', {}, 'SHARDLOG_UNKNOWN_AGGREGATE'],
      ['/events?type=Nope', {}, 'SHARDLOG_INVALID_QUERY'],
      ['/events?id=x', {}, 'SHARDLOG_INVALID_QUERY'],
      ['/events?from=yesterday', {}, 'SHARDLOG_INVALID_QUERY'],
    ] as const) {
      const answer = await http(`${url}${path}`, { headers });
      expect(answer.contentType, path).toContain('application/problem+json');
      expect(answer.body, path).toMatchObject({ code });
    }
  });

  it('sends heartbeats, cuts off a client that stops reading, and ends streams when the node closes', async () => {
    const test = await startTestNode({ eventStream: { heartbeatMs: 50, maxBufferedBytes: 16 * 1024 } });
    const beating = await subscribe(`${test.url}/events`);
    await waitFor(() => beating.messages.some((message) => message.comment === 'heartbeat'));

    // A client that stops reading: its socket fills, then the server gives up on it.
    const { port } = new URL(test.url);
    const serverSockets = new Map<number | undefined, Socket>();
    test.node.gateway.server.on('connection', (socket: Socket) => serverSockets.set(socket.remotePort, socket));
    let received = 0;
    let closed = false;
    const stalled = connect(Number(port), '127.0.0.1', () => stalled.write('GET /events HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n'));
    stalled.once('data', () => stalled.pause());
    stalled.on('data', (chunk: Buffer) => (received += chunk.length));
    stalled.on('close', () => (closed = true));
    stalled.on('error', () => undefined);
    await waitFor(() => received > 0);
    const cutOff = serverSockets.get(stalled.localPort);
    if (cutOff === undefined) throw new Error('the server never saw the stalled client connect');
    const items = Array.from({ length: 40 }, () => ({ sku: 'x'.repeat(100), quantity: 1, unitPrice: 1 }));
    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: 100 }, (_, index) => post(test.url, `/commands/order/o-${round}-${index}/place`, { customerId: 'c'.repeat(200), items })));
    }
    // Reading again once the server has dropped it, it finds its stream was cut: it ends long
    // before the 2 MB it was owed.
    await waitFor(() => cutOff.destroyed, { timeoutMs: 30_000 });
    stalled.resume();
    await waitFor(() => closed, { timeoutMs: 20_000 });
    expect(received).toBeLessThan(1024 * 1024);
    expect((await http(`${test.url}/healthz`)).status).toBe(200);

    await test.stop();
    await waitFor(() => beating.ended);
  });
});
