import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isNoResponders } from '../../runtime/bus/nats-errors.ts';
import { commandBatchSubject, decodeBatchRequest, encodeBatchReply, ForwardBatcher, type ForwardedItem } from '../../runtime/cluster/forward-batch.ts';
import { failureOf } from '../support/failure-of.ts';
import { startNatsServer, type NatsServer } from '../support/nats-server.ts';

let nats: NatsServer;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

function item(partition: number, commandId: string, input: unknown = { amount: 1 }): ForwardedItem {
  return { partition, epoch: 1, envelope: { commandId, aggregate: 'account', id: `acc-${partition}`, command: 'deposit', input } };
}

/** An owner that answers every item with its own command id (as its position), and counts the requests it got. */
function owner(nodeId: string): { requests: number[]; stop: () => void } {
  const requests: number[] = [];
  const subscription = nc.subscribe(commandBatchSubject('fb', nodeId), {
    callback: (error, message) => {
      if (error !== null) throw error;
      const items = decodeBatchRequest(message.data);
      requests.push(items.length);
      message.respond(
        encodeBatchReply(items.map(({ partition, envelope }) => ({ ok: true, result: { version: partition, position: envelope.commandId, events: [] } }))),
      );
    },
  });
  return { requests, stop: () => subscription.unsubscribe() };
}

describe('the forward batcher', () => {
  it('sends what one tick forwards to one owner as one request and hands each item its own answer', async () => {
    const a = owner('a');
    const b = owner('b');
    const batcher = new ForwardBatcher(nc, 'fb', () => 5_000);
    const replies = await Promise.all([
      batcher.send('a', item(1, 'c1')),
      batcher.send('b', item(2, 'c2')),
      batcher.send('a', item(3, 'c3')),
      batcher.send('a', item(4, 'c4')),
    ]);
    expect(replies.map((reply) => (reply.ok ? reply.result.position : 'error'))).toEqual(['c1', 'c2', 'c3', 'c4']);
    expect(a.requests).toEqual([3]);
    expect(b.requests).toEqual([1]);
    expect(batcher.requests).toBe(2);
    a.stop();
    b.stop();
  });

  it('splits a batch that would pass the server’s max payload, keeping every answer with its item', async () => {
    const a = owner('big');
    const batcher = new ForwardBatcher(nc, 'fb', () => 5_000);
    const chunk = 'x'.repeat(200_000);
    const count = Math.ceil((nc.info!.max_payload * 2) / chunk.length);
    const replies = await Promise.all(Array.from({ length: count }, (_, index) => batcher.send('big', item(index, `big-${index}`, { chunk }))));
    expect(replies.map((reply) => (reply.ok ? reply.result.position : 'error'))).toEqual(Array.from({ length: count }, (_, index) => `big-${index}`));
    expect(a.requests.length).toBeGreaterThan(2);
    expect(a.requests.reduce((sum, size) => sum + size, 0)).toBe(count);
    a.stop();
  });

  it('fails every item of a request nobody answers with the no-responders error', async () => {
    const batcher = new ForwardBatcher(nc, 'fb', () => 5_000);
    const failures = await Promise.all([failureOf(() => batcher.send('gone', item(1, 'g1'))), failureOf(() => batcher.send('gone', item(2, 'g2')))]);
    expect(failures.every((failure) => isNoResponders(failure))).toBe(true);
  });
});
