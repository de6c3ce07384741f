import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BusEvent } from '../../runtime/bus/bus-event.ts';
import { encodeBatch, msgIdOf, subjectOf } from '../../runtime/bus/event-message.ts';
import { ensureEventStream } from '../../runtime/bus/jetstream-relay.ts';
import { catchUpPartition } from '../../runtime/cluster/partition-catch-up.ts';
import { startNatsServer, type NatsServer } from '../support/nats-server.ts';

let nats: NatsServer;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc.close();
  await nats.stop();
});

/** Events of partition 3: commands c1 (2 events), c2 (3), c3 (1), other partitions interleaved in the stream. */
function eventsOf(commands: [string, number][]): BusEvent[] {
  const events: BusEvent[] = [];
  for (const [commandId, count] of commands) {
    for (let index = 0; index < count; index++) {
      events.push({ partition: 3, seq: events.length + 1, aggregate: 'account', id: commandId, type: 'Deposited', version: index + 1, schemaVersion: 1, data: { amount: 1 }, metadata: { commandId }, recordedAt: 1 });
    }
  }
  return events;
}

describe('copying a partition from the stream', () => {
  it('copies from after the local head up to the tail, never splitting a command across appends, and can start from a known stream sequence', async () => {
    const jsm = await jetstreamManager(nc);
    const stream = await ensureEventStream(jsm, 'copy');
    const js = jetstream(nc);
    const events = eventsOf([
      ['c1', 2],
      ['c2', 3],
      ['c3', 1],
    ]);
    let lastSubjectSeq = 0;
    for (const [from, to] of [
      [0, 3],
      [3, 5],
      [5, 6],
    ] as const) {
      const batch = { partition: 3, firstSeq: events[from]!.seq, events: events.slice(from, to) };
      lastSubjectSeq = (await js.publish(subjectOf('copy', 3), encodeBatch(batch), { msgID: msgIdOf(3, batch.firstSeq), expect: { lastSubjectSequence: lastSubjectSeq } })).seq;
      await js.publish(subjectOf('copy', 4), encodeBatch({ partition: 4, firstSeq: from + 1, events: [] }));
    }

    const appended: BusEvent[][] = [];
    const warnings: string[] = [];
    const logger = { warn: (_details: object, message: string) => void warnings.push(message) };
    const copy = (localHead: number, fromStreamSeq?: number) =>
      catchUpPartition({ js, jsm, stream, prefix: 'copy', partition: 3, localHead, chunk: 4, logger, ...(fromStreamSeq === undefined ? {} : { fromStreamSeq }), append: (chunk) => {
          appended.push(chunk);
          return Promise.resolve();
        } });

    const all = await copy(0);
    expect(all.head).toBe(6);
    expect(all.streamSeq).toBe(lastSubjectSeq);
    expect(appended.flat().map((event) => event.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const chunk of appended) {
      const first = chunk[0]!.metadata.commandId;
      const last = chunk.at(-1)!.metadata.commandId;
      // A command's events are all in one append.
      expect(appended.filter((other) => other !== chunk && other.some((event) => event.metadata.commandId === first || event.metadata.commandId === last))).toEqual([]);
    }

    appended.length = 0;
    expect((await copy(4)).head).toBe(6);
    expect(appended.flat().map((event) => event.seq)).toEqual([5, 6]);

    appended.length = 0;
    expect((await copy(5, lastSubjectSeq)).head).toBe(6);
    expect(appended.flat().map((event) => event.seq)).toEqual([6]);

    appended.length = 0;
    expect((await copy(6)).head).toBe(6);
    expect(appended).toEqual([]);
    // Every copy deleted its consumer.
    expect(warnings).toEqual([]);
  });
});
