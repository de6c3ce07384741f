import { jetstream, jetstreamManager, JetStreamApiCodes } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isConnectionClosed, isNatsOutage, isNoResponders, isStreamNotFound, isTimeout, isWrongLastSequence, jetStreamApiCodeOf } from '../../runtime/bus/nats-errors.ts';
import { startNatsServer, type NatsServer } from '../support/nats-server.ts';
import { failureOf } from '../support/failure-of.ts';

let nats: NatsServer;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url, noAsyncTraces: true });
});

afterAll(async () => {
  await nc.close();
  await nats.stop();
});

/** Every recogniser's verdict, so each case shows which ones say yes and that the others say no. */
function verdicts(error: unknown) {
  return {
    noResponders: isNoResponders(error),
    timeout: isTimeout(error),
    closed: isConnectionClosed(error),
    outage: isNatsOutage(error),
    wrongLastSequence: isWrongLastSequence(error),
    streamNotFound: isStreamNotFound(error),
  };
}

const none = { noResponders: false, timeout: false, closed: false, outage: false, wrongLastSequence: false, streamNotFound: false };

describe('recognising NATS failures by class and code', () => {
  it('recognises a request nobody serves as no responders: an outage, not a conflict', async () => {
    const error = await failureOf(() => nc.request('nobody.listens.here', new Uint8Array(), { timeout: 5_000 }));
    expect(verdicts(error)).toEqual({ ...none, noResponders: true, outage: true });
  });

  it('recognises JetStream that nobody serves (reported as JetStreamNotEnabled, caused by no responders) as no responders', async () => {
    const error = await failureOf(() => jetstreamManager(nc, { apiPrefix: 'no.such.api' }));
    expect(verdicts(error)).toEqual({ ...none, noResponders: true, outage: true });
  });

  it('recognises a request the responder never answers as a timeout', async () => {
    const silent = nc.subscribe('silent.responder');
    try {
      const error = await failureOf(() => nc.request('silent.responder', new Uint8Array(), { timeout: 200 }));
      expect(verdicts(error)).toEqual({ ...none, timeout: true, outage: true });
    } finally {
      silent.unsubscribe();
    }
  });

  it('recognises a publish whose expected last subject sequence is stale as a wrong last sequence (10071)', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'STALE', subjects: ['stale.>'] });
    const js = jetstream(nc);
    const first = await js.publish('stale.p', new Uint8Array([1]), { expect: { lastSubjectSequence: 0 } });
    expect(first.seq).toBe(1);
    const error = await failureOf(() => js.publish('stale.p', new Uint8Array([2]), { expect: { lastSubjectSequence: 0 } }));
    expect(jetStreamApiCodeOf(error)).toBe(JetStreamApiCodes.StreamWrongLastSequence);
    expect(verdicts(error)).toEqual({ ...none, wrongLastSequence: true });
  });

  it('recognises a KV create of an existing key and an update at a stale revision as a lost compare-and-set', async () => {
    const kv = await new Kvm(nc).create('CONFLICTS', { history: 1 });
    const revision = await kv.create('key', new TextEncoder().encode('one'));
    const created = await failureOf(() => kv.create('key', new TextEncoder().encode('two')));
    expect(verdicts(created)).toEqual({ ...none, wrongLastSequence: true });
    await kv.update('key', new TextEncoder().encode('three'), revision);
    const updated = await failureOf(() => kv.update('key', new TextEncoder().encode('four'), revision));
    expect(verdicts(updated)).toEqual({ ...none, wrongLastSequence: true });
  });

  it('recognises a missing stream (10059)', async () => {
    const jsm = await jetstreamManager(nc);
    const error = await failureOf(() => jsm.streams.info('NO_SUCH_STREAM'));
    expect(jetStreamApiCodeOf(error)).toBe(JetStreamApiCodes.StreamNotFound);
    expect(verdicts(error)).toEqual({ ...none, streamNotFound: true });
  });

  it('recognises a request on a closed connection as closed: an outage', async () => {
    const closed = await connect({ servers: nats.url });
    await closed.close();
    const error = await failureOf(() => closed.request('anything', new Uint8Array(), { timeout: 1_000 }));
    expect(verdicts(error)).toEqual({ ...none, closed: true, outage: true });
  });

  it('says nothing of errors that are not NATS failures', () => {
    expect(verdicts(new Error('no responders 503 wrong last sequence not found timeout'))).toEqual(none);
    expect(verdicts('a string')).toEqual(none);
    expect(jetStreamApiCodeOf(undefined)).toBeUndefined();
  });
});
