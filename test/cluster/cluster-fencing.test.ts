import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BusEvent } from '../../runtime/bus/bus-event.ts';
import { encodeBatch, msgIdOf, subjectOf } from '../../runtime/bus/event-message.ts';
import { partitionOf } from '../../runtime/index.ts';
import { startNatsServer, type NatsServer } from '../support/nats-server.ts';
import { http, startTestNode, type TestNode } from '../support/node.ts';
import { streamEvents, streamInvariants } from '../support/stream-events.ts';

let nats: NatsServer;
let node: TestNode;

beforeAll(async () => {
  nats = await startNatsServer();
  node = await startTestNode({ nodeId: 'stale', nats: { servers: nats.url, prefix: 'shardlog' }, cluster: true, partitions: 8 });
  for (const deadline = Date.now() + 20_000; ((await http(`${node.url}/readyz`)).body as { cluster: { owned: number } }).cluster.owned < 8; ) {
    if (Date.now() > deadline) throw new Error('the node never took its partitions');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
});

afterAll(async () => {
  await node.stop();
  await nats.stop();
});

describe('fencing', () => {
  it('a node whose partition another writer appended to cannot append to it: its command is refused, never published, and succeeds once it has caught up', async () => {
    const deposit = (key: string) => http(`${node.url}/commands/account/fenced-1/deposit`, { method: 'POST', json: { amount: 10 }, headers: { 'idempotency-key': key } });
    expect((await http(`${node.url}/commands/account/fenced-1/open`, { method: 'POST', json: { owner: 'ann' } })).status).toBe(200);
    const first = await deposit('first');
    expect(first.status).toBe(200);
    const [partition, seq] = (first.body as { position: string }).position.split(':').map(Number) as [number, number];
    expect(partition).toBe(partitionOf('account/fenced-1', 8));

    // Another owner (the partition was reassigned while this node was cut off) appends next.
    const nc = await connect({ servers: nats.url });
    const foreign: BusEvent = {
      partition,
      seq: seq + 1,
      aggregate: 'account',
      id: 'fenced-1',
      type: 'Deposited',
      version: 3,
      schemaVersion: 1,
      data: { amount: 1 },
      metadata: { commandId: 'written-elsewhere' },
      recordedAt: Date.now(),
    };
    const subject = subjectOf('shardlog', partition);
    const js = jetstream(nc);
    const last = await (await import('@nats-io/jetstream')).jetstreamManager(nc).then((jsm) => jsm.streams.getMessage('SHARDLOG_EVENTS', { last_by_subj: subject }));
    await js.publish(subject, encodeBatch({ partition, firstSeq: seq + 1, events: [foreign] }), { msgID: msgIdOf(partition, seq + 1), expect: { lastSubjectSequence: last!.seq } });
    await nc.close();

    // This node still believes it owns the partition: its write commits locally, JetStream refuses it.
    const stale = await deposit('second');
    expect(stale.status).toBe(503);
    expect((stale.body as { code: string }).code).toBe('SHARDLOG_PARTITION_FENCED');
    expect(stale.headers.get('retry-after')).not.toBeNull();

    // The KV still names it owner: it takes the partition again from the stream, dropping its unconfirmed write; the retry applies once.
    let retried = await deposit('second');
    for (const deadline = Date.now() + 15_000; retried.status === 503 && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      retried = await deposit('second');
    }
    expect(retried.status).toBe(200);
    expect((retried.body as { version: number }).version).toBe(4);
    const events = (await streamEvents(nats.url)).filter((event) => event.partition === partition);
    expect(streamInvariants(events)).toEqual([]);
    expect(events.map((event) => event.metadata.commandId).filter((id) => id === 'second')).toHaveLength(1);
    expect(events.some((event) => event.metadata.commandId === 'written-elsewhere')).toBe(true);
    const state = await http(`${node.url}/aggregates/account/fenced-1`);
    expect(state.body).toMatchObject({ version: 4, state: { balance: 21 } });
  }, 60_000);
});
