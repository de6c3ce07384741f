/**
 * `npm run bench -- cluster`: shardlog nodes as separate processes on one NATS (started here),
 * 64 partitions, one shard thread each, fsync, deposits over 1,000 accounts sent over HTTP
 * by this process to every node in turn (so with n nodes about (n−1)/n are forwarded).
 * - Throughput and p50/p99 with 1, 2 and 3 nodes (closed loop, 64 in flight).
 * - What a forwarded command adds: one command at a time to a node, for accounts it owns and
 *   for accounts another node owns.
 * - Joins: how long after a new node answers until every partition is served again.
 * - One handoff under load: n3 leaves gracefully (SIGTERM) while n1 and n2 take an open-loop
 *   load at half the three-node maximum; how long until n1 and n2 serve everything, and how
 *   many commands sent meanwhile waited longer than the steady p99. (A join under load mostly
 *   measures the new process's start-up, which takes the same 2 cores.)
 * Every node, NATS and this client share this machine's cores: the numbers show the cost of
 * the cluster machinery, not what more machines would add (docs/benchmarks.md's scaling model does).
 * Knobs: BENCH_SECONDS (per measured phase, default 10); BENCH_NODE_LOG=<pino level> writes
 * each node's log to bench-cluster-<node>.log in the working directory.
 */
import { writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { clusterReport, partitionOf } from '../runtime/index.ts';
import { startNatsServer, type NatsServer } from '../test/support/nats-server.ts';
import { startNodeProcess, type NodeProcess } from '../test/support/node-process.ts';
import { Latencies, round } from './support/latency.ts';
import { closedLoop, openLoop } from './support/load.ts';
import { envNumber, report, type ResultRow } from './support/results.ts';

const accounts = 1_000;
const partitions = 64;
const durationMs = envNumber('BENCH_SECONDS', 10) * 1_000;

// node:http with keep-alive, not fetch: fetch took most of a core for the client alone on this 2-core machine.
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function post(url: string, path: string, body: unknown): Promise<void> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${url}${path}`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString()));
      response.on('end', () => (response.statusCode === 200 ? resolve() : reject(new Error(`${path}: ${response.statusCode} ${text}`))));
    });
    request.on('error', reject);
    request.end(payload);
  });
}

function deposit(nodes: NodeProcess[]) {
  return (index: number) => post(nodes[index % nodes.length]!.url, `/commands/account/acc-${(index * 7919) % accounts}/deposit`, { amount: 1 });
}

/** Until the nodes serve every partition between them, no handoff under way; returns how long it took. */
async function settled(nats: NatsServer, nodes: NodeProcess[], timeoutMs = 120_000): Promise<number> {
  const started = Date.now();
  const names = new Set(nodes.map((node) => node.nodeId));
  for (;;) {
    const report = await clusterReport({ servers: nats.url, prefix: 'shardlog' });
    const served = await Promise.all(
      nodes.map(async (node) => ((await (await fetch(`${node.url}/readyz`)).json()) as { cluster: { owned: number; acquiring: number; releasing: number } }).cluster),
    );
    const owned = served.reduce((sum, state) => sum + state.owned, 0);
    const moving = served.some((state) => state.acquiring + state.releasing > 0);
    if (report !== undefined && owned === partitions && !moving && report.assignments.every((row) => names.has(row.owner) && row.target === null)) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error('cluster did not settle');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function maxRate(label: string, nodes: NodeProcess[]): Promise<ResultRow> {
  const result = await closedLoop(deposit(nodes), { inFlight: 64, warmupMs: 2_000, durationMs });
  return { name: `${label}: deposits, closed loop (64 in flight)`, opsPerSec: round(result.opsPerSec, 0), ...result.latencies.summary(), failures: result.failures };
}

/** One command at a time to `node`, for accounts whose partition it owns and for accounts another node owns. */
async function forwardingCost(nats: NatsServer, node: NodeProcess): Promise<ResultRow[]> {
  const report = (await clusterReport({ servers: nats.url, prefix: 'shardlog' }))!;
  const owner = new Map(report.assignments.map((row) => [row.partition, row.owner]));
  const ids = Array.from({ length: accounts }, (_, index) => `acc-${index}`);
  const local = ids.filter((id) => owner.get(partitionOf(`account/${id}`, partitions)) === node.nodeId);
  const remote = ids.filter((id) => owner.get(partitionOf(`account/${id}`, partitions)) !== node.nodeId);
  // Interleaved, one at a time, so the machine's noise falls on both alike.
  const latencies = { local: new Latencies(), forwarded: new Latencies() };
  const result = await closedLoop(
    async (index) => {
      const pool = index % 2 === 0 ? local : remote;
      const started = performance.now();
      await post(node.url, `/commands/account/${pool[(index >> 1) % pool.length]}/deposit`, { amount: 1 });
      (index % 2 === 0 ? latencies.local : latencies.forwarded).record(performance.now() - started);
    },
    { inFlight: 1, warmupMs: 1_000, durationMs },
  );
  const rate = round(result.opsPerSec / 2, 0);
  return [
    { name: '2 nodes: one at a time, partition owned by the receiving node', opsPerSec: rate, ...latencies.local.summary() },
    { name: '2 nodes: one at a time, forwarded to the owner over NATS', opsPerSec: rate, ...latencies.forwarded.summary() },
  ];
}

/**
 * The NATS limit of this machine: 64 publishes in flight over 64 subjects, each waiting for its
 * PubAck (as the relay's are), with message ids and a ~200-byte body like one deposit's batch.
 */
async function rawJetStream(nats: NatsServer): Promise<ResultRow> {
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'RAW_LIMIT', subjects: ['raw.*'], storage: 'file' });
    const js = jetstream(nc);
    const body = new Uint8Array(200).fill(7);
    // One publish in flight per subject, 64 subjects: the shape of the relay's traffic.
    const perSubject = await closedLoop(
      async (index) => {
        await js.publish(`raw.${index % partitions}`, body, { msgID: `p-${index}` });
      },
      { inFlight: partitions, warmupMs: 1_000, durationMs: Math.max(3_000, durationMs / 2) },
    );
    await jsm.streams.delete('RAW_LIMIT');
    return { name: 'raw JetStream publish, 64 in flight, PubAck each (NATS limit)', opsPerSec: round(perSubject.opsPerSec, 0), ...perSubject.latencies.summary(), failures: perSubject.failures };
  } finally {
    await nc.close();
  }
}

export async function runCluster(): Promise<void> {
  const nats = await startNatsServer();
  const nodes: NodeProcess[] = [];
  const start = async (nodeId: string) => {
    const node = await startNodeProcess(nodeId, ['--nats', nats.url, '--partitions', String(partitions), '--shards', '1', '--log-level', process.env.BENCH_NODE_LOG ?? 'warn']);
    nodes.push(node);
    return node;
  };
  try {
    const rows: ResultRow[] = [await rawJetStream(nats)];
    const n1 = await start('n1');
    await settled(nats, [n1]);
    await Promise.all(Array.from({ length: accounts }, (_, index) => post(n1.url, `/commands/account/acc-${index}/open`, { owner: `owner-${index % 50}` })));
    rows.push(await maxRate('1 node', [n1]));

    // Joins without load: from the new node answering until every partition is served again.
    const join = async (nodeId: string, members: NodeProcess[]) => {
      const node = await start(nodeId);
      const upAt = performance.now();
      await settled(nats, [...members, node]);
      return { node, settleMs: round(performance.now() - upAt, 0) };
    };
    const { node: n2, settleMs: joinSecondMs } = await join('n2', [n1]);
    const two = await maxRate('2 nodes', [n1, n2]);
    rows.push(two);
    const [local, forwarded] = await forwardingCost(nats, n1);
    rows.push(local!, forwarded!);
    const { node: n3, settleMs: joinThirdMs } = await join('n3', [n1, n2]);
    const three = await maxRate('3 nodes', [n1, n2, n3]);
    rows.push(three);

    // One graceful leave under load: clients send to n1 and n2 (as a load balancer does once n3
    // drains) at half the three-node maximum; n3 gets SIGTERM and hands its partitions over.
    const rate = Math.max(20, Math.round(three.opsPerSec / 2));
    const steady = await openLoop(deposit([n1, n2]), { ratePerSec: rate, durationMs: 5_000 });
    const threshold = Math.max(steady.latencies.percentile(99), 1);
    const moved = (await clusterReport({ servers: nats.url, prefix: 'shardlog' }))!.assignments.filter((row) => row.owner === 'n3').length;
    const samples: { startedAt: number; ms: number }[] = [];
    const load = openLoop(
      async (index) => {
        const startedAt = performance.now();
        await deposit([n1, n2])(index);
        samples.push({ startedAt, ms: performance.now() - startedAt });
      },
      { ratePerSec: rate, durationMs: Math.max(12_000, durationMs) },
    );
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const leftAt = performance.now();
    n3.signal('SIGTERM');
    await settled(nats, [n1, n2]);
    const settledAt = performance.now();
    await n3.exited;
    const underLeave = await load;
    const window = new Latencies();
    let delayed = 0;
    for (const sample of samples) {
      if (sample.startedAt < leftAt || sample.startedAt > settledAt) continue;
      window.record(sample.ms);
      if (sample.ms > threshold) delayed++;
    }
    rows.push({ name: `2 of 3 nodes take the load at ${rate}/s`, opsPerSec: round(steady.opsPerSec, 0), ...steady.latencies.summary() });
    rows.push({ name: `same load, sent while n3 leaves (${moved} partitions move)`, opsPerSec: round(underLeave.opsPerSec, 0), ...window.summary(), failures: underLeave.failures });

    const [raw, one] = rows;
    report('cluster', rows, {
      setup: { partitions, shardsPerNode: 1, durability: 'fsync', nats: 'nats-server 2.9 on loopback, file storage', client: 'this process, node:http keep-alive over loopback, each command to the next node in turn' },
      natsLimitPublishesPerSec: raw!.opsPerSec,
      scaling: { oneNode: one!.opsPerSec, twoNodes: two.opsPerSec, threeNodes: three.opsPerSec, twoOverOne: round(two.opsPerSec / one!.opsPerSec, 2), threeOverOne: round(three.opsPerSec / one!.opsPerSec, 2) },
      forwarding: { localP50Ms: local!.p50Ms, forwardedP50Ms: forwarded!.p50Ms, addedP50Ms: round(forwarded!.p50Ms - local!.p50Ms, 3), addedP99Ms: round(forwarded!.p99Ms - local!.p99Ms, 3) },
      joins: { secondNodeSettleMs: joinSecondMs, thirdNodeSettleMs: joinThirdMs },
      handoff: {
        kind: 'graceful leave (SIGTERM) under load',
        partitionsMoved: moved,
        signalToSettledMs: round(settledAt - leftAt, 0),
        steadyP99Ms: round(threshold, 3),
        commandsSentWhileMoving: window.count,
        slowerThanSteadyP99: delayed,
        p99MsWhileMoving: round(window.percentile(99), 1),
        maxMsWhileMoving: round(window.percentile(100), 1),
        failures: underLeave.failures,
      },
    });
  } finally {
    for (const node of nodes) {
      if (process.env.BENCH_NODE_LOG !== undefined) writeFileSync(`bench-cluster-${node.nodeId}.log`, node.output());
      node.signal('SIGKILL');
      await node.exited;
      node.removeDir();
    }
    await nats.stop();
  }
}
