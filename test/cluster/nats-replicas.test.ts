import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../cli/program.ts';
import type { Logger } from '../../runtime/index.ts';
import { failureOf } from '../support/failure-of.ts';
import { startNatsCluster, type NatsCluster } from '../support/nats-cluster.ts';
import { startNatsServer } from '../support/nats-server.ts';
import { startBank } from '../support/runtime.ts';
import { makeTempDir } from '../support/temp-dir.ts';

let nats: NatsCluster;

beforeAll(async () => {
  nats = await startNatsCluster(3);
}, 30_000);

afterAll(async () => {
  await nats.stop();
});

const layoutOf = (prefix: string) => [`${prefix.toUpperCase()}_EVENTS`, ...['CLUSTER', 'NODES', 'LEADER'].map((bucket) => `KV_${prefix.toUpperCase()}_${bucket}`)];

async function replicasOf(streams: string[]): Promise<Record<string, number>> {
  const nc = await connect({ servers: nats.urls });
  try {
    const jsm = await jetstreamManager(nc);
    return Object.fromEntries(await Promise.all(streams.map(async (stream) => [stream, (await jsm.streams.info(stream)).config.num_replicas] as const)));
  } finally {
    await nc.close();
  }
}

function warningsLogger(warnings: string[]): Logger {
  return { info: () => undefined, error: () => undefined, warn: (_details, message) => void warnings.push(message) };
}

async function shardlog(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { out: (text) => (stdout += text), err: (text) => (stderr += text) });
  return { code, stdout, stderr };
}

describe('replicas on a NATS cluster', () => {
  it('creates the event stream and every KV bucket with the replicas asked for, through a comma-separated server list', async () => {
    const { runtime, stop } = await startBank({ nats: { servers: nats.urls.join(','), prefix: 'rthree', replicas: 3 }, cluster: { nodeId: 'a' }, partitions: 4, shards: 1 });
    try {
      const answer = await runtime.dispatch({ aggregate: 'account', id: 'acc-1', command: 'open', input: { owner: 'ann' } });
      expect(answer.version).toBe(1);
      expect(await replicasOf(layoutOf('rthree'))).toEqual({ RTHREE_EVENTS: 3, KV_RTHREE_CLUSTER: 3, KV_RTHREE_NODES: 3, KV_RTHREE_LEADER: 3 });
    } finally {
      await stop();
    }
  }, 30_000);

  it('refuses at start more replicas than the NATS cluster has servers', async () => {
    const failure = await failureOf(() => startBank({ nats: { servers: nats.urls, prefix: 'rfive', replicas: 5 }, cluster: { nodeId: 'a' }, partitions: 4, shards: 1 }));
    expect(failure).toMatchObject({ code: 'SHARDLOG_NATS_REPLICAS_UNPLACEABLE' });
  }, 30_000);

  it('refuses more than one replica on a single nats-server, with one line from the CLI', async () => {
    const single = await startNatsServer();
    try {
      const failure = await failureOf(() => startBank({ nats: { servers: single.url, replicas: 3 }, cluster: { nodeId: 'a' }, partitions: 4, shards: 1 }));
      expect(failure).toMatchObject({ code: 'SHARDLOG_NATS_REPLICAS_UNPLACEABLE' });
      const data = makeTempDir();
      try {
        const start = await shardlog(['start', '--port', '0', '--data', data.dir, '--nats', single.url, '--node-id', 'a', '--nats-replicas', '3', '--log-level', 'silent']);
        expect(start.code).toBe(1);
        expect(start.stderr).toMatch(/^shardlog: NATS cannot place KV_SHARDLOG_(CLUSTER|NODES|LEADER) with 3 replicas: that needs a NATS cluster of at least 3 JetStream servers \(--nats-replicas 3\)\n$/);
      } finally {
        data.remove();
      }
      const cli = await shardlog(['cluster', 'replicas', '3', '--nats', single.url]);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toBe(`shardlog: no stream or bucket with prefix "shardlog" on ${single.url} (a node creates them with --nats-replicas 3)\n`);
    } finally {
      await single.stop();
    }
  }, 30_000);

  it('reports a stream and buckets that exist with another count, and `cluster replicas` changes them while a node serves', async () => {
    const first = await startBank({ nats: { servers: nats.urls, prefix: 'grow' }, cluster: { nodeId: 'a' }, partitions: 4, shards: 1 });
    await first.runtime.dispatch({ aggregate: 'account', id: 'acc-1', command: 'open', input: { owner: 'ann' } });
    await first.stop();
    expect(await replicasOf(layoutOf('grow'))).toEqual({ GROW_EVENTS: 1, KV_GROW_CLUSTER: 1, KV_GROW_NODES: 1, KV_GROW_LEADER: 1 });

    const warnings: string[] = [];
    const second = await startBank({ nats: { servers: nats.urls, prefix: 'grow', replicas: 3 }, cluster: { nodeId: 'a' }, partitions: 4, shards: 1, logger: warningsLogger(warnings) });
    try {
      for (const stream of layoutOf('grow')) {
        expect(warnings).toContain(`${stream} has 1 replica, not the 3 asked for (--nats-replicas); it keeps 1 until changed with 'shardlog cluster replicas 3 --nats <urls>'`);
      }
      const changed = await shardlog(['cluster', 'replicas', '3', '--nats', nats.urls.join(','), '--nats-prefix', 'grow']);
      expect(changed).toEqual({ code: 0, stderr: '', stdout: layoutOf('grow').map((stream) => `${stream}: 1 → 3 replicas\n`).join('') });
      expect(await replicasOf(layoutOf('grow'))).toEqual({ GROW_EVENTS: 3, KV_GROW_CLUSTER: 3, KV_GROW_NODES: 3, KV_GROW_LEADER: 3 });
      // The node serves on, through the change.
      const answer = await second.runtime.dispatch({ aggregate: 'account', id: 'acc-1', command: 'deposit', input: { amount: 5 } });
      expect(answer.version).toBe(2);

      const refused = await shardlog(['cluster', 'replicas', '4', '--nats', nats.urls.join(','), '--nats-prefix', 'grow']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^shardlog: cannot change the replicas on .*: NATS cannot place GROW_EVENTS with 4 replicas: that needs a NATS cluster of at least 4 JetStream servers \(--nats-replicas 4\)\n$/);
    } finally {
      await second.stop();
    }
  }, 60_000);
});
