import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import { isNatsOutage } from '../../runtime/bus/nats-errors.ts';
import { ClusterStore } from '../../runtime/cluster/cluster-store.ts';
import { startNatsServer } from '../support/nats-server.ts';
import { failureOf } from '../support/failure-of.ts';

const timings = { heartbeatMs: 500, deadAfterMs: 3_000 };

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function connected(): Promise<{ nc: NatsConnection; pause: () => Promise<void> }> {
  const server = await startNatsServer();
  cleanup.push(server.stop);
  const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100, noAsyncTraces: true });
  cleanup.push(() => nc.close());
  return { nc, pause: server.pause };
}

describe('the cluster store', () => {
  it('answers a lost compare-and-set with false or undefined', async () => {
    const { nc } = await connected();
    const store = await ClusterStore.open(nc, 'race', timings);
    expect(await store.setAssignment(0, { owner: 'a', epoch: 1 }, 0)).toBe(true);
    // Another leader wrote first: the key exists, and its revision is not 7.
    expect(await store.setAssignment(0, { owner: 'b', epoch: 1 }, 0)).toBe(false);
    expect(await store.setAssignment(0, { owner: 'b', epoch: 2 }, 7)).toBe(false);
    expect((await store.assignments()).get(0)?.assignment).toEqual({ owner: 'a', epoch: 1 });

    const revision = await store.lead('a', undefined);
    expect(revision).toBeGreaterThan(0);
    expect(await store.lead('b', undefined)).toBeUndefined();
    const refreshed = await store.lead('a', revision);
    expect(refreshed).toBeGreaterThan(revision!);
    // A refresh at a revision that moved on means the lock is no longer this node's.
    expect(await store.lead('a', revision)).toBeUndefined();
    expect(await store.leaderId()).toBe('a');
    // Once the holder resigns (a delete marker stays), another node takes the lock at once.
    await store.resign('a');
    expect(await store.lead('b', undefined)).toBeGreaterThan(refreshed!);
    expect(await store.leaderId()).toBe('b');
    expect(await store.lead('a', undefined)).toBeUndefined();
  });

  it('throws, rather than answering a lost race, when NATS does not answer', async () => {
    const { nc, pause } = await connected();
    const store = await ClusterStore.open(nc, 'outage', timings);
    const revision = await store.lead('a', undefined);
    await pause();
    const [assignment, lead, refresh] = await Promise.all([
      failureOf(() => store.setAssignment(0, { owner: 'a', epoch: 1 }, 0)),
      failureOf(() => store.lead('b', undefined)),
      failureOf(() => store.lead('a', revision)),
    ]);
    expect(isNatsOutage(assignment)).toBe(true);
    expect(isNatsOutage(lead)).toBe(true);
    expect(isNatsOutage(refresh)).toBe(true);
  });

  it('finds no cluster where none was created, and throws when NATS does not answer', async () => {
    const { nc, pause } = await connected();
    expect(await ClusterStore.openExisting(nc, 'none')).toBeUndefined();
    await ClusterStore.open(nc, 'some', timings);
    expect(await ClusterStore.openExisting(nc, 'some')).toBeInstanceOf(ClusterStore);
    await pause();
    expect(isNatsOutage(await failureOf(() => ClusterStore.openExisting(nc, 'some')))).toBe(true);
  });

  it('refuses a node whose partition count differs from the cluster’s', async () => {
    const { nc } = await connected();
    const store = await ClusterStore.open(nc, 'count', timings);
    await store.checkPartitionCount(8);
    await store.checkPartitionCount(8);
    await expect(store.checkPartitionCount(16)).rejects.toMatchObject({ code: 'SHARDLOG_CLUSTER_MISMATCH' });
  });
});
